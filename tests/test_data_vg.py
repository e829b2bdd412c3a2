"""Visual Genome (DenseCap splits): real VG regions through the loader, cache and prepare tool."""

import json
import os
import runpy
from pathlib import Path

import pytest
from detectron2.data import DatasetCatalog
from detectron2.structures import BoxMode

from sca.data import AnnotationError, DatasetNotFoundError
from sca.data.captions import densecap_clean
from sca.data.vg import load_vg_densecap, prepare_vg_cache, vg_cache_path
from sca.data.vg_preprocess import load_densecap_splits

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared" / "data"
VG_5IMG = SHARED / "vg_regions_5img"
SPLITS_FILE = SHARED / "vg_densecap_splits" / "densecap_splits.json"

needs_vg = pytest.mark.skipif(not VG_5IMG.is_dir(), reason="../shared/data/vg_regions_5img absent")

# Images 1-5 are in no DenseCap split: the tests give them one of their own.
TEST_SPLITS = {"train": [1, 2, 3], "val": [4], "test": [5, 999]}
REGIONS_PER_IMAGE = {1: 262, 2: 256, 3: 255, 4: 257, 5: 248}  # 1,278 in all


def make_vg_root(tmp_path: Path, extra_regions: list | None = None) -> Path:
    """A VG folder with the real 5-image region file (linked, or rewritten with extra regions)."""
    root = tmp_path / "vg"
    (root / "images").mkdir(parents=True)
    regions = root / "region_descriptions.json"
    if extra_regions:
        data = json.loads((VG_5IMG / "region_descriptions.json").read_text())
        data[4]["regions"] += extra_regions
        regions.write_text(json.dumps(data))
    else:
        regions.symlink_to((VG_5IMG / "region_descriptions.json").resolve())
    (root / "image_data.json").symlink_to((VG_5IMG / "image_data.json").resolve())
    (root / "densecap_splits.json").write_text(json.dumps(TEST_SPLITS))
    return root


@pytest.mark.skipif(not SPLITS_FILE.is_file(), reason="densecap_splits.json absent")
def test_real_densecap_splits_parse():
    splits = load_densecap_splits(str(SPLITS_FILE))
    assert {k: len(v) for k, v in splits.items()} == {"train": 77398, "val": 5000, "test": 5000}
    assert not set(splits["train"]) & set(splits["test"])
    assert not {1, 2, 3, 4, 5} & set().union(*map(set, splits.values()))


def test_densecap_phrase_cleanup():
    assert densecap_clean("A man dressed in a red shirt and black pants. ") == (
        "a man dressed in a red shirt and black pants"
    )
    # Punctuation is deleted (not spaced), special characters replaced as DenseCap does.
    assert densecap_clean("Man's  ½ shirt\u2014red…\tnow") == "mans half shirtred now"
    assert densecap_clean("it's 90° out") == "its 90 degree out"
    assert densecap_clean(" ... !! ") == ""


@needs_vg
def test_real_vg_regions_load_from_raw_files(tmp_path):
    root = make_vg_root(tmp_path)
    train = load_vg_densecap("train", str(root))
    assert [d["image_id"] for d in train] == [1, 2, 3]
    assert [len(d["annotations"]) for d in train] == [262, 256, 255]
    first = train[0]
    assert first["file_name"] == str((root / "images" / "1.jpg").resolve())
    assert (first["height"], first["width"]) == (600, 800)
    ann = first["annotations"][0]
    # Region 1382 of VG image 1: x=421, y=57, w=82, h=139, "the clock is green in colour".
    assert ann == {
        "bbox": [421.0, 57.0, 503.0, 196.0],
        "bbox_mode": BoxMode.XYXY_ABS,
        "captions": ["the clock is green in colour"],
        "id": 1382,
    }
    by_id = {a["id"]: a for d in train for a in d["annotations"]}
    assert by_id[1532]["captions"] == ["a man dressed in a red shirt and black pants"]
    for d in train:
        for a in d["annotations"]:
            x1, y1, x2, y2 = a["bbox"]
            assert 0 <= x1 < x2 <= d["width"] and 0 <= y1 < y2 <= d["height"]
            assert a["captions"][0] == a["captions"][0].strip().lower() != ""


