"""Region prompts read from an input's ``Instances`` (ground truth or given proposals)."""

import torch
from detectron2.structures import Boxes, Instances
from torch import Tensor

from .postprocess import input_size
from .sam_regions import RegionPrompts


def prompts_from_fields(
    inst: Instances, prefix: str, x: dict, device: torch.device, out_of_image_boxes: str = "clip"
) -> RegionPrompts:
    """The prompts in ``inst``'s fields ``<prefix>_boxes`` and/or ``<prefix>_points`` and
    ``<prefix>_point_labels`` of input ``x``, checked where they are (the loader's CPU tensors: no
    GPU sync), then moved to ``device``. ``<prefix>_prompt_boxes``, where present, prompt in
    place of ``<prefix>_boxes`` (training's noisy boxes; the exact ones stay the targets). Boxes
    partly outside the image are clipped, or rejected when ``out_of_image_boxes`` is "error";
    boxes empty after clipping are rejected."""
    boxes = None
    for name in (f"{prefix}_prompt_boxes", f"{prefix}_boxes"):
        if inst.has(name):
            boxes = inst.get(name).tensor
            break
    if boxes is not None:
        boxes = _checked_boxes(boxes.float(), input_size(x), x, out_of_image_boxes)
    points = labels = None
    if inst.has(f"{prefix}_points"):
        points = inst.get(f"{prefix}_points").float()
        labels = inst.get(f"{prefix}_point_labels").long()
    return RegionPrompts(boxes=boxes, points=points, point_labels=labels).to(device)


def _checked_boxes(boxes: Tensor, hw: tuple[int, int], x: dict, out_of_image_boxes: str) -> Tensor:
    where = x.get("file_name", x.get("image_id", "?"))
    if not torch.isfinite(boxes).all():
        raise ValueError(f"{where}: prompt boxes contain NaN or inf: {boxes.tolist()}")
    clipped = Boxes(boxes.clone())
    clipped.clip(hw)
    changed = (clipped.tensor != boxes).any(dim=1)
    if changed.any() and out_of_image_boxes == "error":
        i = int(changed.nonzero()[0])
        raise ValueError(f"{where}: box {i} {boxes[i].tolist()} leaves the {hw} image")
    empty = ~clipped.nonempty()
    if empty.any():
        i = int(empty.nonzero()[0])
        raise ValueError(
            f"{where}: box {i} {boxes[i].tolist()} is degenerate (x2<=x1 or y2<=y1) "
            f"after clipping to the {hw[0]}x{hw[1]} input; expected XYXY pixel boxes"
        )
    return clipped.tensor
