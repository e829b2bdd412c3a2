#!/usr/bin/env python
"""Convert an official SCA release folder into this project's Detectron2 checkpoint and config.

    python tools/convert_sca_release.py segment-caption-anything-gpt2_large-vg/ converted/
    python tools/train_net.py --config-file converted/config.yaml --eval-only

IN is a Hugging Face ``save_pretrained`` folder (config.json plus model.safetensors or
pytorch_model*.bin, sharded or not). OUT receives model_final.pth, config.yaml (the release's
architecture on the paper recipe, MODEL.WEIGHTS set) and lm/ (the LM's config and tokenizer).
The key mapping is the table in docs/MODEL_ZOO.md; GPT-2's output layer is tied to its input
embedding, as the release's config says, and nothing is unpickled.
"""

import argparse
import logging
import sys

try:
    import sca  # noqa: F401
except ImportError as e:
    sys.exit(f"error: {e}")

from sca.model_zoo import convert_release  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="official release folder (config.json + weights)")
    parser.add_argument("output", help="folder for model_final.pth, config.yaml and lm/")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = convert_release(args.input, args.output)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
