"""Hostile records and files through every loader and the dataset mapper (hypothesis).

Each generated case either loads, with every dropped region counted in the loader's summary and
every kept region valid, or raises the data package's error naming the file (and the record). Any
other exception fails the test: it would be a crash unrelated to the bad input.
"""

import json
import logging
import math
import pickle
import re
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from detectron2.data import transforms as T
from detectron2.data.detection_utils import SizeMismatchError
from detectron2.structures import BoxMode
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from sca.data import (
    AnnotationError,
    ImageReadError,
    SCADatasetMapper,
    load_sca_coco_json,
    read_image,
)
from sca.data.lvis_json import load_lvis_regions
from sca.data.refcoco import load_refcoco
from sca.data.vg import preprocess_vg_root
from sca.data.vg_preprocess import DENSECAP_MAX_TOKENS

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.lists(st.integers(-3, 3), max_size=5),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
coordinate = st.one_of(
    st.integers(-40, 140),
    st.floats(-40, 140),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e300]),
)
caption = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "   ", "a red car", "caf\udce9 latin-1 byte", "\u00e9\u2026\u00bd ok"]),
    st.text(alphabet="ab ", min_size=200, max_size=300),  # very long
)


def maybe(value_strategy):
    """Mostly a plausible value, sometimes junk."""
    return st.one_of(value_strategy, value_strategy, value_strategy, junk)


@st.composite
def coco_style(draw, caption_field=True):
    """A COCO-style dict with hostile records; some keys are missing."""
    num_images = draw(st.integers(1, 3))
    images = []
    for k in range(num_images):
        image = {
            "id": k,
            "file_name": draw(maybe(st.just(f"{k}.jpg"))),
            "coco_url": f"http://images.cocodataset.org/train2017/{k:012d}.jpg",
            "height": draw(maybe(st.integers(1, 100))),
            "width": draw(maybe(st.integers(1, 100))),
        }
        for key in draw(st.sets(st.sampled_from(["file_name", "height", "width"]), max_size=1)):
            del image[key]
        images.append(image)
    annotations = []
    for i in range(draw(st.integers(0, 6))):
        ann = {
            "id": i,
            "image_id": draw(st.one_of(st.integers(0, num_images - 1), junk)),
            "bbox": draw(maybe(st.lists(coordinate, min_size=4, max_size=4))),
            "category_id": draw(maybe(st.sampled_from([1, 2]))),
            "iscrowd": draw(st.sampled_from([0, 0, 0, 1])),
            "area": 10.0,
        }
        if caption_field:
            ann["caption"] = draw(maybe(st.one_of(caption, st.lists(caption, max_size=3))))
        optional = ["bbox", "category_id", "caption", "image_id", "id"]
        for key in draw(st.sets(st.sampled_from(optional), max_size=1)):
            ann.pop(key, None)
        annotations.append(ann)
    categories = [{"id": 1, "name": "Traffic_Light"}, {"id": 2, "name": "dog"}]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_json(path: Path, data, broken_encoding: bool) -> None:
    text = json.dumps(data)  # lone surrogates become \udce9 escapes: valid JSON, invalid text
    raw = text.encode("utf-8")
    if broken_encoding:
        raw = raw.replace(b'"images"', b'"images\xe9"', 1)  # a latin-1 byte: not UTF-8
    path.write_bytes(raw)


STATS = re.compile(
    r"regions (\d+) kept of (\d+) \(dropped (\d+) crowd, (\d+) degenerate boxes, "
    r"(\d+) empty captions\)"
)


def check_loaded(dicts, caplog, num_annotations):
    """Every annotation of the file is kept or counted as dropped; kept regions are valid."""
    (message,) = [r.getMessage() for r in caplog.records if STATS.search(r.getMessage())]
    kept, total, crowd, degenerate, empty = map(int, STATS.search(message).groups())
    assert total == num_annotations
    assert kept + crowd + degenerate + empty == total
    assert kept == sum(len(d["annotations"]) for d in dicts)
    for d in dicts:
        for ann in d["annotations"]:
            x1, y1, x2, y2 = ann["bbox"]
            assert all(math.isfinite(v) for v in ann["bbox"])
            assert 0 <= x1 < x2 <= d["width"] and 0 <= y1 < y2 <= d["height"]
            assert ann["captions"] and all(isinstance(c, str) and c for c in ann["captions"])
            for c in ann["captions"]:
                c.encode("utf-8")  # writable text


def assert_names(error: Exception, *paths) -> None:
    assert any(str(p) in str(error) for p in paths), str(error)


