"""Turns SCA dataset dicts into model inputs (image tensor plus region boxes and captions)."""

from __future__ import annotations

import logging
import numbers

import numpy as np
import torch
from detectron2.config import CfgNode, configurable
from detectron2.data import detection_utils
from detectron2.data import transforms as T
from detectron2.structures import BitMasks, Boxes, BoxMode, Instances

from .captions import is_valid_unicode
from .errors import AnnotationError
from .image_io import read_image
from .points import jitter_boxes, sample_points_in_boxes
from .transforms import build_sca_augmentations

logger = logging.getLogger(__name__)

# Test-time point prompts must not depend on the global random state.
_TEST_POINT_SEED = 0


def _annotation_boxes(annotations: list[dict], file_name: str) -> np.ndarray:
    boxes = []
    for ann in annotations:
        try:
            bbox = ann["bbox"]
            if isinstance(bbox, (str, bytes, dict)) or len(bbox) != 4:
                raise ValueError(f"bbox {bbox!r} is not 4 numbers")
            if not all(isinstance(v, numbers.Real) for v in bbox):
                raise ValueError(f"bbox {bbox!r} holds a value that is not a number")
            box = BoxMode.convert(list(bbox), ann["bbox_mode"], BoxMode.XYXY_ABS)
        except (KeyError, TypeError, ValueError, AssertionError) as e:
            raise AnnotationError(
                f"{file_name}: annotation id {ann.get('id')} needs 'bbox' (4 numbers) and "
                f"'bbox_mode' ({e!r})"
            ) from e
        boxes.append(box)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    bad = ~np.isfinite(boxes).all(axis=1)
    if bad.any():
        ann = annotations[int(np.flatnonzero(bad)[0])]
        raise AnnotationError(
            f"{file_name}: annotation id {ann.get('id')} has a NaN or infinite bbox {ann['bbox']}"
        )
    return boxes


def _check_record(dataset_dict: object) -> list:
    """The annotations of a dataset dict that has what the mapper reads."""
    if not isinstance(dataset_dict, dict) or not isinstance(dataset_dict.get("file_name"), str):
        raise AnnotationError(f"dataset dict {str(dataset_dict)[:200]}: needs a 'file_name' string")
    file_name = dataset_dict["file_name"]
    if "image_id" not in dataset_dict:
        raise AnnotationError(f"{file_name}: the dataset dict needs an 'image_id'")
    if ("height" in dataset_dict) != ("width" in dataset_dict):
        raise AnnotationError(f"{file_name}: the dataset dict needs both 'height' and 'width'")
    annotations = dataset_dict.get("annotations", [])
    if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
        raise AnnotationError(f"{file_name}: 'annotations' must be a list of dicts")
    return annotations


def _annotation_masks(
    annotations: list[dict],
    transforms: T.TransformList,
    image_size: tuple[int, int],
    file_name: str,
) -> BitMasks:
    """Each annotation's ``segmentation`` (polygons or RLE), transformed with the image."""
    transformed = []
    for ann in annotations:
        if "segmentation" not in ann:
            raise AnnotationError(
                f"{file_name}: annotation id {ann.get('id')} has no 'segmentation' (polygons or "
                "RLE), which MODEL.SCA.MASK_LOSS.ENABLED needs"
            )
        transformed.append(
            detection_utils.transform_instance_annotations(
                {**ann, "category_id": 0}, transforms, image_size
            )
        )
    if not transformed:
        return BitMasks(torch.zeros((0, *image_size), dtype=torch.bool))
    return detection_utils.annotations_to_instances(
        transformed, image_size, mask_format="bitmask"
    ).gt_masks


def _check_captions(ann: dict, file_name: str) -> list[str]:
    captions = ann.get("captions")
    if (
        not isinstance(captions, list)
        or not captions
        or not all(isinstance(c, str) and c and is_valid_unicode(c) for c in captions)
    ):
        raise AnnotationError(
            f"{file_name}: annotation id {ann.get('id')} needs 'captions', a non-empty list of "
            f"non-empty strings; got {captions!r}"
        )
    return captions


