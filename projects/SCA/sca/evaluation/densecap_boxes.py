"""Box arithmetic of DenseCap's evaluation (jcjohnson/densecap ``densecap/box_utils.lua``).

Boxes are ``(x1, y1, x2, y2)`` with *inclusive* pixel corners: a box's width is ``x2 - x1 + 1``
("+1-pixel convention"), and two boxes overlap only when the intersection's width and height,
computed the same way, are both positive. The Lua code holds boxes as float32 tensors and does the
arithmetic in double precision; :func:`as_lua_boxes` reproduces that rounding and every formula
below keeps the Lua operation order, so IoUs (and the >= threshold tests on them) are bit-equal.
"""

from __future__ import annotations

import numpy as np


def as_lua_boxes(boxes: object, what: str = "boxes", allow_inverted: bool = False) -> np.ndarray:
    """``(N, 4)`` float64 array of float32-rounded boxes; raises ``ValueError`` on bad boxes.

    Bad: not an ``(N, 4)`` array of numbers, non-finite coordinates, or (unless
    ``allow_inverted``) ``x2 < x1`` / ``y2 < y1``; a box with ``x2 == x1`` is one pixel wide under
    the +1 convention and is accepted. Inverted boxes are what the Lua code scores with the same
    formulas as the others (see :func:`pairwise_iou`), so predictions may have them.
    """
    try:
        array = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: boxes must be numbers [x1, y1, x2, y2] ({e})") from None
    if array.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(
            f"{what}: expected an (N, 4) list of [x1, y1, x2, y2], got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError(
            f"{what}: coordinates must be finite, got {array[~np.isfinite(array).all(1)][:3]}"
        )
    bad = inverted_boxes(array)
    if bad.any() and not allow_inverted:
        raise ValueError(
            f"{what}: boxes must be [x1, y1, x2, y2] with x2 >= x1 and y2 >= y1 (XYXY_ABS); "
            f"{int(bad.sum())} are not, e.g. {array[bad][0].tolist()}"
        )
    return array.astype(np.float32).astype(np.float64)


def inverted_boxes(boxes: np.ndarray) -> np.ndarray:
    """Mask of the boxes with ``x2 < x1`` or ``y2 < y1``."""
    return (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` IoU with the +1-pixel convention; 0 where the boxes do not overlap.

    As in the Lua code, boxes overlap when the intersection's ``min(x2) - max(x1) + 1`` and its
    height are both positive, and areas are ``(x2 - x1 + 1) * (y2 - y1 + 1)`` whatever their sign.
    So an inverted box (``x2 < x1``) overlaps nothing unless it is inverted by less than a pixel,
    in which case its +1 width is still positive and it is scored as a thin box."""
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    iw = ix2 - ix1 + 1
    ih = iy2 - iy1 + 1
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    inter = iw * ih
    union = area_a[:, None] + area_b[None, :] - inter
    overlap = (iw > 0) & (ih > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(overlap, inter / np.where(overlap, union, 1.0), 0.0)


def merge_groups(boxes: np.ndarray, threshold: float = 0.7) -> list[np.ndarray]:
    """Greedy grouping of ``box_utils.merge_boxes``: indices of each group, in extraction order.

    Repeatedly take the box with the most boxes (itself included) at IoU >= ``threshold`` among
    those not yet grouped (the first such box on ties), and make it and those boxes a group.
    """
    if threshold <= 0:
        raise ValueError(f"merge threshold must be > 0, got {threshold}")
    iou = pairwise_iou(boxes, boxes)
    np.fill_diagonal(iou, 1.0)
    groups = []
    while True:
        good = iou >= threshold
        counts = good.sum(axis=0)
        top = int(np.argmax(counts)) if len(counts) else 0
        if not len(counts) or counts[top] == 0:
            return groups
        members = np.flatnonzero(good[top])
        groups.append(members)
        iou[members, :] = 0.0
        iou[:, members] = 0.0


def merge_ground_truth(
    boxes: np.ndarray, references: list[list[str]], threshold: float = 0.7
) -> tuple[np.ndarray, list[list[str]]]:
    """Merge overlapping ground truth as DenseCap's ``pluck_boxes``: each group becomes its mean
    box (float32, as Torch's ``mean`` of a FloatTensor) with all its members' references."""
    groups = merge_groups(boxes, threshold)
    merged = np.zeros((len(groups), 4), dtype=np.float64)
    merged_refs = []
    for k, members in enumerate(groups):
        # Torch7: sum accumulated in double, stored as float, then divided in float.
        total = boxes[members].sum(axis=0).astype(np.float32)
        merged[k] = (total / np.float32(len(members))).astype(np.float64)
        merged_refs.append([ref for i in members for ref in references[i]])
    return merged, merged_refs
