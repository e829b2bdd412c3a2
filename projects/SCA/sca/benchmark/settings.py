"""What one benchmark run measures: tools/benchmark.py's flags, the config they give, and its
model with a random LM."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from detectron2.config import CfgNode

from ..config import get_sca_cfg
from ..modeling import build_sca_model
from ..utils.random_lm import random_lm

SECTIONS = ("encoder", "end_to_end", "anything", "training", "densecap_eval", "captions")


@dataclass
class BenchmarkSettings:
    """One field per flag of tools/benchmark.py, in its order (the report's ``settings``).
    With ``smoke``, sizes and variants become tiny ones that run in seconds."""

    config_file: str = ""
    device: str = "cpu"
    encoder: str = ""  # vit_b, vit_l or vit_h; "": the config's
    lm: str = "gpt2-large"  # a shape of sca.utils.random_lm.LM_SHAPES
    regions: list[int] = field(default_factory=lambda: [1, 16, 64, 256])
    tokens: int = 20  # new tokens per region, exactly (without a dataset)
    beams: int = 3
    variants: list[str] = field(default_factory=lambda: ["fp32"])  # names in VARIANTS
    train_variants: list[str] = field(default_factory=lambda: ["fp32"])  # in TRAIN_VARIANTS
    train_images: int = 2
    train_regions: int = 16
    repeats: int = 5  # timed runs, of which the median is reported
    warmup: int = 1  # untimed runs before them
    sections: list[str] = field(default_factory=lambda: list(SECTIONS))
    dataset: str = ""  # captions section: the configured model on this test set
    json: str = ""  # where tools/benchmark.py writes the report
    profile: bool = False  # print operator profiles
    sync_debug: bool = False  # CUDA: report where the CPU waits for the GPU
    smoke: bool = False
    opts: list[str] = field(default_factory=list)  # config overrides KEY VALUE

    def __post_init__(self) -> None:
        if self.smoke:
            self.lm = "tiny-gpt2"
            self.regions, self.tokens, self.repeats = [1, 4], 4, 1
            self.train_regions = 3
            self.variants = ["fp32-eager", "fp32", "bf16-autocast", "bf16-frozen", "bf16-model"]
            self.train_variants = ["fp32", "fp32-ckpt"]


def benchmark_cfg(settings: BenchmarkSettings) -> CfgNode:
    """The config of ``settings.config_file`` with random weights of its shapes on the device;
    with ``smoke``, a tiny SAM and mixer; without a dataset, exactly ``tokens`` new tokens per
    region (the timing protocol); then ``opts``."""
    cfg = get_sca_cfg(settings.config_file or None)
    cfg.MODEL.DEVICE = settings.device
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.SCA.SAM.CHECKPOINT = ""  # random weights of the configured shapes (or WEIGHTS)
    if settings.encoder:
        cfg.MODEL.SCA.SAM.ENCODER = settings.encoder
    if settings.smoke:
        cfg.INPUT.IMAGE_SIZE = 64
        sam = cfg.MODEL.SCA.SAM
        sam.ENCODER, sam.EMBED_DIM, sam.DEPTH, sam.NUM_HEADS = "custom", 32, 2, 2
        sam.GLOBAL_ATTN_INDEXES, sam.WINDOW_SIZE = [1], 2
        sam.PROMPT_EMBED_DIM, sam.DECODER_MLP_DIM = 32, 64
        mixer = cfg.MODEL.SCA.MIXER
        mixer.DEPTH, mixer.NUM_HEADS, mixer.MLP_DIM = 2, 4, 64
        cfg.MODEL.SCA.ANYTHING.POINTS_PER_SIDE = 4
    if not settings.dataset:
        cfg.MODEL.SCA.GENERATION.MAX_NEW_TOKENS = settings.tokens
        cfg.MODEL.SCA.GENERATION.MIN_NEW_TOKENS = settings.tokens
    cfg.merge_from_list(settings.opts)
    return cfg


def build_random_lm_model(cfg: CfgNode, lm_shape: str) -> torch.nn.Module:
    """The model of ``cfg`` in eval mode with a random LM of ``lm_shape`` (both initialised
    directly on ``MODEL.DEVICE``) instead of the LM that MODEL.SCA.LM names."""
    with torch.device(cfg.MODEL.DEVICE):
        return build_sca_model(cfg, language_model=random_lm(lm_shape)).eval()
