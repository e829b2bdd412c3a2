"""The config of a Detectron2-style command line, set up the same way in every process."""

from __future__ import annotations

import argparse

from detectron2.config import CfgNode
from detectron2.engine import default_setup
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..config import get_sca_cfg
from ..data import register_config_datasets


def setup_from_args(args: argparse.Namespace) -> CfgNode:
    """The frozen config of ``--config-file`` and the trailing ``KEY VALUE`` overrides, after
    Detectron2's default setup (output folder, logs, seed) and with ``DATASETS.COCO_JSON``
    registered.

    Launched workers each run their entry function, hence this, so the names it registers exist
    in every process before a loader or evaluator looks them up.
    """
    cfg = get_sca_cfg(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="sca")
    register_config_datasets(cfg)
    return cfg
