"""DATASETS.COCO_JSON: your own COCO-style regions registered from the config, no Python written.

The end-to-end test fine-tunes and evaluates through tools/train_net.py on a generated data set
named only in a user's YAML (relative paths, run from the data's folder), then rescores with
--eval-only; the unit tests cover the registration's errors and its idempotence.
"""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from tiny_models import tiny_train_cfg

from sca import get_sca_cfg
from sca.data import DatasetConfigError, DatasetNotFoundError, register_config_datasets
from sca.data.shapes import caption, render, scene

ROOT = Path(__file__).resolve().parents[1]
TRAIN_NET = ROOT / "tools" / "train_net.py"
SIDE = 64
SPLITS = {"train": (11, 6), "test": (12, 3)}  # split -> (seed, images)

USER_YAML = """\
_BASE_: base.yaml
DATASETS:
  COCO_JSON: [["my_train", "annotations/train.json", "images"],
              ["my_test", "annotations/test.json", "images", "dense_caption"]]
  TRAIN: ("my_train",)
  TEST: ("my_test",)
OUTPUT_DIR: output
"""


def _write_split(root: Path, split: str) -> None:
    """A COCO-style JSON of captioned shape regions and its PNGs."""
    seed, count = SPLITS[split]
    rng = random.Random(seed)
    (root / "images").mkdir(exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    images, annotations = [], []
    for i in range(count):
        regions = scene(rng, SIDE)
        file_name = f"{split}_{i}.png"
        render(regions, rng, SIDE).save(root / "images" / file_name)
        images.append({"id": i, "file_name": file_name, "height": SIDE, "width": SIDE})
        for r in regions:
            x1, y1, x2, y2 = r["bbox"]
            annotations.append(
                {
                    "id": len(annotations),
                    "image_id": i,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "caption": caption(r),
                }
            )
    data = {"images": images, "annotations": annotations}
    (root / "annotations" / f"{split}.json").write_text(json.dumps(data))


def _write_base_config(root: Path, lm: Path) -> None:
    cfg = tiny_train_cfg(lm, max_iter=4, checkpoint_period=100, test_batch=4)
    (root / "base.yaml").write_text(cfg.dump())


def _train_net(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DETECTRON2_DATASETS": str(cwd / "no_builtin_data"),
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [sys.executable, str(TRAIN_NET), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory, tiny_gpt2) -> Path:
    """A user's folder: images/, annotations/{train,test}.json and my.yaml (on a tiny base)."""
    folder = tmp_path_factory.mktemp("user")
    _write_split(folder, "train")
    _write_split(folder, "test")
    _write_base_config(folder, tiny_gpt2)
    (folder / "my.yaml").write_text(USER_YAML)
    return folder


def _test_regions(folder: Path) -> int:
    return len(json.loads((folder / "annotations" / "test.json").read_text())["annotations"])


def test_fine_tune_and_eval_only_on_coco_json_from_the_config(user_folder):
    _train_net(["--config-file", "my.yaml"], user_folder)
    out = user_folder / "output"
    assert (out / "model_final.pth").is_file()
    metrics = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    final = {k: v for m in metrics for k, v in m.items()}
    assert final["iteration"] == 4 and "total_loss" in final  # evaluated at MAX_ITER
    for key in ("caption/METEOR", "caption/exact_match", "densecap/mAP"):
        assert key in final, sorted(final)
    predictions = json.loads(
        (out / "inference" / "my_test" / "region_caption_predictions.json").read_text()
    )
    assert len(predictions["regions"]) == _test_regions(user_folder)

    proc = _train_net(
        [
            "--config-file",
            "my.yaml",
            "--eval-only",
            "MODEL.WEIGHTS",
            "output/model_final.pth",
            "OUTPUT_DIR",
            "eval",
        ],
        user_folder,
    )
    assert "copypaste: Task: caption" in proc.stdout + proc.stderr
    rescored = json.loads(
        (user_folder / "eval" / "inference" / "my_test" / "region_caption_results.json").read_text()
    )
    assert 100 * rescored["METEOR"] == pytest.approx(final["caption/METEOR"], abs=1e-9)


def test_two_processes_see_the_config_data_sets(user_folder):
    """Launched workers set the config up themselves: each registers the names before loading."""
    args = ["--config-file", "my.yaml", "--num-gpus", "2", "SOLVER.MAX_ITER", "2"]
    _train_net([*args, "OUTPUT_DIR", "ddp"], user_folder)
    out = user_folder / "ddp"
    assert (out / "model_final.pth").is_file()
    predictions = json.loads(
        (out / "inference" / "my_test" / "region_caption_predictions.json").read_text()
    )
    assert len(predictions["regions"]) == _test_regions(user_folder)  # gathered from both


def test_train_net_stops_on_a_malformed_entry_with_one_message(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(TRAIN_NET),
            "--config-file",
            str(ROOT / "configs" / "sca_demo.yaml"),
            "DATASETS.COCO_JSON",
            "[['mine', 'train.json']]",
            "OUTPUT_DIR",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "error: DATASETS.COCO_JSON[0] is ['mine', 'train.json']; expected" in proc.stderr


def _cfg(*entries):
    cfg = get_sca_cfg()
    cfg.DATASETS.COCO_JSON = entries
    return cfg


def test_entries_register_with_absolute_paths_and_a_default_evaluator_type(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = register_config_datasets(
        _cfg(("cfgds_a", "a.json", "img"), ("cfgds_b", "b.json", "img", "region_caption"))
    )
    assert names == ["cfgds_a", "cfgds_b"]
    meta = MetadataCatalog.get("cfgds_a")
    assert meta.json_file == str(tmp_path / "a.json") and meta.image_root == str(tmp_path / "img")
    assert meta.evaluator_type == "dense_caption"
    assert MetadataCatalog.get("cfgds_b").evaluator_type == "region_caption"
    with pytest.raises(DatasetNotFoundError, match="cfgds_a.*a.json"):
        DatasetCatalog.get("cfgds_a")  # nothing is read before the data set is loaded


def test_registering_the_same_entries_again_is_a_no_op(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _cfg(("cfgds_again", "a.json", "img"), ("cfgds_again", str(tmp_path / "a.json"), "img"))
    assert register_config_datasets(cfg) == ["cfgds_again", "cfgds_again"]
    assert register_config_datasets(cfg) == ["cfgds_again", "cfgds_again"]


@pytest.mark.parametrize(
    "entry",
    [
        ("sca_shapes_train", "/data/a.json", "/data/img"),  # a built-in name
        ("cfgds_clash", "/data/other.json", "/data/img"),  # registered below with a.json
        ("cfgds_clash", "/data/a.json", "/data/img", "region_caption"),
    ],
)
def test_a_name_registered_otherwise_is_an_error_naming_both(entry):
    register_config_datasets(_cfg(("cfgds_clash", "/data/a.json", "/data/img")))
    with pytest.raises(DatasetConfigError) as e:
        register_config_datasets(_cfg(("cfgds_fine", "/data/a.json", "/data/img"), entry))
    message = str(e.value)
    assert message.startswith(f"DATASETS.COCO_JSON[1] {list(entry)!r}")
    assert f"{entry[0]!r} is already registered" in message
    assert "cfgds_fine" not in DatasetCatalog.list()  # nothing registered when one entry fails


def test_one_name_with_two_different_entries_is_an_error():
    cfg = _cfg(("cfgds_twice", "/data/a.json", "/data/img"), ("cfgds_twice", "/data/b.json", "/x"))
    with pytest.raises(DatasetConfigError, match=r"COCO_JSON\[1\].*json_file='/data/a.json'"):
        register_config_datasets(cfg)


@pytest.mark.parametrize(
    "entry",
    [
        "cfgds_bad",
        ("cfgds_bad", "a.json"),
        ("cfgds_bad", "a.json", "img", "dense_caption", "extra"),
        ("cfgds_bad", "a.json", ""),
        ("cfgds_bad", 3, "img"),
        ("cfgds_bad", "a.json", "img", "detection"),
    ],
)
def test_a_malformed_entry_is_an_error_naming_its_index_and_the_expected_form(entry):
    with pytest.raises(DatasetConfigError, match=r"DATASETS\.COCO_JSON\[1\].*expected \[name, "):
        register_config_datasets(_cfg(("cfgds_ok", "a.json", "img"), entry))
    assert "cfgds_bad" not in DatasetCatalog.list()
