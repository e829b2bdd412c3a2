"""Built-in names: registered with their evaluator, and a clear error when files are absent."""

import os

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

import sca  # noqa: F401  (importing sca registers the data sets)
from sca.data import DatasetNotFoundError, register_sca_coco_json

DENSE = [
    "vg_densecap_train",
    "vg_densecap_val",
    "vg_densecap_test",
    "vg_grit_train",
    "vg_grit_test",
]
REGION = [
    *(f"refcoco_unc_{s}" for s in ("train", "val", "testA", "testB")),
    *(f"refcocop_unc_{s}" for s in ("train", "val", "testA", "testB")),
    *(f"refcocog_umd_{s}" for s in ("train", "val", "test")),
    "refcocog_google_train",
    "refcocog_google_val",
    *(
        f"{d}_{s}_sca"
        for d in ("coco_2017", "objects365_v2", "v3det", "lvis_v1")
        for s in ("train", "val")
    ),
]


@pytest.mark.parametrize("name", DENSE + REGION)
def test_builtin_name_metadata_and_missing_files_error(name, tmp_path, monkeypatch):
    assert name in DatasetCatalog.list()
    expected = "dense_caption" if name in DENSE else "region_caption"
    assert MetadataCatalog.get(name).evaluator_type == expected
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as e:
        DatasetCatalog.get(name)
    msg = str(e.value)
    assert f"Data set '{name}' is not available: missing {tmp_path}" in msg
    assert "Expected layout:" in msg and "To prepare it:" in msg and "datasets/README.md" in msg


def test_custom_registration_checks_evaluator_type():
    with pytest.raises(ValueError, match="evaluator_type"):
        register_sca_coco_json("sca_test_bad_eval", "x.json", "images", evaluator_type="coco")
    assert "sca_test_bad_eval" not in DatasetCatalog.list()


def test_shapes_rendered_by_two_writers_at_once_are_whole(tmp_path, monkeypatch):
    """The ranks of one run render the generated data set at the same moment. Here a second
    writer renders the whole split between the first one's last write and its rename: both
    finish, and the files are those one writer renders alone."""
    from sca.data import shapes

    together, alone = tmp_path / "together", tmp_path / "alone"
    rename = os.replace
    interleaved = []

    def rename_after_another_writer(src, dst):
        if str(dst).endswith("index.json") and not interleaved:
            interleaved.append(dst)
            shapes.load_sca_shapes("test", str(together))  # the other writer, start to end
        rename(src, dst)

    monkeypatch.setattr(shapes.os, "replace", rename_after_another_writer)
    records = shapes.load_sca_shapes("test", str(together))
    monkeypatch.setattr(shapes.os, "replace", rename)
    assert interleaved
    expected = shapes.load_sca_shapes("test", str(alone))
    assert records == [
        {**r, "file_name": r["file_name"].replace(str(alone), str(together))} for r in expected
    ]
    folder = together / "sca_shapes" / "test"
    assert not list(folder.glob(".*"))  # no temporary file left behind
    for png in (alone / "sca_shapes" / "test").glob("*.png"):
        assert (folder / png.name).read_bytes() == png.read_bytes()
