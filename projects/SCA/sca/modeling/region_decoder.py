"""Region prompts to SAM's outputs and SCA's caption queries.

SAM's prompt encoder and mask decoder run on each region's prompts; SCA's text mixer reads the
decoder's output tokens and updated image embedding and returns the region's caption queries
(the LM's visual prefix). Regions go through in passes of ``REGION_CHUNK_TOKENS``; in training a
pass can keep only its inputs and be recomputed in backward (activation checkpointing).
"""

from dataclasses import dataclass
from itertools import groupby

import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder
from torch import Tensor
from torch.utils.checkpoint import checkpoint
from torchvision.ops import roi_align

from .precision import module_dtype
from .sam_regions import RegionPrompts, SAMRegionOutput, cat_or_only, decode_regions
from .text_mixer import TextFeatureMixer
from .two_way_blocks import checkpointed_by_caller


@dataclass
class DecodedRegions:
    """One image's regions: SAM's outputs (without the per-region embeddings, which the mixer
    has read) and the mixer's caption queries (N, num_caption_tokens, C)."""

    sam: SAMRegionOutput
    queries: Tensor


@dataclass
class TrainingQueries:
    """The caption queries of all regions of a batch, in order, as one or more tensors; and SAM's
    outputs per image for the mask loss (None for an image without prompts, and all None when
    they were not kept)."""

    queries: list[Tensor]
    sams: list[SAMRegionOutput | None]


@dataclass
class _SAMDecode:
    """SAM's outputs with the per-region embeddings, and the regions' pooled features (if used):
    the mixer's inputs."""

    sam: SAMRegionOutput
    pooled: Tensor | None


