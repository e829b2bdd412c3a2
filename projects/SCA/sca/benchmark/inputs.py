"""Synthetic model inputs: a random image of a photo's aspect, random box prompts, and a training
batch of boxes with captions of the random LMs' words (``w1``, ``w2``, ...)."""

from __future__ import annotations

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.structures import Boxes, Instances

IMAGE_HW = (768, 1024)  # a 600x800 photo resized to SAM's longest side 1024


def image_input(cfg: CfgNode, device: torch.device, seed: int = 0) -> dict:
    """A random uint8 image, ``INPUT.IMAGE_SIZE`` wide, as a model input."""
    size = cfg.INPUT.IMAGE_SIZE
    h, w = (size * IMAGE_HW[0] // IMAGE_HW[1], size)
    g = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
    return {"image": image.to(device), "height": h, "width": w}


def random_boxes(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    """``n`` XYXY boxes, each side 5-20% of the image's."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.8, h * 0.8])
    wh = (0.05 + torch.rand(n, 2, generator=g) * 0.15) * torch.tensor([w, h])
    return torch.cat([xy, xy + wh], dim=1)


def with_proposals(x: dict, n: int, seed: int) -> dict:
    """The input ``x`` with ``n`` random box prompts."""
    h, w = x["image"].shape[-2:]
    proposals = Instances((h, w))
    proposals.proposal_boxes = Boxes(random_boxes(n, h, w, seed).to(x["image"].device))
    return {**x, "proposals": proposals}


def training_batch(cfg: CfgNode, images: int, regions: int, device: torch.device) -> list[dict]:
    """``images`` inputs with ``regions`` ground-truth boxes each, captioned with 3-11 words."""
    batch = []
    words = [f"w{i}" for i in range(1, 200)]
    rng = np.random.default_rng(0)
    for i in range(images):
        x = image_input(cfg, device, seed=i)
        h, w = x["image"].shape[-2:]
        inst = Instances((h, w))
        inst.gt_boxes = Boxes(random_boxes(regions, h, w, seed=100 + i).to(device))
        inst.gt_captions = [
            " ".join(rng.choice(words, rng.integers(3, 12))) for _ in range(regions)
        ]
        batch.append({**x, "instances": inst})
    return batch
