"""Draws predicted masks, boxes and captions on test images."""

import os

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog
from detectron2.structures import Instances
from detectron2.utils.colormap import random_color
from detectron2.utils.visualizer import VisImage, Visualizer
from matplotlib.transforms import Bbox
from torch import nn

from ..data import SCADatasetMapper, read_image


def draw_regions(image_rgb: np.ndarray, instances: Instances, draw_masks: bool = True) -> VisImage:
    """A Detectron2 VisImage with each region's mask (unless not ``draw_masks``), box and caption.

    Captions are placed where they overlap no other caption (at the box's top-left corner, below
    the box, above it, or at the mask's center, the first that fits); a caption that fits nowhere
    is left out rather than drawn over another."""
    # small images are drawn larger so that captions stay legible
    vis = Visualizer(image_rgb, scale=max(1.0, 512 / max(image_rgb.shape[:2])))
    instances = instances.to("cpu")
    colors = [random_color(rgb=True, maximum=1) for _ in range(len(instances))]
    masks = None
    if draw_masks and instances.has("pred_masks"):
        masks = instances.pred_masks.numpy()
    vis.overlay_instances(masks=masks, boxes=instances.pred_boxes, assigned_colors=colors)
    _place_labels(vis, instances.pred_boxes.tensor.numpy(), list(instances.pred_captions), colors)
    return vis.output


def _place_labels(
    vis: Visualizer, boxes: np.ndarray, labels: list[str], colors: list[np.ndarray]
) -> None:
    renderer = vis.output.fig.canvas.get_renderer()
    frame = Bbox.from_bounds(
        0, 0, vis.output.width * vis.output.scale, vis.output.height * vis.output.scale
    )
    font_size = max(vis._default_font_size * 0.75, 8 / vis.output.scale)
    placed: list[Bbox] = []
    for (x0, y0, x1, y1), label, color in zip(boxes, labels, colors):
        text_height = 1.6 * font_size
        for x, y in ((x0, y0), (x0, y1), (x0, y0 - text_height), ((x0 + x1) / 2, (y0 + y1) / 2)):
            vis.draw_text(
                label, (x, y), font_size=font_size, color=color, horizontal_alignment="left"
            )
            text = vis.output.ax.texts[-1]
            extent = text.get_window_extent(renderer)
            inside = frame.contains(extent.x0, extent.y0) and frame.contains(extent.x1, extent.y1)
            padded = extent.padded(0.3 * font_size * vis.output.scale)  # the text's background
            if inside and not any(padded.overlaps(other) for other in placed):
                placed.append(padded)
                break
            text.remove()


def save_visualizations(
    cfg: CfgNode, model: nn.Module, dataset_name: str, folder: str
) -> list[str]:
    """Run the model on the first ``TEST.SCA.NUM_VIS_IMAGES`` images of a data set (prompted
    with their ground-truth boxes) and write the drawings as PNG files."""
    os.makedirs(folder, exist_ok=True)
    mapper = SCADatasetMapper(cfg, False)
    was_training = model.training
    model.eval()
    paths = []
    for record in DatasetCatalog.get(dataset_name)[: cfg.TEST.SCA.NUM_VIS_IMAGES]:
        with torch.no_grad():
            instances = model([mapper(dict(record))])[0]["instances"]
        image = read_image(record["file_name"], format="RGB")
        path = os.path.join(folder, f"{record['image_id']}.png")
        draw_regions(image, instances).save(path)
        paths.append(path)
    model.train(was_training)
    return paths
