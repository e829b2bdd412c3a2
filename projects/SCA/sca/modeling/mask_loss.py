"""SAM's own training losses, for SAM parts that have no pretrained weights.

The paper keeps SAM frozen (its masks are exactly SAM's). Where no SAM weights exist, as in the
embedded default, the prompt encoder and mask decoder can be trained instead with SAM's recipe
(Kirillov et al. 2023, section 3 and appendix A): focal and dice loss (20:1) on the best of the
three multimask outputs, and a mean-squared error between the predicted IoU and the IoU that
each predicted mask actually has. Each region is decoded from its box prompt and, optionally,
from one point drawn uniformly inside its mask (the prompts that anything mode uses).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling import MaskDecoder, PromptEncoder
from torchvision.ops import sigmoid_focal_loss

from .sam_regions import RegionPrompts


def low_res_targets(
    masks: torch.Tensor, image_size: int, low_res_hw: tuple[int, int]
) -> torch.Tensor:
    """(N, H, W) masks of the input frame -> (N, h, w) float targets on the padded square of side
    ``image_size`` at the decoder's low resolution (SAM pads bottom/right)."""
    h, w = masks.shape[-2:]
    padded = F.pad(masks.float(), (0, image_size - w, 0, image_size - h))
    return (F.interpolate(padded[:, None], low_res_hw, mode="area")[:, 0] >= 0.5).float()


