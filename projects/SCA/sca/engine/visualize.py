"""Draws predicted masks, boxes and captions on test images."""

import os

import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog
from detectron2.utils.visualizer import Visualizer
from torch import nn

from ..data import SCADatasetMapper, read_image


def draw_regions(image_rgb, instances) -> "object":
    """A Detectron2 VisImage with each region's mask, box and caption."""
    # small images are drawn larger so that captions stay legible
    vis = Visualizer(image_rgb, scale=max(1.0, 512 / max(image_rgb.shape[:2])))
    instances = instances.to("cpu")
    return vis.overlay_instances(
        masks=instances.pred_masks.numpy() if instances.has("pred_masks") else None,
        boxes=instances.pred_boxes,
        labels=list(instances.pred_captions),
    )


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
