"""The SegmentCaptionAnything meta-architecture."""

import logging

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
from detectron2.structures import Boxes, Instances
from segment_anything.utils.amg import batched_mask_to_box, build_point_grid
from torch import nn

from .anything import AnythingParams, segment_and_caption_anything
from .caption_head import RegionPredictions, SCACaptionHead
from .dense_ranking import rank_dense_regions
from .precision import inference_autocast, module_dtype, store_frozen_as
from .proposals import SCAProposalHead
from .sam_checkpoint import load_sam_into
from .sam_regions import RegionPrompts

logger = logging.getLogger(__name__)


@META_ARCH_REGISTRY.register()
class SegmentCaptionAnything(nn.Module):
    """SAM tells where, the caption head tells what.

    Inputs follow Detectron2: ``image`` (uint8 CHW RGB, longest side at most ``image_size``),
    ``height``/``width`` (the original size that outputs are returned in), and in training
    ``instances`` with ``gt_boxes``, ``gt_captions`` and optional ``gt_points``/``gt_point_labels``.
    At inference, prompts come from ``proposals`` (``proposal_boxes``, optional
    ``proposal_points``/``proposal_point_labels``) as with Detectron2's precomputed proposals, and
    otherwise from ``proposal_source``: "gt" (the input's ``instances.gt_boxes``) or "grid".
    With ``proposal_source`` "rpn", ``proposal_head`` finds the regions (dense captioning); with
    "anything", SAM's automatic mask generation (``anything`` settings) does; ``dense`` (keyword
    arguments of :func:`rank_dense_regions`) ranks them.
    In training, ``proposal_head`` adds its losses when present, and ``roi_heads`` SAM's mask
    losses when it has a mask loss (MODEL.SCA.MASK_LOSS).
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
        proposal_source: str = "gt",
        points_per_side: int = 16,
        out_of_image_boxes: str = "clip",
        inference_autocast: str = "",
        proposal_head: SCAProposalHead | None = None,
        dense: dict | None = None,
        anything: AnythingParams | None = None,
    ):
        super().__init__()
        self.backbone = backbone.requires_grad_(train_image_encoder)
        self.train_image_encoder = train_image_encoder
        self.roi_heads = roi_heads
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        self.image_size = image_size
        if proposal_source not in ("gt", "grid", "rpn", "anything"):
            raise ValueError(
                f"MODEL.SCA.PROPOSAL_SOURCE={proposal_source!r}: expected gt, grid, rpn or anything"
            )
        if proposal_source == "rpn" and proposal_head is None:
            raise ValueError(
                "MODEL.SCA.PROPOSAL_SOURCE='rpn' needs the proposal head: "
                "MODEL.SCA.PROPOSALS.ENABLED True"
            )
        if proposal_source == "gt":
            logger.info(
                "No proposal source (MODEL.SCA.PROPOSAL_SOURCE='gt'): regions are prompted with "
                "the given boxes (each input's proposals, else its ground-truth boxes)"
            )
        if out_of_image_boxes not in ("clip", "error"):
            raise ValueError(f"MODEL.SCA.OUT_OF_IMAGE_BOXES={out_of_image_boxes!r}: clip or error")
        self.proposal_source = proposal_source
        self.points_per_side = points_per_side
        self.out_of_image_boxes = out_of_image_boxes
        self.inference_autocast = inference_autocast
        self.proposal_head = proposal_head
        self.dense = dense or {}
        self.anything = anything or AnythingParams()

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
            "proposal_source": sca.PROPOSAL_SOURCE,
            "points_per_side": sca.POINTS_PER_SIDE,
            "out_of_image_boxes": sca.OUT_OF_IMAGE_BOXES,
            "inference_autocast": sca.INFERENCE_AUTOCAST,
            "proposal_head": proposal_head,
            "dense": {
                "caption_weight": sca.DENSE.CAPTION_SCORE_WEIGHT,
                "nms_thresh": sca.DENSE.NMS_THRESH,
                "max_detections": sca.DENSE.MAX_DETECTIONS,
                "boxes_from_masks": sca.DENSE.BOXES_FROM_MASKS,
            },
            "anything": AnythingParams.from_config(cfg),
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
            prompts.append(self._prompts_from_fields(inst, "gt_boxes", "gt_points", x))
            gt_instances.append(inst.to(self.device))
            captions.append(list(inst.gt_captions) if len(inst) else [])
        masks = None
        if self.roi_heads.mask_loss is not None:
            masks = [_gt_masks(inst, x) for inst, x in zip(gt_instances, batched_inputs)]
        embeddings = self.image_embeddings(batched_inputs)
        losses = self.roi_heads(embeddings, prompts, captions, masks)
        if self.proposal_head is not None:
            sizes = _input_sizes(batched_inputs)
            losses.update(self.proposal_head(embeddings, sizes, gt_instances)[1])
        return losses

    def inference(
        self,
        batched_inputs: list[dict],
        do_postprocess: bool = True,
        image_embeddings: torch.Tensor | None = None,
    ) -> list[dict]:
        """Outputs in the original frame, under autocast when MODEL.SCA.INFERENCE_AUTOCAST names
        a dtype. ``image_embeddings`` (B, C, h, w) from :meth:`image_embeddings` skips the image
        encoder (prompting an encoded image again)."""
        with inference_autocast(self.device, self.inference_autocast):
            prompts = None
            if self.proposal_source not in ("anything", "rpn"):  # checked before the encoder runs
                prompts = [self._inference_prompts(x) for x in batched_inputs]
            embeddings = image_embeddings
            if embeddings is None:
                embeddings = self.image_embeddings(batched_inputs)
            if self.proposal_source == "anything":
                return [
                    {"instances": self._anything(x, embeddings[i : i + 1])}
                    for i, x in enumerate(batched_inputs)
                ]
            found = None
            if self.proposal_source == "rpn":
                found, _ = self.proposal_head(embeddings, _input_sizes(batched_inputs))
                prompts = [
                    self._prompts_from_fields(f, "proposal_boxes", "proposal_points", x)
                    for f, x in zip(found, batched_inputs)
                ]
            predictions = self.roi_heads.inference(embeddings, prompts)
        results = []
        for i, (x, p, pred) in enumerate(zip(batched_inputs, prompts, predictions)):
            input_hw = tuple(x["image"].shape[-2:])
            output_hw = (x.get("height", input_hw[0]), x.get("width", input_hw[1]))
            instances = self._to_instances(p, pred, input_hw, output_hw)
            if found is not None:
                objectness = found[i].objectness_logits.sigmoid()
                instances = rank_dense_regions(instances, objectness, **self.dense)
            results.append({"instances": instances})
        return results

    def _anything(self, x: dict, embedding: torch.Tensor) -> Instances:
        """Anything mode's regions of one input, ranked as dense captions, in the output frame."""
        image = x["image"].permute(1, 2, 0).cpu().numpy()  # already resized: encoded as it is
        found = segment_and_caption_anything(self, image, self.anything, image_embedding=embedding)
        input_hw = image.shape[:2]
        output_hw = (x.get("height", input_hw[0]), x.get("width", input_hw[1]))
        out = Instances(output_hw)
        scale = torch.tensor([output_hw[1] / input_hw[1], output_hw[0] / input_hw[0]] * 2)
        out.pred_boxes = Boxes(found.pred_boxes.tensor * scale.to(self.device))
        masks = found.pred_masks[:, None].float()
        out.pred_masks = F.interpolate(masks, output_hw, mode="nearest")[:, 0] > 0.5
        out.pred_captions = found.pred_captions
        out.caption_scores = found.caption_scores
        out.iou_predictions = found.scores
        return rank_dense_regions(out, found.scores, **self.dense)

    # ---- prompts ----

    def _inference_prompts(self, x: dict) -> RegionPrompts:
        if "proposals" in x:
            return self._prompts_from_fields(x["proposals"], "proposal_boxes", "proposal_points", x)
        if self.proposal_source == "gt":
            if "instances" not in x:
                raise KeyError(
                    "MODEL.SCA.PROPOSAL_SOURCE='gt' needs 'proposals' or 'instances' in each input"
                )
            return self._prompts_from_fields(x["instances"], "gt_boxes", "gt_points", x)
        h, w = x["image"].shape[-2:]
        grid = torch.as_tensor(build_point_grid(self.points_per_side), dtype=torch.float32)
        points = (grid * torch.tensor([w, h])).to(self.device)[:, None, :]
        labels = torch.ones(points.shape[:2], dtype=torch.long, device=self.device)
        return RegionPrompts(points=points, point_labels=labels)

    def _prompts_from_fields(
        self, inst: Instances, box_field: str, point_field: str, x: dict
    ) -> RegionPrompts:
        """An input's prompts, checked where they are (the loader's CPU tensors: no GPU sync),
        then moved to the model's device."""
        boxes = inst.get(box_field).tensor if inst.has(box_field) else None
        if boxes is not None:
            boxes = self._checked_boxes(boxes.float(), tuple(x["image"].shape[-2:]), x)
        points = labels = None
        if inst.has(point_field):
            points = inst.get(point_field).float()
            labels = inst.get(point_field.replace("points", "point_labels")).long()
        return RegionPrompts(boxes=boxes, points=points, point_labels=labels).to(self.device)

    def _checked_boxes(self, boxes: torch.Tensor, hw: tuple[int, int], x: dict) -> torch.Tensor:
        """Out-of-image boxes are clipped (or rejected); boxes that are empty after that are
        rejected with the image and box index."""
        where = x.get("file_name", x.get("image_id", "?"))
        if not torch.isfinite(boxes).all():
            raise ValueError(f"{where}: prompt boxes contain NaN or inf: {boxes.tolist()}")
        clipped = Boxes(boxes.clone())
        clipped.clip(hw)
        changed = (clipped.tensor != boxes).any(dim=1)
        if changed.any() and self.out_of_image_boxes == "error":
            i = int(changed.nonzero()[0])
            raise ValueError(f"{where}: box {i} {boxes[i].tolist()} leaves the {hw} image")
        empty = ~clipped.nonempty()
        if empty.any():
            i = int(empty.nonzero()[0])
            raise ValueError(
                f"{where}: box {i} {boxes[i].tolist()} is degenerate (x2<=x1 or y2<=y1) "
                f"after clipping to the {hw[0]}x{hw[1]} input; expected XYXY pixel boxes"
            )
        return clipped.tensor

    # ---- outputs ----

    def _to_instances(
        self,
        prompts: RegionPrompts,
        pred: RegionPredictions,
        input_hw: tuple[int, int],
        output_hw: tuple[int, int],
    ) -> Instances:
        """Boxes, masks and captions in the output (original image) frame."""
        out = Instances(output_hw)
        n = len(prompts)
        scale = torch.tensor(
            [output_hw[1] / input_hw[1], output_hw[0] / input_hw[0]] * 2, device=self.device
        )
        if n == 0:
            out.pred_boxes = Boxes(torch.zeros(0, 4, device=self.device))
            out.scores = torch.zeros(0, device=self.device)
            out.pred_masks = torch.zeros((0, *output_hw), dtype=torch.bool, device=self.device)
            out.pred_captions = []
            out.caption_scores = torch.zeros(0, device=self.device)
            return out
        iou = pred.sam.iou_predictions.float()
        best = iou.argmax(dim=1)
        best_logits = pred.sam.mask_logits[torch.arange(n), best][:, None].float()
        masks = self.postprocess_masks(best_logits, input_hw, output_hw)[:, 0] > 0
        if prompts.boxes is not None:
            boxes = prompts.boxes * scale
        else:
            boxes = batched_mask_to_box(masks).float()
        out.pred_boxes = Boxes(boxes)
        out.scores = iou[torch.arange(n), best]
        out.pred_masks = masks
        out.pred_captions = pred.captions
        out.caption_scores = pred.caption_scores.to(self.device)
        out.mask_logits = pred.sam.mask_logits.float()
        out.iou_predictions = iou
        return out

    def postprocess_masks(
        self, logits: torch.Tensor, input_hw: tuple[int, int], output_hw: tuple[int, int]
    ) -> torch.Tensor:
        """SAM's mask postprocessing: upscale to the padded input, crop, resize to output."""
        size = (self.image_size, self.image_size)
        masks = F.interpolate(logits, size, mode="bilinear", align_corners=False)
        masks = masks[..., : input_hw[0], : input_hw[1]]
        return F.interpolate(masks, output_hw, mode="bilinear", align_corners=False)


def _input_sizes(batched_inputs: list[dict]) -> list[tuple[int, int]]:
    return [tuple(x["image"].shape[-2:]) for x in batched_inputs]


def _gt_masks(inst: Instances, x: dict) -> torch.Tensor:
    if not inst.has("gt_masks"):
        raise KeyError(
            f"{x.get('file_name', x.get('image_id', '?'))}: MODEL.SCA.MASK_LOSS.ENABLED needs "
            "'gt_masks' in the training instances (annotations with 'segmentation')"
        )
    return inst.gt_masks.tensor
