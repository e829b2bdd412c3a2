"""Runs SAM's prompt encoder and mask decoder for the region prompts of one image."""

from dataclasses import dataclass

import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder

from .precision import module_dtype


@dataclass
class RegionPrompts:
    """Prompts of one image in the model's input frame (the resized, unpadded image).

    boxes: (N, 4) XYXY or None; points: (N, P, 2) XY or None; point_labels: (N, P), 1 = foreground,
    0 = background, -1 = padding.
    """

    boxes: torch.Tensor | None = None
    points: torch.Tensor | None = None
    point_labels: torch.Tensor | None = None

    def __len__(self) -> int:
        if self.boxes is not None:
            return self.boxes.shape[0]
        return 0 if self.points is None else self.points.shape[0]

    def to(self, device: torch.device) -> "RegionPrompts":
        """On ``device``, copied without waiting for the device's queued work."""

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return RegionPrompts(move(self.boxes), move(self.points), move(self.point_labels))

    def split(self, size: int) -> list["RegionPrompts"]:
        """Consecutive groups of at most ``size`` prompts (all in one group when size is 0)."""
        size = size or max(len(self), 1)

        def part(t: torch.Tensor | None, i: int) -> torch.Tensor | None:
            return None if t is None else t[i : i + size]

        return [
            RegionPrompts(part(self.boxes, i), part(self.points, i), part(self.point_labels, i))
            for i in range(0, len(self), size)
        ]


@dataclass
class SAMRegionOutput:
    """SAM's outputs for N regions of one image.

    mask_logits: (N, 3, 4h, 4w) low-resolution logits of the 3 multimask outputs;
    iou_predictions: (N, 3); tokens: (N, T, C) output tokens of the decoder's two-way transformer
    (IoU token, 4 mask tokens, sparse prompt tokens); region_embeddings: (N, C, h, w) the image
    embedding as updated by that transformer, one per region (None once the mixer has read it).
    The masks and IoU predictions are None where they were not asked for (training captions).
    """

    mask_logits: torch.Tensor | None
    iou_predictions: torch.Tensor | None
    tokens: torch.Tensor
    region_embeddings: torch.Tensor | None

    @classmethod
    def cat(cls, parts: list["SAMRegionOutput"], keep_embeddings: bool = True) -> "SAMRegionOutput":
        """The outputs of consecutive groups of prompts as one (no copy for a single group)."""
        embeddings = None
        if keep_embeddings:
            embeddings = cat_or_only([p.region_embeddings for p in parts])
        with_masks = parts[0].mask_logits is not None
        return cls(
            cat_or_only([p.mask_logits for p in parts]) if with_masks else None,
            cat_or_only([p.iou_predictions for p in parts]) if with_masks else None,
            cat_or_only([p.tokens for p in parts]),
            embeddings,
        )


def cat_or_only(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``torch.cat`` along the first dimension, without the copy when there is one tensor."""
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


class _TransformerDone(Exception):
    """Stops SAM's mask decoder once its transformer has run (no masks wanted)."""


def decode_regions(
    prompt_encoder: PromptEncoder,
    mask_decoder: MaskDecoder,
    image_embedding: torch.Tensor,
    prompts: RegionPrompts,
    with_masks: bool = True,
) -> SAMRegionOutput:
    """SAM's multimask prediction for each prompt, plus the decoder's internal tokens and updated
    image embedding that SCA's text mixer reads. The mask decoder runs unchanged (so its masks are
    exactly SAM's); its transformer's outputs are read with a forward hook. Inputs are cast to
    the decoder's dtype. ``with_masks=False`` stops the decoder after its transformer, whose
    outputs are all the caption loss reads: each region's upscaled map (4x the embedding's size)
    and the mask and IoU heads are then not computed."""
    points = None
    if prompts.points is not None:
        points = (prompts.points, prompts.point_labels)
    dtype = module_dtype(mask_decoder)
    sparse, dense = prompt_encoder(points=points, boxes=prompts.boxes, masks=None)
    captured: list[tuple[torch.Tensor, torch.Tensor]] = []

    def capture(_module, _inputs, output) -> None:
        captured.append(output)
        if not with_masks:
            raise _TransformerDone

    handle = mask_decoder.transformer.register_forward_hook(capture)
    try:
        mask_logits, iou_predictions = mask_decoder(
            image_embeddings=image_embedding.to(dtype),
            image_pe=prompt_encoder.get_dense_pe().to(dtype),
            sparse_prompt_embeddings=sparse.to(dtype),
            dense_prompt_embeddings=dense.to(dtype),
            multimask_output=True,
        )
    except _TransformerDone:
        mask_logits = iou_predictions = None
    finally:
        handle.remove()
    tokens, keys = captured[0]
    n, c, h, w = dense.shape
    region_embeddings = keys.transpose(1, 2).reshape(n, c, h, w)
    return SAMRegionOutput(mask_logits, iou_predictions, tokens, region_embeddings)
