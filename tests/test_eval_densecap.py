"""DenseCap mAP: hand-computed cases for every rule of jcjohnson/densecap's eval_utils.lua.

All cases run METEOR 1.5 through the one process shared by the test session. Captions of "right"
detections equal their reference (METEOR > 0.25); "unrelated" captions share no word, stem,
synonym or paraphrase with it (METEOR 0).
"""

import numpy as np
import pytest

from sca.evaluation.densecap_boxes import (
    as_lua_boxes,
    merge_ground_truth,
    merge_groups,
    pairwise_iou,
)
from sca.evaluation.densecap_map import RECALL_THRESHOLDS, evaluate_densecap

CAR = [0, 0, 99, 99]  # 100 x 100 pixels under the +1 convention
DOG = [200, 200, 299, 299]


def gt(*images):
    return [
        {"image_id": i, "boxes": [b for b, _ in regions], "captions": [c for _, c in regions]}
        for i, regions in enumerate(images)
    ]


def pred(image_id, *detections):
    return {
        "image_id": image_id,
        "boxes": [d[0] for d in detections],
        "captions": [d[1] for d in detections],
        "scores": [d[2] for d in detections],
    }


TWO_TARGETS = gt([(CAR, "a red car"), (DOG, "a small dog")])


def test_lua_recall_thresholds():
    # Lua's `for t=0,1,0.01` accumulates 0.01: 100 values, the 51st just above 0.5.
    assert len(RECALL_THRESHOLDS) == 100
    assert RECALL_THRESHOLDS[0] == 0.0
    assert RECALL_THRESHOLDS[50] > 0.5 > RECALL_THRESHOLDS[49]
    assert RECALL_THRESHOLDS[-1] == pytest.approx(0.99)


def test_perfect_predictions_give_one():
    ground_truth = gt(
        [(CAR, "a red car"), (DOG, "a small dog")], [([10, 10, 49, 59], "a man in a blue shirt")]
    )
    predictions = [
        pred(0, (CAR, "a red car", 0.9), (DOG, "a small dog", 0.8)),
        pred(1, ([10, 10, 49, 59], "a man in a blue shirt", 0.7)),
    ]
    result = evaluate_densecap(predictions, ground_truth)
    assert result["map"] == 1.0
    assert result["det_map"] == 1.0
    assert np.array(result["ap_table"]).shape == (5, 6)
    assert result["num_targets"] == 3 and result["num_detections"] == 3


def test_right_box_unrelated_caption():
    predictions = [pred(0, (CAR, "blue sky", 0.9), (DOG, "green grass", 0.8))]
    result = evaluate_densecap(predictions, TWO_TARGETS)
    assert result["map"] == 0.0
    assert result["det_map"] == 1.0


def test_iou_045_counts_at_03_and_04_only():
    # [0, 0, 44, 99] inside CAR: 45 x 100 / (100 x 100) = 0.45.
    assert pairwise_iou(as_lua_boxes([[0, 0, 44, 99]]), as_lua_boxes([CAR]))[0, 0] == 0.45
    result = evaluate_densecap(
        [pred(0, ([0, 0, 44, 99], "a red car", 0.9))], gt([(CAR, "a red car")])
    )
    assert result["det_ap"] == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert [row[0] for row in result["ap_table"]] == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert result["map"] == pytest.approx(12 / 30)
    assert result["det_map"] == pytest.approx(2 / 5)


