"""Segment and caption regions of your own images: one PNG drawing and one JSON file per image.

``tools/demo.py`` runs it: :func:`main` takes its command line.

``--boxes``/``--points`` take JSON, inline or as a file name: a list applied to every image, or
an object mapping an image's file name to its list. A box is ``[x1, y1, x2, y2]``; a point
prompt is ``[x, y]`` or a list of ``[x, y]`` / ``[x, y, label]`` (label 1 foreground, 0
background). Without prompts, ``--anything`` is implied. The JSON of each image lists, per
region, its XYXY box, its mask as RLE (pycocotools' format, ``counts`` as a string), caption,
caption score (mean token log-probability) and SAM's predicted IoU.
"""

import argparse
import glob
import json
import logging
import os

import numpy as np
import pycocotools.mask as mask_util
from detectron2.structures import Instances
from detectron2.utils.logger import setup_logger
from tqdm import tqdm

from ..data import ImageReadError
from ..model_zoo import resolve_config
from .predictor import SCAPredictor
from .visualize import draw_regions

logger = logging.getLogger("sca.demo")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config-file", required=True, metavar="FILE", help="config YAML or model-zoo name"
    )
    parser.add_argument(
        "--input", nargs="+", required=True, help="image files, globs ('dir/*.jpg') or folders"
    )
    parser.add_argument("--output", required=True, help="folder for the PNG and JSON files")
    parser.add_argument("--boxes", help="JSON (inline or a file): XYXY box prompts")
    parser.add_argument("--points", help="JSON (inline or a file): point prompts")
    parser.add_argument(
        "--anything", action="store_true", help="caption every region SAM finds by itself"
    )
    parser.add_argument(
        "--no-masks", action="store_true", help="draw boxes and captions only (JSON keeps masks)"
    )
    parser.add_argument(
        "--opts", default=[], nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ..."
    )
    return parser


def expand_inputs(patterns: list[str]) -> list[str]:
    """Files named directly, matched by globs, or inside folders (not recursive), sorted."""
    files = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            files += sorted(
                os.path.join(pattern, f)
                for f in os.listdir(pattern)
                if os.path.isfile(os.path.join(pattern, f))
            )
        elif glob.has_magic(pattern):
            matches = sorted(glob.glob(os.path.expanduser(pattern)))
            if not matches:
                raise FileNotFoundError(f"--input {pattern!r} matches no file")
            files += matches
        else:
            if not os.path.isfile(pattern):
                raise FileNotFoundError(f"--input {pattern!r}: no such file or folder")
            files.append(pattern)
    return files


def load_prompts(value: str | None, flag: str):
    """JSON given inline or as a file name."""
    if value is None:
        return None
    text = value
    if os.path.isfile(value):
        with open(value) as f:
            text = f.read()
    try:
        prompts = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{flag}: neither a JSON file nor valid JSON ({e}): {value[:80]!r}") from e
    if not isinstance(prompts, list | dict):
        raise ValueError(f"{flag}: expected a JSON list or an object of lists, got {value[:80]!r}")
    return prompts


def prompts_for(prompts, file_name: str):
    """The prompt list of one image: the list itself, or its entry by path or file name."""
    if prompts is None or isinstance(prompts, list):
        return prompts
    for key in (file_name, os.path.basename(file_name)):
        if key in prompts:
            return prompts[key]
    return None


def split_points(points: list) -> tuple[list, list]:
    """``[x, y]`` or ``[[x, y(, label)], ...]`` per prompt -> (N, P, 2) points, (N, P) labels."""
    coords, labels = [], []
    for prompt in points:
        rows = [prompt] if prompt and not isinstance(prompt[0], list) else prompt
        if not rows or any(len(r) not in (2, 3) for r in rows):
            raise ValueError(f"point prompt {prompt!r}: expected [x, y] or [[x, y, label], ...]")
        coords.append([r[:2] for r in rows])
        labels.append([r[2] if len(r) == 3 else 1 for r in rows])
    if len({len(c) for c in coords}) > 1:
        raise ValueError("every point prompt needs the same number of points")
    return coords, labels


def regions_json(file_name: str, instances: Instances, mode: str) -> dict:
    instances = instances.to("cpu")
    masks = np.asfortranarray(instances.pred_masks.numpy().astype(np.uint8).transpose(1, 2, 0))
    rles = mask_util.encode(masks) if len(instances) else []
    regions = []
    for i, rle in enumerate(rles):
        rle["counts"] = rle["counts"].decode("ascii")
        regions.append(
            {
                "box": [round(float(v), 2) for v in instances.pred_boxes.tensor[i]],
                "segmentation": rle,
                "caption": instances.pred_captions[i],
                "caption_score": float(instances.caption_scores[i]),
                "score": float(instances.scores[i]),
            }
        )
    h, w = instances.image_size
    return {"file_name": file_name, "height": h, "width": w, "mode": mode, "regions": regions}


def run_image(predictor: SCAPredictor, boxes, points) -> tuple[Instances, str]:
    """Regions of the predictor's current image: prompted, or anything mode without prompts."""
    if boxes is None and points is None:
        return predictor.anything(), "anything"
    kwargs = {}
    if boxes is not None:
        kwargs["boxes"] = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if points is not None:
        kwargs["points"], kwargs["point_labels"] = split_points(points)
    return predictor.predict(**kwargs), "prompts"


def main(argv: list[str] | None = None) -> int:
    """Run the demo with command-line arguments ``argv`` (default ``sys.argv[1:]``). Bad
    prompts or inputs raise ``ValueError`` / ``FileNotFoundError`` before the model is built."""
    args = get_parser().parse_args(argv)
    setup_logger(name="sca")
    boxes = load_prompts(args.boxes, "--boxes")
    points = load_prompts(args.points, "--points")
    if args.anything and (boxes is not None or points is not None):
        raise ValueError("--anything takes no --boxes/--points")
    for per_image in points.values() if isinstance(points, dict) else [points or []]:
        split_points(per_image)  # malformed point prompts fail before the model is built
    files = expand_inputs(args.input)
    cfg = resolve_config(args.config_file, opts=args.opts)
    predictor = SCAPredictor(cfg)
    os.makedirs(args.output, exist_ok=True)
    skipped = []
    for file_name in tqdm(files, desc="images", unit="image", disable=len(files) < 2):
        try:
            predictor.set_image(file_name)
        except ImageReadError as e:
            logger.warning(f"skipped: {e}")
            skipped.append(file_name)
            continue
        image_boxes, image_points = prompts_for(boxes, file_name), prompts_for(points, file_name)
        if image_boxes is None and image_points is None and not args.anything:
            if boxes is not None or points is not None:
                logger.warning(f"{file_name}: the prompt files name no prompt for it; skipped")
                continue
        instances, mode = run_image(predictor, image_boxes, image_points)
        stem = os.path.join(args.output, os.path.splitext(os.path.basename(file_name))[0])
        draw_regions(predictor.image_rgb(), instances, not args.no_masks).save(stem + ".png")
        with open(stem + ".json", "w") as f:
            json.dump(regions_json(file_name, instances, mode), f)
        logger.info(f"{file_name}: {len(instances)} regions -> {stem}.png, {stem}.json")
    if skipped:
        logger.warning(f"{len(skipped)} file(s) were not images: {', '.join(skipped)}")
    return 0
