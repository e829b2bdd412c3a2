"""Installs the ``sca`` package (Segment and Caption Anything on Detectron2) from projects/SCA.

Torch and Detectron2 are not listed: torch must match the machine's CUDA, and Detectron2 is not on
PyPI. ``tools/setup_env.sh`` (``make setup``) installs both before this package.
"""

import os
import shutil
from pathlib import Path

from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "segment-anything==1.0",
    "transformers==5.23.0",
    "tokenizers>=0.22,<0.24",
    "safetensors>=0.4",
    "gguf==0.19.0",
    "accelerate==1.15.0",
    "fvcore>=0.1.5,<0.1.6",
    "iopath>=0.1.7,<0.1.10",
    "pycocotools>=2.0.7",
    "pycocoevalcap==1.2",
    "lvis==0.5.3",
    "numpy>=1.24",
    "Pillow>=9.0",
    "tqdm>=4.60",
    # noun/verb recall: spaCy as the release's toolkit (its English pipelines are installed by
    # tools/setup_env.sh from requirements/spacy-models.txt); TextBlob's offline tagger without one
    "spacy==3.8.18",
    "textblob==0.20.1",
    # the web app (tools/app.py)
    "gradio==6.31.0",
    # the HTTP service (tools/serve.py): FastAPI on uvicorn, the versions gradio pulls in
    "fastapi==0.165.0",
    "uvicorn==0.55.0",
    "python-multipart==0.0.34",
]

EXTRAS = {
    # selenium drives Debian's chromium in the web app's browser test
    # httpx: the HTTP service's test client
    # pytest-timeout: a test that hangs fails alone (pyproject.toml) instead of stalling CI
    "dev": [
        "pytest==9.2.0",
        "pytest-timeout==2.4.0",
        "ruff==0.17.5",
        "hypothesis==6.155.2",
        "selenium==4.51.0",
        "httpx==0.29.0",
    ],
}


def model_zoo_configs() -> list[str]:
    """Ship configs/ inside the package as sca/model_zoo/configs (a link in a source checkout,
    a copy where links fail), as Detectron2 does, so that sca.model_zoo finds them anywhere."""
    root = Path(__file__).resolve().parent
    dest = root / "projects/SCA/sca/model_zoo/configs"
    if not dest.exists():
        try:
            os.symlink(os.path.relpath(root / "configs", dest.parent), dest)
        except OSError:
            shutil.copytree(root / "configs", dest)
    return [str(p.relative_to(dest.parent)) for p in dest.rglob("*.yaml")]


setup(
    name="sca-detectron2",
    version="0.1.0",
    description="Segment and Caption Anything (arXiv 2312.00869) as a Detectron2 project",
    license="Apache-2.0",
    python_requires=">=3.10",
    package_dir={"": "projects/SCA"},
    packages=find_packages(where="projects/SCA"),
    # imported by the tools before torch (the sca package imports torch): see its docstring
    py_modules=["sca_cpu_malloc"],
    package_data={"sca.model_zoo": model_zoo_configs()},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
)
