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


def jitter_boxes(
    boxes: np.ndarray, std_fraction: float, image_hw: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """XYXY ``boxes`` with Gaussian noise on each coordinate, of standard deviation
    ``std_fraction`` times the box's width (x) or height (y), as SAM trains its box prompts (10%
    there), clipped to the image and at least one pixel wide and high. Returns (N, 4) float32."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    size = np.tile(boxes[:, 2:] - boxes[:, :2], 2)
    noisy = boxes + rng.normal(size=boxes.shape) * std_fraction * size
    h, w = image_hw
    noisy[:, 0::2] = noisy[:, 0::2].clip(0, w)
    noisy[:, 1::2] = noisy[:, 1::2].clip(0, h)
    lo = np.minimum(noisy[:, :2], np.array([w - 1.0, h - 1.0]))
    hi = np.maximum(noisy[:, 2:], lo + 1.0)
    return np.concatenate([lo, hi], axis=1).astype(np.float32)
