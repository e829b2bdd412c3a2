"""The from-scratch initialisation of SAM's prompt encoder and mask decoder
(MODEL.SCA.SAM.PROMPT_PE_SCALE and DECODER_QK_INIT): what they change in the built modules, and
that the tied init makes a point prompt's token attend to the image positions near the point
before any training, which PyTorch's init does not."""

import pytest
import torch
from segment_anything.modeling.transformer import Attention

from sca.config import get_sca_cfg
from sca.modeling.sam_builder import build_sam_mask_decoder, build_sam_prompt_encoder


def _cfg(qk_init: float = 0.0, pe_scale: float = 1.0):
    cfg = get_sca_cfg()
    cfg.INPUT.IMAGE_SIZE = 192
    sam = cfg.MODEL.SCA.SAM
    sam.PATCH_SIZE, sam.PROMPT_EMBED_DIM, sam.DECODER_MLP_DIM = 8, 128, 512  # sca_demo's
    sam.DECODER_QK_INIT, sam.PROMPT_PE_SCALE = qk_init, pe_scale
    return cfg


def _built(cfg, seed: int):
    torch.manual_seed(seed)
    return build_sam_prompt_encoder(cfg), build_sam_mask_decoder(cfg)


def test_defaults_are_pytorch_and_sam_init():
    cfg = get_sca_cfg()
    assert cfg.MODEL.SCA.SAM.DECODER_QK_INIT == 0.0 and cfg.MODEL.SCA.SAM.PROMPT_PE_SCALE == 1.0


def test_keys_change_only_what_they_name():
    (pe0, dec0), (pe1, dec1) = _built(_cfg(), 0), _built(_cfg(3.0, 0.5), 0)
    gauss = "pe_layer.positional_encoding_gaussian_matrix"
    torch.testing.assert_close(pe1.state_dict()[gauss], 0.5 * pe0.state_dict()[gauss])
    for key, value in pe0.state_dict().items():
        if key != gauss:
            torch.testing.assert_close(pe1.state_dict()[key], value)
    cross = 0
    modules0 = dict(dec0.named_modules())
    for name, m1 in dec1.named_modules():
        if not isinstance(m1, Attention):
            continue
        m0 = modules0[name]
        if m1.internal_dim != m1.embedding_dim:  # cross-attention: q and k tied, times 3
            cross += 1
            torch.testing.assert_close(m1.q_proj.weight, 3.0 * m0.q_proj.weight)
            torch.testing.assert_close(m1.k_proj.weight, m1.q_proj.weight)
        else:
            torch.testing.assert_close(m1.k_proj.weight, m0.k_proj.weight)
        torch.testing.assert_close(m1.v_proj.weight, m0.v_proj.weight)
    assert cross == 2 * 2 + 1  # two per two-way block, and the final token-to-image one


def _attention_near_the_point(cfg, seed: int, radius: float = 24.0) -> float:
    """Mean attention weight (over 64 random points and the heads) that the first block's
    token-to-image attention gives to image positions within ``radius`` px of the point, from
    the point's token to the image's positional encodings alone."""
    pe, dec = _built(cfg, seed)
    attn = dec.transformer.layers[0].cross_attn_token_to_image
    gen = torch.Generator().manual_seed(seed)
    points = torch.rand(64, 1, 2, generator=gen) * 192
    sparse, _ = pe(points=(points, torch.ones(64, 1, dtype=torch.long)), boxes=None, masks=None)
    with torch.no_grad():
        q = attn._separate_heads(attn.q_proj(sparse[:, :1]), attn.num_heads)
        keys = pe.get_dense_pe().flatten(2).transpose(1, 2)
        k = attn._separate_heads(attn.k_proj(keys), attn.num_heads)
        weights = (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).softmax(-1)[:, :, 0]
    centres = (torch.arange(24) + 0.5) * 8
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")
    grid = torch.stack([xx.flatten(), yy.flatten()], dim=1)
    near = (torch.cdist(points[:, 0], grid) < radius).float()  # (64, 576)
    return (weights * near[:, None]).sum(-1).mean().item()


@pytest.mark.parametrize("seed", [0, 1])
def test_tied_init_attends_near_the_point(seed):
    area = _attention_near_the_point(_cfg(), seed)  # PyTorch's init: about the area's share
    tied = _attention_near_the_point(_cfg(3.0, 0.5), seed)
    assert area < 0.08  # 24 px around a point is ~5% of the 192 px square
    assert tied > 3 * area
