"""Training on a cluster, 2 CPU processes over gloo: preemption signals, faults on one rank,
torchrun with restarts. tools/train_net.py runs unchanged; faults are injected by wrapping it
(runpy) in scripts that patch the model or the process from outside."""

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
from sca.data import TrainingSampleError
from sca.engine import PREEMPTED_EXIT_CODE, SCATrainer, TrainingPreempted

ROOT = Path(__file__).resolve().parents[1]
TRAIN_NET = ROOT / "tools" / "train_net.py"
MAX_ITER = 12  # checkpoints after iterations 2, 5, 8, then model_final (11)
DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("datasets")


def _config(folder: Path, lm: Path, **overrides) -> Path:
    cfg = tiny_train_cfg(lm, max_iter=MAX_ITER, checkpoint_period=3, test_batch=8)
    cfg.DATASETS.TRAIN = ("sca_shapes_train",)
    cfg.DATASETS.TEST = ()
    cfg.CLUSTER.COLLECTIVE_TIMEOUT_S = 60.0
    return write_tiny_train_config(cfg, folder, **overrides)


def _env(data_root: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in DIST_VARS}
    return {**env, "DETECTRON2_DATASETS": str(data_root), "OMP_NUM_THREADS": "1", **extra}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(path: Path, procs: list[subprocess.Popen], timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} did not appear"
        assert all(p.poll() is None for p in procs), "a process ended before " + str(path)
        time.sleep(0.05)


