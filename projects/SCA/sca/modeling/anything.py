"""Anything mode: caption every region that SAM finds by itself.

SAM's automatic mask generation (``segment_anything.utils.amg``: a point grid, the predicted-IoU
and stability filters, box NMS, optional crops), with SCA's captions added at the end. The image
encoder runs once per crop (once per image without crops) and only the regions that survive the
filters and NMS are captioned; ``AnythingParams.caption_all_points`` captions every grid point
before filtering instead, as the official release does, for comparison.

Unlike ``SamAutomaticMaskGenerator``, the stability score and the boxes used by NMS are computed
on masks at the model's input resolution (the crop resized to ``INPUT.IMAGE_SIZE``), not at the
original resolution, so that memory does not grow with the photo's size; only the surviving
masks are upscaled to the original frame. Small-region removal (``min_mask_region_area``, SAM's
``remove_small_regions``: holes filled and islands dropped) works at that input resolution too,
before the survivors are captioned, so that a stray island does not stretch the box that captions
a region.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.config import CfgNode
from detectron2.layers import batched_nms
from detectron2.structures import Boxes, Instances
from segment_anything.utils.amg import (
    MaskData,
    batch_iterator,
    batched_mask_to_box,
    build_all_layer_point_grids,
    calculate_stability_score,
    generate_crop_boxes,
    is_box_near_crop_edge,
    remove_small_regions,
    uncrop_boxes_xyxy,
    uncrop_masks,
    uncrop_points,
)
from torch import Tensor, nn
from torchvision.ops import box_area

from ..data.inference_input import model_input
from .postprocess import postprocess_masks, scale_boxes
from .sam_regions import RegionPrompts

# SAM's mask logit threshold (Sam.mask_threshold).
MASK_THRESHOLD = 0.0


@dataclass(frozen=True)
class AnythingParams:
    """Anything-mode settings; :meth:`from_config` reads them from ``MODEL.SCA.ANYTHING``."""

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    caption_all_points: bool = False
    caption_prompt: str = "point"
    min_mask_region_area: int = 0

    @classmethod
    def from_config(cls, cfg: CfgNode) -> AnythingParams:
        """Each field from the key of its name in capitals."""
        anything = cfg.MODEL.SCA.ANYTHING
        return cls(**{f.name: anything[f.name.upper()] for f in fields(cls)})


@dataclass
class _Crop:
    """One crop's encoded image and the frames its regions live in."""

    box: list[int]
    embedding: Tensor
    input_hw: tuple[int, int]
    crop_hw: tuple[int, int]
    image_hw: tuple[int, int]


