"""SCADatasetMapper invariants on the real COCO image under several random seeds."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.data import transforms as T
from detectron2.structures import BoxMode

from sca.config import get_sca_cfg
from sca.data import (
    AnnotationError,
    ImageReadError,
    SCADatasetMapper,
    load_sca_coco_json,
    read_image,
)
from sca.data.points import jitter_boxes
from sca.data.transforms import ResizeLongestSide
from sca.modeling.prompt_fields import prompts_from_fields

COCO_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "coco_39769"
needs_coco = pytest.mark.skipif(not COCO_DIR.is_dir(), reason="../shared/data/coco_39769 absent")
SIZE = 256
MEAN_UINT8 = torch.tensor([124, 116, 104], dtype=torch.uint8)  # SAM's pixel mean, rounded


def make_cfg(**input_overrides):
    cfg = get_sca_cfg()
    cfg.INPUT.IMAGE_SIZE = SIZE
    for key, value in input_overrides.items():
        node, *path = key.split("__")
        target = cfg.INPUT
        for part in [node, *path][:-1]:
            target = target[part]
        target[[node, *path][-1]] = value
    return cfg


@pytest.fixture(scope="module")
def coco_dict():
    """The real COCO image with two distinct references per region ("<i> a", "<i> b")."""
    (d,) = load_sca_coco_json(str(COCO_DIR / "instances.json"), str(COCO_DIR), caption_field=None)
    for i, ann in enumerate(d["annotations"]):
        ann["captions"] = [f"{ann['captions'][0]} {i} a", f"{ann['captions'][0]} {i} b"]
    return d


def original_boxes(d):
    return np.array([a["bbox"] for a in d["annotations"]], dtype=np.float64)


@needs_coco
@pytest.mark.parametrize("points", [0, 3])
@pytest.mark.parametrize("seed", range(6))
def test_train_lsj_invariants(coco_dict, seed, points):
    k = 3
    cfg = make_cfg(NUM_REGIONS_PER_IMAGE=k, NUM_POINTS_PER_REGION=points)
    mapper = SCADatasetMapper(cfg, is_train=True)
    np.random.seed(seed)
    out = mapper(copy.deepcopy(coco_dict))
    # Replay the same random draws to get the transforms the mapper applied.
    np.random.seed(seed)
    image = read_image(coco_dict["file_name"])
    tfm = mapper.augmentations(T.AugInput(image))
    expected = tfm.apply_box(original_boxes(coco_dict))
    expected = np.clip(expected, 0, SIZE)

    assert out["image"].dtype == torch.uint8 and out["image"].shape == (3, SIZE, SIZE)
    assert (out["height"], out["width"], out["image_id"]) == (480, 640, 39769)
    inst = out["instances"]
    assert inst.image_size == (SIZE, SIZE)
    assert 1 <= len(inst) <= k
    boxes = inst.gt_boxes.tensor
    assert (boxes >= 0).all() and (boxes <= SIZE).all()
    assert ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()
    seen = set()
    for caption, box in zip(inst.gt_captions, boxes):
        *_, region, ref = caption.split()
        region = int(region)
        assert caption in coco_dict["annotations"][region]["captions"]  # one reference, unchanged
        assert region not in seen
        seen.add(region)
        assert box.numpy() == pytest.approx(expected[region], abs=1e-3)
    if points:
        assert inst.gt_points.shape == (len(inst), points, 2)
        assert inst.gt_points.dtype == torch.float32
        assert (inst.gt_point_labels == 1).all() and inst.gt_point_labels.dtype == torch.int64
        lo, hi = boxes[:, None, :2], boxes[:, None, 2:]
        assert ((inst.gt_points >= lo) & (inst.gt_points <= hi)).all()
    else:
        assert not inst.has("gt_points")
    # The input dict is left as it was.
    assert coco_dict["annotations"][0]["captions"][1].endswith("0 b")


@needs_coco
def test_all_regions_are_sampled_over_seeds_and_captions_over_references(coco_dict):
    mapper = SCADatasetMapper(make_cfg(NUM_REGIONS_PER_IMAGE=2, LSJ__ENABLED=False), True)
    regions, refs = set(), set()
    for seed in range(40):
        np.random.seed(seed)
        for caption in mapper(copy.deepcopy(coco_dict))["instances"].gt_captions:
            *_, region, ref = caption.split()
            regions.add(region)
            refs.add(ref)
    assert regions == {str(i) for i in range(6)} and refs == {"a", "b"}


@needs_coco
def test_small_scale_jitter_pads_bottom_right_with_pixel_mean(coco_dict):
    mapper = SCADatasetMapper(
        make_cfg(LSJ__MIN_SCALE=0.25, LSJ__MAX_SCALE=0.25, FLIP_PROB=0.0), True
    )
    out = mapper(copy.deepcopy(coco_dict))
    image = out["image"]
    # 640x480 fitted into 64x64 gives 64x48; the rest is padding.
    assert (image[:, 48:, :] == MEAN_UINT8[:, None, None]).all()
    assert (image[:, :, 64:] == MEAN_UINT8[:, None, None]).all()
    assert not (image[:, :48, :64] == MEAN_UINT8[:, None, None]).all()
    assert (out["instances"].gt_boxes.tensor <= torch.tensor([64, 48, 64, 48])).all()


@needs_coco
@pytest.mark.parametrize("seed", range(3))
def test_flip_mirrors_boxes_and_image_but_not_captions(coco_dict, seed):
    d = copy.deepcopy(coco_dict)
    for ann in d["annotations"]:
        ann["captions"] = ["the cat on the left"]
    outs = []
    for prob in (0.0, 1.0):
        mapper = SCADatasetMapper(make_cfg(LSJ__ENABLED=False, FLIP_PROB=prob), True)
        np.random.seed(seed)
        outs.append(mapper(copy.deepcopy(d)))
    plain, flipped = outs
    width = plain["image"].shape[2]
    assert torch.equal(flipped["image"], torch.flip(plain["image"], dims=[2]))
    p, f = plain["instances"].gt_boxes.tensor, flipped["instances"].gt_boxes.tensor
    assert torch.allclose(f[:, 0], width - p[:, 2], atol=1e-4)
    assert torch.allclose(f[:, 2], width - p[:, 0], atol=1e-4)
    assert torch.allclose(f[:, 1::2], p[:, 1::2])
    assert flipped["instances"].gt_captions == ["the cat on the left"] * 6


@needs_coco
def test_test_mode_resizes_longest_side_and_keeps_every_region_in_order(coco_dict):
    mapper = SCADatasetMapper(make_cfg(NUM_REGIONS_PER_IMAGE=2, NUM_POINTS_PER_REGION=2), False)
    np.random.seed(0)
    out = mapper(copy.deepcopy(coco_dict))
    np.random.seed(1)
    again = mapper(copy.deepcopy(coco_dict))
    assert out["image"].shape == (3, 192, 256)  # 480 * 0.4 = 192
    assert (out["height"], out["width"]) == (480, 640)
    assert "instances" not in out
    props = out["proposals"]
    assert props.image_size == (192, 256)
    expected = torch.as_tensor(original_boxes(coco_dict) * 0.4, dtype=torch.float32)
    assert torch.allclose(props.proposal_boxes.tensor, expected.clamp(max=256), atol=1e-3)
    assert props.proposal_points.shape == (6, 2, 2)
    centers = (expected[:, :2] + expected[:, 2:]) / 2
    assert torch.allclose(props.proposal_points[:, 0], centers, atol=1e-3)
    assert torch.equal(props.proposal_points, again["proposals"].proposal_points)  # deterministic
    assert (props.proposal_point_labels == 1).all()


def test_resize_longest_side_follows_sams_rounding():
    image = np.zeros((333, 500, 3), dtype=np.uint8)
    tfm = ResizeLongestSide(1024).get_transform(image)
    assert tfm.apply_image(image).shape == (682, 1024, 3)  # int(333 * 2.048 + 0.5)
    tall = np.zeros((1000, 10, 3), dtype=np.uint8)
    assert ResizeLongestSide(1024).get_transform(tall).apply_image(tall).shape == (1024, 10, 3)


@needs_coco
def test_image_without_surviving_region_is_skipped_in_training(coco_dict):
    d = copy.deepcopy(coco_dict)
    d["annotations"] = [dict(d["annotations"][0], bbox=[5.0, 5.0, 5.0, 30.0])]
    assert SCADatasetMapper(make_cfg(), True)(copy.deepcopy(d)) is None
    props = SCADatasetMapper(make_cfg(), False)(copy.deepcopy(d))["proposals"]
    assert len(props) == 1


def test_missing_and_corrupt_images_name_their_file(tmp_path):
    mapper = SCADatasetMapper(make_cfg(), True)
    missing = str(tmp_path / "nope.jpg")
    with pytest.raises(ImageReadError, match="nope.jpg"):
        mapper({"file_name": missing, "image_id": 1, "height": 2, "width": 2, "annotations": []})
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageReadError, match="broken.jpg"):
        read_image(str(corrupt))


@needs_coco
@pytest.mark.parametrize(
    "ann, match",
    [
        ({"id": 55, "bbox": [1, 1, 9, 9], "bbox_mode": BoxMode.XYXY_ABS}, "annotation id 55"),
        (
            {"id": 56, "bbox": [1, 1, 9, 9], "bbox_mode": BoxMode.XYXY_ABS, "captions": [""]},
            "annotation id 56",
        ),
        ({"id": 57, "bbox": [1, 1, 9, 9], "captions": ["x"]}, "annotation id 57"),
    ],
)
def test_malformed_annotations_name_their_id(coco_dict, ann, match):
    d = dict(coco_dict, annotations=[ann])
    with pytest.raises(AnnotationError, match=match):
        SCADatasetMapper(make_cfg(), True)(d)


def test_jittered_boxes_stay_in_the_image_near_their_box_and_at_least_a_pixel_wide():
    rng = np.random.default_rng(0)
    boxes = np.array([[10, 20, 50, 40], [0, 0, 2, 2], [95, 95, 100, 100]], dtype=np.float64)
    noisy = np.stack([jitter_boxes(boxes, 0.1, (100, 100), rng) for _ in range(2000)])
    assert noisy.shape == (2000, 3, 4)
    assert (
        (noisy >= 0).all() and (noisy[..., 0::2] <= 100).all() and (noisy[..., 1::2] <= 100).all()
    )
    assert (noisy[..., 2:] - noisy[..., :2] >= 1 - 1e-6).all()
    # the first box is far from the edges: unbiased noise of 10% of its width (40) / height (20)
    first = noisy[:, 0] - boxes[0]
    np.testing.assert_allclose(first.mean(0), 0, atol=0.3)
    np.testing.assert_allclose(first.std(0), [4, 2, 4, 2], rtol=0.1)
    assert np.array_equal(jitter_boxes(boxes, 0.0, (100, 100), rng), boxes.astype(np.float32))


def test_box_prompt_noise_prompts_with_noisy_boxes_and_keeps_exact_targets():
    d = DatasetCatalog.get("sca_shapes_train")[0]
    cfg = make_cfg(IMAGE_SIZE=128, LSJ__ENABLED=False, FLIP_PROB=0.0, BOX_PROMPT_NOISE=0.1)
    np.random.seed(0)
    inst = SCADatasetMapper(cfg, is_train=True)(copy.deepcopy(d))["instances"]
    exact = np.array(sorted(a["bbox"] for a in d["annotations"]), dtype=np.float32)
    assert np.array_equal(np.array(sorted(inst.gt_boxes.tensor.tolist())), exact)
    assert not torch.equal(inst.gt_prompt_boxes.tensor, inst.gt_boxes.tensor)
    x = {"image": torch.zeros(3, 128, 128), "file_name": d["file_name"]}
    prompts = prompts_from_fields(inst, "gt", x, torch.device("cpu"))
    assert torch.equal(prompts.boxes, inst.gt_prompt_boxes.tensor)
    cfg.INPUT.BOX_PROMPT_NOISE = 0.0
    assert not SCADatasetMapper(cfg, is_train=True)(copy.deepcopy(d))["instances"].has(
        "gt_prompt_boxes"
    )
