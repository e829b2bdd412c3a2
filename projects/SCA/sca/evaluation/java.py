"""The Java runtime that METEOR 1.5, the PTB tokenizer and SPICE (all from pycocoevalcap) need."""

from __future__ import annotations

import shutil

JAVA_HINT = (
    "install a Java runtime (e.g. `apt-get install default-jre-headless`, which "
    "tools/setup_env.sh does) or put `java` on PATH"
)


class JavaNotFoundError(RuntimeError):
    """Raised when no ``java`` executable is on PATH."""


def require_java(purpose: str = "METEOR 1.5 and the PTB tokenizer") -> str:
    """Return the path of ``java`` on PATH, or raise one clear :class:`JavaNotFoundError`."""
    java = shutil.which("java")
    if java is None:
        raise JavaNotFoundError(
            f"{purpose} need a Java runtime, but `java` is not on PATH: {JAVA_HINT}."
        )
    return java
