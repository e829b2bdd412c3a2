"""SCAPredictor: Detectron2's ``DefaultPredictor`` for SCA, with SAM's encode-once interface."""

from __future__ import annotations

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import transforms as T
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

from ..checkpoint import SCACheckpointer
from ..data.inference_input import ImageLike, load_image, model_input
from ..model_zoo import resolve_config
from ..modeling.anything import AnythingGenerator, AnythingParams


class SCAPredictor:
    """Encode an image once, then segment and caption any number of prompts on it.

    ``cfg`` is a config node, a YAML file or a model-zoo name (``SCAPredictor("sca_gpt2_large_vg")``
    downloads and converts the release once). Like Detectron2's ``DefaultPredictor``: the model
    is built from ``cfg`` in eval mode on
    ``MODEL.DEVICE``, ``MODEL.WEIGHTS`` is loaded, and array images are BGR (``cv2.imread``'s
    order) and converted to ``INPUT.FORMAT``. Files and PIL images may be any format Pillow reads
    (EXIF orientation applied). Prompts and outputs are in the image's own pixel frame::

        predictor = SCAPredictor(cfg)
        predictor.set_image("photo.jpg")
        out = predictor.predict(boxes=[[10, 20, 200, 240]])
        out.pred_captions, out.pred_masks, out.pred_boxes, out.scores, out.caption_scores
        regions = predictor.anything()
    """

    def __init__(self, cfg: CfgNode | str, trained: bool = True):
        self.cfg = resolve_config(cfg, trained)
        self.model = build_model(self.cfg).eval()
        if self.cfg.MODEL.WEIGHTS:
            SCACheckpointer(self.model).load(self.cfg.MODEL.WEIGHTS)
        self.input_format = self.cfg.INPUT.FORMAT
        self.anything_params = AnythingParams.from_config(self.cfg)
        self.image: np.ndarray | None = None
        self._inputs: dict | None = None
        self._transform: T.Transform | None = None
        self._embedding: torch.Tensor | None = None

    @torch.no_grad()
    def set_image(self, image: ImageLike) -> None:
        """Read ``image`` (path, PIL image or BGR array) and run the image encoder once."""
        self.image = load_image(image, self.input_format)
        self._inputs, self._transform = model_input(self.image, self.model.image_size)
        self._embedding = self.model.image_embeddings([self._inputs])

    def image_rgb(self) -> np.ndarray:
        """The current image in RGB order (for drawing)."""
        if self.image is None:
            raise RuntimeError("no image: call set_image(image) first")
        return self.image[:, :, ::-1] if self.input_format == "BGR" else self.image

    @torch.no_grad()
    def predict(
        self,
        boxes: np.ndarray | torch.Tensor | list | None = None,
        points: np.ndarray | torch.Tensor | list | None = None,
        point_labels: np.ndarray | torch.Tensor | list | None = None,
    ) -> Instances:
        """Masks, boxes and captions for N prompts on the image of the last :meth:`set_image`.

        Args:
            boxes: (N, 4) XYXY pixel boxes, or None.
            points: (N, P, 2) XY pixel points (or (N, 2): one point per prompt), or None. With
                boxes as well, prompt i has box i and points i.
            point_labels: (N, P) 1 foreground / 0 background; all 1 when None.

        Returns:
            ``Instances`` of the image size with ``pred_masks`` (N, H, W) bool, ``pred_boxes``
            (the prompt box, or the box around the mask for point prompts), ``pred_captions``,
            ``caption_scores`` (mean token log-probability), ``scores`` (SAM's predicted IoU of
            the chosen mask), ``iou_predictions`` (N, 3) and ``mask_logits`` (N, 3, h, w).
        """
        if self._embedding is None:
            raise RuntimeError("SCAPredictor.predict needs an image first: call set_image(image)")
        proposals = Instances(tuple(self._inputs["image"].shape[-2:]))
        n = None
        if boxes is not None:
            boxes = _as_array(boxes, "boxes", (-1, 4))
            proposals.proposal_boxes = Boxes(torch.as_tensor(self._transform.apply_box(boxes)))
            n = len(boxes)
        if points is not None:
            points = _as_array(points, "points", None)
            if points.ndim == 2:
                points = points[:, None, :]
            if points.ndim != 3 or points.shape[2] != 2:
                raise ValueError(f"points have shape {points.shape}: expected (N, P, 2) or (N, 2)")
            if n is not None and len(points) != n:
                raise ValueError(f"{n} boxes but {len(points)} point sets: expected one per box")
            if point_labels is None:
                labels = np.ones(points.shape[:2], dtype=np.int64)
            else:
                labels = _as_array(point_labels, "point_labels", None).reshape(points.shape[:2])
            coords = self._transform.apply_coords(points.reshape(-1, 2).copy())
            proposals.proposal_points = torch.as_tensor(coords).reshape(points.shape).float()
            proposals.proposal_point_labels = torch.as_tensor(labels).long()
        if boxes is None and points is None:
            raise ValueError("predict needs boxes and/or points")
        inputs = dict(self._inputs, proposals=proposals)
        return self.model.inference([inputs], image_embeddings=self._embedding)[0]["instances"]

    def anything(self, params: AnythingParams | None = None) -> Instances:
        """Every region SAM finds in the current image, captioned (see
        :meth:`~sca.modeling.anything.AnythingGenerator.generate`); the whole-image embedding
        of :meth:`set_image` is reused."""
        if self.image is None:
            raise RuntimeError("SCAPredictor.anything needs an image first: call set_image(image)")
        generator = AnythingGenerator(self.model, params or self.anything_params)
        return generator.generate(self.image, self._embedding)

    def __call__(self, image: ImageLike, **prompts) -> Instances:
        """``set_image(image)`` then ``predict(**prompts)``, or ``anything()`` without prompts."""
        self.set_image(image)
        return self.predict(**prompts) if prompts else self.anything()


def _as_array(value, name: str, shape: tuple[int, ...] | None) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
        if shape is not None:
            array = array.reshape(shape)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"{name}={value!r}: expected numbers of shape {shape or '(N, ...)'}"
        ) from e
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contain NaN or inf: {array.tolist()}")
    return array
