"""RefCOCO/+/g from a generated ``refer`` layout: a Python 2 style refs pickle + instances.json."""

import json
import struct

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from sca.data import AnnotationError, DatasetNotFoundError
from sca.data.refcoco import load_refcoco


def py2_pickle(obj) -> bytes:
    """Pickle ``obj`` as Python 2 did: protocol 2 with ``str`` as byte strings (UTF-8 here)."""

    def enc(o) -> bytes:
        if isinstance(o, bool) or o is None:
            raise TypeError(o)
        if isinstance(o, int):
            return b"J" + struct.pack("<i", o)
        if isinstance(o, float):
            return b"G" + struct.pack(">d", o)
        if isinstance(o, str):
            raw = o.encode("utf-8")
            return (
                b"U" + bytes([len(raw)]) + raw
                if len(raw) < 256
                else b"T" + struct.pack("<I", len(raw)) + raw
            )
        if isinstance(o, list):
            return b"](" + b"".join(enc(x) for x in o) + b"e"
        if isinstance(o, dict):
            return b"}(" + b"".join(enc(k) + enc(v) for k, v in o.items()) + b"u"
        raise TypeError(o)

    return b"\x80\x02" + enc(obj) + b"."


def ref(ref_id, ann_id, image_id, split, sents):
    return {
        "ref_id": ref_id,
        "ann_id": ann_id,
        "image_id": image_id,
        "split": split,
        "category_id": 1,
        "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg",
        "sent_ids": list(range(len(sents))),
        "sentences": [
            {"tokens": s.split(), "raw": s.upper(), "sent_id": i, "sent": s}
            for i, s in enumerate(sents)
        ],
    }


REFS = [
    ref(0, 101, 581857, "train", ["the lady with the blue shirt"]),
    ref(1, 102, 581857, "testA", ["man on left", "left guy in black"]),
    ref(2, 103, 581857, "testA", ["woman in caf\u00e9 chair"]),
    ref(3, 201, 9, "testA", ["  far   right dog "]),
    ref(4, 202, 9, "testB", ["red car"]),
    ref(5, 203, 9, "val", ["blue car"]),
]


def make_refer_root(tmp_path, folder="refcoco", refs_name="refs(unc).p", refs=REFS):
    (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    (tmp_path / "coco" / "train2014").mkdir(parents=True, exist_ok=True)
    (tmp_path / folder / refs_name).write_bytes(py2_pickle(refs))
    instances = {
        "images": [
            {
                "id": 581857,
                "file_name": "COCO_train2014_000000581857.jpg",
                "height": 480,
                "width": 640,
            },
            {"id": 9, "file_name": "COCO_train2014_000000000009.jpg", "height": 480, "width": 640},
        ],
        "annotations": [
            {
                "id": i,
                "image_id": img,
                "bbox": [10.0 * k, 20.0, 30.0, 40.0],
                "category_id": 1,
                "iscrowd": 0,
                "area": 1200.0,
            }
            for k, (i, img) in enumerate(
                [(101, 581857), (102, 581857), (103, 581857), (201, 9), (202, 9), (203, 9)]
            )
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    (tmp_path / folder / "instances.json").write_text(json.dumps(instances))
    return tmp_path


def load_split(root, split):
    return load_refcoco(
        str(root / "refcoco" / "refs(unc).p"),
        str(root / "refcoco" / "instances.json"),
        str(root / "coco" / "train2014"),
        split,
    )


def test_refer_split_loads_one_region_per_ref_with_all_sentences(tmp_path):
    root = make_refer_root(tmp_path)
    dicts = load_split(root, "testA")
    assert [d["image_id"] for d in dicts] == [9, 581857]
    assert dicts[0]["file_name"] == str(
        root / "coco" / "train2014" / "COCO_train2014_000000000009.jpg"
    )
    assert (dicts[1]["height"], dicts[1]["width"]) == (480, 640)
    regions = [
        (a["id"], a["captions"], a["bbox"], a["bbox_mode"]) for d in dicts for a in d["annotations"]
    ]
    assert regions == [
        (3, ["far right dog"], [30.0, 20.0, 60.0, 60.0], BoxMode.XYXY_ABS),
        (1, ["man on left", "left guy in black"], [10.0, 20.0, 40.0, 60.0], BoxMode.XYXY_ABS),
        # A UTF-8 sentence of a Python 2 pickle comes back as the same text.
        (2, ["woman in caf\u00e9 chair"], [20.0, 20.0, 50.0, 60.0], BoxMode.XYXY_ABS),
    ]


@pytest.mark.parametrize(
    "name, folder, refs_name, n_regions",
    [
        ("refcoco_unc_testB", "refcoco", "refs(unc).p", 1),
        ("refcocop_unc_val", "refcoco+", "refs(unc).p", 1),
        ("refcocog_umd_train", "refcocog", "refs(umd).p", 1),
    ],
)
def test_registered_names_read_the_refer_layout(
    tmp_path, monkeypatch, name, folder, refs_name, n_regions
):
    make_refer_root(tmp_path, folder, refs_name)
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    dicts = DatasetCatalog.get(name)
    assert sum(len(d["annotations"]) for d in dicts) == n_regions
    assert MetadataCatalog.get(name).evaluator_type == "region_caption"


def test_unknown_split_lists_the_available_ones(tmp_path):
    root = make_refer_root(tmp_path)
    with pytest.raises(AnnotationError, match=r"no ref with split 'test'.*'testA'"):
        load_split(root, "test")


def test_malformed_refs_name_their_id(tmp_path):
    root = make_refer_root(tmp_path / "a", refs=[ref(7, 999, 9, "val", ["x"])])
    with pytest.raises(AnnotationError, match="ref id 7 points to ann_id 999"):
        load_split(root, "val")
    root = make_refer_root(tmp_path / "b", refs=[ref(8, 201, 9, "val", [])])
    with pytest.raises(AnnotationError, match="ref id 8 needs a non-empty 'sentences'"):
        load_split(root, "val")


def test_missing_refer_folder_names_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as e:
        DatasetCatalog.get("refcocog_google_val")
    msg = str(e.value)
    assert str(tmp_path / "refcocog" / "refs(google).p") in msg
    assert "coco/train2014/COCO_train2014_<12-digit id>.jpg" in msg and "lichengunc/refer" in msg