def test_plus_one_pixel_convention():
    # Target [0, 0, 9, 9] is 10 x 10 pixels, [0, 0, 9, 4] is 10 x 5: IoU 50 / 100 = 0.5. Without the
    # +1 it would be (9 x 4) / (9 x 9) = 0.44.
    target, box = [0, 0, 9, 9], [0, 0, 9, 4]
    assert pairwise_iou(as_lua_boxes([box]), as_lua_boxes([target]))[0, 0] == 0.5
    result = evaluate_densecap([pred(0, (box, "a red car", 0.9))], gt([(target, "a red car")]))
    assert result["det_ap"] == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_boxes_touching_by_one_pixel_overlap():
    # x2 == x1 of the other box: one shared pixel column (intersection width 1).
    iou = pairwise_iou(as_lua_boxes([[0, 0, 9, 9]]), as_lua_boxes([[9, 0, 18, 9]]))[0, 0]
    assert iou == pytest.approx(10 / 190)


def test_duplicates_of_one_target_count_once():
    # Two right detections of CAR, none of DOG: tp = [1, 0], recall 0.5 at best. Recall >= t holds
    # for the 50 thresholds below 0.5 (the 51st is 0.5000000000000002): AP = 50 / 100.
    predictions = [pred(0, (CAR, "a red car", 0.9), (CAR, "a red car", 0.8))]
    result = evaluate_densecap(predictions, TWO_TARGETS)
    assert result["det_map"] == 0.5
    assert result["map"] == 0.5


def test_low_iou_detection_still_takes_its_target():
    # As in the Lua code, a detection takes its best target whatever the IoU: a higher-scored box
    # at IoU 0.2 with CAR makes the later exact CAR box a duplicate.
    predictions = [pred(0, ([0, 0, 19, 99], "a red car", 0.9), (CAR, "a red car", 0.8))]
    result = evaluate_densecap(predictions, gt([(CAR, "a red car")]))
    assert result["det_map"] == 0.0 and result["map"] == 0.0


def test_last_target_quirk_on_and_off():
    # The first detection overlaps nothing. With the quirk it claims the image's last merged target
    # (DOG), so the later exact DOG detection is a duplicate: AP 0. Without it: tp = [0, 1],
    # precision 0.5 at recall 0.5, AP = 50 x 0.5 / 100.
    predictions = [pred(0, ([500, 500, 599, 599], "a cat", 0.9), (DOG, "a small dog", 0.8))]
    on = evaluate_densecap(predictions, TWO_TARGETS, last_target_quirk=True)
    off = evaluate_densecap(predictions, TWO_TARGETS, last_target_quirk=False)
    assert on["map"] == 0.0 and on["det_map"] == 0.0
    assert off["map"] == 0.25 and off["det_map"] == 0.25
    # The quirk only blocks the *last* target: a later CAR detection is unaffected.
    predictions = [pred(0, ([500, 500, 599, 599], "a cat", 0.9), (CAR, "a red car", 0.8))]
    assert evaluate_densecap(predictions, TWO_TARGETS, last_target_quirk=True)["det_map"] == 0.25


def test_merge_is_greedy_and_not_transitive():
    # Four 100-pixel boxes shifted by 10: neighbours IoU 90/110 = 0.82, two apart 80/120 = 0.67.
    boxes = as_lua_boxes([[10 * k, 0, 10 * k + 99, 99] for k in range(4)])
    groups = merge_groups(boxes, 0.7)
    # Boxes 1 and 2 have 3 boxes >= 0.7 each; the first (1) takes {0, 1, 2}; 3 stays alone.
    assert [g.tolist() for g in groups] == [[0, 1, 2], [3]]


