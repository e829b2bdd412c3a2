"""The ViT image encoder's attention with SAM's decomposed relative positions inside SDPA."""

import torch
import torch.nn.functional as F
from segment_anything.modeling import image_encoder
from torch import Tensor


def relative_positions(size: int, rel_pos: Tensor) -> Tensor:
    """(size, size, C) embeddings of the offsets between query and key positions along one axis:
    segment_anything's ``get_rel_pos`` for equal query and key sizes, with the offsets indexed on
    the table's device (its CPU index makes every call wait for the GPU's queued work)."""
    if rel_pos.shape[0] != 2 * size - 1:  # a table of another size is interpolated first
        return image_encoder.get_rel_pos(size, size, rel_pos)
    coords = torch.arange(size, device=rel_pos.device)
    return rel_pos[coords[:, None] - coords[None, :] + size - 1]


class SDPARelPosAttention(image_encoder.Attention):
    """The ViT encoder's attention with SAM's decomposed relative positions inside SDPA.

    Without a gradient, the positions are SDPA's additive mask: the score matrix is then never
    written, re-read for the positions and written again by a separate softmax (30-50% less time
    per attention call on CPU). With one (a trained encoder), a mask that needs a gradient sends
    SDPA to its unfused path, so the positions go into the dot product instead: each query is
    extended by its scores for every key row and column, and each key by the one-hot codes of its
    row and column (``augmented_rel_pos_attention``)."""

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, heads, HW, head_dim)
        if not self.use_rel_pos:
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
            return self.proj(out.transpose(1, 2).reshape(b, h, w, -1))
        r_q = q.reshape(b * self.num_heads, h, w, -1)
        rh = relative_positions(h, self.rel_pos_h).to(q.dtype)
        rw = relative_positions(w, self.rel_pos_w).to(q.dtype)
        rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, rh).reshape(b, self.num_heads, h * w, h)
        rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, rw).reshape(b, self.num_heads, h * w, w)
        if rel_h.requires_grad:  # a gradient flows to the queries or the position tables
            out = augmented_rel_pos_attention(q * self.scale, k, v, rel_h, rel_w, (h, w))
        else:
            out = masked_rel_pos_attention(q, k, v, rel_h, rel_w, self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, h, w, -1))


# A group's mask elements per device type: on CPU 1 << 26 (256 MB in float32: 4 heads of SAM's
# 64 x 64 image tokens). Elsewhere one call per block: a GPU training step is bound by kernel
# launches, and ViT-H's two images would take 8 calls per global block (their mask: 1 GB in fp16).
MASK_GROUP_ELEMENTS = {"cpu": 1 << 26}


def masked_rel_pos_attention(
    q: Tensor, k: Tensor, v: Tensor, rel_h: Tensor, rel_w: Tensor, scale: float
) -> Tensor:
    """softmax(scale q k^T + rel_h[key row] + rel_w[key column]) v with the positions as SDPA's
    additive mask, for a group of (image, head) pairs at a time: the whole mask of a
    global-attention block is (B, heads, HW, HW), 1.6 GB for two images in ViT-B and 4.3 GB for
    one in ViT-H, the peak memory of a CPU training step with a frozen encoder. A group's mask
    holds at most ``MASK_GROUP_ELEMENTS`` (at least one head); each head is computed exactly as
    in one call, and reads its keys and values once (bands of queries would re-read them)."""
    b, heads, n, d = q.shape
    limit = MASK_GROUP_ELEMENTS.get(q.device.type)
    per_call = b * heads if limit is None else max(1, limit // (n * n))
    if per_call >= b * heads:
        mask = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(b, heads, n, n)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    q, k, v = (x.reshape(b * heads, 1, n, d) for x in (q, k, v))
    rel_h, rel_w = (x.flatten(0, 1)[:, None] for x in (rel_h, rel_w))
    outs = []
    for group in range(0, b * heads, per_call):
        part = slice(group, group + per_call)
        mask = (rel_h[part, ..., :, None] + rel_w[part, ..., None, :]).reshape(-1, 1, n, n)
        out = F.scaled_dot_product_attention(q[part], k[part], v[part], attn_mask=mask, scale=scale)
        outs.append(out)
    return torch.cat(outs).reshape(b, heads, n, d)


def augmented_rel_pos_attention(
    q: Tensor, k: Tensor, v: Tensor, rel_h: Tensor, rel_w: Tensor, size: tuple[int, int]
) -> Tensor:
    """softmax(q k^T + rel_h[key row] + rel_w[key column]) v as one fused SDPA call without a mask.

    ``q`` (already scaled), ``k``, ``v``: (B, heads, HW, C); ``rel_h``: (B, heads, HW, H) each
    query's score for every key row, ``rel_w`` (B, heads, HW, W) for every key column. Appending
    them to the query, and the one-hot codes of each key's row and column to the key, makes the dot
    product q k^T + rel_h + rel_w. ``v`` is zero-padded to the same width (the fused kernels want
    one head size) and the padding cut from the output."""
    h, w = size
    rows = torch.eye(h, dtype=k.dtype, device=k.device)[:, None, :].expand(h, w, h)
    cols = torch.eye(w, dtype=k.dtype, device=k.device)[None, :, :].expand(h, w, w)
    codes = torch.cat([rows, cols], dim=-1).reshape(1, 1, h * w, h + w)
    q_aug = torch.cat([q, rel_h, rel_w], dim=-1)
    k_aug = torch.cat([k, codes.expand(*k.shape[:2], -1, -1)], dim=-1)
    v_aug = F.pad(v, (0, h + w))
    out = F.scaled_dot_product_attention(q_aug, k_aug, v_aug, scale=1.0)
    return out[..., : v.shape[-1]]
