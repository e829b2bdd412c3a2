"""SCA's captioning ROI head: region prompts in, captions (and SAM's masks) out."""

from dataclasses import dataclass

import torch
from detectron2.config import CfgNode, configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import ROI_HEADS_REGISTRY
from detectron2.utils.events import get_event_storage
from segment_anything.modeling import MaskDecoder, PromptEncoder
from torch import nn
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from .captioner import PrefixCaptioner
from .generation import build_generation_config
from .language_model import load_causal_lm
from .mask_loss import SAMMaskLoss
from .precision import store_frozen_as
from .region_decoder import RegionDecoder
from .sam_builder import build_sam_mask_decoder, build_sam_prompt_encoder
from .sam_regions import RegionPrompts, SAMRegionOutput
from .text_mixer import TextFeatureMixer


@dataclass
class RegionPredictions:
    """Per-image predictions of the head, in the model's input frame (``sam`` None for an image
    without prompts)."""

    sam: SAMRegionOutput | None
    captions: list[str]
    caption_scores: torch.Tensor


@ROI_HEADS_REGISTRY.register()
class SCACaptionHead(nn.Module):
    """Captions regions of an image from their prompts, on the image's SAM embedding.

    SAM's prompt encoder and mask decoder decode each region's prompts, SCA's text mixer turns
    the decoder's outputs into caption queries (both through :class:`RegionDecoder`,
    ``region_decoder``), and the LM (:class:`PrefixCaptioner`) reads them as its prefix:
    :meth:`forward` returns the training losses (caption cross-entropy, and SAM's mask losses
    with MODEL.SCA.MASK_LOSS), :meth:`inference` SAM's masks and a caption per region. The head
    registers the prompt encoder, mask decoder and mixer itself, under the checkpoint keys
    ``roi_heads.prompt_encoder.*``, ``roi_heads.mask_decoder.*`` and ``roi_heads.mixer.*``.
    """

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
        self.mixer = mixer
        self.region_decoder = RegionDecoder(
            self.prompt_encoder,
            self.mask_decoder,
            mixer,
            sam_trainable=train_prompt_encoder or train_mask_decoder,
            box_pooled_queries=box_pooled_queries,
            region_chunk_tokens=region_chunk_tokens,
        )
        self.captioner = captioner
        self.label_smoothing = label_smoothing
        self.max_caption_tokens = max_caption_tokens
        self.generation_config = generation_config
        self.chunk_size = chunk_size
        self.caption_start_iter = caption_start_iter
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

    def _zero_loss(self) -> torch.Tensor:
        """A zero loss that still touches every trainable parameter, so that distributed training
        sees the same graph on every process."""
        return sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0

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
            found = self.region_decoder.training_queries(
                image_embeddings, prompts, keep_sams=self.mask_loss is not None
            )
            sams = found.sams
            losses["loss_caption"] = self._caption_loss(found.queries, captions)
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
        """SAM's masks and a caption per prompt, per image (input frame). The prompts of all
        images are captioned together."""
        decoded = [
            self.region_decoder.regions(emb[None], p) if len(p) else None
            for emb, p in zip(image_embeddings, prompts)
        ]
        captions, scores = self._generate([d.queries for d in decoded if d is not None])
        results = []
        offset = 0
        for regions, p in zip(decoded, prompts):
            end = offset + len(p)
            sam = None if regions is None else regions.sam
            results.append(RegionPredictions(sam, captions[offset:end], scores[offset:end]))
            offset = end
        return results

    def _generate(self, queries: list[torch.Tensor]) -> tuple[list[str], torch.Tensor]:
        """Captions and their scores for the regions' caption queries, ``chunk_size`` regions per
        LM batch (all at once when it is 0)."""
        if not queries:
            return [], torch.zeros(0)
        prefix = self.captioner.prefix(torch.cat(queries))
        chunk = self.chunk_size or prefix.shape[0]
        captions: list[str] = []
        scores = []
        for start in range(0, prefix.shape[0], chunk):
            chunk_captions, chunk_scores = self.captioner.generate(
                prefix[start : start + chunk], self.generation_config
            )
            captions += chunk_captions
            scores.append(chunk_scores)
        return captions, torch.cat(scores)


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
        cfg.INPUT.IMAGE_SIZE,
        m.FOCAL_WEIGHT,
        m.DICE_WEIGHT,
        m.IOU_WEIGHT,
        m.POINT_PROMPTS,
        m.POINTS_PER_REGION,
    )