@SETTINGS
@given(coco_style(), st.sampled_from([False] * 9 + [True]))
def test_coco_style_loader(caplog, data, broken_encoding):
    caplog.clear()
    with tempfile.TemporaryDirectory() as folder, caplog.at_level(logging.INFO):
        json_file = Path(folder) / "regions.json"
        write_json(json_file, data, broken_encoding)
        try:
            dicts = load_sca_coco_json(str(json_file), folder)
        except AnnotationError as e:
            assert_names(e, json_file)
            return
        assert not broken_encoding
        check_loaded(dicts, caplog, len(data["annotations"]))


@SETTINGS
@given(coco_style(caption_field=False), st.sampled_from([False] * 9 + [True]))
def test_lvis_loader(caplog, data, broken_encoding):
    caplog.clear()
    with tempfile.TemporaryDirectory() as folder, caplog.at_level(logging.INFO):
        json_file = Path(folder) / "lvis_v1_val.json"
        write_json(json_file, data, broken_encoding)
        try:
            dicts = load_lvis_regions(str(json_file), folder)
        except AnnotationError as e:
            assert_names(e, json_file)
            return
        check_loaded(dicts, caplog, len(data["annotations"]))
        for d in dicts:
            assert all(a["captions"][0] in ("traffic light", "dog") for a in d["annotations"])


@st.composite
def refer_case(draw):
    data = draw(coco_style(caption_field=False))
    refs = []
    for r in range(draw(st.integers(1, 4))):
        sentences = draw(
            maybe(
                st.lists(
                    st.one_of(
                        st.fixed_dictionaries({"sent": caption}),
                        st.fixed_dictionaries({"raw": caption}),
                        junk,
                    ),
                    max_size=3,
                )
            )
        )
        ref = {
            "ref_id": r,
            "ann_id": draw(st.one_of(st.integers(0, 6), junk)),
            "image_id": draw(st.one_of(st.integers(0, 2), junk)),
            "split": draw(st.sampled_from(["train", "train", "val"])),
            "sentences": sentences,
        }
        refs.append(draw(st.one_of(st.just(ref), st.just(ref), st.just(ref), junk)))
    return data, refs, draw(st.sampled_from(["plain"] * 8 + ["global", "truncated"]))


