"""A broken environment gives one clear message; the environment report names every part."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env
    )


def test_missing_detectron2_is_one_message():
    proc = _python(
        "import sys, runpy; sys.modules['detectron2'] = None; "
        "sys.argv = ['train_net.py', '--help']; "
        "runpy.run_path('tools/train_net.py', run_name='__main__')"
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "detectron2" in proc.stderr and "make setup" in proc.stderr


def test_train_net_help_lists_detectron2_flags():
    proc = subprocess.run(
        [sys.executable, "tools/train_net.py", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    for flag in (
        "--config-file",
        "--eval-only",
        "--resume",
        "--num-gpus",
        "--num-machines",
        "--machine-rank",
        "--dist-url",
        "opts",
    ):
        assert flag in proc.stdout


def test_collect_env_reports_versions():
    proc = _python("from sca.collect_env import collect_env_info; print(dict(collect_env_info()))")
    assert proc.returncode == 0, proc.stderr
    info = eval(proc.stdout.strip().splitlines()[-1])
    assert info["torch"] and info["transformers"].startswith("5.")
    assert info["segment-anything"] == "1.0"
    assert "official build" in info["Detectron2"] or "PyPI route" in info["Detectron2"]
    assert "Java" in info and "CUDA" in info
