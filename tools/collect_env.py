#!/usr/bin/env python
"""Print the versions SCA runs on (same as ``python -m sca.collect_env``)."""

from sca.collect_env import main

if __name__ == "__main__":
    main()
