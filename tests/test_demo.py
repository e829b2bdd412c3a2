"""tools/demo.py on real photos: JSON per image (one entry per prompt, RLE masks, boxes) and a
drawing that differs from the photo."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
import pytest
from conftest import SHARED_DATA
from detectron2.data import detection_utils
from PIL import Image

from sca.engine import demo

ROOT = Path(__file__).resolve().parents[1]
SAM_IMAGES = SHARED_DATA / "sam_demo_images"
COCO = SHARED_DATA / "coco_39769"

pytestmark = pytest.mark.skipif(
    not (SAM_IMAGES.is_dir() and COCO.is_dir()), reason=f"{SHARED_DATA} is absent"
)


def _coco_boxes() -> list[list[float]]:
    annotations = json.loads((COCO / "instances.json").read_text())["annotations"]
    return [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in annotations)]


def _check_outputs(out: Path, image_path: Path, num_prompts: int | None) -> list[dict]:
    stem = out / image_path.stem
    result = json.loads(stem.with_suffix(".json").read_text())
    image = detection_utils.read_image(str(image_path), format="RGB")
    h, w = image.shape[:2]
    assert (result["height"], result["width"]) == (h, w)
    regions = result["regions"]
    if num_prompts is not None:
        assert len(regions) == num_prompts
    for region in regions:
        mask = mask_util.decode(region["segmentation"])
        assert mask.shape == (h, w)
        x1, y1, x2, y2 = region["box"]
        assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h
        assert isinstance(region["caption"], str) and region["caption"]
        assert np.isfinite([region["score"], region["caption_score"]]).all()
    drawing = Image.open(stem.with_suffix(".png")).convert("RGB")
    assert drawing.size[0] / w == pytest.approx(drawing.size[1] / h, rel=0.01)
    resized = np.asarray(drawing.resize((w, h)), dtype=np.float32)
    assert np.abs(resized - image).mean() > 1.0  # masks, boxes and captions were drawn
    return regions


def test_demo_cli_boxes_on_real_photos_and_a_folder_with_other_files(tiny_sam_yaml, tmp_path):
    truck_boxes = [[425, 600, 700, 875], [75, 275, 1725, 850]]
    prompts = {
        "truck.jpg": truck_boxes,
        "dog.jpg": [[100, 200, 400, 534]],
        "groceries.jpg": [[10, 10, 200, 300], [50, 50, 60, 60], [0, 0, 5000, 5000]],
        "000000039769.png": _coco_boxes(),
    }
    prompt_file = tmp_path / "boxes.json"
    prompt_file.write_text(json.dumps(prompts))
    out = tmp_path / "out"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "demo.py"),
            "--config-file",
            str(tiny_sam_yaml),
            "--input",
            str(SAM_IMAGES),
            str(COCO),
            "--output",
            str(out),
            "--boxes",
            str(prompt_file),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=600,
    )
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    # the folders' licence, notes and annotation files are reported and skipped
    for other in ("LICENSE.segment-anything", "SOURCE_COMMIT", "instances.json"):
        assert f"{other} (corrupt or not an image)" in log
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{Path(n).stem}{ext}" for n in prompts for ext in (".json", ".png")
    )
    for name, boxes in prompts.items():
        folder = COCO if name.endswith(".png") else SAM_IMAGES
        regions = _check_outputs(out, folder / name, len(boxes))
        if name == "truck.jpg":  # boxes come back in the photo's frame
            got = np.array([r["box"] for r in regions])
            assert np.allclose(got, truck_boxes, atol=1800 / 64)


def _demo_main(argv: list[str]) -> None:
    assert demo.main(argv) == 0


def test_demo_points_and_anything(tiny_sam_yaml, tmp_path):
    coco = COCO / "000000039769.png"
    points = [[100, 100], [[300, 200], [320, 240, 0]], [639, 479]]
    with pytest.raises(ValueError, match="same number of points"):
        _demo_main(
            [
                *("--config-file", str(tiny_sam_yaml), "--input", str(coco)),
                *("--output", str(tmp_path / "bad"), "--points", json.dumps(points)),
            ]
        )
    points = [[[100, 100], [90, 90]], [[300, 200], [320, 240, 0]], [[639, 479], [10, 10]]]
    common = ["--config-file", str(tiny_sam_yaml), "--input", str(coco)]
    points_args = ["--output", str(tmp_path / "points"), "--points", json.dumps(points)]
    _demo_main([*common, *points_args, "--no-masks"])
    _check_outputs(tmp_path / "points", coco, len(points))

    anything = [
        *("MODEL.SCA.ANYTHING.POINTS_PER_SIDE", "6", "MODEL.SCA.ANYTHING.PRED_IOU_THRESH", "0.4"),
        *("MODEL.SCA.ANYTHING.STABILITY_SCORE_THRESH", "0.0"),
        *("MODEL.SCA.ANYTHING.BOX_NMS_THRESH", "1.0"),
    ]
    out = tmp_path / "anything"
    _demo_main([*common, "--output", str(out), "--anything", "--opts", *anything])
    regions = _check_outputs(out, coco, None)
    assert 0 < len(regions) < 3 * 36
    assert json.loads((out / "000000039769.json").read_text())["mode"] == "anything"
