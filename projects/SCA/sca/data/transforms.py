"""Detectron2 augmentations for SCA: SAM's longest-side resize, mean padding, large-scale jitter."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from detectron2.config import CfgNode
from detectron2.data import transforms as T
from PIL import Image


class ResizeLongestSide(T.Augmentation):
    """Resize so that the longest side equals ``long_side`` (SAM's ``ResizeLongestSide`` rule:
    ``scale = long_side / max(h, w)``, new size ``int(x * scale + 0.5)``)."""

    def __init__(self, long_side: int, interp: int = Image.BILINEAR):
        super().__init__()
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> T.Transform:
        h, w = image.shape[:2]
        scale = self.long_side / max(h, w)
        new_h, new_w = int(h * scale + 0.5), int(w * scale + 0.5)
        return T.ResizeTransform(h, w, new_h, new_w, self.interp)


class ChannelPadTransform(T.PadTransform):
    """A :class:`PadTransform` whose image padding value may be one value per channel."""

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        shape = (h + self.y0 + self.y1, w + self.x0 + self.x1) + img.shape[2:]
        out = np.empty(shape, dtype=img.dtype)
        out[...] = np.asarray(self.pad_value, dtype=np.float64).round().astype(img.dtype)
        out[self.y0 : self.y0 + h, self.x0 : self.x0 + w] = img
        return out


class PadToSize(T.Augmentation):
    """Pad the bottom and right of an image up to ``(height, width)`` with ``pad_value``
    (one value, or one per channel)."""

    def __init__(self, height: int, width: int, pad_value: Sequence[float] | float = 0.0):
        super().__init__()
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> T.Transform:
        h, w = image.shape[:2]
        pad_h, pad_w = max(self.height - h, 0), max(self.width - w, 0)
        if pad_h == 0 and pad_w == 0:
            return T.NoOpTransform()
        return ChannelPadTransform(0, 0, pad_w, pad_h, w, h, pad_value=self.pad_value)


def build_sca_augmentations(cfg: CfgNode, is_train: bool) -> list[T.Augmentation]:
    """The augmentations of :class:`~sca.data.dataset_mapper.SCADatasetMapper`.

    Training with ``INPUT.LSJ.ENABLED``: horizontal flip, then large-scale jitter (random resize
    by ``LSJ.MIN_SCALE``-``LSJ.MAX_SCALE`` of ``IMAGE_SIZE``, random ``IMAGE_SIZE`` square crop,
    padding with the pixel mean). Flipping first keeps the padding at the bottom-right, where SAM
    puts it.
    Otherwise (and at test time without the flip): the longest side resized to ``IMAGE_SIZE``.
    """
    size = cfg.INPUT.IMAGE_SIZE
    augs: list[T.Augmentation] = []
    if is_train and cfg.INPUT.FLIP_PROB > 0:
        augs.append(T.RandomFlip(prob=cfg.INPUT.FLIP_PROB, horizontal=True, vertical=False))
    if is_train and cfg.INPUT.LSJ.ENABLED:
        augs += [
            T.ResizeScale(cfg.INPUT.LSJ.MIN_SCALE, cfg.INPUT.LSJ.MAX_SCALE, size, size),
            T.FixedSizeCrop((size, size), pad=False),
            PadToSize(size, size, pad_value=tuple(cfg.MODEL.PIXEL_MEAN)),
        ]
    else:
        augs.append(ResizeLongestSide(size))
    return augs
