"""Weak supervision (class names as captions) and custom COCO-style data, on the real COCO image."""

import json
from pathlib import Path

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from sca.data import (
    AnnotationError,
    DatasetNotFoundError,
    load_sca_coco_json,
    read_image,
    register_sca_coco_json,
)
from sca.data.lvis_json import load_lvis_regions

COCO_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "coco_39769"
pytestmark = pytest.mark.skipif(not COCO_DIR.is_dir(), reason="../shared/data/coco_39769 absent")

# COCO val2017 image 39769: category ids 75 remote, 63 couch, 65 bed, 17 cat.
EXPECTED = [
    (1108446, "remote", [332.89, 79.57, 332.89 + 38.65, 79.57 + 106.31]),
    (1110067, "remote", [41.88, 74.2, 41.88 + 133.15, 74.2 + 45.1]),
    (1605237, "couch", [1.08, 0.0, 1.08 + 638.56, 473.53]),
    (1612051, "bed", [1.07, 1.18, 640.0, 479.03]),
    (2190839, "cat", [17.5, 54.38, 17.5 + 301.25, 54.38 + 415.0]),
    (2190842, "cat", [347.5, 25.63, 640.0, 25.63 + 343.75]),
]


def check_real_image_dicts(dicts):
    assert len(dicts) == 1
    d = dicts[0]
    assert (d["image_id"], d["height"], d["width"]) == (39769, 480, 640)
    assert Path(d["file_name"]).name == "000000039769.png"
    assert read_image(d["file_name"]).shape == (480, 640, 3)
    got = [(a["id"], a["captions"], a["bbox"], a["bbox_mode"]) for a in d["annotations"]]
    assert len(got) == len(EXPECTED)
    for (ann_id, captions, box, mode), (want_id, name, want_box) in zip(got, EXPECTED):
        assert (ann_id, captions, mode) == (want_id, [name], BoxMode.XYXY_ABS)
        assert box == pytest.approx(want_box, abs=1e-6)


def test_real_coco_annotations_with_class_names_as_captions():
    # instances.json names the image "000000039769.png", relative to the image_root argument.
    dicts = load_sca_coco_json(str(COCO_DIR / "instances.json"), str(COCO_DIR), caption_field=None)
    check_real_image_dicts(dicts)


def test_registered_coco_name_reads_the_documented_layout(tmp_path, monkeypatch):
    (tmp_path / "coco" / "annotations").mkdir(parents=True)
    (tmp_path / "coco" / "val2017").mkdir()
    (tmp_path / "coco" / "annotations" / "instances_val2017.json").symlink_to(
        (COCO_DIR / "instances.json").resolve()
    )
    (tmp_path / "coco" / "val2017" / "000000039769.png").symlink_to(
        (COCO_DIR / "000000039769.png").resolve()
    )
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    check_real_image_dicts(DatasetCatalog.get("coco_2017_val_sca"))
    assert MetadataCatalog.get("coco_2017_val_sca").evaluator_type == "region_caption"


def test_lvis_api_path(tmp_path):
    """LVIS v1 records (coco_url instead of file_name) through the lvis package's API."""
    coco = json.loads((COCO_DIR / "instances.json").read_text())
    image = dict(coco["images"][0])
    del image["file_name"]
    image["coco_url"] = "http://images.cocodataset.org/val2017/000000039769.png"
    lvis = {
        "images": [image],
        "annotations": coco["annotations"],
        "categories": [
            {"id": 75, "name": "remote_control"},
            {"id": 63, "name": "sofa"},
            {"id": 65, "name": "bed"},
            {"id": 17, "name": "cat"},
        ],
    }
    json_file = tmp_path / "lvis_v1_val.json"
    json_file.write_text(json.dumps(lvis))
    (tmp_path / "coco" / "val2017").mkdir(parents=True)
    (tmp_path / "coco" / "val2017" / "000000039769.png").symlink_to(
        (COCO_DIR / "000000039769.png").resolve()
    )
    (d,) = load_lvis_regions(str(json_file), str(tmp_path / "coco"))
    assert d["file_name"] == str(tmp_path / "coco" / "val2017" / "000000039769.png")
    assert [a["captions"][0] for a in d["annotations"]] == [
        "remote control",
        "remote control",
        "sofa",
        "bed",
        "cat",
        "cat",
    ]


def write_custom(tmp_path, annotations, images=None):
    data = {
        "images": images
        or [{"id": 7, "file_name": "000000039769.png", "height": 480, "width": 640}],
        "annotations": annotations,
        "categories": [{"id": 17, "name": "cat"}],
    }
    path = tmp_path / "regions.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_custom_regions_register_and_load(tmp_path):
    anns = [
        {"id": 1, "image_id": 7, "bbox": [10, 20, 30, 40], "caption": "  a  sleeping cat "},
        {"id": 2, "image_id": 7, "bbox": [0, 0, 5, 5], "caption": ["a remote", "a black remote"]},
        {"id": 3, "image_id": 7, "bbox": [600, 400, 100, 100], "category_id": 17},
        {"id": 4, "image_id": 7, "bbox": [1, 1, 0, 9], "caption": "zero width"},
        {"id": 5, "image_id": 7, "bbox": [1, 1, 9, 9], "caption": "   "},
        {"id": 6, "image_id": 7, "bbox": [1, 1, 9, 9], "caption": "crowd", "iscrowd": 1},
    ]
    register_sca_coco_json("sca_test_custom_regions", write_custom(tmp_path, anns), str(COCO_DIR))
    assert MetadataCatalog.get("sca_test_custom_regions").evaluator_type == "dense_caption"
    (d,) = DatasetCatalog.get("sca_test_custom_regions")
    assert [(a["id"], a["captions"], a["bbox"]) for a in d["annotations"]] == [
        (1, ["a sleeping cat"], [10.0, 20.0, 40.0, 60.0]),
        (2, ["a remote", "a black remote"], [0.0, 0.0, 5.0, 5.0]),
        (3, ["cat"], [600.0, 400.0, 640.0, 480.0]),  # category name, box clipped
    ]


@pytest.mark.parametrize(
    "ann, match",
    [
        ({"id": 41, "image_id": 7, "bbox": [1, 2, 3], "caption": "x"}, "annotation id 41"),
        ({"id": 42, "image_id": 7, "bbox": [1, 2, 3, 4], "caption": 5}, "annotation id 42"),
        ({"id": 43, "image_id": 7, "bbox": [1, 2, 3, 4], "category_id": 99}, "annotation id 43"),
    ],
)
def test_malformed_annotation_names_its_id(tmp_path, ann, match):
    with pytest.raises(AnnotationError, match=match):
        load_sca_coco_json(write_custom(tmp_path, [ann]), str(COCO_DIR))


def test_malformed_image_record_names_its_id(tmp_path):
    images = [{"id": 8, "file_name": "a.png", "width": 640}]
    with pytest.raises(AnnotationError, match="image id 8"):
        load_sca_coco_json(write_custom(tmp_path, [], images), str(COCO_DIR))


def test_missing_files_raise_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as e:
        DatasetCatalog.get("objects365_v2_train_sca")
    msg = str(e.value)
    assert str(tmp_path / "objects365" / "annotations" / "zhiyuan_objv2_train.json") in msg
    assert str(tmp_path / "objects365" / "train") in msg
    assert "datasets/README.md" in msg