@needs_vg
def test_dropped_regions_are_counted(tmp_path):
    bad = [
        {"region_id": 90001, "phrase": " ?! ", "x": 10, "y": 10, "width": 50, "height": 50},
        {"region_id": 90002, "phrase": "a dog", "x": 900, "y": 10, "width": 50, "height": 50},
        {"region_id": 90003, "phrase": "a dog", "x": 10, "y": 10, "width": 0, "height": 50},
        {"region_id": 90004, "phrase": "word " * 26, "x": 10, "y": 10, "width": 5, "height": 5},
        {"region_id": 90005, "phrase": "A Cat.", "x": -5, "y": 590, "width": 40, "height": 40},
    ]
    root = make_vg_root(tmp_path, bad)
    out = prepare_vg_cache(str(root))
    s = out["test"].summary
    assert (s.images_in_split, s.images_missing, s.images_without_regions) == (2, 1, 0)
    assert (s.regions_total, s.regions_kept) == (248 + 5, 248 + 1)
    assert (s.dropped_empty_phrase, s.dropped_degenerate_box, s.dropped_too_long) == (1, 2, 1)
    assert s.boxes_clipped == 1
    train = out["train"].summary
    assert (train.regions_total, train.regions_kept, train.boxes_clipped) == (773, 773, 0)
    # The clipped region: [-5, 590, 35, 630] in a 800x600 image.
    test = load_vg_densecap("test", str(root))
    last = test[0]["annotations"][-1]
    assert last["id"] == 90005 and last["bbox"] == [0.0, 590.0, 35.0, 600.0]
    assert last["captions"] == ["a cat"]


@needs_vg
def test_cache_matches_raw_and_is_used(tmp_path):
    root = make_vg_root(tmp_path)
    raw = {s: load_vg_densecap(s, str(root)) for s in ("train", "val", "test")}
    prepare_vg_cache(str(root))
    for split in ("train", "val", "test"):
        assert os.path.isfile(vg_cache_path(str(root), split))
        assert load_vg_densecap(split, str(root)) == raw[split]
    # Once cached, the raw files are no longer read.
    (root / "region_descriptions.json").unlink()
    assert sum(len(d["annotations"]) for d in load_vg_densecap("val", str(root))) == 257


@needs_vg
def test_prepare_tool_writes_cache_with_summary(tmp_path, monkeypatch, capsys):
    root = make_vg_root(tmp_path)
    tool = runpy.run_path(str(REPO / "datasets" / "prepare_vg.py"), run_name="prepare_vg")
    assert tool["main"](["--vg-root", str(root)]) == 0
    out = capsys.readouterr()
    assert "VG train: 3 images kept" in out.out
    assert "regions 773 kept of 773" in out.out
    assert "VG images: 100%" in out.err  # the progress bar
    # The registered name reads the same cache through $DETECTRON2_DATASETS.
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    (root / "region_descriptions.json").unlink()
    val = DatasetCatalog.get("vg_densecap_val")
    assert [len(d["annotations"]) for d in val] == [257]


def test_missing_vg_folder_names_path_layout_and_command(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as e:
        DatasetCatalog.get("vg_densecap_train")
    msg = str(e.value)
    assert str(tmp_path / "vg" / "region_descriptions.json") in msg
    assert "images/<image_id>.jpg" in msg and "densecap_splits.json" in msg
    assert "python datasets/prepare_vg.py" in msg


@needs_vg
def test_malformed_region_names_its_id(tmp_path):
    bad = [{"region_id": 777, "phrase": "a dog", "x": "left", "y": 1, "width": 2, "height": 2}]
    root = make_vg_root(tmp_path, bad)
    with pytest.raises(AnnotationError, match="region id 777 of image 5"):
        load_vg_densecap("test", str(root))