class AnythingGenerator:
    """Every region SAM finds in an image, with its caption: what segment_anything's
    ``SamAutomaticMaskGenerator`` is to ``SamPredictor``, for an SCA model.

    It uses a few narrow calls of the model: ``image_embeddings`` (once per crop), its head's
    ``region_decoder.sam_regions`` (SAM's masks for a batch of grid points) and ``inference``
    (captions), and its ``image_size`` and ``device``::

        generator = AnythingGenerator(model.eval(), AnythingParams.from_config(cfg))
        regions = generator.generate(image)
    """

    def __init__(self, model: nn.Module, params: AnythingParams):
        self.model = model
        self.params = params

    @torch.no_grad()
    def generate(self, image: np.ndarray, image_embedding: Tensor | None = None) -> Instances:
        """Every region SAM finds in ``image``, with its caption.

        Args:
            image: HxWx3 uint8 in the model's ``INPUT.FORMAT`` (RGB by default).
            image_embedding: (1, C, h, w) embedding of the whole image from
                ``model.image_embeddings([model_input(image, model.image_size)[0]])``, to skip
                encoding it again (the crops of further layers are always encoded).

        Returns:
            ``Instances`` of the image size (H, W), one per region, sorted by ``scores`` (highest
            first), with ``pred_masks`` (R, H, W) bool, ``pred_boxes`` (the XYXY box around each
            mask), ``scores`` (SAM's predicted IoU), ``stability_scores``, ``pred_captions`` (list
            of str), ``caption_scores`` (mean token log-probability), ``prompt_points`` (R, 2)
            the XY grid point that prompted the region and ``crop_boxes`` (R, 4) the XYXY crop it
            was found in. Regions prompted by the same point share its caption.
        """
        params = self.params
        h, w = image.shape[:2]
        crop_boxes, layer_idxs = generate_crop_boxes(
            (h, w), params.crop_n_layers, params.crop_overlap_ratio
        )
        grids = build_all_layer_point_grids(
            params.points_per_side, params.crop_n_layers, params.crop_n_points_downscale_factor
        )
        crops: list[_Crop] = []
        data = MaskData()
        for crop_box, layer in zip(crop_boxes, layer_idxs):
            whole = crop_box == [0, 0, w, h]
            embedding = image_embedding if whole else None
            crop, crop_data = self._crop_regions(image, crop_box, grids[layer], embedding)
            crop_data["crop_index"] = torch.full((len(crop_data["scores"]),), len(crops))
            crops.append(crop)
            data.cat(crop_data)
        if len(crops) > 1 and len(data["scores"]):
            # prefer masks from smaller crops, as SAM does
            scores = 1 / box_area(data["crop_boxes"].float())
            keep = batched_nms(
                data["boxes"].float(), scores, torch.zeros_like(scores), params.crop_nms_thresh
            )
            data.filter(keep)
        if not params.caption_all_points:
            self._caption_survivors(crops, data)
        return self._instances(crops, data, (h, w))

    def _crop_regions(
        self, image: np.ndarray, crop_box: list[int], grid: np.ndarray, embedding: Tensor | None
    ) -> tuple[_Crop, MaskData]:
        """Encode one crop, decode its grid points in batches, filter, and NMS within the crop."""
        x0, y0, x1, y1 = crop_box
        crop_image = image[y0:y1, x0:x1]
        inputs, transform = model_input(crop_image, self.model.image_size)
        if embedding is None:
            embedding = self.model.image_embeddings([inputs])
        input_hw = tuple(inputs["image"].shape[-2:])
        crop = _Crop(crop_box, embedding, input_hw, crop_image.shape[:2], image.shape[:2])
        points = (grid * np.array([crop.crop_hw[1], crop.crop_hw[0]])).astype(np.float32)
        points_in = transform.apply_coords(points.copy()).astype(np.float32)
        indices = np.arange(len(points))
        data = MaskData()
        for batch_in, batch_idx in batch_iterator(self.params.points_per_batch, points_in, indices):
            data.cat(self._batch_regions(crop, batch_in, batch_idx))
        if len(data["scores"]):
            keep = batched_nms(
                data["boxes"].float(),
                data["scores"],
                torch.zeros_like(data["scores"]),
                self.params.box_nms_thresh,
            )
            data.filter(keep)
        if self.params.min_mask_region_area > 0 and len(data["scores"]):
            self._remove_small_regions(crop, data)
        data["boxes"] = uncrop_boxes_xyxy(data["boxes"], crop_box)
        data["points"] = uncrop_points(torch.as_tensor(points)[data["point_index"]], crop_box)
        data["points_in"] = torch.as_tensor(points_in)[data["point_index"]]
        data["crop_boxes"] = torch.tensor([crop_box] * len(data["scores"])).reshape(-1, 4)
        return crop, data

    def _remove_small_regions(self, crop: _Crop, data: MaskData) -> None:
        """SAM's small-region removal on the crop's survivors at the input resolution: holes
        and islands under ``min_mask_region_area`` input pixels; their boxes recomputed, and box
        NMS again (a cleaned mask may now duplicate another)."""
        area = self.params.min_mask_region_area
        logits = postprocess_masks(
            data["low_res_logits"][:, None], crop.input_hw, crop.input_hw, self.model.image_size
        )[:, 0]
        cleaned = []
        for mask in (logits > MASK_THRESHOLD).cpu().numpy():
            mask, _ = remove_small_regions(mask, area, mode="holes")
            mask, _ = remove_small_regions(mask, area, mode="islands")
            cleaned.append(torch.as_tensor(mask))
        data["masks_in"] = cleaned
        data["boxes_in"] = batched_mask_to_box(torch.stack(cleaned)).float()
        data["boxes"] = scale_boxes(data["boxes_in"], crop.input_hw, crop.crop_hw)
        keep = batched_nms(
            data["boxes"].float(),
            data["scores"],
            torch.zeros_like(data["scores"]),
            self.params.box_nms_thresh,
        )
        data.filter(keep)

    def _batch_regions(
        self, crop: _Crop, points_in: np.ndarray, point_index: np.ndarray
    ) -> MaskData:
        """SAM's three masks for each point of a batch, those that pass the filters kept."""
        params, device = self.params, self.model.device
        prompts = RegionPrompts(
            points=torch.as_tensor(points_in, device=device)[:, None, :],
            point_labels=torch.ones(len(points_in), 1, dtype=torch.long, device=device),
        )
        heads = self.model.roi_heads
        captions = None
        if params.caption_all_points:
            pred = heads.inference(crop.embedding, [prompts])[0]
            sam = pred.sam
            captions = [c for c in pred.captions for _ in range(3)]
            caption_scores = pred.caption_scores.repeat_interleave(3)
        else:
            sam = heads.region_decoder.sam_regions(crop.embedding, prompts)
        num_masks = sam.iou_predictions.shape[1]
        data = MaskData(
            low_res_logits=sam.mask_logits.flatten(0, 1),
            scores=sam.iou_predictions.flatten(),
            point_index=torch.as_tensor(point_index).repeat_interleave(num_masks),
        )
        if captions is not None:
            data["captions"] = captions
            data["caption_scores"] = caption_scores
        if params.pred_iou_thresh > 0:
            data.filter(data["scores"] >= params.pred_iou_thresh)
        logits = postprocess_masks(
            data["low_res_logits"][:, None], crop.input_hw, crop.input_hw, self.model.image_size
        )[:, 0]
        data["stability_scores"] = calculate_stability_score(
            logits, MASK_THRESHOLD, params.stability_score_offset
        )
        if params.stability_score_thresh > 0:
            keep = data["stability_scores"] >= params.stability_score_thresh
            data.filter(keep)
            logits = logits[keep]
        # boxes in the crop's original frame (the masks are at the input resolution)
        data["boxes_in"] = batched_mask_to_box(logits > MASK_THRESHOLD).float()
        data["boxes"] = scale_boxes(data["boxes_in"], crop.input_hw, crop.crop_hw)
        image_box = [0, 0, crop.image_hw[1], crop.image_hw[0]]
        data.filter(~is_box_near_crop_edge(data["boxes"], crop.box, image_box))
        return data

    def _caption_survivors(self, crops: list[_Crop], data: MaskData) -> None:
        """Caption each surviving region: once per (crop, grid point), prompted by that point, or
        with ``caption_prompt`` "box" once per region, prompted by the box around its mask (the
        prompts of a captioner trained on boxes)."""
        caption_prompt = self.params.caption_prompt
        if caption_prompt not in ("point", "box"):
            raise ValueError(f"MODEL.SCA.ANYTHING.CAPTION_PROMPT={caption_prompt!r}: point or box")
        device = self.model.device
        n = len(data["scores"])
        captions = [""] * n
        scores = torch.zeros(n)
        for c, crop in enumerate(crops):
            rows = (data["crop_index"] == c).nonzero().flatten().tolist()
            if not rows:
                continue
            if caption_prompt == "box":
                boxes = data["boxes_in"][rows].to(device).clone()
                boxes[:, 2:] += 1  # the mask's last pixels -> their outer edges, as box annotations
                prompts = RegionPrompts(boxes=boxes)
                region_of_row = range(len(rows))
            else:  # the first row of each grid point stands for the point
                unique, inverse = torch.unique(data["point_index"][rows], return_inverse=True)
                first = [rows[inverse.tolist().index(u)] for u in range(len(unique))]
                prompts = RegionPrompts(
                    points=data["points_in"][first].to(device)[:, None, :],
                    point_labels=torch.ones(len(first), 1, dtype=torch.long, device=device),
                )
                region_of_row = inverse.tolist()
            pred = self.model.roi_heads.inference(crop.embedding, [prompts])[0]
            for row, k in zip(rows, region_of_row):
                captions[row] = pred.captions[k]
                scores[row] = pred.caption_scores[k]
        data["captions"] = captions
        data["caption_scores"] = scores

    def _instances(
        self, crops: list[_Crop], data: MaskData, image_hw: tuple[int, int]
    ) -> Instances:
        """Full-resolution masks for the survivors, in the image frame, highest score first."""
        device = self.model.device
        n = len(data["scores"])
        masks = torch.zeros((n, *image_hw), dtype=torch.bool, device=device)
        for c, crop in enumerate(crops):
            rows = (data["crop_index"] == c).nonzero().flatten().to(device)
            if len(rows) == 0:
                continue
            if "masks_in" in dict(data.items()):
                cleaned = torch.stack([data["masks_in"][i] for i in rows.tolist()]).to(device)
                crop_masks = F.interpolate(cleaned[:, None].float(), crop.crop_hw, mode="bilinear")
                crop_masks = crop_masks[:, 0] >= 0.5
            else:
                logits = data["low_res_logits"][rows][:, None]
                crop_masks = postprocess_masks(
                    logits, crop.input_hw, crop.crop_hw, self.model.image_size
                )[:, 0]
                crop_masks = crop_masks > MASK_THRESHOLD
            masks[rows] = uncrop_masks(crop_masks, crop.box, *image_hw)
        order = torch.argsort(data["scores"], descending=True).cpu()
        out = Instances(image_hw)
        out.pred_masks = masks[order.to(device)]
        out.pred_boxes = Boxes(batched_mask_to_box(out.pred_masks).float())
        out.scores = data["scores"][order.to(data["scores"].device)]
        out.stability_scores = data["stability_scores"][order.to(data["scores"].device)]
        out.pred_captions = [data["captions"][i] for i in order.tolist()]
        out.caption_scores = torch.as_tensor(data["caption_scores"])[order].to(device)
        out.prompt_points = data["points"][order].float().to(device)
        out.crop_boxes = data["crop_boxes"][order].float().to(device)
        return out
