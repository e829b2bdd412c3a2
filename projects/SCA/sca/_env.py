"""Early checks that turn a broken environment into one clear message."""

import importlib.util


class MissingDependencyError(ImportError):
    pass


def require_detectron2() -> None:
    missing = [
        m
        for m in ("torch", "detectron2", "segment_anything", "transformers")
        if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise MissingDependencyError(
            f"SCA needs {', '.join(missing)}, which this Python cannot import. Run `make setup` "
            "(tools/setup_env.sh) from the repository root and use .venv/bin/python, or see "
            "README.md 'Installing on a machine with a network and a GPU' for Detectron2 "
            "from source."
        )
