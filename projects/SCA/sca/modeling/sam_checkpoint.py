"""Loads an official SAM checkpoint (``sam_vit_{b,l,h}_*.pth``) into SCA's SAM modules."""

import logging
import re
from pathlib import Path

import torch
from torch import nn

from ..utils.download import download, verify_sha256
from ..utils.safe_load import safe_torch_load
from ..utils.state_dicts import key_problems

logger = logging.getLogger(__name__)

# Official checkpoints: name -> URL. Their file names end in the first 6 hex digits of the file's
# SHA-256, which is checked after download.
SAM_CHECKPOINT_URLS = {
    "vit_h": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
    "vit_l": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    "vit_b": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
}
SAM_PREFIXES = ("image_encoder.", "prompt_encoder.", "mask_decoder.")


def _official_sha256_prefix(name: str) -> str:
    """The SHA-256 prefix in an official SAM file name (``sam_vit_b_01ec64.pth``), else ""."""
    official = {u.rsplit("/", 1)[1] for u in SAM_CHECKPOINT_URLS.values()}
    match = re.search(r"_([0-9a-f]{6})\.pth$", name)
    return match.group(1) if match and name in official else ""


def _local_copy(path_or_url: str) -> Path:
    """A local, verified file: URLs are downloaded into the cache (sca.utils.download)."""
    if path_or_url.startswith(("http://", "https://")):
        name = path_or_url.rsplit("/", 1)[1]
        return download(path_or_url, sha256=_official_sha256_prefix(name))
    local = Path(path_or_url).expanduser()
    if not local.is_file():
        raise FileNotFoundError(
            f"SAM checkpoint not found: {local} (MODEL.SCA.SAM.CHECKPOINT). Official files: "
            + ", ".join(SAM_CHECKPOINT_URLS.values())
        )
    prefix = _official_sha256_prefix(local.name)
    if prefix:
        verify_sha256(local, prefix, remove=False)
    return local


def load_sam_state_dict(path_or_url: str) -> dict[str, torch.Tensor]:
    """Read an official SAM checkpoint safely (``weights_only=True``)."""
    local = _local_copy(path_or_url)
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
        problems += key_problems(part, module.state_dict(), prefix=prefix)
        parts[prefix] = part
    if problems:
        raise KeyError(
            f"SAM checkpoint {path_or_url} does not fit MODEL.SCA.SAM (ENCODER, IMAGE_SIZE, ...): "
            + " | ".join(problems)
        )
    for prefix, module in targets.items():
        module.load_state_dict(parts[prefix])
    logger.info("Loaded SAM weights from %s", path_or_url)