def points_in_masks(masks: torch.Tensor, per_mask: int = 1) -> torch.Tensor:
    """``per_mask`` (x, y) pixels drawn uniformly (with replacement) inside each non-empty
    (N, H, W) mask, one prompt each: (per_mask * N, 1, 2), mask-major (all masks' first points,
    then their second points, ...)."""
    flat = masks.flatten(1).float()
    index = torch.multinomial(flat, per_mask, replacement=per_mask > 1).T.flatten()
    w = masks.shape[-1]
    return torch.stack([index % w, index // w], dim=1).float()[:, None, :]


def sam_mask_losses(
    mask_logits: torch.Tensor,
    iou_predictions: torch.Tensor,
    targets: torch.Tensor,
    focal_weight: float = 20.0,
    dice_weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's losses for (N, 3, h, w) logits, (N, 3) predicted IoUs and (N, h, w) targets.

    Returns the focal + dice loss of the best of the 3 masks per region (mean over regions) and
    the MSE between each mask's predicted and actual IoU (mean over regions and masks)."""
    t = targets[:, None].expand_as(mask_logits)
    focal = sigmoid_focal_loss(mask_logits, t, reduction="none").flatten(2).mean(-1)
    prob = mask_logits.sigmoid().flatten(2)
    tf = t.flatten(2)
    dice = 1 - (2 * (prob * tf).sum(-1) + 1) / (prob.sum(-1) + tf.sum(-1) + 1)
    per_mask = focal_weight * focal + dice_weight * dice
    mask_loss = per_mask.min(dim=1).values.mean()
    with torch.no_grad():
        pred = (mask_logits > 0).flatten(2)
        inter = (pred & (tf > 0)).sum(-1).float()
        union = (pred | (tf > 0)).sum(-1).float()
        actual_iou = inter / union.clamp(min=1)
    return mask_loss, F.mse_loss(iou_predictions, actual_iou)


def _decode_together(
    prompt_encoder: PromptEncoder,
    mask_decoder: MaskDecoder,
    embedding: torch.Tensor,
    variants: list[RegionPrompts],
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's multimask logits and IoU predictions for several prompt sets of one image, in one
    mask-decoder call when their prompts have the same number of tokens (a box and a point with
    its padding token both have two)."""
    encoded = []
    for p in variants:
        points = None if p.points is None else (p.points, p.point_labels)
        encoded.append(prompt_encoder(points=points, boxes=p.boxes, masks=None))
    groups = [encoded]
    if len({sparse.shape[1] for sparse, _ in encoded}) > 1:
        groups = [[e] for e in encoded]
    logits, iou = [], []
    for group in groups:
        out_logits, out_iou = mask_decoder(
            image_embeddings=embedding,
            image_pe=prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=torch.cat([sparse for sparse, _ in group]),
            dense_prompt_embeddings=torch.cat([dense for _, dense in group]),
            multimask_output=True,
        )
        logits.append(out_logits)
        iou.append(out_iou)
    return torch.cat(logits), torch.cat(iou)


class SAMMaskLoss:
    """SAM's mask and IoU losses for the regions of a batch (``MODEL.SCA.MASK_LOSS``)."""

    def __init__(
        self,
        image_size: int,
        focal_weight: float = 20.0,
        dice_weight: float = 1.0,
        iou_weight: float = 1.0,
        point_prompts: bool = True,
        points_per_region: int = 1,
    ):
        self.image_size = image_size
        self.focal_weight = focal_weight
        self.dice_weight = dice_weight
        self.iou_weight = iou_weight
        self.point_prompts = point_prompts
        if points_per_region < 1:
            raise ValueError(
                f"MODEL.SCA.MASK_LOSS.POINTS_PER_REGION={points_per_region}: at least 1"
            )
        self.points_per_region = points_per_region

    def __call__(
        self,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        embeddings: torch.Tensor,
        prompts: list[RegionPrompts],
        masks: list[torch.Tensor],
        decoded: list[tuple[torch.Tensor, torch.Tensor] | None] | None = None,
    ) -> dict[str, torch.Tensor]:
        """``prompts[i]`` and ``masks[i]`` ((N_i, H_i, W_i) bool, input frame) of image i.
        ``decoded[i]``, where given, holds SAM's multimask logits and IoU predictions for
        ``prompts[i]`` as the caption head decoded them (with a graph): they are read, not
        decoded again."""
        mask_terms, iou_terms = [], []
        for i, (embedding, p, m) in enumerate(zip(embeddings, prompts, masks)):
            nonempty = m.flatten(1).any(dim=1)
            if not nonempty.any():
                continue
            m = m[nonempty]
            given = None if decoded is None else decoded[i]
            outputs, variants = [], []
            if given is not None:
                outputs.append((given[0][nonempty], given[1][nonempty]))
            else:
                variants.append(
                    RegionPrompts(
                        boxes=None if p.boxes is None else p.boxes[nonempty],
                        points=None if p.points is None else p.points[nonempty],
                        point_labels=None if p.point_labels is None else p.point_labels[nonempty],
                    )
                )
            if self.point_prompts:
                points = points_in_masks(m, self.points_per_region)
                labels = torch.ones(points.shape[:2], dtype=torch.long, device=points.device)
                variants.append(RegionPrompts(points=points, point_labels=labels))
            if variants:
                outputs.append(
                    _decode_together(prompt_encoder, mask_decoder, embedding[None], variants)
                )
            logits = torch.cat([o[0] for o in outputs])
            iou = torch.cat([o[1] for o in outputs])
            targets = low_res_targets(m, self.image_size, tuple(logits.shape[-2:]))
            mask_loss, iou_loss = sam_mask_losses(
                logits,
                iou,
                targets.repeat(logits.shape[0] // len(m), 1, 1),
                self.focal_weight,
                self.dice_weight,
            )
            mask_terms.append(mask_loss)
            iou_terms.append(iou_loss)
        if not mask_terms:
            # no mask in the batch: a zero loss that touches the trained SAM parts (same graph on
            # every process of a distributed run)
            params = [*prompt_encoder.parameters(), *mask_decoder.parameters()]
            zero = embeddings.sum() * 0.0 + sum(p.sum() * 0.0 for p in params if p.requires_grad)
            return {"loss_mask": zero, "loss_mask_iou": zero}
        return {
            "loss_mask": torch.stack(mask_terms).mean(),
            "loss_mask_iou": self.iou_weight * torch.stack(iou_terms).mean(),
        }
