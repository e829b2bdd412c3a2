"""Builds segment_anything's modules (image encoder, prompt encoder, mask decoder) from a config.

Mirrors ``segment_anything.build_sam`` but takes every size from the config, so that official
ViT-B/L/H shapes and tiny test encoders come from the same code.
"""

from functools import partial

import torch
from detectron2.config import CfgNode
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, TwoWayTransformer
from segment_anything.modeling.prompt_encoder import PositionEmbeddingRandom
from segment_anything.modeling.transformer import Attention

from .precision import Float32PositionEmbedding
from .specialise import specialise, use_sdpa_attention

# Hyper-parameters of the official SAM image encoders (segment_anything.build_sam).
SAM_ENCODER_PRESETS = {
    "vit_b": {"EMBED_DIM": 768, "DEPTH": 12, "NUM_HEADS": 12, "GLOBAL_ATTN_INDEXES": [2, 5, 8, 11]},
    "vit_l": {
        "EMBED_DIM": 1024,
        "DEPTH": 24,
        "NUM_HEADS": 16,
        "GLOBAL_ATTN_INDEXES": [5, 11, 17, 23],
    },
    "vit_h": {
        "EMBED_DIM": 1280,
        "DEPTH": 32,
        "NUM_HEADS": 16,
        "GLOBAL_ATTN_INDEXES": [7, 15, 23, 31],
    },
}


def sam_encoder_shape(cfg: CfgNode) -> dict:
    """Width, depth, heads and global-attention blocks of the configured encoder."""
    sam = cfg.MODEL.SCA.SAM
    if sam.ENCODER == "custom":
        return {
            "EMBED_DIM": sam.EMBED_DIM,
            "DEPTH": sam.DEPTH,
            "NUM_HEADS": sam.NUM_HEADS,
            "GLOBAL_ATTN_INDEXES": list(sam.GLOBAL_ATTN_INDEXES),
        }
    if sam.ENCODER not in SAM_ENCODER_PRESETS:
        raise ValueError(
            f"MODEL.SCA.SAM.ENCODER={sam.ENCODER!r}: expected one of "
            f"{sorted(SAM_ENCODER_PRESETS)} or 'custom'"
        )
    return SAM_ENCODER_PRESETS[sam.ENCODER]


def build_sam_image_encoder(cfg: CfgNode) -> ImageEncoderViT:
    shape = sam_encoder_shape(cfg)
    sam = cfg.MODEL.SCA.SAM
    image_size = cfg.INPUT.IMAGE_SIZE
    if image_size % sam.PATCH_SIZE:
        raise ValueError(
            f"INPUT.IMAGE_SIZE={image_size} must be a multiple of "
            f"MODEL.SCA.SAM.PATCH_SIZE={sam.PATCH_SIZE}"
        )
    encoder = ImageEncoderViT(
        depth=shape["DEPTH"],
        embed_dim=shape["EMBED_DIM"],
        img_size=image_size,
        mlp_ratio=4,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        num_heads=shape["NUM_HEADS"],
        patch_size=sam.PATCH_SIZE,
        qkv_bias=True,
        use_rel_pos=sam.USE_REL_POS,
        global_attn_indexes=tuple(shape["GLOBAL_ATTN_INDEXES"]),
        window_size=sam.WINDOW_SIZE,
        out_chans=sam.PROMPT_EMBED_DIM,
    )
    if cfg.MODEL.SCA.SDPA_ATTENTION:
        use_sdpa_attention(encoder)
    return encoder


def build_sam_prompt_encoder(cfg: CfgNode) -> PromptEncoder:
    sam = cfg.MODEL.SCA.SAM
    image_size = cfg.INPUT.IMAGE_SIZE
    grid = image_size // sam.PATCH_SIZE
    encoder = PromptEncoder(
        embed_dim=sam.PROMPT_EMBED_DIM,
        image_embedding_size=(grid, grid),
        input_image_size=(image_size, image_size),
        mask_in_chans=16,
    )
    with torch.no_grad():  # PositionEmbeddingRandom(scale=s) draws s * randn
        encoder.pe_layer.positional_encoding_gaussian_matrix.mul_(sam.PROMPT_PE_SCALE)
    specialise(encoder, PositionEmbeddingRandom, Float32PositionEmbedding)
    return encoder


def tie_cross_attention_init(transformer: TwoWayTransformer, scale: float) -> TwoWayTransformer:
    """Start each cross-attention (token-to-image and image-to-token) with k_proj = q_proj =
    ``scale`` x its initial q_proj: queries and keys then share one projection, so the attention
    logit between a prompt token and an image position grows with the similarity of their
    positional encodings (both carry SAM's random Fourier features)."""
    with torch.no_grad():
        for name, module in transformer.named_modules():
            # cross_attn_token_to_image / cross_attn_image_to_token in each block, and the final
            # final_attn_token_to_image; not the tokens' self_attn
            if isinstance(module, Attention) and "_to_" in name.rsplit(".", 1)[-1]:
                module.q_proj.weight.mul_(scale)
                module.k_proj.weight.copy_(module.q_proj.weight)
    return transformer


def set_block_norm_eps(transformer: TwoWayTransformer, eps: float) -> TwoWayTransformer:
    """Set the eps of the LayerNorms inside a two-way transformer's blocks (not the final one,
    which keeps 1e-5 in both segment_anything and Hugging Face's port)."""
    for block in transformer.layers:
        for norm in (block.norm1, block.norm2, block.norm3, block.norm4):
            norm.eps = eps
    return transformer


def build_sam_mask_decoder(cfg: CfgNode) -> MaskDecoder:
    sam = cfg.MODEL.SCA.SAM
    transformer = TwoWayTransformer(
        depth=sam.DECODER_DEPTH,
        embedding_dim=sam.PROMPT_EMBED_DIM,
        mlp_dim=sam.DECODER_MLP_DIM,
        num_heads=8,
    )
    if sam.DECODER_QK_INIT > 0:
        tie_cross_attention_init(transformer, sam.DECODER_QK_INIT)
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=set_block_norm_eps(transformer, sam.DECODER_BLOCK_NORM_EPS),
        transformer_dim=sam.PROMPT_EMBED_DIM,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )
    if cfg.MODEL.SCA.SDPA_ATTENTION:
        use_sdpa_attention(decoder)
    return decoder