def test_ground_truth_merging():
    a, a2, b = [0, 0, 99, 99], [2, 2, 101, 101], [300, 300, 399, 399]  # IoU(a, a2) = 0.92
    boxes, refs = merge_ground_truth(
        as_lua_boxes([a, b, a2]), [["a red car"], ["a dog"], ["red auto"]]
    )
    assert boxes.tolist() == [[1.0, 1.0, 100.0, 100.0], [300.0, 300.0, 399.0, 399.0]]
    assert refs == [["a red car", "red auto"], ["a dog"]]
    ground_truth = gt([(a, "a red car"), (b, "a small dog"), (a2, "a red automobile")])
    # Two merged targets; the second reference of the merged box is matched by METEOR too.
    predictions = [
        pred(0, ([1, 1, 100, 100], "a red automobile", 0.9), (b, "a small dog", 0.8)),
    ]
    result = evaluate_densecap(predictions, ground_truth)
    assert result["num_targets"] == 2
    assert result["map"] == 1.0
    # One detection per original box: the second one on the merged car is a duplicate.
    predictions = [pred(0, (a, "a red car", 0.9), (a2, "a red car", 0.85), (b, "a small dog", 0.8))]
    result = evaluate_densecap(predictions, ground_truth)
    # tp = [1, 0, 1]: precision 1 up to recall 0.5, 2/3 at recall 1.
    expected = (50 * 1.0 + 50 * (2 / 3)) / 100
    assert result["det_map"] == pytest.approx(expected, abs=1e-15)


def test_ranking_is_global_across_images():
    # Image 0: a wrong caption at 0.9; image 1: a right one at 0.5. Sorted over the data set:
    # tp = [0, 1] for the caption APs, [1, 1] for detection.
    ground_truth = gt([(CAR, "a red car")], [(DOG, "a small dog")])
    predictions = [pred(0, (CAR, "blue sky", 0.9)), pred(1, (DOG, "a small dog", 0.5))]
    result = evaluate_densecap(predictions, ground_truth)
    assert result["det_map"] == 1.0
    assert result["map"] == 0.25


def test_image_without_prediction_counts_its_targets():
    ground_truth = gt([(CAR, "a red car")], [(DOG, "a small dog")])
    result = evaluate_densecap([pred(0, (CAR, "a red car", 0.9))], ground_truth)
    assert result["num_targets"] == 2 and result["det_map"] == 0.5


def test_no_detection_gives_zero():
    assert evaluate_densecap([], TWO_TARGETS)["map"] == 0.0


def test_empty_predicted_caption_is_a_detection_without_caption_credit():
    result = evaluate_densecap([pred(0, (CAR, "", 0.9), (DOG, " \n", 0.8))], TWO_TARGETS)
    assert result["det_map"] == 1.0 and result["map"] == 0.0


def test_newlines_in_captions_do_not_hang_meteor():
    predictions = [pred(0, (CAR, "a red\ncar", 0.9), (DOG, "a small\r\n dog |||", 0.8))]
    ground_truth = gt([(CAR, "a red\n\ncar"), (DOG, ["a small dog", "a dog ||| small"])])
    assert evaluate_densecap(predictions, ground_truth)["map"] == 1.0


@pytest.mark.parametrize(
    "predictions, message",
    [
        ([pred(7, (CAR, "a red car", 0.9))], "absent from the ground truth"),
        ([pred(0, (CAR, "a red car", float("nan")))], "finite"),
        ([pred(0, (CAR, "a red car", float("inf")))], "finite"),
        ([pred(0, ([0, 0, float("nan"), 99], "a red car", 0.9))], "image 0: coordinates .*finite"),
        ([pred(0, (CAR, "a red car", "high"))], "image 0: scores must be numbers"),
        ([pred(0, (CAR, 7, 0.9))], "image 0: captions must be strings"),
        ([pred(0, (CAR, None, 0.9))], "image 0: captions must be strings"),
        ([{"image_id": 0, "boxes": [CAR]}], "predictions\\[0\\]: expected a mapping with keys"),
        ([pred(0, (CAR, "a red car", 0.9)), pred(0, (DOG, "a dog", 0.8))], "appears twice"),
        ([{"image_id": 0, "boxes": [CAR], "captions": [], "scores": [0.9]}], "1 boxes, 0 captions"),
    ],
)
def test_bad_predictions_are_rejected(predictions, message):
    with pytest.raises(ValueError, match=message):
        evaluate_densecap(predictions, TWO_TARGETS)