class RegionDecoder:
    """Decodes region prompts with the caption head's prompt encoder, mask decoder and mixer.

    The head owns and registers those modules (their checkpoint keys stay
    ``roi_heads.prompt_encoder.*``, ``roi_heads.mask_decoder.*``, ``roi_heads.mixer.*``); this
    helper holds references to them and follows their training mode.
    """

    def __init__(
        self,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        mixer: TextFeatureMixer,
        *,
        sam_trainable: bool = False,
        box_pooled_queries: bool = False,
        region_chunk_tokens: dict[str, int] | None = None,
    ):
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.mixer = mixer
        self.sam_trainable = sam_trainable
        self.box_pooled_queries = box_pooled_queries
        self.region_chunk_tokens = region_chunk_tokens or {}

    def chunk_size(self, device: torch.device) -> int:
        """Prompts per pass through SAM's decoder and the mixer on ``device`` (0: all)."""
        tokens = self.region_chunk_tokens.get(device.type, 0)
        h, w = self.prompt_encoder.image_embedding_size
        return max(1, tokens // (h * w)) if tokens else 0

    def sam_regions(self, image_embedding: Tensor, prompts: RegionPrompts) -> SAMRegionOutput:
        """SAM's outputs alone (no mixer, no per-region embeddings) for one image's prompts."""
        chunks = prompts.split(self.chunk_size(image_embedding.device))
        return SAMRegionOutput.cat(
            [self._decode_sam(image_embedding, chunk) for chunk in chunks], keep_embeddings=False
        )

    def regions(self, image_embedding: Tensor, prompts: RegionPrompts) -> DecodedRegions:
        """SAM's outputs and the caption queries of one image's prompts (inference)."""
        sams, queries = [], []
        for chunk in prompts.split(self.chunk_size(image_embedding.device)):
            decoded = self._decode(image_embedding, chunk, with_masks=True)
            sams.append(decoded.sam)
            queries.append(self._mix([decoded]))
        return DecodedRegions(
            SAMRegionOutput.cat(sams, keep_embeddings=False), cat_or_only(queries)
        )

    def training_queries(
        self, image_embeddings: Tensor, prompts: list[RegionPrompts], keep_sams: bool
    ) -> TrainingQueries:
        """The caption queries of a batch's regions, and with ``keep_sams`` SAM's masks (for the
        mask loss; the caption loss reads none). Where REGION_CHUNK_TOKENS is 0 (CUDA), the
        regions of all images go through the mixer together: one pass instead of one per image,
        the same arithmetic, fewer kernel launches."""
        present = [i for i, p in enumerate(prompts) if len(p)]
        sams: list[SAMRegionOutput | None] = [None] * len(prompts)
        chunk_size = self.chunk_size(image_embeddings.device)
        if chunk_size:
            queries = []
            for i in present:
                chunks = prompts[i].split(chunk_size)
                parts = [self._pass(image_embeddings[i][None], c, keep_sams) for c in chunks]
                queries.append(cat_or_only([p.queries for p in parts]))
                if keep_sams:
                    sams[i] = SAMRegionOutput.cat([p.sam for p in parts], keep_embeddings=False)
            return TrainingQueries(queries, sams)
        decoded = [self._decode(image_embeddings[i][None], prompts[i], keep_sams) for i in present]
        if keep_sams:
            for i, d in zip(present, decoded):
                sams[i] = SAMRegionOutput.cat([d.sam], keep_embeddings=False)
        same_tokens = groupby(decoded, key=lambda d: d.sam.tokens.shape[1])
        return TrainingQueries([self._mix(list(group)) for _, group in same_tokens], sams)

    def pooled_region_features(self, image_embedding: Tensor, prompts: RegionPrompts) -> Tensor:
        """Mean of the image embedding inside each box (around the first point when there is no
        box): the regions' features that MIXER.BOX_POOLED_QUERIES adds to the caption tokens."""
        input_size = self.prompt_encoder.input_image_size[0]
        scale = image_embedding.shape[-1] / input_size
        boxes = prompts.boxes
        if boxes is None:
            half = 0.5 / scale
            center = prompts.points[:, 0]
            boxes = torch.cat([center - half, center + half], dim=1)
        rois = torch.cat([boxes.new_zeros(len(boxes), 1), boxes], dim=1).float()
        # in float32: torchvision's CPU roi_align has no bf16 kernel
        pooled = roi_align(
            image_embedding.float(), rois, output_size=2, spatial_scale=scale, aligned=True
        )
        return pooled.mean(dim=(2, 3)).to(image_embedding.dtype)

    def _pass(
        self, image_embedding: Tensor, prompts: RegionPrompts, with_masks: bool
    ) -> DecodedRegions:
        """One training pass of prompts. With MIXER.ACTIVATION_CHECKPOINTING the pass keeps only
        its inputs for backward and is recomputed there whole (SAM's decoder and the mixer; the
        mixer alone where SAM's decoder runs without a graph, its outputs kept instead): where
        the regions go in several passes (CPU), per-block checkpoints would keep each pass's
        block inputs until the LM's loss is back, many times more."""
        if not self.mixer.activation_checkpointing:
            return self._decoded_queries(image_embedding, prompts, with_masks)
        if not self._needs_graph(image_embedding):  # frozen SAM: decoded once, not again
            decoded = self._decode(image_embedding, prompts, with_masks)
            queries = checkpoint(self._recomputed_mix, decoded, use_reentrant=False)
            return DecodedRegions(
                SAMRegionOutput.cat([decoded.sam], keep_embeddings=False), queries
            )
        return checkpoint(
            self._recomputed_queries, image_embedding, prompts, with_masks, use_reentrant=False
        )

    def _decoded_queries(
        self, image_embedding: Tensor, prompts: RegionPrompts, with_masks: bool
    ) -> DecodedRegions:
        decoded = self._decode(image_embedding, prompts, with_masks)
        sam = SAMRegionOutput.cat([decoded.sam], keep_embeddings=False)
        return DecodedRegions(sam, self._mix([decoded]))

    def _recomputed_mix(self, decoded: _SAMDecode) -> Tensor:
        with checkpointed_by_caller():
            return self._mix([decoded])

    def _recomputed_queries(
        self, image_embedding: Tensor, prompts: RegionPrompts, with_masks: bool
    ) -> DecodedRegions:
        with checkpointed_by_caller():
            return self._decoded_queries(image_embedding, prompts, with_masks)

    def _decode(
        self, image_embedding: Tensor, prompts: RegionPrompts, with_masks: bool
    ) -> _SAMDecode:
        """SAM's outputs for one image's prompts (without masks unless ``with_masks``), and
        their pooled features where MIXER.BOX_POOLED_QUERIES uses them."""
        pooled = None
        if self.box_pooled_queries:
            embedding = image_embedding.to(module_dtype(self.mixer))
            pooled = self.pooled_region_features(embedding, prompts)
        return _SAMDecode(self._decode_sam(image_embedding, prompts, with_masks), pooled)

    def _needs_graph(self, image_embedding: Tensor) -> bool:
        """SAM's decoder needs a graph when it is trained or a trained encoder lies behind it."""
        return (self.sam_trainable and self.mask_decoder.training) or image_embedding.requires_grad

    def _decode_sam(
        self, image_embedding: Tensor, prompts: RegionPrompts, with_masks: bool = True
    ) -> SAMRegionOutput:
        needs_graph = self._needs_graph(image_embedding)
        with torch.set_grad_enabled(torch.is_grad_enabled() and needs_graph):
            return decode_regions(
                self.prompt_encoder, self.mask_decoder, image_embedding, prompts, with_masks
            )

    def _mix(self, decoded: list[_SAMDecode]) -> Tensor:
        """The mixer's caption queries for decoded regions (with equally many SAM tokens), in
        one pass."""
        dtype = module_dtype(self.mixer)
        pooled = None if decoded[0].pooled is None else cat_or_only([d.pooled for d in decoded])
        return self.mixer(
            cat_or_only([d.sam.tokens for d in decoded]).to(dtype),
            cat_or_only([d.sam.region_embeddings for d in decoded]).to(dtype),
            self.prompt_encoder.get_dense_pe().to(dtype),
            pooled,
        )
