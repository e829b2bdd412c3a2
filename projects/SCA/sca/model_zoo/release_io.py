"""Reads an official SCA release folder (``save_pretrained`` layout) without executing code."""

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..utils.safe_load import safe_torch_load

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def read_release_config(folder: str | Path) -> dict:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no config.json; expected an official SCA release folder "
            "(config.json plus model.safetensors or pytorch_model*.bin)"
        )
    config = json.loads(path.read_text())
    missing = [
        k
        for k in ("vision_config", "prompt_encoder_config", "mask_caption_decoder_config")
        if k not in config
    ]
    if missing or "text_config" not in config:
        raise ValueError(
            f"{path}: fields {missing + ([] if 'text_config' in config else ['text_config'])} "
            "are missing; expected the config of an SCA release (ScaConfig)"
        )
    return config


def _weight_files(folder: Path) -> list[Path]:
    for index_name in INDEX_FILES:
        index = folder / index_name
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            missing = [s for s in shards if not (folder / s).is_file()]
            if missing:
                raise FileNotFoundError(f"{index}: shard files {missing} are missing in {folder}")
            return [folder / s for s in shards]
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return [folder / name]
    raise FileNotFoundError(
        f"{folder}: no weights; expected one of {list(WEIGHT_FILES)} or a sharded index "
        f"{list(INDEX_FILES)}"
    )


def _load_weight_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return load_file(str(path))
    state = safe_torch_load(str(path))  # tensors and plain containers only, never code
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def read_release_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of the release, from a single or sharded safetensors / PyTorch file."""
    state: dict[str, torch.Tensor] = {}
    for path in _weight_files(Path(folder)):
        part = _load_weight_file(path)
        clash = set(part) & set(state)
        if clash:
            raise ValueError(f"{path}: tensors {sorted(clash)[:5]} also appear in another shard")
        state.update(part)
    return state
