"""Caption metrics: equal to pycocoevalcap's scorers called directly, plus the added metrics."""

import math

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from sca.evaluation import caption_metrics, spice_status
from sca.evaluation.caption_metrics import evaluate_captions, normalize_caption
from sca.evaluation.meteor import shared_meteor
from sca.evaluation.pos_recall import noun_verb_recall

PREDICTIONS = [
    "A man riding a horse.",
    "a red car",
    "two dogs playing in the snow",
    "a  white Plate!!",
    "the sky",
]
REFERENCES = [
    ["a man is riding a brown horse", "person on a horse", "a rider"],
    ["a red car parked on the street"],
    ["dogs playing in snow", "two dogs in the snow"],
    ["A white plate", "plate on the table"],
    ["green grass"],
]


@pytest.fixture(scope="module")
def coco_meteor():
    """pycocoevalcap's own Meteor, the reference that the shared METEOR process is compared to.
    Both JVMs start at once: they load their paraphrase tables in parallel."""
    shared_meteor()
    meteor = Meteor()
    yield meteor
    meteor.meteor_p.kill()


def pycocoevalcap_directly(predictions, references, meteor):
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize(
        {i: [{"caption": r} for r in refs] for i, refs in enumerate(references)}
    )
    res = tokenizer.tokenize({i: [{"caption": p}] for i, p in enumerate(predictions)})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    meteor_score, _ = meteor.compute_score(gts, res)
    return {
        **{f"BLEU-{n}": b for n, b in enumerate(bleu, start=1)},
        "METEOR": meteor_score,
        "ROUGE_L": Rouge().compute_score(gts, res)[0],
        "CIDEr": Cider().compute_score(gts, res)[0],
    }


@pytest.fixture(scope="module")
def results(coco_meteor):
    return evaluate_captions(PREDICTIONS, REFERENCES)


def test_equal_to_pycocoevalcap_scorers(results, coco_meteor):
    expected = pycocoevalcap_directly(PREDICTIONS, REFERENCES, coco_meteor)
    for key, value in expected.items():
        assert results[key] == float(value), key
    assert 0 < results["METEOR"] < 1 and results["CIDEr"] > 0
    assert results["num_regions"] == 5


def test_mapping_input_gives_the_same_scores(results):
    keys = ["r1", "r2", "r3", "r4", "r5"]
    mapped = evaluate_captions(
        dict(zip(keys, PREDICTIONS)), dict(zip(keys[::-1], REFERENCES[::-1]))
    )
    assert mapped["CIDEr"] == results["CIDEr"] and mapped["BLEU-4"] == results["BLEU-4"]


def test_exact_match(results):
    # "A man riding a horse." no; "a red car" no; "two dogs ..." no; "a  white Plate!!" yes; no.
    assert results["exact_match"] == pytest.approx(1 / 5)
    assert normalize_caption("  A  white\nPlate!!. ") == "a white plate"
    assert normalize_caption("Mr. T's car.") == "mr. t's car"


def test_noun_verb_recall():
    pytest.importorskip("textblob")
    recall = noun_verb_recall(
        ["a man riding a horse", "a dog", "a cat"],
        [["a man is riding a horse"], ["a dog chasing a ball"], ["blue"]],
    )
    # nouns: {man, horse} all recalled; {dog, ball} half; "blue" has no noun (region left out).
    assert recall["noun_recall"] == pytest.approx((1 + 0.5) / 2)
    assert recall["noun_recall_regions"] == 2
    # verbs: {riding} recalled ("is" is not counted); {chasing} missed.
    assert recall["verb_recall"] == pytest.approx((1 + 0) / 2)
    assert recall["verb_recall_regions"] == 2


def test_results_report_noun_verb_recall_or_why_not(results):
    # the release's columns by default (tests/test_eval_pos_recall*.py test them in detail)
    if "noun_verb_recall_unavailable" in results:
        assert "textblob" in results["noun_verb_recall_unavailable"]
    elif results["pos_tagger"].startswith("spaCy"):
        assert all(0 <= results[k] <= 1 for k in ("Noun", "Verb", "Noun (F)", "Verb (F)"))
    else:
        assert 0 <= results["Noun (TextBlob)"] <= 1 and "fuzzy_recall_unavailable" in results


def test_spice_reported_unavailable_with_reason(results, monkeypatch, tmp_path):
    assert results["SPICE_unavailable"].startswith("disabled")
    monkeypatch.setattr(spice_status, "SPICE_DIR", str(tmp_path))
    (tmp_path / "lib").mkdir()
    reason = spice_status.spice_unavailable_reason(True)
    assert "stanford-corenlp-3.6.0.jar" in reason and "first use" in reason
    for jar in spice_status.CORENLP_JARS:
        (tmp_path / "lib" / jar).write_bytes(b"")
    assert spice_status.spice_unavailable_reason(True) is None


def test_spice_without_corenlp_does_not_start(monkeypatch, tmp_path):
    monkeypatch.setattr(spice_status, "SPICE_DIR", str(tmp_path))
    monkeypatch.setattr(caption_metrics, "_spice", lambda *a: pytest.fail("SPICE was started"))
    out = evaluate_captions(["a car"], [["a car"]], spice=True)
    assert "SPICE" not in out and "Stanford CoreNLP" in out["SPICE_unavailable"]


def test_whitespace_and_empty_prediction():
    out = evaluate_captions(["a red\ncar", ""], [["a red car"], ["a dog"]])
    assert out["exact_match"] == 0.5
    assert all(math.isfinite(out[k]) for k in ("CIDEr", "METEOR", "BLEU-1", "ROUGE_L"))


@pytest.mark.parametrize(
    "predictions, references, error, message",
    [
        (["a car"], [[""]], ValueError, "non-empty strings"),
        (["a car"], [[]], ValueError, "non-empty list"),
        (["a car"], ["a car"], ValueError, "non-empty list"),
        (["a car", "a dog"], [["a car"]], ValueError, "2 predictions but 1"),
        ([None], [["a car"]], ValueError, "must be a string"),
        ({"a": "x"}, {"b": ["x"]}, ValueError, "same keys"),
        ({"a": "x"}, [["x"]], TypeError, "both be mappings"),
        ([], [], ValueError, "no region"),
    ],
)
def test_bad_input(predictions, references, error, message):
    with pytest.raises(error, match=message):
        evaluate_captions(predictions, references)
