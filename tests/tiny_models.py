"""Tiny random SAM / LM configurations for tests: real code paths, seconds on a CPU."""

from functools import partial
from pathlib import Path

import torch
from detectron2.config import CfgNode
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)
from transformers import PreTrainedTokenizerFast

from sca.config import get_sca_cfg
from sca.utils.random_lm import EOS, causal_lm, lm_config, word_tokenizer

WORDS = (
    "a an the small large red green blue yellow circle square triangle cat dog sits on mat "
    "man riding horse tree left right of near"
).split()


def make_tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    vocab = {"<unk>": 0, EOS: 1}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    fast = word_tokenizer(vocab, unk_token="<unk>")
    fast.save_pretrained(folder)
    return fast


# the shared tiny shapes (sca.utils.random_lm) with a 64-token context
TINY_OVERRIDES = {
    "gpt2": ("tiny-gpt2", {"n_positions": 64}),
    "llama": ("tiny-llama", {"max_position_embeddings": 64, "tie_word_embeddings": True}),
}


def make_tiny_lm(folder: Path, arch: str = "gpt2", seed: int = 0) -> Path:
    """A random tiny causal LM with a word-level tokenizer, saved as a Hugging Face folder."""
    if arch not in TINY_OVERRIDES:
        raise ValueError(arch)
    folder.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(folder)
    shape, overrides = TINY_OVERRIDES[arch]
    config = lm_config(
        shape,
        vocab_size=len(tok),
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.eos_token_id,
        initializer_range=0.2,
        **overrides,
    )
    torch.manual_seed(seed)
    causal_lm(config).save_pretrained(folder)
    return folder


def tiny_cfg(lm_folder: Path | str, image_size: int = 64) -> CfgNode:
    """A complete SCA config with a 2-block 32-wide SAM encoder and a 2-layer mixer."""
    cfg = get_sca_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.INPUT.IMAGE_SIZE = image_size
    sam = cfg.MODEL.SCA.SAM
    sam.ENCODER = "custom"
    sam.EMBED_DIM, sam.DEPTH, sam.NUM_HEADS, sam.GLOBAL_ATTN_INDEXES = 32, 2, 2, [1]
    sam.WINDOW_SIZE = 2
    sam.PROMPT_EMBED_DIM = 32
    sam.DECODER_MLP_DIM = 64
    mixer = cfg.MODEL.SCA.MIXER
    mixer.DEPTH, mixer.NUM_HEADS, mixer.MLP_DIM, mixer.NUM_CAPTION_TOKENS = 2, 4, 64, 4
    cfg.MODEL.SCA.LM.NAME_OR_PATH = str(lm_folder)
    cfg.MODEL.SCA.LM.NUM_TASK_TOKENS = 2
    cfg.MODEL.SCA.GENERATION.MAX_NEW_TOKENS = 8
    return cfg


def tiny_train_cfg(
    lm_folder: Path | str, max_iter: int, checkpoint_period: int, test_batch: int
) -> CfgNode:
    """:func:`tiny_cfg` set up for a few CPU training iterations through tools/train_net.py:
    no jitter, 4 regions per image, 2 images per step, no AMP, no periodic evaluation."""
    cfg = tiny_cfg(lm_folder)
    cfg.INPUT.LSJ.ENABLED = False
    cfg.INPUT.NUM_REGIONS_PER_IMAGE = 4
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.SOLVER.BASE_LR = 1e-3
    cfg.SOLVER.WARMUP_ITERS = 2
    cfg.SOLVER.MAX_ITER = max_iter
    cfg.SOLVER.CHECKPOINT_PERIOD = checkpoint_period
    cfg.SOLVER.AMP.ENABLED = False
    cfg.TEST.EVAL_PERIOD = 0
    cfg.TEST.SCA.IMS_PER_BATCH = test_batch
    cfg.SEED = 3
    return cfg


def write_tiny_train_config(cfg: CfgNode, folder: Path, **overrides) -> Path:
    """Writes ``cfg`` with ``OUTPUT_DIR`` = ``folder`` and dotted-key ``overrides``
    (``**{"SOLVER.MAX_ITER": 2}``) to ``folder/config.in.yaml``, for tools/train_net.py."""
    cfg = cfg.clone()
    cfg.OUTPUT_DIR = str(folder)
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = getattr(node, p)
        setattr(node, leaf, value)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.in.yaml"
    path.write_text(cfg.dump())
    return path


def reference_sam(image_size: int = 64) -> Sam:
    """A tiny SAM built directly from segment_anything's classes, as build_sam does; its shapes
    are those of :func:`tiny_cfg` with ``SAM.PATCH_SIZE`` 16."""
    torch.manual_seed(7)
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=2,
            embed_dim=32,
            img_size=image_size,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=2,
            patch_size=16,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=(1,),
            window_size=2,
            out_chans=32,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=32,
            image_embedding_size=(image_size // 16, image_size // 16),
            input_image_size=(image_size, image_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=32, mlp_dim=64, num_heads=8),
            transformer_dim=32,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
    )
    # Random weights everywhere (SAM zero-initialises nothing that matters here, but make sure
    # every tensor differs from a fresh init so that loading is really checked).
    with torch.no_grad():
        for p in sam.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return sam.eval()


def tiny_sam_cfg(lm_folder: Path | str, folder: Path, iou_shift: float = 0.5) -> CfgNode:
    """:func:`tiny_cfg` whose SAM checkpoint (written to ``folder``) holds :func:`reference_sam`'s
    weights with the IoU head's output shifted by ``iou_shift``: its predicted IoUs are then
    about 0-0.5, so that anything-mode thresholds keep some masks and drop others."""
    sam = reference_sam(64)
    with torch.no_grad():
        sam.mask_decoder.iou_prediction_head.layers[-1].bias.add_(iou_shift)
    torch.save(sam.state_dict(), folder / "sam_tiny.pth")
    cfg = tiny_cfg(lm_folder, image_size=64)
    cfg.MODEL.SCA.SAM.CHECKPOINT = str(folder / "sam_tiny.pth")
    return cfg
