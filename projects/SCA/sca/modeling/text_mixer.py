"""The text feature mixer of SCA: caption query tokens read SAM's region features."""

import torch
from segment_anything.modeling import TwoWayTransformer
from torch import nn

from .sam_builder import set_block_norm_eps
from .specialise import use_activation_checkpointing, use_sdpa_attention


class TextFeatureMixer(nn.Module):
    """Learned caption tokens, together with the output tokens of SAM's mask decoder, attend to
    the image embedding as updated by SAM's decoder, through a two-way transformer of SAM's shape.
    The caption tokens' outputs are the region's visual prefix for the LM."""

    def __init__(
        self,
        num_caption_tokens: int = 8,
        depth: int = 12,
        embed_dim: int = 256,
        num_heads: int = 8,
        mlp_dim: int = 2048,
        block_norm_eps: float = 1e-5,
        sdpa_attention: bool = False,
        activation_checkpointing: bool = False,
        compile: bool = False,
    ):
        super().__init__()
        self.num_caption_tokens = num_caption_tokens
        self.caption_tokens = nn.Embedding(num_caption_tokens, embed_dim)
        self.activation_checkpointing = activation_checkpointing
        self.transformer = set_block_norm_eps(
            TwoWayTransformer(
                depth=depth, embedding_dim=embed_dim, num_heads=num_heads, mlp_dim=mlp_dim
            ),
            block_norm_eps,
        )
        if sdpa_attention:
            use_sdpa_attention(self.transformer, fold=True)
        if activation_checkpointing:
            use_activation_checkpointing(self.transformer)
        if compile:  # after the switches above, which re-class its modules
            self.transformer.compile()

    def forward(
        self,
        sam_tokens: torch.Tensor,
        region_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        pooled: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            sam_tokens: (N, T, C) output tokens of SAM's two-way transformer, one row per region.
            region_embeddings: (N, C, H, W) image embedding as updated for each region by SAM.
            image_pe: (1, C, H, W) SAM's dense positional encoding.
            pooled: optional (N, C) region features added to every caption token, before and
                after the transformer.
        Returns:
            (N, num_caption_tokens, C) caption query features.
        """
        n = sam_tokens.shape[0]
        caption = self.caption_tokens.weight.unsqueeze(0).expand(n, -1, -1)
        if pooled is not None:
            caption = caption + pooled[:, None, :]
        queries = torch.cat([caption, sam_tokens], dim=1)
        hs, _ = self.transformer(region_embeddings, image_pe, queries)
        out = hs[:, : self.num_caption_tokens]
        return out if pooled is None else out + pooled[:, None, :]
