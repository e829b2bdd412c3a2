"""Anything mode: one image-encoder pass per image (per crop), captions for survivors only."""

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from detectron2.data import detection_utils
from tiny_models import tiny_sam_cfg

from sca.engine import SCAPredictor
from sca.modeling.anything import AnythingGenerator, AnythingParams

DOG = SHARED_DATA / "sam_demo_images" / "dog.jpg"
# The tiny random SAM of tiny_sam_cfg predicts IoUs of about 0-0.5 here, so this
# threshold keeps some of the masks of 36 points. Its masks all cover most of the image, so the
# stability filter is off and NMS 0.7 leaves a single region; NMS 1.0 keeps all.
PARAMS = AnythingParams(
    points_per_side=6,
    points_per_batch=8,
    pred_iou_thresh=0.4,
    stability_score_thresh=0.0,
    box_nms_thresh=1.0,
)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory, tiny_gpt2):
    return SCAPredictor(tiny_sam_cfg(tiny_gpt2, tmp_path_factory.mktemp("sam")))


@pytest.fixture(scope="module")
def image():
    if not DOG.is_file():
        pytest.skip(f"{DOG} is absent")
    return detection_utils.read_image(str(DOG), format="RGB")


class Counter:
    """Counts calls of a module's forward and the rows of its first argument."""

    def __init__(self, module: torch.nn.Module):
        self.calls, self.rows = 0, 0
        self.handle = module.register_forward_pre_hook(self._hook)

    def _hook(self, _module, args):
        self.calls += 1
        self.rows += args[0].shape[0]

    def close(self):
        self.handle.remove()


def _run(predictor, image, params):
    encoder = Counter(predictor.model.backbone)
    mixer = Counter(predictor.model.roi_heads.mixer)
    lm = Counter(predictor.model.roi_heads.captioner.language_project)
    try:
        regions = AnythingGenerator(predictor.model, params).generate(image)
    finally:
        for c in (encoder, mixer, lm):
            c.close()
    return regions, encoder, mixer, lm


@pytest.mark.parametrize("points_per_side", [2, 6, 12])
def test_encoder_runs_once_per_image_whatever_the_points(predictor, image, points_per_side):
    params = AnythingParams(
        **{**PARAMS.__dict__, "points_per_side": points_per_side, "box_nms_thresh": 0.7}
    )
    _, encoder, _, _ = _run(predictor, image, params)
    assert encoder.calls == 1 and encoder.rows == 1


def test_encoder_runs_once_per_crop(predictor, image):
    params = AnythingParams(**{**PARAMS.__dict__, "crop_n_layers": 1})
    regions, encoder, _, _ = _run(predictor, image, params)
    assert encoder.calls == 1 + 4
    crops = {tuple(b) for b in regions.crop_boxes.int().tolist()}
    assert crops and crops <= {tuple(b) for b in _crop_boxes(image, 1)}


def _crop_boxes(image, layers):
    from segment_anything.utils.amg import generate_crop_boxes

    return generate_crop_boxes(image.shape[:2], layers, PARAMS.crop_overlap_ratio)[0]


def test_predictor_reuses_its_embedding(predictor, image):
    predictor.set_image(image[:, :, ::-1].copy())
    encoder = Counter(predictor.model.backbone)
    try:
        regions = predictor.anything(PARAMS)
    finally:
        encoder.close()
    assert encoder.calls == 0
    fresh = AnythingGenerator(predictor.model, PARAMS).generate(image)
    assert torch.equal(regions.pred_masks, fresh.pred_masks)
    assert regions.pred_captions == fresh.pred_captions


@pytest.mark.parametrize("nms", [1.0, 0.7])
def test_only_surviving_regions_reach_the_lm(predictor, image, nms):
    params = AnythingParams(**{**PARAMS.__dict__, "box_nms_thresh": nms})
    regions, _, mixer, lm = _run(predictor, image, params)
    num_points = params.points_per_side**2
    prompting_points = {tuple(p) for p in regions.prompt_points.tolist()}
    assert 0 < len(prompting_points) < num_points
    assert (regions.scores >= params.pred_iou_thresh).all()
    if nms == 1.0:
        assert len(regions) > 3
    else:
        assert len(regions) == 1  # the masks overlap: NMS keeps the best one
    # one caption per surviving grid point, nothing for the points filtered out
    assert mixer.rows == lm.rows == len(prompting_points)

    h, w = image.shape[:2]
    assert regions.pred_masks.shape == (len(regions), h, w)
    assert all(m.any() for m in regions.pred_masks)
    boxes = regions.pred_boxes.tensor
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] < w).all() and (boxes[:, 3] < h).all()
    assert all(isinstance(c, str) and c for c in regions.pred_captions)
    assert torch.all(regions.scores[:-1] >= regions.scores[1:])
    # each region's caption is the one its prompting point gets from the predictor
    predictor.set_image(image[:, :, ::-1].copy())
    direct = predictor.predict(points=regions.prompt_points[:3])
    assert direct.pred_captions == regions.pred_captions[:3]


def test_caption_all_points_captions_every_point_first(predictor, image):
    params = AnythingParams(**{**PARAMS.__dict__, "caption_all_points": True})
    regions, encoder, mixer, lm = _run(predictor, image, params)
    survivors = AnythingGenerator(predictor.model, PARAMS).generate(image)
    assert encoder.calls == 1
    assert mixer.rows == lm.rows == params.points_per_side**2
    # the same regions and captions either way
    assert torch.equal(regions.pred_masks, survivors.pred_masks)
    assert regions.pred_captions == survivors.pred_captions
    assert np.allclose(regions.caption_scores.numpy(), survivors.caption_scores.numpy(), atol=1e-4)


def _components(mask: np.ndarray) -> tuple[int, int]:
    """(islands, holes) of a bool mask, 8-connected; a hole is a background part off the border."""
    import cv2

    n, _ = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    padded = np.pad(~mask, 1, constant_values=True)  # background joined around the border
    m, _ = cv2.connectedComponents(padded.astype(np.uint8), connectivity=8)
    return n - 1, m - 2


def test_small_region_removal_leaves_one_island_and_no_hole(predictor, image):
    base = {**PARAMS.__dict__, "box_nms_thresh": 1.0}
    raw = AnythingGenerator(predictor.model, AnythingParams(**base)).generate(image)
    parts = [_components(m) for m in raw.pred_masks.numpy()]
    assert any(islands > 1 or holes > 0 for islands, holes in parts)  # there is something to clean
    params = AnythingParams(**{**base, "min_mask_region_area": 10**6, "caption_prompt": "box"})
    cleaned = AnythingGenerator(predictor.model, params).generate(image)
    assert len(cleaned) > 0
    for mask, box in zip(cleaned.pred_masks.numpy(), cleaned.pred_boxes.tensor.numpy()):
        assert _components(mask) == (1, 0)
        ys, xs = np.nonzero(mask)
        assert box.tolist() == [xs.min(), ys.min(), xs.max(), ys.max()]
