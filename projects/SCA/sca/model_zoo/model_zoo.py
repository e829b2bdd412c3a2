"""Detectron2's ``model_zoo`` API for SCA: shipped configs, official releases, trained models."""

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from detectron2.config import CfgNode
from detectron2.modeling import build_model
from torch import nn

from ..checkpoint import SCACheckpointer
from ..config import get_sca_cfg
from .catalog import RELEASES
from .config_files import get_config_file
from .release_cache import converted_release


def get_checkpoint_url(name: str) -> str:
    """Where the trained weights of ``name`` are published: the release's hub folder."""
    if name in RELEASES:
        return RELEASES[name].url
    raise RuntimeError(
        f"No trained weights are published for {name!r}. Official releases: {sorted(RELEASES)}; "
        "for your own run, pass its OUTPUT_DIR/config.yaml to get(..., trained=True)"
    )


def _trained_weights(config_path: str, cfg: CfgNode) -> str:
    """The weights a config's own run wrote: MODEL.WEIGHTS, else the last checkpoint recorded
    in its folder (where tools/train_net.py writes config.yaml and last_checkpoint)."""
    folder = Path(config_path).resolve().parent
    marker = folder / "last_checkpoint"
    if marker.is_file():
        return str(folder / marker.read_text().strip())
    if cfg.MODEL.WEIGHTS:
        return cfg.MODEL.WEIGHTS
    raise RuntimeError(f"{config_path}: no MODEL.WEIGHTS and no last_checkpoint beside it")


def get_config(name: str, trained: bool = False) -> CfgNode:
    """The config of a zoo name (``"sca_gpt2_large_vg"``, ``"sca_vg.yaml"``) or of a config file.
    ``trained=True`` points MODEL.WEIGHTS at trained weights: a release is downloaded and
    converted once (into the cache); a config file's run gives its own checkpoint."""
    if name in RELEASES:
        if not trained:
            return get_sca_cfg(get_config_file(RELEASES[name].config))
        return get_sca_cfg(str(converted_release(name, RELEASES[name])))
    path = name if os.path.isfile(name) else get_config_file(name)
    cfg = get_sca_cfg(path)
    if trained:
        if not os.path.isfile(name):
            get_checkpoint_url(name)  # raises: nothing is published for the project's configs
        cfg.MODEL.WEIGHTS = _trained_weights(path, cfg)
    return cfg


def resolve_config(
    config: CfgNode | str, trained: bool = True, opts: Sequence[str] = ()
) -> CfgNode:
    """A copy of a config node, a YAML file's config, or a model-zoo name's config (with its
    trained weights when ``trained``; see :func:`get_config`), with ``KEY VALUE`` overrides
    ``opts`` merged in."""
    if isinstance(config, CfgNode):
        cfg = config.clone()
    elif os.path.isfile(config):
        cfg = get_sca_cfg(config)
    else:
        cfg = get_config(config, trained=trained)
    cfg.merge_from_list(list(opts))
    return cfg


def get(name: str, trained: bool = False, device: str | None = None) -> nn.Module:
    """A model in eval mode, with trained weights loaded when ``trained``."""
    cfg = get_config(name, trained)
    cfg.MODEL.DEVICE = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(cfg)
    if cfg.MODEL.WEIGHTS:
        SCACheckpointer(model).load(cfg.MODEL.WEIGHTS)
    return model.eval()
