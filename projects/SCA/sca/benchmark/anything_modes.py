"""Anything mode per image through an :class:`~sca.engine.SCAPredictor`: captions for the
surviving regions only (this project) against captions for every grid point before filtering
(``MODEL.SCA.ANYTHING.CAPTION_ALL_POINTS``, as the official release does)."""

from __future__ import annotations

import dataclasses
import time

import torch

from ..data.inference_input import ImageLike
from ..engine import SCAPredictor
from ..modeling.anything import AnythingParams


class RowCounter:
    """Rows that pass through a module (here: the caption queries that reach the LM)."""

    def __init__(self, module: torch.nn.Module):
        self.rows = 0
        module.register_forward_pre_hook(self._count)

    def _count(self, _module, args) -> None:
        self.rows += args[0].shape[0]


class AnythingModeTimer:
    """Times the predictor's anything mode in its two captioning modes (``modes``: survivors
    only, then every point), counting the regions captioned."""

    def __init__(self, predictor: SCAPredictor):
        self.predictor = predictor
        self._lm_rows = RowCounter(predictor.model.roi_heads.captioner.language_project)
        survivors = predictor.anything_params
        self.modes = (survivors, dataclasses.replace(survivors, caption_all_points=True))

    def set_image(self, image: ImageLike) -> float:
        """Encode ``image`` once for the runs that follow; returns the seconds it took."""
        start = time.perf_counter()
        self.predictor.set_image(image)
        return time.perf_counter() - start

    def run(self, params: AnythingParams) -> tuple[float, int, int]:
        """Anything mode on the current image: seconds (without the encoder), regions found and
        regions captioned."""
        self._lm_rows.rows = 0
        start = time.perf_counter()
        regions = self.predictor.anything(params)
        return time.perf_counter() - start, len(regions), self._lm_rows.rows
