"""Built-in names: registered with their evaluator, and a clear error when files are absent."""

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
