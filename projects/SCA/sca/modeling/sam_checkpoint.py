"""Loads an official SAM checkpoint (``sam_vit_{b,l,h}_*.pth``) into SCA's SAM modules."""

import hashlib
import logging
import re
from pathlib import Path

import torch
from detectron2.utils.file_io import PathManager
from torch import nn

from ..checkpoint_io import safe_torch_load

logger = logging.getLogger(__name__)

# Official checkpoints: name -> URL. Their file names end in the first 6 hex digits of the file's
# SHA-256, which is checked after download.
SAM_CHECKPOINT_URLS = {
    "vit_h": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
    "vit_l": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    "vit_b": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
}
SAM_PREFIXES = ("image_encoder.", "prompt_encoder.", "mask_decoder.")


def _local_copy(path_or_url: str) -> str:
    try:
        local = PathManager.get_local_path(path_or_url)
    except Exception as e:  # iopath raises many types for network failures
        raise OSError(
            f"Cannot fetch SAM checkpoint {path_or_url} (MODEL.SCA.SAM.CHECKPOINT): {e}. "
            "Without network access, download it elsewhere and set the key to the local path."
        ) from e
    if not Path(local).is_file():
        raise FileNotFoundError(
            f"SAM checkpoint not found: {local} (MODEL.SCA.SAM.CHECKPOINT). Official files: "
            + ", ".join(SAM_CHECKPOINT_URLS.values())
        )
    return local


def _check_hash_suffix(local: str) -> None:
    """Official names end with ``_<sha256[:6]>.pth``; a mismatch means a damaged download."""
    match = re.search(r"_([0-9a-f]{6})\.pth$", local)
    if not match or Path(local).name not in {
        u.rsplit("/", 1)[1] for u in SAM_CHECKPOINT_URLS.values()
    }:
        return
    digest = hashlib.sha256()
    with open(local, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(match.group(1)):
        raise OSError(f"{local}: SHA-256 {digest.hexdigest()[:12]}... does not match its name")


def load_sam_state_dict(path_or_url: str) -> dict[str, torch.Tensor]:
    """Read an official SAM checkpoint safely (``weights_only=True``)."""
    local = _local_copy(path_or_url)
    _check_hash_suffix(local)
    state = safe_torch_load(local)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"{local}: expected a state dict, got {type(state).__name__}")
    return state


def load_sam_into(
    path_or_url: str,
    image_encoder: nn.Module,
    prompt_encoder: nn.Module,
    mask_decoder: nn.Module,
) -> None:
    """Load ``image_encoder.*``, ``prompt_encoder.*`` and ``mask_decoder.*`` strictly; any missing,
    unexpected or mis-shaped key is an error that names the keys."""
    state = load_sam_state_dict(path_or_url)
    targets = dict(zip(SAM_PREFIXES, (image_encoder, prompt_encoder, mask_decoder)))
    problems = []
    parts = {}
    unknown = [k for k in state if not k.startswith(SAM_PREFIXES)]
    if unknown:
        problems.append(f"unexpected keys: {unknown[:10]}{' ...' if len(unknown) > 10 else ''}")
    for prefix, module in targets.items():
        part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        expected = module.state_dict()
        missing = sorted(set(expected) - set(part))
        extra = sorted(set(part) - set(expected))
        shapes = [
            f"{prefix}{k}: checkpoint {tuple(part[k].shape)} vs model {tuple(v.shape)}"
            for k, v in expected.items()
            if k in part and part[k].shape != v.shape
        ]
        if missing:
            problems.append(f"missing keys: {[prefix + k for k in missing[:10]]}")
        if extra:
            problems.append(f"unexpected keys: {[prefix + k for k in extra[:10]]}")
        if shapes:
            problems.append("shape mismatch: " + "; ".join(shapes[:5]))
        parts[prefix] = part
    if problems:
        raise KeyError(
            f"SAM checkpoint {path_or_url} does not fit MODEL.SCA.SAM (ENCODER, IMAGE_SIZE, ...): "
            + " | ".join(problems)
        )
    for prefix, module in targets.items():
        module.load_state_dict(parts[prefix])
    logger.info("Loaded SAM weights from %s", path_or_url)
