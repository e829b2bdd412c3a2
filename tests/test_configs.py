"""Every YAML under configs/ loads through add_sca_config + merge_from_file."""

from pathlib import Path

import pytest
from detectron2.config import get_cfg

from sca.config import SAM_ENCODER_PRESETS, add_sca_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("**/*.yaml"))


def test_there_are_configs():
    names = {p.name for p in CONFIGS}
    assert {"Base-SCA.yaml", "sca_demo.yaml", "sca_vg.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads(path):
    cfg = get_cfg()
    add_sca_config(cfg)
    cfg.merge_from_file(str(path))
    assert cfg.MODEL.META_ARCHITECTURE == "SegmentCaptionAnything"
    assert cfg.MODEL.SCA.SAM.ENCODER in (*SAM_ENCODER_PRESETS, "custom")
    assert cfg.INPUT.IMAGE_SIZE % cfg.MODEL.SCA.SAM.PATCH_SIZE == 0
    if path.name != "Base-SCA.yaml":
        assert cfg.DATASETS.TEST, f"{path.name} names no test set"


def test_unknown_key_is_rejected(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("MODEL:\n  SCA:\n    MIXER:\n      DEEPTH: 3\n")
    cfg = get_cfg()
    add_sca_config(cfg)
    with pytest.raises(KeyError, match="DEEPTH"):
        cfg.merge_from_file(str(bad))
