"""Converts an official SCA release folder into a Detectron2 checkpoint and config of this
project, and checks that every tensor lands on exactly one place of the model."""

import logging
from pathlib import Path

import torch
from detectron2.config import CfgNode
from detectron2.modeling import build_model
from torch import nn
from transformers import AutoConfig, AutoTokenizer

from ..config import get_sca_cfg
from ..utils.atomic_file import atomic_write
from ..utils.state_dicts import key_problems
from .config_files import get_config_file
from .release_config import apply_release_config
from .release_io import read_release_config, read_release_weights
from .release_keys import convert_release_state_dict

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "model_final.pth"
CONFIG_NAME = "config.yaml"
LM_FOLDER = "lm"


def release_cfg(config: dict, lm_folder: str, source: str) -> CfgNode:
    """The paper recipe (Base-SCA.yaml) with the release's architecture."""
    cfg = get_sca_cfg(get_config_file("Base-SCA.yaml"))
    apply_release_config(cfg, config, lm_folder, source)
    return cfg


def write_lm_folder(release_folder: str | Path, text_config: dict, out: Path) -> None:
    """The LM's config and the release's tokenizer, without weights (they are in the
    checkpoint): enough for ``MODEL.SCA.LM.LOAD_WEIGHTS False``."""
    fields = {k: v for k, v in text_config.items() if k != "model_type"}
    AutoConfig.for_model(text_config["model_type"], **fields).save_pretrained(out)
    AutoTokenizer.from_pretrained(str(release_folder)).save_pretrained(out)


def build_meta_model(cfg: CfgNode) -> nn.Module:
    """The model of ``cfg`` with shapes but no storage (no SAM or LM weights are read)."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.DEVICE = "meta"
    cfg.MODEL.SCA.SAM.CHECKPOINT = ""
    cfg.MODEL.SCA.LM.LOAD_WEIGHTS = False
    with torch.device("meta"):
        return build_model(cfg)


def tie_and_check(
    state: dict[str, torch.Tensor], model: nn.Module, source: str
) -> dict[str, torch.Tensor]:
    """Fill tied aliases (GPT-2's ``lm_head.weight`` is its input embedding) from the tensor
    they share, then require that the keys and shapes equal the model's state dict exactly."""
    state = dict(state)
    canonical = {id(p): name for name, p in model.named_parameters()}
    for name, p in model.named_parameters(remove_duplicate=False):
        owner = canonical[id(p)]
        if name == owner or owner not in state:
            continue
        if name in state and not torch.equal(state[name], state[owner]):
            logger.warning(
                "%s: %s differs from %s, which the model ties it to; using %s",
                source,
                name,
                owner,
                owner,
            )
        state[name] = state[owner]
    problems = key_problems(state, model.state_dict(), found_name="release")
    if problems:
        raise ValueError(f"{source}: the release does not fit its config: " + " | ".join(problems))
    return state


def convert_release(release_folder: str | Path, out_folder: str | Path) -> Path:
    """Write ``model_final.pth``, ``config.yaml`` and ``lm/`` into ``out_folder``; returns the
    config's path, which ``tools/train_net.py --config-file`` and ``sca.model_zoo`` accept."""
    source, out = str(release_folder), Path(out_folder).resolve()
    config = read_release_config(release_folder)
    release = read_release_weights(release_folder)
    lm_folder = out / LM_FOLDER
    write_lm_folder(release_folder, config["text_config"], lm_folder)
    cfg = release_cfg(config, str(lm_folder), source)
    state = tie_and_check(
        convert_release_state_dict(release, source), build_meta_model(cfg), source
    )
    checkpoint = out / CHECKPOINT_NAME
    with atomic_write(checkpoint) as f:
        torch.save({"model": state, "__author__": f"sca.model_zoo.convert from {source}"}, f)
    cfg.MODEL.WEIGHTS = str(checkpoint)
    config_path = out / CONFIG_NAME
    with atomic_write(config_path, "w") as f:
        f.write(cfg.dump())
    logger.info("Converted %s (%d tensors) into %s", source, len(release), out)
    return config_path
