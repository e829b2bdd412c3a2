"""Caption clean-up rules shared by the data set loaders."""

from __future__ import annotations

import string

# DenseCap's replacements for characters that its tokenizer could not keep (preprocess.py of
# jcjohnson/densecap), applied before lower-casing and punctuation removal.
_DENSECAP_REPLACEMENTS = {
    "\u00bd": "half",
    "\u2014": "-",
    "\u2122": "",
    "\u00a2": "cent",
    "\u00e7": "c",
    "\u00fb": "u",
    "\u00e9": "e",
    "\u00b0": " degree",
    "\u00e8": "e",
    "\u2026": "",
}
_DROP_PUNCTUATION = str.maketrans("", "", string.punctuation)


def densecap_tokens(phrase: str) -> list[str]:
    """Tokenize a region phrase the way DenseCap's preprocessing does.

    Special characters are replaced, the phrase lower-cased, ASCII punctuation deleted (not
    replaced by a space: "man's" becomes "mans") and the rest split on whitespace.
    """
    for old, new in _DENSECAP_REPLACEMENTS.items():
        phrase = phrase.replace(old, new)
    return phrase.lower().translate(_DROP_PUNCTUATION).split()


def densecap_clean(phrase: str) -> str:
    """DenseCap's phrase clean-up as one string of space-separated tokens ("" if none is left)."""
    return " ".join(densecap_tokens(phrase))


def is_valid_unicode(text: str) -> bool:
    """False for strings that cannot be written as UTF-8 (lone surrogates, which JSON's ``\\ud800``
    escapes and Python's ``surrogateescape`` decoding produce)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def normalize_whitespace(text: str) -> str:
    """Strip a caption and collapse inner runs of whitespace to one space (nothing else changes)."""
    return " ".join(text.split())


def category_caption(name: str) -> str:
    """The caption used for a class name in weak supervision: "Traffic_Light" -> "traffic light"."""
    return normalize_whitespace(name.replace("_", " ")).lower()
