"""DenseCap mAP (Johnson et al., CVPR 2016) as computed by jcjohnson/densecap's
``eval/eval_utils.lua``, the code behind the published numbers (GRiT 15.5, CapDet 15.4, ...).

Per image (``DenseCaptioningEvaluator:addResult``):
  1. ground-truth boxes at IoU >= 0.7 are merged greedily (:func:`merge_ground_truth`);
  2. detections, by decreasing score, are each assigned the merged target of highest IoU
     (+1-pixel convention, first target on ties); a target already taken by a higher-scored
     detection makes this detection not "ok". Lua quirk (``last_target_quirk=True``, the default,
     as in the published numbers): a detection overlapping no target indexes ``used[-1]``, i.e.
     claims the image's *last* merged target, which can block a later true match. With the switch
     off such a detection claims nothing. It is never a true positive either way.
Over the data set (``evaluate``):
  3. METEOR 1.5 (``-l en -norm``) of each detection's caption against its target's references;
  4. all detections sorted by score; for IoU threshold o in {0.3, ..., 0.7} and METEOR threshold
     m in {-1, 0, 0.05, ..., 0.25} a detection is a true positive iff IoU >= o, it is ok, and
     METEOR > m (m = -1 ignores the caption: detection only);
  5. AP = mean over t = 0, 0.01, ... (accumulated in floating point as Lua's ``for t=0,1,0.01``,
     which stops after 0.99: 100 values) of the best precision at recall >= t.
  mAP averages the 30 APs with m >= 0; the detection mAP the 5 APs with m = -1.

Scores are fractions (1.0 = perfect), as the Lua code returns them (it prints 100 x mAP).

Treatment of cases the Lua code did not meet (or crashed on):
  * an image in the ground truth without a prediction entry counts as an image with no detection;
    a prediction for an image id absent from the ground truth is an error;
  * predicted boxes with x2 < x1 or y2 < y1 are scored with the Lua formulas (+1-pixel areas,
    negative widths included): they overlap nothing unless inverted by less than a pixel. They
    are counted (``num_inverted_boxes``) and one warning gives the count. Ground-truth boxes must
    not be inverted; NaN/inf coordinates are an error naming the image;
  * an image whose ground truth is empty: its detections are all false positives (Lua crashes);
  * no detection at all: every AP is 0 (Lua crashes); no ground-truth box at all: an error;
  * ties in score keep input order (Torch's sort does not guarantee an order);
  * METEOR is only run for detections that can be a true positive (ok and IoU >= 0.3): the others'
    METEOR cannot change any AP. An empty predicted caption is allowed (it matches nothing).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np

from .densecap_boxes import as_lua_boxes, inverted_boxes, merge_ground_truth, pairwise_iou
from .meteor import MeteorScorer, shared_meteor

logger = logging.getLogger(__name__)

PREDICTION_KEYS = frozenset({"image_id", "boxes", "captions", "scores"})
IOU_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
METEOR_THRESHOLDS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25)
DETECTION_METEOR_THRESHOLD = -1.0
MERGE_IOU = 0.7


def lua_recall_thresholds() -> list[float]:
    """The values of Lua's ``for t=0,1,0.01``: t accumulates 0.01 and stops above 1 (100 values)."""
    values = []
    t = 0.0
    while t <= 1.0:
        values.append(t)
        t += 0.01
    return values


RECALL_THRESHOLDS = tuple(lua_recall_thresholds())


def _references(captions: object, what: str) -> list[str]:
    refs = [captions] if isinstance(captions, str) else captions
    if not isinstance(refs, (list, tuple)) or not refs:
        raise ValueError(
            f"{what}: expected a caption string or a non-empty list of them, got {captions!r}"
        )
    for ref in refs:
        if not isinstance(ref, str) or not ref.strip():
            raise ValueError(f"{what}: reference captions must be non-empty strings, got {ref!r}")
    return list(refs)


