"""Checkpoint files: atomic writes, and loading that never executes pickled code."""

import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from sca.checkpoint import SCACheckpointer
from sca.modeling.sam_checkpoint import load_sam_state_dict
from sca.utils.atomic_file import atomic_write
from sca.utils.safe_load import UnsafeCheckpointError, safe_torch_load


class Payload:
    """Unpickling this object creates a file: a stand-in for arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def small_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    model[0].requires_grad_(False)  # "frozen": left out of the files
    return model


def test_own_checkpoint_round_trip(tmp_path):
    source = small_model(0)
    SCACheckpointer(source, str(tmp_path)).save("model_0000009", iteration=9)
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000009.pth"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint", "model_0000009.pth"]
    target = small_model(1)
    checkpointer = SCACheckpointer(target, str(tmp_path))
    assert checkpointer.resume_or_load("", resume=True)["iteration"] == 9
    assert torch.equal(target[1].weight, source[1].weight)
    assert not torch.equal(target[0].weight, source[0].weight)  # frozen: not in the file
    assert set(torch.load(tmp_path / "model_0000009.pth", weights_only=True)["model"]) == {
        "1.weight",
        "1.bias",
    }


def test_converted_release_and_plain_state_dict_load(tmp_path):
    source = small_model(0)
    release = tmp_path / "sca_release.pth"
    torch.save({"model": source.state_dict()}, release)  # tools/convert_sca_release.py's layout
    plain = tmp_path / "state_dict.pth"
    torch.save(source.state_dict(), plain)
    for path in (release, plain):
        target = small_model(1)
        SCACheckpointer(target).load(str(path))
        for a, b in zip(target.state_dict().values(), source.state_dict().values()):
            assert torch.equal(a, b)


def test_official_sam_layout_loads(tmp_path):
    state = {
        "image_encoder.pos_embed": torch.zeros(1, 2),
        "mask_decoder.iou_token.weight": torch.ones(1, 3),
    }
    path = tmp_path / "sam_custom.pth"
    torch.save(state, path)  # official SAM files are torch.save'd state dicts
    loaded = load_sam_state_dict(str(path))
    assert loaded.keys() == state.keys() and torch.equal(
        loaded["mask_decoder.iou_token.weight"], state["mask_decoder.iou_token.weight"]
    )


@pytest.mark.parametrize("force_unsafe_env", [False, True])
def test_crafted_checkpoint_is_refused_without_running_code(
    tmp_path, monkeypatch, force_unsafe_env
):
    if force_unsafe_env:  # torch's switch back to unrestricted loading must not apply here
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "code_ran"
    crafted = tmp_path / "model_final.pth"
    torch.save({"model": small_model(0).state_dict(), "extra": Payload(marker)}, crafted)
    with pytest.raises(UnsafeCheckpointError, match=f"Refusing to load {crafted}.*execute code"):
        SCACheckpointer(small_model(1)).load(str(crafted))
    with pytest.raises(UnsafeCheckpointError, match="Refusing to load"):
        load_sam_state_dict(str(crafted))
    raw = tmp_path / "model_final.pkl"
    raw.write_bytes(pickle.dumps({"model": Payload(marker)}))
    with pytest.raises(UnsafeCheckpointError, match=r"\.pkl and \.pyth"):
        SCACheckpointer(small_model(1)).load(str(raw))
    assert not marker.exists()
    # the payload is real: unrestricted unpickling would have run it
    pickle.loads(raw.read_bytes())
    assert marker.exists()


def test_truncated_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "model_0000005.pth"
    torch.save({"model": small_model(0).state_dict()}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(OSError, match=f"Cannot read checkpoint {path}"):
        safe_torch_load(str(path))


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "last_checkpoint"
    with atomic_write(path, "w") as f:
        f.write("model_0000002.pth")
    with pytest.raises(KeyboardInterrupt), atomic_write(path, "w") as f:
        f.write("model_00")
        raise KeyboardInterrupt
    assert path.read_text() == "model_0000002.pth"
    assert [p.name for p in tmp_path.iterdir()] == ["last_checkpoint"]
