"""tools/train_net.py end to end on a tiny model: training, --resume, --eval-only, 2 processes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_models import tiny_cfg

ROOT = Path(__file__).resolve().parents[1]
TRAIN_NET = ROOT / "tools" / "train_net.py"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("datasets")


def _write_config(folder: Path, lm: Path, **overrides) -> Path:
    cfg = tiny_cfg(lm)
    cfg.DATASETS.TRAIN = ("sca_shapes_train",)
    cfg.DATASETS.TEST = ("sca_shapes_test",)
    cfg.INPUT.LSJ.ENABLED = False
    cfg.INPUT.NUM_REGIONS_PER_IMAGE = 4
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.SOLVER.BASE_LR = 1e-3
    cfg.SOLVER.WARMUP_ITERS = 2
    cfg.SOLVER.MAX_ITER = 6
    cfg.SOLVER.CHECKPOINT_PERIOD = 3
    cfg.SOLVER.AMP.ENABLED = False
    cfg.TEST.EVAL_PERIOD = 0
    cfg.TEST.SCA.IMS_PER_BATCH = 8
    cfg.SEED = 3
    cfg.OUTPUT_DIR = str(folder)
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = getattr(node, p)
        setattr(node, leaf, value)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.in.yaml"
    path.write_text(cfg.dump())
    return path


def _run(args: list[str], data_root: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "DETECTRON2_DATASETS": str(data_root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(TRAIN_NET), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def _trained_state(folder: Path) -> dict:
    return torch.load(folder / "model_final.pth", weights_only=True)


def test_resume_after_kill_equals_uninterrupted_run(tmp_path, tiny_gpt2, data_root):
    # Both runs share every setting (the LR schedule depends on MAX_ITER); the second one is
    # killed as soon as it has written its first checkpoint, then resumed.
    length = {"SOLVER.MAX_ITER": 40}
    full = tmp_path / "full"
    _run(["--config-file", str(_write_config(full, tiny_gpt2, **length))], data_root)

    cut = tmp_path / "cut"
    config = _write_config(cut, tiny_gpt2, **length)
    env = {**os.environ, "DETECTRON2_DATASETS": str(data_root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(TRAIN_NET), "--config-file", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = cut / "last_checkpoint"
    deadline = time.time() + 300
    while time.time() < deadline and not last.exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (cut / "model_final.pth").exists(), "the run ended before it was killed"
    killed_at = torch.load(cut / last.read_text().strip(), weights_only=True)["iteration"]
    assert killed_at < 39

    _run(["--config-file", str(config), "--resume"], data_root)
    resumed, reference = _trained_state(cut), _trained_state(full)
    assert resumed["iteration"] == reference["iteration"] == 39
    assert resumed["model"].keys() == reference["model"].keys()
    for key, value in reference["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    # frozen SAM / LM weights are not in the checkpoint: only the trained parts are
    assert all(k.startswith("roi_heads.") for k in reference["model"])
    assert not any(".lm." in k or "mask_decoder" in k for k in reference["model"])


def test_two_processes_train_and_evaluate(tmp_path, tiny_gpt2, data_root):
    out = tmp_path / "ddp"
    config = _write_config(out, tiny_gpt2, **{"SOLVER.MAX_ITER": 2})
    _run(["--config-file", str(config), "--num-gpus", "2"], data_root)
    metrics = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    final = {k: v for m in metrics for k, v in m.items()}
    assert final["iteration"] == 2  # evaluation results are logged at MAX_ITER
    for key in ("caption/METEOR", "caption/CIDEr", "caption/exact_match", "densecap/mAP"):
        assert key in final, sorted(final)
    predictions = json.loads(
        (out / "inference" / "sca_shapes_test" / "region_caption_predictions.json").read_text()
    )
    assert len(predictions["regions"]) == 232  # every test region, gathered from both processes


def test_eval_only_reproduces_training_evaluation(tmp_path, tiny_gpt2, data_root):
    out = tmp_path / "train"
    config = _write_config(out, tiny_gpt2, **{"SOLVER.MAX_ITER": 3})
    _run(["--config-file", str(config)], data_root)
    trained = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()][-1]
    again = tmp_path / "eval"
    proc = _run(
        [
            "--config-file",
            str(config),
            "--eval-only",
            "MODEL.WEIGHTS",
            str(out / "model_final.pth"),
            "OUTPUT_DIR",
            str(again),
        ],
        data_root,
    )
    assert "copypaste: Task: caption" in proc.stdout + proc.stderr
    rescored = json.loads(
        (again / "inference" / "sca_shapes_test" / "region_caption_results.json").read_text()
    )
    # the results file holds fractions; the trainer's table the x100 scale
    assert 100 * rescored["METEOR"] == pytest.approx(trained["caption/METEOR"], abs=1e-9)
    assert 100 * rescored["exact_match"] == pytest.approx(trained["caption/exact_match"])


def test_missing_dataset_is_one_clear_message(tmp_path, tiny_gpt2):
    config = _write_config(tmp_path, tiny_gpt2, **{"DATASETS.TRAIN": ("vg_densecap_train",)})
    env = {**os.environ, "DETECTRON2_DATASETS": str(tmp_path / "nothing")}
    proc = subprocess.run(
        [sys.executable, str(TRAIN_NET), "--config-file", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "prepare_vg.py" in proc.stderr and str(tmp_path / "nothing") in proc.stderr