def _index_ground_truth(ground_truth: Sequence[Mapping]) -> dict:
    images = {}
    for entry in ground_truth:
        image_id = entry["image_id"]
        if image_id in images:
            raise ValueError(f"ground truth: image id {image_id!r} appears twice")
        what = f"ground truth of image {image_id!r}"
        boxes = as_lua_boxes(entry["boxes"], what)
        captions = entry["captions"]
        if len(captions) != len(boxes):
            raise ValueError(f"{what}: {len(boxes)} boxes but {len(captions)} captions")
        refs = [_references(c, f"{what}, box {i}") for i, c in enumerate(captions)]
        images[image_id] = (boxes, refs)
    return images


def _check_prediction(entry: Mapping, what: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    boxes = as_lua_boxes(entry["boxes"], what, allow_inverted=True)
    captions = list(entry["captions"])
    try:
        scores = np.asarray(entry["scores"], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: scores must be numbers ({e})") from None
    if not (len(boxes) == len(captions) == len(scores)):
        raise ValueError(
            f"{what}: {len(boxes)} boxes, {len(captions)} captions, {len(scores)} scores"
        )
    if not np.isfinite(scores).all():
        raise ValueError(f"{what}: scores must be finite numbers (NaN or inf found)")
    for caption in captions:
        if not isinstance(caption, str):
            raise ValueError(f"{what}: captions must be strings, got {caption!r}")
    return boxes, captions, scores


def _index_predictions(predictions: Sequence[Mapping], images: Mapping) -> dict:
    """Every prediction entry checked (before any METEOR work), by image id."""
    by_image = {}
    for n, entry in enumerate(predictions):
        if not isinstance(entry, Mapping) or not PREDICTION_KEYS <= set(entry):
            raise ValueError(
                f"predictions[{n}]: expected a mapping with keys {sorted(PREDICTION_KEYS)}, got "
                f"{sorted(entry) if isinstance(entry, Mapping) else type(entry).__name__}"
            )
        image_id = entry["image_id"]
        what = f"predictions of image {image_id!r}"
        if image_id in by_image:
            raise ValueError(f"{what}: image id {image_id!r} appears twice")
        if image_id not in images:
            raise ValueError(f"{what}: image id {image_id!r} is absent from the ground truth")
        by_image[image_id] = _check_prediction(entry, what)
    return by_image


def _match_image(boxes, scores, targets, last_target_quirk):
    """Per-image assignment; returns (order, ov, target index or -1, ok) in decreasing score."""
    order = np.argsort(-scores, kind="stable")
    n_targets = len(targets)
    n = len(order)
    if n_targets == 0:
        return order, np.zeros(n), np.full(n, -1), np.zeros(n, dtype=bool)
    iou = pairwise_iou(boxes[order], targets)
    best = np.argmax(iou, axis=1)
    ov = iou[np.arange(n), best]
    target = np.where(ov > 0, best, -1)
    used = np.zeros(n_targets, dtype=bool)
    ok = np.zeros(n, dtype=bool)
    for d in range(n):
        claimed = target[d] if target[d] >= 0 else (n_targets - 1 if last_target_quirk else None)
        if claimed is not None and not used[claimed]:
            used[claimed] = True
            ok[d] = True
    return order, ov, target, ok


def _average_precision(tp: np.ndarray, npos: int) -> float:
    if len(tp) == 0:
        return 0.0
    tp_cum = np.cumsum(tp, dtype=np.float64)
    recall = tp_cum / npos
    precision = tp_cum / np.arange(1, len(tp) + 1, dtype=np.float64)
    best_after = np.maximum.accumulate(precision[::-1])[::-1]
    first = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")
    ap = 0.0
    for i in first:
        ap += float(best_after[i]) if i < len(tp) else 0.0
    return ap / len(RECALL_THRESHOLDS)


def evaluate_densecap(
    predictions: Sequence[Mapping],
    ground_truth: Sequence[Mapping],
    last_target_quirk: bool = True,
    meteor: MeteorScorer | None = None,
) -> dict:
    """DenseCap mAP of ``predictions`` against ``ground_truth``.

    Args:
        predictions: ``[{"image_id", "boxes": [[x1, y1, x2, y2], ...] (pixels), "captions":
            [str, ...], "scores": [float, ...]}]``, at most one entry per image.
        ground_truth: ``[{"image_id", "boxes", "captions"}]``; ``captions[k]`` is the reference
            string of box k or a list of reference strings.
        last_target_quirk: reproduce the Lua quirk (see the module doc).
        meteor: a running :class:`MeteorScorer` (default: the process-wide shared one).

    Returns:
        ``{"map", "det_map", "ap_table" (5 x 6: IoU thresholds x METEOR thresholds), "det_ap" (5),
        "det_recall" (5: fraction of merged targets found at each IoU threshold),
        "iou_thresholds", "meteor_thresholds", "num_images", "num_detections", "num_targets"
        (merged), "num_meteor_pairs", "num_inverted_boxes"}``; all scores are fractions.

    Raises:
        ValueError: naming the image, before any METEOR work, for a prediction entry without
            ``image_id``/``boxes``/``captions``/``scores``, a duplicated or unknown image id,
            NaN/inf coordinates or scores, non-numeric values or non-string captions.
    """
    images = _index_ground_truth(ground_truth)
    by_image = _index_predictions(predictions, images)
    num_inverted = sum(int(inverted_boxes(boxes).sum()) for boxes, _, _ in by_image.values())
    if num_inverted:
        logger.warning(
            "DenseCap mAP: %d predicted boxes have x2 < x1 or y2 < y1; they are scored as the "
            "Lua evaluation scores them (+1-pixel areas; they overlap no target unless inverted "
            "by less than one pixel)",
            num_inverted,
        )

    all_scores, all_ov, all_ok, pairs, pair_index = [], [], [], [], []
    npos = 0
    offset = 0
    for image_id, (gt_boxes, gt_refs) in images.items():
        targets, target_refs = merge_ground_truth(gt_boxes, gt_refs, MERGE_IOU)
        npos += len(targets)
        if image_id not in by_image:
            continue
        boxes, captions, scores = by_image[image_id]
        order, ov, target, ok = _match_image(boxes, scores, targets, last_target_quirk)
        for d, i in enumerate(order):
            if ok[d] and ov[d] >= IOU_THRESHOLDS[0]:
                pairs.append((captions[i], target_refs[target[d]]))
                pair_index.append(offset + d)
        all_scores.append(scores[order])
        all_ov.append(ov)
        all_ok.append(ok)
        offset += len(order)
    if npos == 0:
        raise ValueError("the ground truth has no box: the DenseCap mAP is undefined")

    scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    ov = np.concatenate(all_ov) if all_ov else np.zeros(0)
    ok = np.concatenate(all_ok) if all_ok else np.zeros(0, dtype=bool)
    meteor_scores = np.full(len(scores), -math.inf)
    if pairs:
        scorer = meteor if meteor is not None else shared_meteor()
        meteor_scores[pair_index] = scorer.score(pairs)

    order = np.argsort(-scores, kind="stable")
    ov, ok, meteor_scores = ov[order], ok[order], meteor_scores[order]
    ap_table = []
    det_ap = []
    det_recall = []
    for min_iou in IOU_THRESHOLDS:
        localized = ok & (ov >= min_iou)
        det_recall.append(float(localized.sum()) / npos)
        det_ap.append(
            _average_precision(localized & (meteor_scores > DETECTION_METEOR_THRESHOLD), npos)
        )
        ap_table.append(
            [_average_precision(localized & (meteor_scores > m), npos) for m in METEOR_THRESHOLDS]
        )
    flat = [ap for row in ap_table for ap in row]
    return {
        "map": sum(flat) / len(flat),
        "det_map": sum(det_ap) / len(det_ap),
        "ap_table": ap_table,
        "det_ap": det_ap,
        "det_recall": det_recall,
        "iou_thresholds": list(IOU_THRESHOLDS),
        "meteor_thresholds": list(METEOR_THRESHOLDS),
        "num_images": len(images),
        "num_detections": int(len(scores)),
        "num_targets": int(npos),
        "num_meteor_pairs": len(pairs),
        "num_inverted_boxes": num_inverted,
    }
