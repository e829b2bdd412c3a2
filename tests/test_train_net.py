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
from tiny_models import tiny_train_cfg, write_tiny_train_config

from sca import get_sca_cfg
from sca.engine import NonFiniteLossError, SCATrainer

ROOT = Path(__file__).resolve().parents[1]
TRAIN_NET = ROOT / "tools" / "train_net.py"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("datasets")


def _write_config(folder: Path, lm: Path, **overrides) -> Path:
    cfg = tiny_train_cfg(lm, max_iter=6, checkpoint_period=3, test_batch=8)
    cfg.DATASETS.TRAIN = ("sca_shapes_train",)
    cfg.DATASETS.TEST = ("sca_shapes_test",)
    return write_tiny_train_config(cfg, folder, **overrides)


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


LENGTH = {"SOLVER.MAX_ITER": 40}  # every run compared shares all settings (the LR schedule too)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_gpt2, data_root) -> dict:
    full = tmp_path_factory.mktemp("full")
    _run(["--config-file", str(_write_config(full, tiny_gpt2, **LENGTH))], data_root)
    return _trained_state(full)


def _assert_equal_training(resumed: dict, reference: dict) -> None:
    assert resumed["iteration"] == reference["iteration"] == 39
    assert resumed["model"].keys() == reference["model"].keys()
    for key, value in reference["model"].items():
        assert torch.equal(resumed["model"][key], value), key


def test_resume_after_kill_equals_uninterrupted_run(tmp_path, tiny_gpt2, data_root, uninterrupted):
    # The run is killed as soon as it has written its first checkpoint, then resumed.
    cut = tmp_path / "cut"
    config = _write_config(cut, tiny_gpt2, **LENGTH)
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
    resumed, reference = _trained_state(cut), uninterrupted
    _assert_equal_training(resumed, reference)
    # frozen SAM / LM weights are not in the checkpoint: only the trained parts are
    assert all(k.startswith("roi_heads.") for k in reference["model"])
    assert not any(".lm." in k or "mask_decoder" in k for k in reference["model"])


# Runs tools/train_net.py unchanged, except that torch.save writes half of the checkpoint named
# in argv[1] (through the production atomic writer, into its temporary file) and then SIGKILLs
# its own process, as a power cut or the OOM killer would in the middle of the write.
KILL_MID_SAVE = """
import io, os, runpy, signal, sys
import torch
kill_at, train_net = sys.argv[1], sys.argv[2]
real_save = torch.save

def save_then_die(obj, f, *args, **kwargs):
    target = os.readlink(f"/proc/self/fd/{f.fileno()}") if hasattr(f, "fileno") else ""
    if kill_at in target:
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        f.write(buffer.getvalue()[: buffer.tell() // 2])
        f.flush()
        os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)

torch.save = save_then_die
sys.argv = sys.argv[2:]
runpy.run_path(train_net, run_name="__main__")
"""


def test_kill_during_checkpoint_write_keeps_previous_and_resumes_exactly(
    tmp_path, tiny_gpt2, data_root, uninterrupted
):
    out = tmp_path / "cut"
    config = _write_config(out, tiny_gpt2, **LENGTH)  # checkpoints after iterations 2, 5, ...
    env = {**os.environ, "DETECTRON2_DATASETS": str(data_root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            KILL_MID_SAVE,
            "model_0000005.pth",
            str(TRAIN_NET),
            "--config-file",
            str(config),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    partial = list(out.glob(".model_0000005.pth.*.tmp"))
    assert len(partial) == 1 and partial[0].stat().st_size > 0  # killed in the middle of it
    assert not (out / "model_0000005.pth").exists()
    assert (out / "last_checkpoint").read_text() == "model_0000002.pth"
    previous = torch.load(out / "model_0000002.pth", weights_only=True)
    assert previous["iteration"] == 2

    _run(["--config-file", str(config), "--resume"], data_root)
    _assert_equal_training(_trained_state(out), uninterrupted)
    assert not list(out.glob(".*.tmp"))  # the next save of that name removed the partial file


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


def test_nonfinite_loss_stops_with_a_checkpoint_of_the_last_good_state(
    tmp_path, tiny_gpt2, data_root, monkeypatch
):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(data_root))
    out = tmp_path / "nan"
    overrides = {"SOLVER.CHECKPOINT_PERIOD": 100, "DATASETS.TEST": ()}
    cfg = get_sca_cfg(str(_write_config(out, tiny_gpt2, **overrides)))
    trainer = SCATrainer(cfg)
    trainer.resume_or_load(resume=False)
    seen = {}

    def poison_iteration_3(module, args, output):
        # The loss of iteration 3 becomes NaN; the weights are what iterations 0-2 made them.
        if trainer.iter != 3:
            return None
        seen["image_ids"] = [d["image_id"] for d in args[0]]
        seen["state"] = {k: v.clone() for k, v in module.state_dict().items()}
        return {k: v * float("nan") for k, v in output.items()}

    trainer.model.register_forward_hook(poison_iteration_3)  # runs before the guard's hook
    with pytest.raises(NonFiniteLossError) as error:
        trainer.train()
    message = str(error.value)
    assert "Non-finite loss at iteration 3" in message
    assert f"image ids: {seen['image_ids']}" in message and len(seen["image_ids"]) == 2
    assert "model_nonfinite_0000003.pth" in message
    assert (out / "last_checkpoint").read_text() == "model_nonfinite_0000003.pth"
    saved = torch.load(out / "model_nonfinite_0000003.pth", weights_only=True)
    assert saved["iteration"] == 2 and saved["trainer"]["_trainer"]["iteration"] == 2
    for key, value in saved["model"].items():
        assert torch.isfinite(value).all() and torch.equal(value, seen["state"][key]), key

    resumed = SCATrainer(cfg)
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 3  # --resume repeats the failing iteration
    resumed.train()  # without the poison it runs to the end
    assert resumed.iter == cfg.SOLVER.MAX_ITER
