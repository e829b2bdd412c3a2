"""The anything-mode evaluator: recoveries (one-to-one, mask IoU >= 0.75), exact captions among
them and the DenseCap mAP, on hand-made regions; and sca.engine.anything_eval on a tiny model."""

import json

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, BoxMode, Instances
from PIL import Image
from pycocotools import mask as mask_utils
from tiny_models import tiny_train_cfg

from sca.evaluation import AnythingEvaluator
from sca.evaluation.anything_evaluator import match_regions
from sca.evaluation.meteor import clean_for_meteor

H = W = 32
DATASET = "anything_eval_test_shapes"


class ExactMatchMeteor:
    """1.0 when the candidate equals a reference after METEOR's clean-up, else 0.0 (no Java)."""

    def score(self, pairs):
        return [
            float(clean_for_meteor(c) in {clean_for_meteor(r) for r in refs}) for c, refs in pairs
        ]


def _square(x0, y0, side):
    m = np.zeros((H, W), dtype=bool)
    m[y0 : y0 + side, x0 : x0 + side] = True
    return m


def _annotation(mask, caption):
    ys, xs = np.nonzero(mask)
    return {
        "bbox": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1],
        "bbox_mode": BoxMode.XYXY_ABS,
        "segmentation": mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))),
        "captions": [caption],
    }


