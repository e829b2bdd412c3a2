"""Point prompts derived from region boxes."""

from __future__ import annotations

import numpy as np


def sample_points_in_boxes(
    boxes: np.ndarray, num_points: int, rng: np.random.Generator, center_first: bool = False
) -> np.ndarray:
    """``num_points`` points per XYXY box, uniform inside it, as an ``(N, num_points, 2)`` array.

    With ``center_first`` the first point of every box is its center (a deterministic prompt for
    evaluation when ``rng`` is seeded the same way).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    u = rng.uniform(0.0, 1.0, size=(len(boxes), num_points, 2))
    if center_first and num_points > 0:
        u[:, 0] = 0.5
    lo, size = boxes[:, None, :2], (boxes[:, 2:] - boxes[:, :2])[:, None, :]
    return (lo + u * size).astype(np.float32)
