"""Images decoded and resized in DataLoader workers while the model runs; a bad file becomes a skip
reason, never an exception."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from detectron2.structures import Boxes, Instances
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from ...data.errors import ImageReadError
from ...data.image_io import read_image
from ...data.inference_input import model_input
from .inputs import InputItem


@dataclass
class Loaded:
    """One item: the model input (``proposals`` holding its boxes in the input frame, when it has
    any) and the image size, or the reason it is skipped."""

    item: InputItem
    inputs: dict | None = None
    height: int = 0
    width: int = 0
    skip_reason: str | None = None


def header_problem(path: str, max_pixels: int) -> str | None:
    """Why ``path`` cannot be captioned, from its size and header alone (None: go on decoding)."""
    try:
        if os.path.getsize(path) == 0:
            return "zero-size file"
        with Image.open(path) as image:
            width, height = image.size
    except UnidentifiedImageError:
        return "not an image"
    except Image.DecompressionBombError as e:
        return f"over the pixel limit ({e})"
    except OSError as e:
        return f"unreadable ({e})"
    if width == 0 or height == 0:
        return "zero-size image"
    if max_pixels and width * height > max_pixels:
        return f"over the pixel limit ({width}x{height} = {width * height} > {max_pixels})"
    return None


class ImageItems(Dataset):
    """This process's items, each decoded to the model's input (``INPUT.FORMAT``, longest side
    ``image_size``)."""

    def __init__(
        self,
        items: list[InputItem],
        image_size: int,
        image_format: str,
        max_pixels: int,
        missing_boxes_reason: str | None = None,
    ):
        self.items = items
        self.image_size = image_size
        self.image_format = image_format
        self.max_pixels = max_pixels
        self.missing_boxes_reason = missing_boxes_reason

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Loaded:
        item = self.items[index]
        if self.missing_boxes_reason and item.boxes is None:
            return Loaded(item, skip_reason=self.missing_boxes_reason)
        reason = header_problem(item.path, self.max_pixels)
        if reason:
            return Loaded(item, skip_reason=reason)
        try:
            image = read_image(item.path, self.image_format)
        except ImageReadError as e:
            return Loaded(item, skip_reason=f"truncated or corrupt ({e})")
        inputs, transform = model_input(image, self.image_size)
        if item.boxes is not None:
            proposals = Instances(tuple(inputs["image"].shape[-2:]))
            boxes = transform.apply_box(item.boxes) if len(item.boxes) else item.boxes
            proposals.proposal_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32))
            inputs["proposals"] = proposals
        return Loaded(item, inputs, image.shape[0], image.shape[1])


def _as_list(batch: list[Loaded]) -> list[Loaded]:
    return batch


def build_loader(dataset: ImageItems, batch_size: int, num_workers: int) -> DataLoader:
    """Batches of ``batch_size`` items in order, decoded by ``num_workers`` processes."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_as_list,
        prefetch_factor=2 if num_workers else None,
    )
