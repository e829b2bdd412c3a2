"""A :class:`Result` as the JSON the API answers with."""

from __future__ import annotations

from ..batch.records import rle
from .core import Result
from .inputs import DecodedImage


def result_json(image: DecodedImage, result: Result, total_s: float, prompted: bool) -> dict:
    """Per region the XYXY box, the mask as COCO RLE, the caption, its score (mean token
    log-probability) and SAM's predicted IoU; then the image, the batch and the timings (ms)."""
    inst = result.instances
    boxes = inst.pred_boxes.tensor.tolist()
    masks = inst.pred_masks.numpy()
    regions = []
    for i in range(len(inst)):
        region = {"prompt": i} if prompted else {}
        region.update(
            box=[float(v) for v in boxes[i]],
            segmentation=rle(masks[i]),
            caption=inst.pred_captions[i],
            caption_score=float(inst.caption_scores[i]),
            predicted_iou=float(inst.scores[i]),
        )
        regions.append(region)
    ms = 1000.0
    return {
        "image": {"width": image.width, "height": image.height, "sha256": image.key},
        "regions": regions,
        "embedding_cached": result.embedding_cached,
        "batch": {"requests": result.batch_requests, "regions": result.batch_regions},
        "timings_ms": {
            "decode": round(image.decode_s * ms, 3),
            "queue": round(result.queue_s * ms, 3),
            "encode": round(result.encode_s * ms, 3),
            "inference": round(result.inference_s * ms, 3),
            "total": round(total_s * ms, 3),
        },
    }
