"""Outputs from the model's input frame to the original image's: SCA's ``detector_postprocess``.

The input frame is the image as the model reads it, its longest side resized to
``INPUT.IMAGE_SIZE`` (and padded to a square after it); inputs give their original size as
``height``/``width``.
"""

import torch
import torch.nn.functional as F
from detectron2.structures import Boxes, Instances
from segment_anything.utils.amg import batched_mask_to_box
from torch import Tensor


def input_size(x: dict) -> tuple[int, int]:
    """(height, width) of an input's image as the model reads it."""
    return tuple(x["image"].shape[-2:])


def output_size(x: dict) -> tuple[int, int]:
    """(height, width) of an input's original image (its input size when not given)."""
    h, w = input_size(x)
    return x.get("height", h), x.get("width", w)


def postprocess_masks(
    logits: Tensor, input_hw: tuple[int, int], output_hw: tuple[int, int], image_size: int
) -> Tensor:
    """SAM's mask postprocessing of low-resolution logits (N, C, h, w): upscaled to the padded
    ``image_size`` square, cropped to the ``input_hw`` image, resized to ``output_hw``."""
    masks = F.interpolate(logits, (image_size, image_size), mode="bilinear", align_corners=False)
    masks = masks[..., : input_hw[0], : input_hw[1]]
    return F.interpolate(masks, output_hw, mode="bilinear", align_corners=False)


def scale_boxes(boxes: Tensor, input_hw: tuple[int, int], output_hw: tuple[int, int]) -> Tensor:
    """XYXY boxes (N, 4) from an ``input_hw`` frame to an ``output_hw`` one."""
    factors = [output_hw[1] / input_hw[1], output_hw[0] / input_hw[0]] * 2
    return boxes * torch.tensor(factors, device=boxes.device)


def sca_postprocess(results: Instances, output_hw: tuple[int, int], image_size: int) -> Instances:
    """One image's regions from the input frame (``results.image_size``) to ``output_hw``.

    Masks: where the results hold SAM's low-resolution ``mask_logits`` (N, 3, h, w), the output
    that ``iou_predictions`` rates best, postprocessed by SAM's rule straight to the output size;
    otherwise the input-frame ``pred_masks`` resized (nearest). Boxes: the input-frame
    ``pred_boxes`` scaled; where there are none (point prompts), the boxes around the output
    masks. The other fields are kept as they are.
    """
    input_hw = results.image_size
    if results.has("mask_logits"):
        best = results.iou_predictions.argmax(dim=1)
        logits = results.mask_logits[torch.arange(len(results)), best][:, None]
        masks = postprocess_masks(logits, input_hw, output_hw, image_size)[:, 0] > 0
    else:
        masks = results.pred_masks[:, None].float()
        masks = F.interpolate(masks, output_hw, mode="nearest")[:, 0] > 0.5
    if results.has("pred_boxes"):
        boxes = scale_boxes(results.pred_boxes.tensor, input_hw, output_hw)
    else:
        boxes = batched_mask_to_box(masks).float()
    out = Instances(output_hw, pred_boxes=Boxes(boxes), pred_masks=masks)
    for name, value in results.get_fields().items():
        if name not in ("pred_boxes", "pred_masks"):
            out.set(name, value)
    return out
