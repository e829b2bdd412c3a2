"""Mask quality against annotations that carry masks: mask IoU, and how many annotations a
model's own regions recover (:class:`RecoveryCounts`)."""

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from .caption_metrics import collapse_whitespace


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, H, W) x (M, H, W) boolean masks -> (N, M) IoU."""
    p = pred.reshape(len(pred), -1).astype(np.float64)
    g = gt.reshape(len(gt), -1).astype(np.float64)
    inter = p @ g.T
    union = p.sum(1)[:, None] + g.sum(1)[None, :] - inter
    return inter / np.maximum(union, 1)


def gt_masks(record: dict) -> np.ndarray:
    """(M, H, W) boolean masks of a data-set record's annotations (RLE ``segmentation``)."""
    return np.stack([mask_utils.decode(a["segmentation"]) > 0 for a in record["annotations"]])


@dataclass
class RecoveryCounts:
    """Annotations recovered by found regions, image by image: each annotation is matched to the
    found mask of highest IoU; it is recovered when that IoU is at least ``recovery_iou``, and
    its caption is right when the found region's caption equals one of the annotation's
    captions (case and spaces aside)."""

    recovery_iou: float
    annotations: int = 0
    found_regions: int = 0
    recovered: int = 0
    right_captions: int = 0

    def add(self, pred_masks: np.ndarray, pred_captions: list[str], record: dict) -> None:
        """One image's found regions, (N, H, W) masks and N captions, against ``record``."""
        gt = gt_masks(record)
        self.annotations += len(gt)
        self.found_regions += len(pred_masks)
        if not len(pred_masks):
            return
        iou = mask_iou(pred_masks, gt)
        best = iou.argmax(axis=0)
        for j, ann in enumerate(record["annotations"]):
            if iou[best[j], j] >= self.recovery_iou:
                self.recovered += 1
                caption = _norm(pred_captions[best[j]])
                self.right_captions += caption in {_norm(c) for c in ann["captions"]}

    def summary(self) -> dict:
        """The counts and their fractions."""
        return {
            "annotations": self.annotations,
            "found_regions": self.found_regions,
            "recovered": self.recovered,
            "recovered_fraction": self.recovered / max(self.annotations, 1),
            "right_captions": self.right_captions,
            "right_caption_fraction_of_recovered": self.right_captions / max(self.recovered, 1),
        }


def _norm(caption: str) -> str:
    return collapse_whitespace(caption.lower())
