"""Final scores and test-time NMS of dense captioning (regions found by a proposal source)."""

from __future__ import annotations

import torch
from detectron2.structures import Boxes, Instances
from segment_anything.utils.amg import batched_mask_to_box
from torchvision.ops import nms


def rank_dense_regions(
    instances: Instances,
    proposal_scores: torch.Tensor,
    caption_weight: float = 1.0,
    nms_thresh: float = 0.3,
    max_detections: int = 100,
    boxes_from_masks: bool = False,
) -> Instances:
    """Score, de-duplicate and cap one image's captioned proposals.

    ``scores = proposal_scores * exp(caption_weight * caption_scores)``: the proposal's own
    confidence (RPN objectness probability, or SAM's predicted IoU in anything mode) times the
    caption's mean token probability (geometric mean; ``caption_scores`` is its log). Then box NMS
    at ``nms_thresh`` (DenseCap's evaluation: 0.3) and the ``max_detections`` best. With
    ``boxes_from_masks``, each box becomes the tight box of its predicted mask (where non-empty)
    before NMS. Returns new Instances with ``proposal_scores`` added and ``scores`` the final
    score, best first.
    """
    fields = instances.get_fields()
    captions = fields["pred_captions"]
    # a copy without the captions, a list that Instances cannot index with a tensor
    out = Instances(
        instances.image_size, **{k: v for k, v in fields.items() if k != "pred_captions"}
    )
    if boxes_from_masks and len(out):
        mask_boxes = batched_mask_to_box(out.pred_masks).float()
        mask_boxes[:, 2:] += 1  # pixel indices -> the pixels' outer edges
        nonempty = out.pred_masks.flatten(1).any(dim=1)
        out.pred_boxes = Boxes(torch.where(nonempty[:, None], mask_boxes, out.pred_boxes.tensor))
    out.proposal_scores = proposal_scores.to(out.caption_scores.device)
    out.scores = out.proposal_scores * torch.exp(caption_weight * out.caption_scores.float())
    keep = nms(out.pred_boxes.tensor.float(), out.scores, nms_thresh)[:max_detections]
    kept = out[keep]
    kept.pred_captions = [captions[i] for i in keep.tolist()]
    return kept
