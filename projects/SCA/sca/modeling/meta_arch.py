"""The SegmentCaptionAnything meta-architecture."""

import torch
import torch.nn.functional as F
from detectron2.config import CfgNode, configurable
from detectron2.modeling import (
    META_ARCH_REGISTRY,
    ROI_HEADS_REGISTRY,
    Backbone,
    build_backbone,
    build_roi_heads,
)
from detectron2.structures import Instances
from torch import nn

from .caption_head import SCACaptionHead
from .dense_ranking import rank_dense_regions
from .postprocess import input_size, output_size, sca_postprocess
from .precision import inference_autocast, module_dtype, store_frozen_as
from .prompt_fields import prompts_from_fields
from .prompt_sources import GivenPrompts, PromptSource, build_prompt_source
from .proposals import SCAProposalHead
from .sam_checkpoint import load_sam_into


@META_ARCH_REGISTRY.register()
class SegmentCaptionAnything(nn.Module):
    """SAM tells where, the caption head tells what.

    Inputs follow Detectron2: ``image`` (uint8 CHW RGB, longest side at most ``image_size``),
    ``height``/``width`` (the original size that outputs are returned in), and in training
    ``instances`` with ``gt_boxes``, ``gt_captions`` and optional ``gt_points``/``gt_point_labels``.
    The image encoder (``backbone``) runs once per image; the caption head (``roi_heads``)
    decodes and captions regions on its embedding. At inference ``prompt_source``
    (:mod:`~sca.modeling.prompt_sources`) finds the regions: the given ``proposals`` or
    ground-truth boxes, a point grid, ``proposal_head``'s boxes or SAM's automatic mask
    generation; ``dense`` (keyword arguments of :func:`rank_dense_regions`) ranks the regions of
    the last two. In training, ``proposal_head`` adds its losses when present, and ``roi_heads``
    SAM's mask losses when it has a mask loss (MODEL.SCA.MASK_LOSS).
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        roi_heads: SCACaptionHead,
        pixel_mean: tuple[float, ...],
        pixel_std: tuple[float, ...],
        image_size: int = 1024,
        train_image_encoder: bool = False,
        prompt_source: PromptSource | None = None,
        out_of_image_boxes: str = "clip",
        inference_autocast: str = "",
        proposal_head: SCAProposalHead | None = None,
        dense: dict | None = None,
    ):
        super().__init__()
        self.backbone = backbone.requires_grad_(train_image_encoder)
        self.train_image_encoder = train_image_encoder
        self.roi_heads = roi_heads
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        self.image_size = image_size
        if out_of_image_boxes not in ("clip", "error"):
            raise ValueError(f"MODEL.SCA.OUT_OF_IMAGE_BOXES={out_of_image_boxes!r}: clip or error")
        self.prompt_source = prompt_source or GivenPrompts()
        self.out_of_image_boxes = out_of_image_boxes
        self.inference_autocast = inference_autocast
        self.proposal_head = proposal_head
        self.dense = dense or {}

    @classmethod
    def from_config(cls, cfg: CfgNode, language_model: tuple | None = None) -> dict:
        """``language_model`` (model, tokenizer), if given, replaces the LM that MODEL.SCA.LM
        names (see :func:`sca.modeling.build_sca_model`)."""
        sca = cfg.MODEL.SCA
        backbone = store_frozen_as(
            build_backbone(cfg),
            sca.SAM.ENCODER_DTYPE,
            "MODEL.SCA.SAM.ENCODER_DTYPE",
            sca.SAM.TRAIN_IMAGE_ENCODER,
        )
        if language_model is None:
            roi_heads = build_roi_heads(cfg, backbone.output_shape())
        else:
            head_cls = ROI_HEADS_REGISTRY.get(cfg.MODEL.ROI_HEADS.NAME)
            roi_heads = head_cls(cfg, backbone.output_shape(), language_model=language_model)
        proposal_head = None
        if sca.PROPOSALS.ENABLED:
            proposal_head = SCAProposalHead(cfg, backbone.output_shape()["sam"])
        if sca.SAM.CHECKPOINT:
            load_sam_into(
                sca.SAM.CHECKPOINT,
                backbone.image_encoder,
                roi_heads.prompt_encoder,
                roi_heads.mask_decoder,
            )
        return {
            "backbone": backbone,
            "roi_heads": roi_heads,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "image_size": cfg.INPUT.IMAGE_SIZE,
            "train_image_encoder": sca.SAM.TRAIN_IMAGE_ENCODER,
            "prompt_source": build_prompt_source(cfg),
            "out_of_image_boxes": sca.OUT_OF_IMAGE_BOXES,
            "inference_autocast": sca.INFERENCE_AUTOCAST,
            "proposal_head": proposal_head,
            "dense": {
                "caption_weight": sca.DENSE.CAPTION_SCORE_WEIGHT,
                "nms_thresh": sca.DENSE.NMS_THRESH,
                "max_detections": sca.DENSE.MAX_DETECTIONS,
                "boxes_from_masks": sca.DENSE.BOXES_FROM_MASKS,
            },
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def train(self, mode: bool = True) -> "SegmentCaptionAnything":
        super().train(mode)
        if not self.train_image_encoder:
            self.backbone.eval()
        return self

    def preprocess_image(self, batched_inputs: list[dict]) -> torch.Tensor:
        """SAM's preprocessing: normalise, then pad bottom/right to a square of ``image_size``;
        in the image encoder's dtype."""
        images = []
        for x in batched_inputs:
            image = x["image"].to(self.device)
            h, w = image.shape[-2:]
            if max(h, w) > self.image_size:
                raise ValueError(
                    f"image {x.get('file_name', x.get('image_id', '?'))} is {h}x{w}, larger than "
                    f"INPUT.IMAGE_SIZE={self.image_size}: resize its longest side first "
                    "(SCADatasetMapper does)"
                )
            image = (image.float() - self.pixel_mean) / self.pixel_std
            images.append(F.pad(image, (0, self.image_size - w, 0, self.image_size - h)))
        return torch.stack(images).to(module_dtype(self.backbone))

    def image_embeddings(self, batched_inputs: list[dict]) -> torch.Tensor:
        """Run the image encoder once per image: (B, C, h, w)."""
        images = self.preprocess_image(batched_inputs)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.train_image_encoder):
            return self.backbone(images)["sam"]

    def forward(self, batched_inputs: list[dict]):
        if not self.training:
            return self.inference(batched_inputs)
        # prompts are checked where the loader left them, before any GPU work is queued: the
        # checks then never wait for the encoder
        prompts, captions, gt_instances = [], [], []
        for x in batched_inputs:
            if "instances" not in x:
                raise KeyError("training inputs need 'instances' with gt_boxes and gt_captions")
            inst = x["instances"]
            prompts.append(prompts_from_fields(inst, "gt", x, self.device, self.out_of_image_boxes))
            gt_instances.append(inst.to(self.device))
            captions.append(list(inst.gt_captions) if len(inst) else [])
        masks = None
        if self.roi_heads.mask_loss is not None:
            masks = [_gt_masks(inst, x) for inst, x in zip(gt_instances, batched_inputs)]
        embeddings = self.image_embeddings(batched_inputs)
        losses = self.roi_heads(embeddings, prompts, captions, masks)
        if self.proposal_head is not None:
            sizes = [input_size(x) for x in batched_inputs]
            losses.update(self.proposal_head(embeddings, sizes, gt_instances)[1])
        return losses

    def inference(
        self,
        batched_inputs: list[dict],
        do_postprocess: bool = True,
        image_embeddings: torch.Tensor | None = None,
    ) -> list[dict]:
        """Each input's regions from ``prompt_source``, captioned, under autocast when
        MODEL.SCA.INFERENCE_AUTOCAST names a dtype. Outputs are in the original frame
        (``height``/``width``), or with ``do_postprocess`` False in the input frame (the resized
        image), as with Detectron2's ``GeneralizedRCNN``. ``image_embeddings`` (B, C, h, w) from
        :meth:`image_embeddings` skips the image encoder (prompting an encoded image again)."""
        with inference_autocast(self.device, self.inference_autocast):
            found = self.prompt_source(self, batched_inputs, image_embeddings)
        results = []
        for x, regions in zip(batched_inputs, found):
            output_hw = output_size(x) if do_postprocess else input_size(x)
            instances = sca_postprocess(regions.instances, output_hw, self.image_size)
            if regions.proposal_scores is not None:
                instances = rank_dense_regions(instances, regions.proposal_scores, **self.dense)
            results.append({"instances": instances})
        return results


def _gt_masks(inst: Instances, x: dict) -> torch.Tensor:
    if not inst.has("gt_masks"):
        raise KeyError(
            f"{x.get('file_name', x.get('image_id', '?'))}: MODEL.SCA.MASK_LOSS.ENABLED needs "
            "'gt_masks' in the training instances (annotations with 'segmentation')"
        )
    return inst.gt_masks.tensor
