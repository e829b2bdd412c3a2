"""Whether pycocoevalcap's SPICE can run here, decided from files only (it is never started to find
out: on first use it downloads Stanford CoreNLP 3.6.0, which hangs or fails without network)."""

from __future__ import annotations

import os

import pycocoevalcap.spice.spice as _pycocoevalcap_spice

SPICE_DIR = os.path.dirname(os.path.abspath(_pycocoevalcap_spice.__file__))
CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")


def spice_unavailable_reason(enabled: bool) -> str | None:
    """``None`` when SPICE can run, else why not (disabled, or CoreNLP jars missing)."""
    if not enabled:
        return "disabled (TEST.SCA.SPICE / spice=False)"
    lib = os.path.join(SPICE_DIR, "lib")
    missing = [jar for jar in CORENLP_JARS if not os.path.isfile(os.path.join(lib, jar))]
    if missing:
        return (
            f"Stanford CoreNLP 3.6.0 is not installed: {', '.join(missing)} missing from {lib} "
            f"(pycocoevalcap downloads it from nlp.stanford.edu at first use; place the two jars "
            f"there to enable SPICE)"
        )
    return None