# image 1: a red square A and a blue square B; image 2: a green square C
A, B, C = _square(2, 2, 10), _square(18, 18, 10), _square(4, 16, 8)
RECORDS = [
    {
        "image_id": 1,
        "height": H,
        "width": W,
        "annotations": [_annotation(A, "a red square"), _annotation(B, "a blue square")],
    },
    {"image_id": 2, "height": H, "width": W, "annotations": [_annotation(C, "a green square")]},
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("anything_eval_images")
    for record in RECORDS:
        image = np.zeros((H, W, 3), dtype=np.uint8)
        for ann, color in zip(record["annotations"], [(220, 40, 40), (50, 80, 220)]):
            image[mask_utils.decode(ann["segmentation"]) > 0] = color
        record["file_name"] = str(folder / f"{record['image_id']}.png")
        Image.fromarray(image).save(record["file_name"])
    if DATASET not in DatasetCatalog.list():
        DatasetCatalog.register(DATASET, lambda: [dict(r) for r in RECORDS])
        MetadataCatalog.get(DATASET).set(evaluator_type="dense_caption")
    return DATASET


def _output(masks, captions, scores):
    inst = Instances((H, W))
    inst.pred_masks = torch.as_tensor(np.stack(masks)) if masks else torch.zeros(0, H, W).bool()
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.pred_captions = list(captions)
    inst.scores = torch.tensor(scores, dtype=torch.float32)
    return {"instances": inst}


def _evaluate(dataset, outputs, tmp_path=None):
    evaluator = AnythingEvaluator(
        dataset, tmp_path and str(tmp_path), distributed=False, meteor=ExactMatchMeteor()
    )
    evaluator.reset()
    for image_id, out in outputs:
        evaluator.process([{"image_id": image_id}], [out])
    return evaluator.evaluate()["anything"]


def test_missed_duplicate_and_wrong_caption_are_counted(dataset, tmp_path):
    a_shifted = _square(3, 2, 10)  # IoU 90/110 = 0.82 with A: recovers it
    b_half = _square(18, 18, 10) & (np.arange(W) < 23)[None, :]  # IoU 0.5 with B: too loose
    c_loose = _square(4, 16, 10)  # IoU 64/100 = 0.64 with C: missed
    background = _square(20, 2, 6)
    outputs = [
        # A found twice (the duplicate scores lower), B only by a loose mask
        (1, _output([A, a_shifted, b_half], ["a red square", "a RED  square", "a blue square"],
                    [0.9, 0.8, 0.7])),
        (2, _output([c_loose, background], ["a green square", "a green square"], [0.95, 0.6])),
    ]  # fmt: skip
    summary = _evaluate(dataset, outputs, tmp_path)
    assert summary["recovered"] == pytest.approx(100 / 3)  # A only
    assert summary["exact_of_recovered"] == pytest.approx(100.0)
    assert summary["regions_per_image"] == pytest.approx(2.5)
    assert summary["duplicates"] == pytest.approx(0.5)  # a_shifted
    assert summary["unmatched"] == pytest.approx(1.5)  # b_half, c_loose, background
    results = json.loads((tmp_path / "anything_results.json").read_text())
    assert (results["annotations"], results["recovered"], results["exact"]) == (3, 1, 1)
    image1 = json.loads((tmp_path / "anything_predictions.json").read_text())["images"][0]
    assert image1["matched_region"] == [0, -1] and image1["matched_iou"][0] == 1.0
    # DenseCap, by boxes: A and C's loose box (IoU 0.64) are hits, B's half box only at IoU
    # thresholds <= 0.5, the duplicate and the background box are false positives; every hit's
    # caption is right, so the mAP equals the detection mAP
    assert 0 < summary["mAP"] < 100
    assert summary["mAP"] == pytest.approx(summary["det_mAP"])


def test_wrong_caption_counts_as_recovered_not_exact(dataset):
    outputs = [
        (1, _output([A, B], ["a red circle", "a blue square"], [0.9, 0.8])),
        (2, _output([C], ["a green square"], [0.7])),
    ]
    summary = _evaluate(dataset, outputs)
    assert summary["recovered"] == pytest.approx(100.0)
    assert summary["exact_of_recovered"] == pytest.approx(200 / 3)
    assert summary["duplicates"] == summary["unmatched"] == 0


def test_the_higher_scored_duplicate_is_the_match(dataset):
    # both masks recover A; the higher-scored one (wrong caption) takes it
    outputs = [(1, _output([_square(3, 2, 10), A], ["a red circle", "a red square"], [0.9, 0.5]))]
    summary = _evaluate(dataset, outputs + [(2, _output([], [], []))])
    assert summary["recovered"] == pytest.approx(100 / 3)
    assert summary["exact_of_recovered"] == 0.0
    assert summary["duplicates"] == pytest.approx(0.5)


def test_perfect_regions_score_full_marks(dataset):
    outputs = [
        (1, _output([A, B], ["a red square", "a blue square"], [0.9, 0.8])),
        (2, _output([C], ["a green square"], [0.7])),
    ]
    summary = _evaluate(dataset, outputs)
    assert summary["recovered"] == summary["exact_of_recovered"] == 100.0
    assert summary["mAP"] == pytest.approx(100.0) and summary["det_mAP"] == pytest.approx(100.0)


def test_match_regions_is_one_to_one_in_score_order():
    iou = np.array([[0.8, 0.0], [0.9, 0.0], [0.0, 0.7], [0.76, 0.9]])
    matched = match_regions(iou, np.array([0.5, 0.9, 0.8, 0.1]), 0.75)
    # region 1 (best score) takes annotation 0; region 3 then takes annotation 1; region 2 is
    # below the threshold and region 0 a duplicate of annotation 0
    np.testing.assert_array_equal(matched, [1, 3])
    assert match_regions(np.zeros((0, 2)), np.zeros(0), 0.75).tolist() == [-1, -1]


def test_outputs_must_be_in_the_original_frame(dataset):
    evaluator = AnythingEvaluator(dataset, None, distributed=False, meteor=ExactMatchMeteor())
    inst = _output([A], ["a red square"], [0.9])["instances"]
    inst.pred_masks = torch.zeros(1, H // 2, W // 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="original frame"):
        evaluator.process([{"image_id": 1}], [{"instances": inst}])


def test_anything_evaluation_reports_and_restores_the_prompt_source(
    tmp_path, tiny_gpt2, dataset, monkeypatch
):
    from detectron2.modeling import build_model

    from sca.engine import SCATrainer
    from sca.engine.anything_eval import evaluate_anything
    from sca.evaluation import anything_evaluator

    monkeypatch.setattr(anything_evaluator, "evaluate_densecap", _exact_match_densecap)
    cfg = tiny_train_cfg(tiny_gpt2, max_iter=1, checkpoint_period=1, test_batch=2)
    cfg.DATASETS.TEST = (dataset,)
    cfg.OUTPUT_DIR = str(tmp_path)
    cfg.MODEL.SCA.ANYTHING.POINTS_PER_SIDE = 3
    cfg.MODEL.SCA.ANYTHING.PRED_IOU_THRESH = 0.0  # an untrained decoder: keep what it finds
    cfg.MODEL.SCA.ANYTHING.STABILITY_SCORE_THRESH = 0.0
    cfg.MODEL.SCA.ANYTHING.EVAL_NUM_VIS_IMAGES = 1
    model = build_model(cfg).eval()
    source = model.prompt_source
    results = evaluate_anything(cfg, model, SCATrainer.build_test_loader)
    assert model.prompt_source is source
    summary = results[dataset]["anything"]
    assert set(summary) >= {"recovered", "exact_of_recovered", "mAP", "det_mAP"}
    assert summary["regions_per_image"] > 0
    saved = json.loads((tmp_path / "inference" / dataset / "anything" / "anything_results.json")
                       .read_text())  # fmt: skip
    assert saved["annotations"] == 3 and saved["images"] == 2
    assert (tmp_path / "visualizations" / f"{dataset}_anything" / "1.png").is_file()


def _exact_match_densecap(predictions, ground_truth, last_target_quirk=True, meteor=None):
    from sca.evaluation.densecap_map import evaluate_densecap

    return evaluate_densecap(predictions, ground_truth, last_target_quirk, ExactMatchMeteor())
