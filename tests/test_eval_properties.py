"""Properties of the DenseCap mAP and the caption metrics, on generated inputs (hypothesis).

The DenseCap properties run with a deterministic stand-in for METEOR (exact match after
METEOR's text clean-up) injected through ``evaluate_densecap(meteor=...)``, so that many examples
stay fast; a few examples run the real METEOR 1.5. The caption-metric properties run the real
pycocoevalcap scorers (a Java tokenizer per call), on few examples.
"""

import random

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sca.evaluation import evaluate_captions, evaluate_densecap, shared_meteor
from sca.evaluation.meteor import clean_for_meteor

VOCABULARY = ["a red car", "a small dog", "blue sky", "a man riding a horse", "green grass", ""]


class ExactMatchMeteor:
    """1.0 when the candidate equals a reference after METEOR's clean-up, else 0.0."""

    def score(self, pairs):
        return [
            float(clean_for_meteor(c) in {clean_for_meteor(r) for r in refs}) for c, refs in pairs
        ]


coordinate = st.integers(0, 160)
size = st.integers(0, 60)


@st.composite
def boxes(draw, inverted=False):
    x, y, w, h = draw(coordinate), draw(coordinate), draw(size), draw(size)
    box = [x, y, x + w, y + h]
    if inverted and draw(st.booleans()):
        box[0], box[2] = box[2] + draw(st.integers(1, 5)), box[0]
    return box


@st.composite
def densecap_case(draw):
    """Ground truth of 1-4 images (at least one box) and predictions with distinct scores."""
    num_images = draw(st.integers(1, 4))
    ground_truth = []
    for i in range(num_images):
        n = draw(st.integers(0, 3))
        ground_truth.append(
            {
                "image_id": i,
                "boxes": [draw(boxes()) for _ in range(n)],
                "captions": [draw(st.sampled_from(VOCABULARY[:-1])) for _ in range(n)],
            }
        )
    if not any(g["boxes"] for g in ground_truth):
        ground_truth[0]["boxes"] = [draw(boxes())]
        ground_truth[0]["captions"] = ["a red car"]
    counts = [draw(st.integers(0, 4)) for _ in range(num_images)]
    scores = draw(
        st.lists(st.integers(0, 10**6), min_size=sum(counts), max_size=sum(counts), unique=True)
    )
    predictions = []
    for i, n in enumerate(counts):
        if n == 0 and draw(st.booleans()):
            continue  # an image without a prediction entry
        own, scores = scores[:n], scores[n:]
        near = [b for b in ground_truth[i]["boxes"]]
        predictions.append(
            {
                "image_id": i,
                "boxes": [
                    draw(st.sampled_from(near))
                    if near and draw(st.booleans())
                    else draw(boxes(inverted=True))
                    for _ in range(n)
                ],
                "captions": [draw(st.sampled_from(VOCABULARY)) for _ in range(n)],
                "scores": [s / 10**6 for s in own],
            }
        )
    return predictions, ground_truth


def all_scores(result):
    return [
        result["map"],
        result["det_map"],
        *result["det_ap"],
        *result["det_recall"],
        *(ap for row in result["ap_table"] for ap in row),
    ]


def shuffled(items, seed):
    items = list(items)
    random.Random(seed).shuffle(items)
    return items


def permute_detections(entry, seed):
    order = shuffled(range(len(entry["scores"])), seed)
    return {
        "image_id": entry["image_id"],
        **{key: [entry[key][k] for k in order] for key in ("boxes", "captions", "scores")},
    }


PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(densecap_case(), st.integers(0, 1000), st.booleans())
def test_densecap_scores_and_order_invariance(case, seed, quirk):
    predictions, ground_truth = case
    meteor = ExactMatchMeteor()
    result = evaluate_densecap(predictions, ground_truth, quirk, meteor=meteor)
    assert all(0.0 <= s <= 1.0 for s in all_scores(result))
    reordered = evaluate_densecap(
        shuffled((permute_detections(p, seed) for p in predictions), seed),
        shuffled(ground_truth, seed + 1),
        quirk,
        meteor=meteor,
    )
    assert reordered == result


