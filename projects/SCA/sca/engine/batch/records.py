"""One image's regions as a JSON line, with floats rounded so that results do not depend on the
noise of batch composition."""

from __future__ import annotations

import numpy as np
from detectron2.structures import Instances
from pycocotools import mask as mask_utils

DECIMALS = 5


def _round(values) -> list[float]:
    return [round(float(v), DECIMALS) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def rle(mask: np.ndarray) -> dict:
    """A boolean HxW mask as COCO RLE with ``counts`` a string (JSON-ready)."""
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def image_record(file_name: str, height: int, width: int, instances: Instances) -> dict:
    """A shard line: the image and its regions (XYXY box, RLE mask, caption, caption score,
    SAM's predicted IoU and the region's final score) in the image's pixel frame."""
    instances = instances.to("cpu")
    boxes = instances.pred_boxes.tensor.numpy()
    masks = instances.pred_masks.numpy()
    iou = instances.proposal_scores if instances.has("proposal_scores") else instances.scores
    regions = [
        {
            "box": _round(boxes[i]),
            "segmentation": rle(masks[i]),
            "caption": instances.pred_captions[i],
            "caption_score": _round(instances.caption_scores[i : i + 1].float())[0],
            "predicted_iou": _round(iou[i : i + 1].float())[0],
            "score": _round(instances.scores[i : i + 1].float())[0],
        }
        for i in range(len(instances))
    ]
    return {"file_name": file_name, "height": height, "width": width, "regions": regions}


def skipped_record(file_name: str, reason: str) -> dict:
    return {"file_name": file_name, "skipped": reason}