def _popen(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    """Start ``cmd`` with stdout and stderr in the file ``log`` (no pipe to fill up)."""
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
    proc.log = log
    return proc


def _finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    """The exit code and the output of ``proc``."""
    proc.wait(timeout=timeout)
    return proc.returncode, proc.log.read_text()


def _final(folder: Path) -> dict:
    return torch.load(folder / "model_final.pth", weights_only=True)


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a["iteration"] == b["iteration"] == MAX_ITER - 1
    assert a["model"].keys() == b["model"].keys()
    for key, value in b["model"].items():
        assert torch.equal(a["model"][key], value), key


def _checkpoints(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("model_*.pth"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_gpt2, data_root) -> dict:
    out = tmp_path_factory.mktemp("full")
    for code, log in [_finish(p) for p in _start_ranks(_config(out, tiny_gpt2), data_root)]:
        assert code == 0, log[-5000:]
    return _final(out)


def test_sigterm_then_resume_equals_uninterrupted_run(
    tmp_path, tiny_gpt2, data_root, uninterrupted
):
    # Detectron2's --num-gpus route: the signal reaches the supervising process, which forwards
    # it to both ranks; they stop after one agreed iteration with one checkpoint, exit code 75.
    out = tmp_path / "preempted"
    config = _config(out, tiny_gpt2)
    cmd = [sys.executable, str(TRAIN_NET), "--config-file", str(config), "--num-gpus", "2"]
    proc = _popen(cmd, _env(data_root), tmp_path / "preempted.log")
    _wait_for(out / "last_checkpoint", [proc])
    proc.send_signal(signal.SIGTERM)
    code, err = _finish(proc)
    assert code == PREEMPTED_EXIT_CODE, err[-5000:]
    last = (out / "last_checkpoint").read_text()
    stopped_at = torch.load(out / last, weights_only=True)["iteration"]
    assert 2 <= stopped_at < MAX_ITER - 1 and last == f"model_{stopped_at:07d}.pth"
    for rank in (0, 1):
        assert f"[rank {rank}] Preempted (SIGTERM) after iteration {stopped_at}" in err
    assert not (out / "model_final.pth").exists()
    expected = {"model_0000002.pth", last} | ({"model_0000005.pth"} if stopped_at >= 5 else set())
    assert set(_checkpoints(out)) == expected  # one checkpoint written by the stop

    resumed = subprocess.run(
        cmd + ["--resume"], env=_env(data_root), capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-5000:]
    assert f"Starting training from iteration {stopped_at + 1}" in resumed.stdout
    _assert_same_weights(_final(out), uninterrupted)


def _worker_pids(agent: subprocess.Popen, count: int, timeout: float = 120) -> dict[int, int]:
    """RANK -> pid of the worker processes that torchrun's agent started."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        children = Path(f"/proc/{agent.pid}/task/{agent.pid}/children").read_text().split()
        ranks = {}
        for pid in children:
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            for item in environ:
                if item.startswith(b"RANK="):
                    ranks[int(item[5:])] = int(pid)
        if len(ranks) == count:
            return ranks
        time.sleep(0.1)
    raise AssertionError("torchrun's workers were not found")


def test_torchrun_preempted_rank_restarts_and_resumes(
    tmp_path, tiny_gpt2, data_root, uninterrupted
):
    # torchrun --max-restarts 1: SIGUSR1 reaches rank 1 only; both ranks agree to stop after the
    # same iteration (exit 75), torchrun restarts them, they resume from that checkpoint.
    out = tmp_path / "torchrun"
    config = _config(out, tiny_gpt2)
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc-per-node", "2", "--max-restarts", "1"]
    cmd += ["--monitor-interval", "0.2", str(TRAIN_NET), "--config-file", str(config)]
    proc = _popen(cmd, _env(data_root), tmp_path / "torchrun.log")
    pids = _worker_pids(proc, 2)
    _wait_for(out / "last_checkpoint", [proc])
    os.kill(pids[1], signal.SIGUSR1)
    code, err = _finish(proc)
    assert code == 0, err[-5000:]
    stops = [line for line in err.splitlines() if "Preempted (" in line]
    assert len(stops) == 2, stops  # rank 1 saw the signal, rank 0 agreed
    assert "Preempted (SIGUSR1) after iteration" in stops[0] + stops[1]
    assert "Preempted (a signal to another rank) after iteration" in stops[0] + stops[1]
    stopped_at = int(stops[0].split("after iteration ")[1].split(":")[0])
    assert f"after iteration {stopped_at}:" in stops[1]
    assert "restart 1 by torchrun: resuming from the last checkpoint" in err
    assert f"Starting training from iteration {stopped_at + 1}" in err
    _assert_same_weights(_final(out), uninterrupted)


# tools/train_net.py unchanged, except that on rank 1 the model's losses of iteration 3 are NaN
POISON_RANK1 = """
import os, runpy, sys
from detectron2.utils.events import get_event_storage
from sca.engine import SCATrainer

build_model = SCATrainer.build_model.__func__

def poisoned(cls, cfg):
    model = build_model(cls, cfg)
    def hook(module, args, output):
        if module.training and os.environ["RANK"] == "1" and get_event_storage().iter == 3:
            return {k: v * float("nan") for k, v in output.items()}
    model.register_forward_hook(hook)
    return model

SCATrainer.build_model = classmethod(poisoned)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _start_ranks(
    config: Path, data_root: Path, prefix: tuple[str, ...] = (sys.executable,)
) -> list[subprocess.Popen]:
    """Two processes as srun would start them: rendezvous in the environment (env://)."""
    port = str(_free_port())
    procs = []
    for rank in (0, 1):
        env = _env(
            data_root,
            RANK=str(rank),
            WORLD_SIZE="2",
            LOCAL_RANK=str(rank),
            LOCAL_WORLD_SIZE="2",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
        )
        cmd = [*prefix, str(TRAIN_NET), "--config-file", str(config)]
        procs.append(_popen(cmd, env, config.parent / f"rank{rank}.log"))
    return procs


def test_nonfinite_loss_on_one_rank_stops_both_with_one_checkpoint(tmp_path, tiny_gpt2, data_root):
    out = tmp_path / "nan"
    config = _config(out, tiny_gpt2, **{"SOLVER.CHECKPOINT_PERIOD": 100})
    procs = _start_ranks(config, data_root, (sys.executable, "-c", POISON_RANK1))
    results = [_finish(p) for p in procs]
    for code, err in results:
        assert code == 1, err[-5000:]
        assert "error: Non-finite loss at iteration 3 on rank 1 of 2: {'loss_caption': nan" in err
        assert "the batch's image ids: [" in err and "model_nonfinite_0000003.pth" in err
        assert "on rank 0" not in err  # rank 0's losses were finite
    assert _checkpoints(out) == ["model_nonfinite_0000003.pth"]
    assert (out / "last_checkpoint").read_text() == "model_nonfinite_0000003.pth"
    saved = torch.load(out / "model_nonfinite_0000003.pth", weights_only=True)
    assert saved["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


def test_killed_rank_makes_the_other_exit_within_the_collective_timeout(
    tmp_path, tiny_gpt2, data_root
):
    out = tmp_path / "killed"
    timeout = 20.0
    config = _config(out, tiny_gpt2, **{"CLUSTER.COLLECTIVE_TIMEOUT_S": timeout})
    rank0, rank1 = _start_ranks(config, data_root)
    _wait_for(out / "last_checkpoint", [rank0, rank1])
    rank1.send_signal(signal.SIGSTOP)  # first hung: rank 0 waits in a collective ...
    time.sleep(2)
    assert rank0.poll() is None
    killed = time.monotonic()
    rank1.send_signal(signal.SIGKILL)  # ... then gone
    code, err = _finish(rank0, timeout=timeout + 60)
    elapsed = time.monotonic() - killed
    rank1.communicate()
    assert code == 1, err[-5000:]
    assert elapsed < timeout, elapsed
    assert "error: rank 0 of 2 stopped: a collective failed" in err
    assert f"CLUSTER.COLLECTIVE_TIMEOUT_S ({timeout:g} s)" in err
    assert "Traceback" not in err.split("error: rank 0 of 2")[1]


# --- in one process: the signal arrives again while the checkpoint is written; a loader worker
# fails on an image


def _trainer(out: Path, lm: Path, data_root: Path, monkeypatch, **overrides) -> SCATrainer:
    monkeypatch.setenv("DETECTRON2_DATASETS", str(data_root))
    trainer = SCATrainer(get_sca_cfg(str(_config(out, lm, **overrides))))
    trainer.resume_or_load(resume=False)
    return trainer


def test_second_signal_during_the_save_does_not_corrupt_it(
    tmp_path, tiny_gpt2, data_root, monkeypatch, capfd
):
    out = tmp_path / "twice"
    trainer = _trainer(out, tiny_gpt2, data_root, monkeypatch, **{"SOLVER.CHECKPOINT_PERIOD": 100})

    def signal_at_iteration_3(module, args, output):
        if trainer.iter == 3:
            os.kill(os.getpid(), signal.SIGUSR1)

    real_save = torch.save

    def save_with_signals(obj, f, *args, **kwargs):
        # more signals in the middle of the write: they must neither stop nor corrupt it
        os.kill(os.getpid(), signal.SIGTERM)
        real_save(obj, f, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGUSR1)

    trainer.model.register_forward_hook(signal_at_iteration_3)
    monkeypatch.setattr(torch, "save", save_with_signals)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingPreempted) as stop:
        trainer.train()
    assert stop.value.iteration == 3 and stop.value.checkpoint == str(out / "model_0000003.pth")
    assert signal.getsignal(signal.SIGTERM) is before  # the handlers are put back
    err = capfd.readouterr().err
    assert "SIGUSR1: stopping after the current iteration" in err
    assert err.count("again: ignored") == 2
    assert (out / "last_checkpoint").read_text() == "model_0000003.pth"
    assert _checkpoints(out) == ["model_0000003.pth"]
    saved = torch.load(out / "model_0000003.pth", weights_only=True)
    assert saved["iteration"] == 3
    for key, value in trainer.model.state_dict().items():
        if key in saved["model"]:
            assert torch.equal(saved["model"][key], value), key


@pytest.mark.parametrize("failure", ["raises", "dies"])
def test_loader_worker_failure_names_the_image(
    tmp_path, tiny_gpt2, data_root, monkeypatch, failure
):
    from sca.data.dataset_mapper import SCADatasetMapper

    real_call = SCADatasetMapper.__call__
    calls, culprit = [], tmp_path / "culprit.txt"

    def fail_on_the_third_image(self, record):
        calls.append(record["file_name"])  # in the worker process: its own list
        if len(calls) == 3:
            culprit.write_text(record["file_name"])
            if failure == "raises":
                raise ValueError("cannot map this record")
            os.kill(os.getpid(), signal.SIGKILL)  # a segfault, the OOM killer
        return real_call(self, record)

    monkeypatch.setattr(SCADatasetMapper, "__call__", fail_on_the_third_image)
    trainer = _trainer(
        tmp_path / failure,
        tiny_gpt2,
        data_root,
        monkeypatch,
        **{"DATALOADER.NUM_WORKERS": 1},
    )
    with pytest.raises(TrainingSampleError) as error:
        trainer.train()
    message = str(error.value)
    assert f"image {culprit.read_text()!r}" in message, message
    if failure == "raises":
        assert "ValueError: cannot map this record" in message
    else:
        assert "DataLoader worker (pid" in message and "was mapping image" in message
