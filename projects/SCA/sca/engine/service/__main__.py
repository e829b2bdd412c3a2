"""``python -m sca.engine.service --config-file ...``: the same as ``tools/serve.py``."""

from .server import main

main()
