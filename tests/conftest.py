import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    from tiny_models import make_tiny_lm

    return make_tiny_lm(tmp_path_factory.mktemp("tiny_gpt2"), "gpt2")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    from tiny_models import make_tiny_lm

    return make_tiny_lm(tmp_path_factory.mktemp("tiny_llama"), "llama")


@pytest.fixture(scope="session")
def tiny_sam_yaml(tmp_path_factory, tiny_gpt2):
    """A YAML config of the tiny SCA model of ``tiny_models.tiny_sam_cfg``, for tools/."""
    from tiny_models import tiny_sam_cfg

    folder = tmp_path_factory.mktemp("tiny_sam_cfg")
    path = folder / "tiny.yaml"
    path.write_text(tiny_sam_cfg(tiny_gpt2, folder).dump())
    return path