@pytest.mark.parametrize(
    "ground_truth, message",
    [
        (gt([(CAR, "")]), "non-empty strings"),
        (gt([(CAR, [])]), "non-empty list"),
        (gt([([10, 0, 5, 9], "a car")]), "x2 >= x1"),
        (gt([]), "no box"),
    ],
)
def test_bad_ground_truth_is_rejected(ground_truth, message):
    with pytest.raises(ValueError, match=message):
        evaluate_densecap([], ground_truth)


def test_inverted_predicted_boxes_are_scored_as_lua_does(caplog):
    # Inverted by 40 pixels: Lua's intersection width min(x2) - max(x1) + 1 = -39, no overlap,
    # so the box scores exactly as a box far from every target.
    far = [500, 500, 510, 510]
    inverted = [50, 0, 10, 99]
    for quirk in (True, False):
        with caplog.at_level("WARNING", logger="sca.evaluation.densecap_map"):
            caplog.clear()
            got = evaluate_densecap(
                [pred(0, (inverted, "a red car", 0.9), (DOG, "a small dog", 0.8))],
                TWO_TARGETS,
                last_target_quirk=quirk,
            )
        expected = evaluate_densecap(
            [pred(0, (far, "a red car", 0.9), (DOG, "a small dog", 0.8))],
            TWO_TARGETS,
            last_target_quirk=quirk,
        )
        assert got["num_inverted_boxes"] == 1 and expected["num_inverted_boxes"] == 0
        assert {k: v for k, v in got.items() if k != "num_inverted_boxes"} == {
            k: v for k, v in expected.items() if k != "num_inverted_boxes"
        }
        warnings = [r for r in caplog.records if "x2 < x1" in r.getMessage()]
        assert len(warnings) == 1 and "1 predicted boxes" in warnings[0].getMessage()
    # The quirk: the non-overlapping detection claims the last target (the dog) first.
    assert got["det_recall"] == [0.5] * 5  # quirk off: the dog is found
    blocked = evaluate_densecap(
        [pred(0, (inverted, "a red car", 0.9), (DOG, "a small dog", 0.8))], TWO_TARGETS
    )
    assert blocked["det_recall"] == [0.0] * 5 and blocked["map"] == 0.0


def test_box_inverted_by_less_than_a_pixel_is_a_thin_box():
    # x1 = 10, x2 = 9.5: +1 width 0.5, so against CAR the intersection is 0.5 x 100 = 50 and the
    # union 100 x 100 + 0.5 x 100 - 50 = 10,000: IoU 0.005 (Lua's arithmetic, step by step).
    thin = as_lua_boxes([[10, 0, 9.5, 99]], allow_inverted=True)
    assert pairwise_iou(thin, as_lua_boxes([CAR]))[0, 0] == 50 / 10000
    both = as_lua_boxes([[10, 10, 0, 0]], allow_inverted=True)  # inverted on both axes
    assert pairwise_iou(both, as_lua_boxes([CAR]))[0, 0] == 0.0
    result = evaluate_densecap([pred(0, ([10, 0, 9.5, 99], "a red car", 0.9))], gt([(CAR, "x")]))
    assert result["num_inverted_boxes"] == 1 and result["det_map"] == 0.0


def test_invalid_predictions_fail_before_meteor_starts():
    class NoMeteor:
        def score(self, pairs):
            raise AssertionError("METEOR was started")

    good = pred(0, (CAR, "a red car", 0.9))
    for bad in (
        pred(1, (CAR, "a red car", float("nan"))),
        pred(1, (CAR, 3, 0.9)),
        pred(5, (CAR, "a red car", 0.9)),
        pred(0, (CAR, "a red car", 0.5)),
    ):
        ground_truth = gt([(CAR, "a red car")], [(CAR, "a red car")])
        with pytest.raises(ValueError, match=f"image {bad['image_id']}"):
            evaluate_densecap([good, bad], ground_truth, meteor=NoMeteor())
