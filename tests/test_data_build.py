"""Train/test loaders and the weighted mixing of several training sets."""

import itertools
import json
from pathlib import Path

import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog

from sca.config import get_sca_cfg
from sca.data import build_sca_test_loader, build_sca_train_loader, register_sca_coco_json
from sca.data.build import mixing_weights
from sca.data.stream import ResumableTrainingStream

COCO_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "coco_39769"
needs_coco = pytest.mark.skipif(not COCO_DIR.is_dir(), reason="../shared/data/coco_39769 absent")


def test_mixing_weights_give_each_set_its_ratio():
    w = mixing_weights([2, 8], [3.0, 1.0])
    assert w.shape == (10,)
    assert w[:2].sum().item() == pytest.approx(0.75) and w[2:].sum().item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="DATASETS.TRAIN_RATIOS has 1 entries for 2"):
        mixing_weights([2, 8], [1.0])
    with pytest.raises(ValueError, match="non-negative"):
        mixing_weights([2, 8], [1.0, -1.0])


def _draws(stream: ResumableTrainingStream, n: int) -> list[int]:
    return [d["i"] for d in itertools.islice(iter(stream), n)]


def test_stream_is_seeded_proportional_resumable_and_rank_sharded(monkeypatch):
    dicts = [{"i": i} for i in range(10)]
    weights = mixing_weights([2, 8], [3.0, 1.0])
    draws = _draws(ResumableTrainingStream(dicts, dict, 5, weights), 4000)
    assert sum(i < 2 for i in draws) / len(draws) == pytest.approx(0.75, abs=0.03)
    assert set(draws) == set(range(10))
    assert draws == _draws(ResumableTrainingStream(dicts, dict, 5, weights), 4000)
    assert draws != _draws(ResumableTrainingStream(dicts, dict, 6, weights), 4000)
    resumed = ResumableTrainingStream(dicts, dict, 5, weights)
    resumed.start = 1234
    assert _draws(resumed, 100) == draws[1234:1334]
    uniform = _draws(ResumableTrainingStream(dicts, dict, 5), 4000)
    assert all(abs(uniform.count(i) / 4000 - 0.1) < 0.03 for i in range(10))
    monkeypatch.setattr("detectron2.utils.comm.get_rank", lambda: 1)
    monkeypatch.setattr("detectron2.utils.comm.get_world_size", lambda: 2)
    rank1 = _draws(ResumableTrainingStream(dicts, dict, 5, weights), 100)
    assert rank1 == draws[1:200:2]


def test_stream_skips_samples_the_mapper_drops():
    dicts = [{"i": i} for i in range(4)]
    stream = ResumableTrainingStream(dicts, lambda d: d if d["i"] % 2 else None, 0)
    assert all(i % 2 for i in _draws(stream, 50))


@pytest.fixture
def two_sets(tmp_path):
    """Two registered sets on the real COCO image: regions captioned "set a ..." and "set b ..."."""
    coco = json.loads((COCO_DIR / "instances.json").read_text())
    names = []
    for tag in ("a", "b"):
        data = dict(coco)
        data["annotations"] = [
            dict(ann, caption=f"set {tag} region {i}") for i, ann in enumerate(coco["annotations"])
        ]
        path = tmp_path / f"{tag}.json"
        path.write_text(json.dumps(data))
        name = f"sca_test_build_set_{tag}"
        register_sca_coco_json(name, str(path), str(COCO_DIR))
        names.append(name)
    yield names
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def make_cfg(train, ratios):
    cfg = get_sca_cfg()
    cfg.INPUT.IMAGE_SIZE = 64
    cfg.DATASETS.TRAIN = tuple(train)
    cfg.DATASETS.TRAIN_RATIOS = ratios
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.SEED = 3
    return cfg


@needs_coco
@pytest.mark.parametrize("ratios, expected_sets", [([0.0, 1.0], {"b"}), ([], {"a", "b"})])
def test_train_loader_mixes_sets_by_ratio(two_sets, ratios, expected_sets):
    loader = build_sca_train_loader(make_cfg(two_sets, ratios))
    sets = set()
    for batch in itertools.islice(loader, 4):
        assert len(batch) == 2
        for item in batch:
            assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.uint8
            inst = item["instances"]
            assert 1 <= len(inst) <= 16 and len(inst.gt_captions) == len(inst)
            sets |= {c.split()[1] for c in inst.gt_captions}
    assert sets == expected_sets


@needs_coco
def test_test_loader_yields_proposals_for_every_region(two_sets):
    loader = build_sca_test_loader(make_cfg(two_sets, []), two_sets[0])
    (batch,) = list(loader)
    (item,) = batch
    assert item["image"].shape == (3, 48, 64)
    assert len(item["proposals"]) == 6 and (item["height"], item["width"]) == (480, 640)
