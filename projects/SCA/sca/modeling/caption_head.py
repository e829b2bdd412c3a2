"""SCA's captioning ROI head: SAM's prompt encoder and mask decoder, the text feature mixer and
the prefix-conditioned frozen LM."""

from dataclasses import dataclass
from itertools import groupby

import torch
from detectron2.config import CfgNode, configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import ROI_HEADS_REGISTRY
from detectron2.utils.events import get_event_storage
from segment_anything.modeling import MaskDecoder, PromptEncoder
from torch import nn
from torch.utils.checkpoint import checkpoint
from torchvision.ops import roi_align
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from .captioner import PrefixCaptioner
from .fast_attention import checkpointed_by_caller
from .generation import build_generation_config
from .language_model import load_causal_lm
from .mask_loss import SAMMaskLoss
from .precision import module_dtype, store_frozen_as
from .sam_builder import build_sam_mask_decoder, build_sam_prompt_encoder
from .sam_regions import RegionPrompts, SAMRegionOutput, cat_or_only, decode_regions
from .text_mixer import TextFeatureMixer


@dataclass
class RegionPredictions:
    """Per-image predictions of the head, in the model's input frame."""

    sam: SAMRegionOutput
    captions: list[str]
    caption_scores: torch.Tensor


@ROI_HEADS_REGISTRY.register()
class SCACaptionHead(nn.Module):
    @configurable
    def __init__(
        self,
        *,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        mixer: TextFeatureMixer,
        captioner: PrefixCaptioner,
        generation_config: GenerationConfig,
        train_prompt_encoder: bool = False,
        train_mask_decoder: bool = False,
        label_smoothing: float = 0.1,
        max_caption_tokens: int = 18,
        chunk_size: int = 8,
        box_pooled_queries: bool = False,
        caption_start_iter: int = 0,
        region_chunk_tokens: dict[str, int] | None = None,
        mask_loss: SAMMaskLoss | None = None,
    ):
        super().__init__()
        self.prompt_encoder = prompt_encoder.requires_grad_(train_prompt_encoder)
        self.mask_decoder = mask_decoder.requires_grad_(train_mask_decoder)
        self.sam_trainable = train_prompt_encoder or train_mask_decoder
        self.mixer = mixer
        self.captioner = captioner
        self.label_smoothing = label_smoothing
        self.max_caption_tokens = max_caption_tokens
        self.generation_config = generation_config
        self.chunk_size = chunk_size
        self.box_pooled_queries = box_pooled_queries
        self.caption_start_iter = caption_start_iter
        self.region_chunk_tokens = region_chunk_tokens or {}
        self.mask_loss = mask_loss

    @classmethod
    def from_config(
        cls,
        cfg: CfgNode,
        input_shape: dict[str, ShapeSpec] | None = None,
        language_model: tuple[PreTrainedModel, PreTrainedTokenizerBase] | None = None,
    ) -> dict:
        """``language_model`` (model, tokenizer) is used instead of loading MODEL.SCA.LM."""
        sca = cfg.MODEL.SCA
        if language_model is None:
            language_model = load_causal_lm(
                sca.LM.NAME_OR_PATH,
                sca.LM.GGUF_FILE,
                sca.LM.TOKENIZER,
                sca.LM.DTYPE,
                load_weights=sca.LM.LOAD_WEIGHTS,
                attn_implementation=sca.LM.ATTN_IMPLEMENTATION,
            )
        lm, tokenizer = language_model
        dim = sca.SAM.PROMPT_EMBED_DIM
        key = "MODEL.SCA.SAM.DECODER_DTYPE"
        prompt_encoder = store_frozen_as(
            build_sam_prompt_encoder(cfg), sca.SAM.DECODER_DTYPE, key, sca.SAM.TRAIN_PROMPT_ENCODER
        )
        prompt_encoder.pe_layer.float()  # the positional encoding is computed in float32
        mask_decoder = store_frozen_as(
            build_sam_mask_decoder(cfg), sca.SAM.DECODER_DTYPE, key, sca.SAM.TRAIN_MASK_DECODER
        )
        return {
            "prompt_encoder": prompt_encoder,
            "mask_decoder": mask_decoder,
            "mixer": TextFeatureMixer(
                num_caption_tokens=sca.MIXER.NUM_CAPTION_TOKENS,
                depth=sca.MIXER.DEPTH,
                embed_dim=dim,
                num_heads=sca.MIXER.NUM_HEADS,
                mlp_dim=sca.MIXER.MLP_DIM,
                block_norm_eps=sca.MIXER.BLOCK_NORM_EPS,
                sdpa_attention=sca.SDPA_ATTENTION,
                activation_checkpointing=sca.MIXER.ACTIVATION_CHECKPOINTING,
                compile=sca.MIXER.COMPILE,
            ),
            "captioner": PrefixCaptioner(
                lm,
                tokenizer,
                dim,
                sca.LM.NUM_TASK_TOKENS,
                lm_trainable=sca.LM.TRAINABLE,
                task_names=sca.LM.TASK_NAMES,
                task=sca.LM.TASK,
            ),
            "train_prompt_encoder": sca.SAM.TRAIN_PROMPT_ENCODER,
            "train_mask_decoder": sca.SAM.TRAIN_MASK_DECODER,
            "label_smoothing": sca.LOSS.LABEL_SMOOTHING,
            "max_caption_tokens": sca.LOSS.MAX_CAPTION_TOKENS,
            "generation_config": build_generation_config(
                sca.GENERATION, tokenizer.eos_token_id, tokenizer.pad_token_id
            ),
            "chunk_size": sca.GENERATION.CHUNK_SIZE,
            "box_pooled_queries": sca.MIXER.BOX_POOLED_QUERIES,
            "caption_start_iter": sca.LOSS.CAPTION_START_ITER,
            "region_chunk_tokens": {k.lower(): v for k, v in sca.REGION_CHUNK_TOKENS.items()},
            "mask_loss": _build_mask_loss(cfg),
        }

    def region_chunk_size(self, device: torch.device) -> int:
        """Prompts per pass through SAM's decoder and the mixer on ``device`` (0: all)."""
        tokens = self.region_chunk_tokens.get(device.type, 0)
        h, w = self.prompt_encoder.image_embedding_size
        return max(1, tokens // (h * w)) if tokens else 0

    def sam_regions(self, image_embedding: torch.Tensor, prompts: RegionPrompts) -> SAMRegionOutput:
        """SAM's outputs alone (no mixer, no per-region embeddings) for one image's prompts, in
        passes of ``REGION_CHUNK_TOKENS``."""
        chunks = prompts.split(self.region_chunk_size(image_embedding.device))
        return SAMRegionOutput.cat(
            [self._decode_sam(image_embedding, chunk) for chunk in chunks], keep_embeddings=False
        )

    def _regions(
        self, image_embedding: torch.Tensor, prompts: RegionPrompts
    ) -> tuple[SAMRegionOutput, torch.Tensor]:
        """SAM's outputs (without the per-region embeddings, which the mixer has read) and the
        mixer's caption queries for one image's prompts, in passes of ``REGION_CHUNK_TOKENS``."""
        sams, queries = [], []
        for chunk in prompts.split(self.region_chunk_size(image_embedding.device)):
            decoded = self._decode(image_embedding, chunk)
            sams.append(decoded[0])
            queries.append(self._mix([decoded]))
        return SAMRegionOutput.cat(sams, keep_embeddings=False), cat_or_only(queries)

    def _decode(
        self, image_embedding: torch.Tensor, prompts: RegionPrompts
    ) -> tuple[SAMRegionOutput, torch.Tensor | None]:
        """SAM's outputs for one image's prompts (in training without masks unless the mask loss
        reads them: the caption loss reads none), and their pooled features (if used)."""
        pooled = self._pooled_region_features(image_embedding.to(module_dtype(self.mixer)), prompts)
        with_masks = not self.training or self.mask_loss is not None
        return self._decode_sam(image_embedding, prompts, with_masks), pooled

    def _decoder_needs_graph(self, image_embedding: torch.Tensor) -> bool:
        """SAM's decoder needs a graph when it is trained or a trained encoder lies behind it."""
        return self.sam_trainable_now() or image_embedding.requires_grad

    def _decode_sam(
        self, image_embedding: torch.Tensor, prompts: RegionPrompts, with_masks: bool = True
    ) -> SAMRegionOutput:
        needs_graph = self._decoder_needs_graph(image_embedding)
        with torch.set_grad_enabled(torch.is_grad_enabled() and needs_graph):
            return decode_regions(
                self.prompt_encoder, self.mask_decoder, image_embedding, prompts, with_masks
            )

    def _mix(self, decoded: list[tuple[SAMRegionOutput, torch.Tensor | None]]) -> torch.Tensor:
        """The mixer's caption queries for decoded regions (with equally many SAM tokens), in
        one pass."""
        dtype = module_dtype(self.mixer)
        pooled = None if decoded[0][1] is None else cat_or_only([p for _, p in decoded])
        return self.mixer(
            cat_or_only([s.tokens for s, _ in decoded]).to(dtype),
            cat_or_only([s.region_embeddings for s, _ in decoded]).to(dtype),
            self.prompt_encoder.get_dense_pe().to(dtype),
            pooled,
        )

    def _training_queries(
        self, image_embeddings: torch.Tensor, prompts: list[RegionPrompts]
    ) -> tuple[list[torch.Tensor], list[SAMRegionOutput | None]]:
        """Caption queries of all regions of a batch, in order, and SAM's outputs per image for
        the mask loss (None for an image without prompts, and all None without a mask loss). Where
        REGION_CHUNK_TOKENS is 0 (CUDA), the regions of all images go through the mixer
        together: one pass instead of one per image, the same arithmetic, fewer kernel launches."""
        present = [i for i, p in enumerate(prompts) if len(p)]
        sams: list[SAMRegionOutput | None] = [None] * len(prompts)
        keep_sams = self.mask_loss is not None  # nothing else reads them
        chunk_size = self.region_chunk_size(image_embeddings.device)
        if chunk_size:
            queries = []
            for i in present:
                chunks = prompts[i].split(chunk_size)
                parts = [self._chunk_queries(image_embeddings[i][None], c) for c in chunks]
                queries.append(cat_or_only([q for q, _ in parts]))
                if keep_sams:
                    sams[i] = SAMRegionOutput.cat([s for _, s in parts], keep_embeddings=False)
            return queries, sams
        decoded = [self._decode(image_embeddings[i][None], prompts[i]) for i in present]
        if keep_sams:
            for i, (sam, _) in zip(present, decoded):
                sams[i] = SAMRegionOutput.cat([sam], keep_embeddings=False)
        same_tokens = groupby(decoded, key=lambda d: d[0].tokens.shape[1])
        return [self._mix(list(group)) for _, group in same_tokens], sams

    def _chunk_queries(
        self, image_embedding: torch.Tensor, prompts: RegionPrompts
    ) -> tuple[torch.Tensor, SAMRegionOutput]:
        """Training caption queries of one pass of prompts, and SAM's outputs for them (without
        the per-region embeddings). With MIXER.ACTIVATION_CHECKPOINTING the pass keeps only its
        inputs for backward and is recomputed there whole (SAM's decoder and the mixer; the
        mixer alone where SAM's decoder runs without a graph, its outputs kept instead): where
        the regions go in several passes (CPU), per-block checkpoints would keep each pass's
        block inputs until the LM's loss is back, many times more."""
        if not self.mixer.activation_checkpointing:
            return self._decoded_queries(image_embedding, prompts)
        if not self._decoder_needs_graph(image_embedding):  # frozen SAM: decoded once, not again
            decoded = self._decode(image_embedding, prompts)
            queries = checkpoint(self._recomputed_mix, decoded, use_reentrant=False)
            return queries, SAMRegionOutput.cat([decoded[0]], keep_embeddings=False)
        queries, logits, iou, tokens = checkpoint(
            self._recomputed_queries, image_embedding, prompts, use_reentrant=False
        )
        return queries, SAMRegionOutput(logits, iou, tokens, None)

    def _decoded_queries(
        self, image_embedding: torch.Tensor, prompts: RegionPrompts
    ) -> tuple[torch.Tensor, SAMRegionOutput]:
        decoded = self._decode(image_embedding, prompts)
        return self._mix([decoded]), SAMRegionOutput.cat([decoded[0]], keep_embeddings=False)

    def _recomputed_mix(self, decoded: tuple[SAMRegionOutput, torch.Tensor | None]) -> torch.Tensor:
        with checkpointed_by_caller():
            return self._mix([decoded])

    def _recomputed_queries(
        self, image_embedding: torch.Tensor, prompts: RegionPrompts
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        with checkpointed_by_caller():
            queries, sam = self._decoded_queries(image_embedding, prompts)
        return queries, sam.mask_logits, sam.iou_predictions, sam.tokens

    def _pooled_region_features(
        self, image_embedding: torch.Tensor, prompts: RegionPrompts
    ) -> torch.Tensor | None:
        """Mean of the image embedding inside each box (around the first point when there is no
        box), when MIXER.BOX_POOLED_QUERIES is on."""
        if not self.box_pooled_queries:
            return None
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

    def _zero_loss(self) -> torch.Tensor:
        """A zero loss that still touches every trainable parameter, so that distributed training
        sees the same graph on every process."""
        return sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0

    def sam_trainable_now(self) -> bool:
        return self.training and self.sam_trainable

    def forward(
        self,
        image_embeddings: torch.Tensor,
        prompts: list[RegionPrompts],
        captions: list[list[str]],
        masks: list[torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Training: caption cross-entropy over all regions of the batch (zero before
        ``caption_start_iter``), and with MODEL.SCA.MASK_LOSS SAM's mask losses against
        ``masks[i]`` ((N_i, H, W) bool, input frame), from the same decode of the prompts."""
        losses: dict[str, torch.Tensor] = {}
        sams: list[SAMRegionOutput | None] | None = None
        if self.caption_start_iter and get_event_storage().iter < self.caption_start_iter:
            losses["loss_caption"] = self._zero_loss()
        else:
            queries, sams = self._training_queries(image_embeddings, prompts)
            losses["loss_caption"] = self._caption_loss(queries, captions)
        if self.mask_loss is not None:
            if masks is None:
                raise ValueError("MODEL.SCA.MASK_LOSS.ENABLED: the head needs the regions' masks")
            decoded = None  # SAM's masks of the caption path, where it ran
            if sams is not None:
                decoded = [None if s is None else (s.mask_logits, s.iou_predictions) for s in sams]
            sam = (self.prompt_encoder, self.mask_decoder)
            losses.update(self.mask_loss(*sam, image_embeddings, prompts, masks, decoded))
        return losses

    def _caption_loss(self, queries: list[torch.Tensor], captions: list[list[str]]) -> torch.Tensor:
        if not queries:
            return self._zero_loss()
        prefix = self.captioner.prefix(torch.cat(queries))
        flat_captions = [c for per_image in captions for c in per_image]
        targets = self.captioner.encode_captions(flat_captions, self.max_caption_tokens)
        targets = targets.to(prefix.device, non_blocking=True)  # no wait for the queued work
        return self.captioner.loss(prefix, targets, self.label_smoothing)

    @torch.no_grad()
    def inference(
        self, image_embeddings: torch.Tensor, prompts: list[RegionPrompts]
    ) -> list[RegionPredictions]:
        """SAM's masks and a caption per prompt. The prompts of all images are captioned
        together, ``chunk_size`` regions per LM batch (all at once when it is 0)."""
        per_image = [
            self._regions(emb[None], p) if len(p) else None
            for emb, p in zip(image_embeddings, prompts)
        ]
        counts = [len(p) for p in prompts]
        all_queries = [q for r in per_image if r is not None for q in [r[1]]]
        captions: list[str] = []
        scores = []
        if all_queries:
            prefix = self.captioner.prefix(torch.cat(all_queries))
            chunk = self.chunk_size or prefix.shape[0]
            for start in range(0, prefix.shape[0], chunk):
                chunk_captions, chunk_scores = self.captioner.generate(
                    prefix[start : start + chunk], self.generation_config
                )
                captions += chunk_captions
                scores.append(chunk_scores)
        all_scores = torch.cat(scores) if scores else torch.zeros(0)
        results = []
        offset = 0
        for regions, n in zip(per_image, counts):
            sam = regions[0] if regions is not None else None
            results.append(
                RegionPredictions(
                    sam=sam,
                    captions=captions[offset : offset + n],
                    caption_scores=all_scores[offset : offset + n],
                )
            )
            offset += n
        return results


def _build_mask_loss(cfg: CfgNode) -> SAMMaskLoss | None:
    """SAM's own loss for its trained prompt encoder / mask decoder (MODEL.SCA.MASK_LOSS)."""
    sca = cfg.MODEL.SCA
    if not sca.MASK_LOSS.ENABLED:
        return None
    if not (sca.SAM.TRAIN_PROMPT_ENCODER or sca.SAM.TRAIN_MASK_DECODER):
        raise ValueError(
            "MODEL.SCA.MASK_LOSS.ENABLED trains SAM's prompt encoder / mask decoder: set "
            "MODEL.SCA.SAM.TRAIN_MASK_DECODER (and/or TRAIN_PROMPT_ENCODER) too"
        )
    m = sca.MASK_LOSS
    return SAMMaskLoss(
        cfg.INPUT.IMAGE_SIZE, m.FOCAL_WEIGHT, m.DICE_WEIGHT, m.IOU_WEIGHT, m.POINT_PROMPTS
    )