@PROPERTY_SETTINGS
@given(densecap_case(), st.integers(0, len(VOCABULARY) - 1), st.integers(0, 10**6), st.booleans())
def test_a_detection_overlapping_nothing_never_raises_recall_or_ap(case, word, score, quirk):
    predictions, ground_truth = case
    meteor = ExactMatchMeteor()
    before = evaluate_densecap(predictions, ground_truth, quirk, meteor=meteor)
    image = random.Random(score).randrange(len(ground_truth))
    entry = next((p for p in predictions if p["image_id"] == image), None)
    if entry is None:
        entry = {"image_id": image, "boxes": [], "captions": [], "scores": []}
        predictions = [*predictions, entry]
    entry["boxes"].append([1000, 1000, 1010, 1010])  # all boxes lie in [0, 220]
    entry["captions"].append(VOCABULARY[word])
    entry["scores"].append(score / 10**6 + 1e-7)  # distinct from the drawn scores
    after = evaluate_densecap(predictions, ground_truth, quirk, meteor=meteor)
    assert after["num_detections"] == before["num_detections"] + 1
    for b, a in zip(all_scores(before), all_scores(after)):
        assert a <= b


@settings(max_examples=4, deadline=None)
@given(densecap_case(), st.integers(0, 1000))
def test_densecap_order_invariance_with_real_meteor(case, seed):
    predictions, ground_truth = case
    result = evaluate_densecap(predictions, ground_truth)
    assert all(0.0 <= s <= 1.0 for s in all_scores(result))
    reordered = evaluate_densecap(
        shuffled((permute_detections(p, seed) for p in predictions), seed),
        shuffled(ground_truth, seed + 1),
    )
    assert reordered == result


def test_densecap_empty_sets():
    one_box = [{"image_id": 0, "boxes": [[0, 0, 9, 9]], "captions": ["a red car"]}]
    result = evaluate_densecap([], one_box, meteor=ExactMatchMeteor())
    assert all(s == 0.0 for s in all_scores(result)) and result["num_detections"] == 0
    empty = [{"image_id": 0, "boxes": [], "captions": [], "scores": []}]
    assert evaluate_densecap(empty, one_box, meteor=ExactMatchMeteor()) == result
    no_boxes = [{"image_id": 0, "boxes": [], "captions": []}]
    with pytest.raises(ValueError, match="no box"):
        evaluate_densecap([], no_boxes)
    with pytest.raises(ValueError, match="no box"):
        evaluate_densecap([], [])


caption_text = st.lists(
    st.sampled_from(["a", "red", "car", "dog", "small", "the", "sky", "on", "grass", "man"]),
    min_size=0,
    max_size=6,
).map(" ".join)
region = st.tuples(
    caption_text, st.lists(caption_text.filter(lambda t: t.strip()), min_size=1, max_size=3)
)


# Each example runs Java tokenizers: few examples, and no shrinking (which would run hundreds).
@settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(st.lists(region, min_size=1, max_size=6), st.integers(0, 1000))
def test_caption_metrics_range_and_order_invariance(regions, seed):
    shared_meteor()  # started once for the session
    predictions = [p for p, _ in regions]
    references = [r for _, r in regions]
    result = evaluate_captions(predictions, references)
    for key in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE_L", "exact_match"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["CIDEr"] >= 0.0  # CIDEr-D is not bounded by 1 (10 at most)
    order = shuffled(range(len(regions)), seed)
    again = evaluate_captions([predictions[k] for k in order], [references[k] for k in order])
    assert again.keys() == result.keys()
    for key, value in result.items():
        expected = (
            pytest.approx(value, rel=1e-12, nan_ok=True) if isinstance(value, float) else value
        )
        assert again[key] == expected, key


def test_caption_metrics_empty_set():
    with pytest.raises(ValueError, match="no region to evaluate"):
        evaluate_captions([], [])
    with pytest.raises(ValueError, match="no region to evaluate"):
        evaluate_captions({}, {})