@SETTINGS
@given(refer_case())
def test_refcoco_loader(caplog, case):
    data, refs, kind = case
    caplog.clear()
    with tempfile.TemporaryDirectory() as folder, caplog.at_level(logging.INFO):
        refs_file = Path(folder) / "refs(unc).p"
        instances = Path(folder) / "instances.json"
        write_json(instances, data, False)
        payload = pickle.dumps(OrderedDict(a=refs) if kind == "global" else refs, protocol=2)
        refs_file.write_bytes(payload[: len(payload) // 2] if kind == "truncated" else payload)
        try:
            dicts = load_refcoco(str(refs_file), str(instances), folder, "train")
        except AnnotationError as e:
            assert_names(e, refs_file, instances)
            return
        assert kind == "plain"
        train = [r for r in refs if isinstance(r, dict) and r.get("split") == "train"]
        check_loaded(dicts, caplog, len(train))


@st.composite
def vg_case(draw):
    num_images = draw(st.integers(1, 3))
    regions = []
    for k in range(num_images):
        record = {"id": k, "regions": []}
        for i in range(draw(st.integers(0, 4))):
            region = {
                "region_id": draw(maybe(st.just(100 * k + i))),
                "phrase": draw(maybe(caption)),
                "x": draw(maybe(coordinate)),
                "y": draw(maybe(coordinate)),
                "width": draw(maybe(coordinate)),
                "height": draw(maybe(coordinate)),
            }
            for key in draw(st.sets(st.sampled_from(sorted(region)), max_size=1)):
                del region[key]
            record["regions"].append(draw(st.one_of(st.just(region), st.just(region), junk)))
        regions.append(draw(st.one_of(st.just(record), st.just(record), st.just(record), junk)))
    image_data = [
        {"image_id": k, "height": draw(maybe(st.integers(1, 100))), "width": 80}
        for k in range(num_images)
    ]
    return regions, image_data


@SETTINGS
@given(vg_case(), st.sampled_from([False] * 9 + [True]))
def test_vg_preprocessing(case, broken_encoding):
    regions, image_data = case
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_json(root / "region_descriptions.json", regions, broken_encoding)
        write_json(root / "image_data.json", image_data, False)
        splits = {"train": list(range(len(image_data))), "val": [], "test": []}
        write_json(root / "densecap_splits.json", splits, False)
        try:
            split = preprocess_vg_root(str(root), ["train"])["train"]
        except AnnotationError as e:
            assert "region_descriptions.json" in str(e) or "image_data.json" in str(e), str(e)
            return
        s = split.summary
        dropped = s.dropped_empty_phrase + s.dropped_degenerate_box + s.dropped_too_long
        assert s.regions_kept + dropped == s.regions_total == sum(
            len(r["regions"]) for r in regions
        )
        assert len(split.captions) == len(split.region_ids) == s.regions_kept
        for box, text in zip(split.boxes.tolist(), split.captions):
            assert np.isfinite(box).all() and box[0] < box[2] and box[1] < box[3]
            assert text and len(text.split()) <= DENSECAP_MAX_TOKENS
            text.encode("utf-8")


PIXELS = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
IMAGE_KINDS = ["rgb", "cmyk", "gray16", "palette", "gray_alpha", "truncated", "empty", "text"]


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile_images")
    pixels = PIXELS
    rgb = Image.fromarray(pixels)
    rgb.save(folder / "rgb.jpg")
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(pixels[..., 0].astype(np.uint16) * 257).save(folder / "gray16.png")
    rgb.convert("P").save(folder / "palette.png")
    rgb.convert("LA").save(folder / "gray_alpha.png")
    data = (folder / "rgb.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("not an image")
    names = {
        "rgb": "rgb.jpg",
        "cmyk": "cmyk.jpg",
        "gray16": "gray16.png",
        "palette": "palette.png",
        "gray_alpha": "gray_alpha.png",
        "truncated": "truncated.jpg",
        "empty": "empty.jpg",
        "text": "text.jpg",
    }
    return {kind: str(folder / name) for kind, name in names.items()}


@st.composite
def mapper_record(draw):
    annotations = []
    for i in range(draw(st.integers(0, 4))):
        ann = {
            "id": i,
            "bbox": draw(maybe(st.lists(coordinate, min_size=4, max_size=4))),
            "bbox_mode": draw(st.sampled_from([BoxMode.XYXY_ABS, BoxMode.XYWH_ABS, "xyxy"])),
            "captions": draw(maybe(st.lists(caption, min_size=0, max_size=2))),
        }
        for key in draw(st.sets(st.sampled_from(sorted(ann)), max_size=1)):
            del ann[key]
        annotations.append(ann)
    record = {
        "file_name": draw(st.sampled_from(IMAGE_KINDS)),
        "image_id": 7,
        "height": draw(st.sampled_from([20, 20, 20, 21])),
        "width": 30,
        "annotations": annotations,
    }
    for key in draw(st.sets(st.sampled_from(["file_name", "image_id", "height"]), max_size=1)):
        if draw(st.integers(0, 4)) == 0:
            del record[key]
    return record, draw(st.booleans())


def _record_with_bbox(bbox) -> tuple[dict, bool]:
    annotation = {"id": 0, "bbox": bbox, "bbox_mode": BoxMode.XYXY_ABS, "captions": ["0"]}
    record = {"file_name": "rgb", "image_id": 7, "height": 20, "width": 30}
    return {**record, "annotations": [annotation]}, False


@SETTINGS
@given(mapper_record())
@example(_record_with_bbox("0"))  # once found by the search: a string is not a box
@example(_record_with_bbox(""))
@example(_record_with_bbox([1, 2, 3, 4, 5, 6, 7, 8]))  # two boxes' numbers for one region
def test_dataset_mapper(image_files, case):
    record, is_train = case
    if "file_name" in record:
        kind = record["file_name"]
        record["file_name"] = image_files[kind]
    mapper = SCADatasetMapper(
        is_train, augmentations=[T.ResizeShortestEdge(16, 64)], num_regions_per_image=3
    )
    try:
        out = mapper(dict(record))
    except (AnnotationError, ImageReadError, SizeMismatchError) as e:
        if "file_name" in record:
            assert record["file_name"] in str(e), str(e)
        else:
            assert "needs a 'file_name'" in str(e)
        return
    assert kind in ("rgb", "cmyk", "gray16", "palette", "gray_alpha")
    if out is None:  # training: no region left inside the image, the stream draws another one
        assert is_train
        return
    assert out["image"].shape[0] == 3 and out["image_id"] == 7
    boxes = (out["instances"].gt_boxes if is_train else out["proposals"].proposal_boxes).tensor
    assert torch_finite(boxes)
    if not is_train:
        assert len(boxes) == len(record["annotations"])  # every region is a prompt, in order
    else:
        assert len(out["instances"].gt_captions) == len(boxes) <= 3


def torch_finite(tensor) -> bool:
    return bool(tensor.isfinite().all())


def test_sixteen_bit_image_is_scaled_not_clipped(image_files):
    gray16 = read_image(image_files["gray16"])
    # the 16-bit file holds the red channel x 257: it must come back as that channel (PIL's own
    # conversion would clip every value above 255, i.e. almost all of them, to white)
    for channel in range(3):
        assert np.array_equal(gray16[..., channel], PIXELS[..., 0])