class SCADatasetMapper:
    """Map an SCA dataset dict to ``{"image", "height", "width", "image_id", "file_name"}`` plus
    ``"instances"`` (training) or ``"proposals"`` (test).

    Training: the augmentations of :func:`~sca.data.transforms.build_sca_augmentations`; boxes are
    transformed, clipped, and regions left empty are dropped; at most ``num_regions_per_image``
    regions are sampled, each with one of its captions drawn at random. ``"instances"`` holds
    ``gt_boxes``, ``gt_captions``, with point prompts on ``gt_points`` / ``gt_point_labels``, with
    ``box_prompt_noise`` the prompts' noisy copy of the boxes on ``gt_prompt_boxes``, and
    with ``with_masks`` ``gt_masks`` (BitMasks from each annotation's ``segmentation``, polygons
    or RLE, transformed with the image).
    An image without any region left returns None, which makes Detectron2's ``MapDataset`` draw
    another image.

    Test: the longest side resized to ``IMAGE_SIZE``; ``"proposals"`` holds every annotation's
    clipped box, in order, as ``proposal_boxes`` (plus ``proposal_points`` /
    ``proposal_point_labels``). Captions are never altered by the flip.
    """

    @configurable
    def __init__(
        self,
        is_train: bool,
        *,
        augmentations: list[T.Augmentation],
        image_format: str = "RGB",
        num_regions_per_image: int = 16,
        num_points_per_region: int = 0,
        box_prompt_noise: float = 0.0,
        with_masks: bool = False,
    ):
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.num_regions_per_image = num_regions_per_image
        self.num_points_per_region = num_points_per_region
        self.box_prompt_noise = box_prompt_noise
        self.with_masks = with_masks
        mode = "training" if is_train else "inference"
        logger.info(f"SCADatasetMapper ({mode}) augmentations: {augmentations}")

    @classmethod
    def from_config(cls, cfg: CfgNode, is_train: bool = True) -> dict:
        return {
            "is_train": is_train,
            "augmentations": build_sca_augmentations(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "num_regions_per_image": cfg.INPUT.NUM_REGIONS_PER_IMAGE,
            "num_points_per_region": cfg.INPUT.NUM_POINTS_PER_REGION,
            "box_prompt_noise": cfg.INPUT.BOX_PROMPT_NOISE,
            "with_masks": cfg.MODEL.SCA.MASK_LOSS.ENABLED,
        }

    def __call__(self, dataset_dict: dict) -> dict | None:
        annotations = _check_record(dataset_dict)
        file_name = dataset_dict["file_name"]
        image = read_image(file_name, format=self.image_format)
        detection_utils.check_image_size(dataset_dict, image)
        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        out = {
            "image": torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "height": dataset_dict["height"],
            "width": dataset_dict["width"],
            "image_id": dataset_dict["image_id"],
            "file_name": file_name,
        }
        captions = [_check_captions(ann, file_name) for ann in annotations]
        boxes = Boxes(
            torch.as_tensor(transforms.apply_box(_annotation_boxes(annotations, file_name)))
        )
        boxes.clip(image.shape[:2])
        if self.is_train:
            masks = None
            if self.with_masks:
                masks = _annotation_masks(annotations, transforms, image.shape[:2], file_name)
            instances = self._sample_regions(boxes, captions, image.shape[:2], file_name, masks)
            if instances is None:
                return None
            out["instances"] = instances
        else:
            out["proposals"] = self._proposals(boxes, image.shape[:2])
        return out

    def _sample_regions(
        self,
        boxes: Boxes,
        captions: list[list[str]],
        image_size: tuple[int, int],
        file_name: str,
        masks: BitMasks | None = None,
    ) -> Instances | None:
        keep = np.flatnonzero(boxes.nonempty().numpy())
        if len(keep) < len(boxes):
            logger.debug(
                "%s: %d of %d regions are empty after augmentation and left out of this sample",
                file_name,
                len(boxes) - len(keep),
                len(boxes),
            )
        if len(keep) == 0:
            return None
        if len(keep) > self.num_regions_per_image:
            keep = np.random.choice(keep, self.num_regions_per_image, replace=False)
        instances = Instances(image_size)
        instances.gt_boxes = boxes[torch.as_tensor(keep, dtype=torch.long)]
        instances.gt_captions = [captions[i][np.random.randint(len(captions[i]))] for i in keep]
        if masks is not None:
            instances.gt_masks = masks[torch.as_tensor(keep, dtype=torch.long)]
        if self.box_prompt_noise > 0:
            rng = np.random.default_rng(np.random.randint(2**31))
            noisy = jitter_boxes(
                instances.gt_boxes.tensor.numpy(), self.box_prompt_noise, image_size, rng
            )
            instances.gt_prompt_boxes = Boxes(torch.as_tensor(noisy))
        if self.num_points_per_region > 0:
            rng = np.random.default_rng(np.random.randint(2**31))
            points = sample_points_in_boxes(
                instances.gt_boxes.tensor.numpy(), self.num_points_per_region, rng
            )
            instances.gt_points = torch.as_tensor(points)
            instances.gt_point_labels = torch.ones(points.shape[:2], dtype=torch.int64)
        return instances

    def _proposals(self, boxes: Boxes, image_size: tuple[int, int]) -> Instances:
        proposals = Instances(image_size)
        proposals.proposal_boxes = boxes
        if self.num_points_per_region > 0:
            rng = np.random.default_rng(_TEST_POINT_SEED)
            points = sample_points_in_boxes(
                boxes.tensor.numpy(), self.num_points_per_region, rng, center_first=True
            )
            proposals.proposal_points = torch.as_tensor(points)
            proposals.proposal_point_labels = torch.ones(points.shape[:2], dtype=torch.int64)
        return proposals
