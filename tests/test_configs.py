"""Every YAML under configs/ loads through get_sca_cfg; unknown and renamed keys are refused."""

from pathlib import Path

import pytest

from sca.config import get_sca_cfg
from sca.modeling.sam_builder import SAM_ENCODER_PRESETS

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("**/*.yaml"))


def test_there_are_configs():
    names = {p.name for p in CONFIGS}
    assert {"Base-SCA.yaml", "sca_demo.yaml", "sca_vg.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads(path):
    cfg = get_sca_cfg(str(path))
    assert cfg.MODEL.META_ARCHITECTURE == "SegmentCaptionAnything"
    assert cfg.MODEL.SCA.SAM.ENCODER in (*SAM_ENCODER_PRESETS, "custom")
    assert cfg.INPUT.IMAGE_SIZE % cfg.MODEL.SCA.SAM.PATCH_SIZE == 0
    if path.name != "Base-SCA.yaml":
        assert cfg.DATASETS.TEST, f"{path.name} names no test set"


def test_unknown_key_is_rejected(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("MODEL:\n  SCA:\n    MIXER:\n      DEEPTH: 3\n")
    with pytest.raises(KeyError, match="DEEPTH"):
        get_sca_cfg(str(bad))


def test_renamed_points_per_side_names_its_new_key(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text("MODEL:\n  SCA:\n    POINTS_PER_SIDE: 16\n")
    with pytest.raises(KeyError, match=r"renamed to MODEL\.SCA\.ANYTHING\.POINTS_PER_SIDE"):
        get_sca_cfg(str(old))
    with pytest.raises(KeyError, match=r"renamed to MODEL\.SCA\.ANYTHING\.POINTS_PER_SIDE"):
        get_sca_cfg().merge_from_list(["MODEL.SCA.POINTS_PER_SIDE", "16"])
    assert "POINTS_PER_SIDE" not in get_sca_cfg().MODEL.SCA
