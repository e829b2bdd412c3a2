"""tools/caption_images.py on a tiny model: processes, resuming, bad files, prompts."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from sca.engine.batch import EXIT_ARGUMENTS, EXIT_OK, EXIT_SKIPPED, main
from sca.engine.batch.shards import repair

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "caption_images.py"
# few points and no thresholds: the tiny random model's anything mode finds regions
ANYTHING = [
    "MODEL.SCA.ANYTHING.POINTS_PER_SIDE", "4",
    "MODEL.SCA.ANYTHING.PRED_IOU_THRESH", "0.0",
    "MODEL.SCA.ANYTHING.STABILITY_SCORE_THRESH", "0.0",
]  # fmt: skip


def _env(data_root: Path) -> dict:
    return {**os.environ, "DETECTRON2_DATASETS": str(data_root), "OMP_NUM_THREADS": "1"}


def _args(config: Path, output: Path, *extra: str) -> list[str]:
    return ["--config-file", str(config), "--output", str(output), "--num-workers", "0", *extra]


def _run_tool(args: list[str], data_root: Path, expect: int = EXIT_OK) -> None:
    proc = subprocess.run(
        [sys.executable, str(TOOL), *args],
        env=_env(data_root),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == expect, proc.stdout[-2000:] + proc.stderr[-4000:]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Ten small images of a few sizes with coloured squares."""
    folder = tmp_path_factory.mktemp("images")
    rng = random.Random(0)
    for i in range(10):
        w, h = rng.choice([(64, 48), (50, 70), (64, 64), (40, 56)])
        image = Image.new("RGB", (w, h), (rng.randrange(256),) * 3)
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            x, y = rng.randrange(w - 10), rng.randrange(h - 10)
            draw.rectangle([x, y, x + 10, y + 10], fill=tuple(rng.randrange(256) for _ in "rgb"))
        image.save(folder / f"img{i}.png")
    return folder


@pytest.fixture(scope="module")
def one_process(tiny_sam_yaml, images, data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one_process")
    _run_tool([*_args(tiny_sam_yaml, out, "--input", str(images), "--batch-size", "1"), *ANYTHING],
              data_root)  # fmt: skip
    return out


def test_two_processes_and_batch_size_give_the_same_bytes(
    one_process, tiny_sam_yaml, images, data_root, tmp_path
):
    two = tmp_path / "two"
    args = _args(tiny_sam_yaml, two, "--input", str(images), "--num-gpus", "2", "--batch-size", "3")
    _run_tool([*args, "--num-workers", "1", *ANYTHING], data_root)
    assert len(list((two / "shards").glob("shard-*-of-00002.jsonl"))) == 2
    assert (two / "results.json").read_bytes() == (one_process / "results.json").read_bytes()
    results = json.loads((one_process / "results.json").read_text())
    assert {r["image_id"] for r in results} == set(range(10))
    summary = json.loads((one_process / "summary.json").read_text())
    assert summary["images_done"] == 10 and summary["images_skipped"] == 0
    assert summary["regions"] == len(results) > 0


def test_sigkill_then_rerun_gives_the_same_bytes(
    one_process, tiny_sam_yaml, images, data_root, tmp_path
):
    out = tmp_path / "killed"
    args = [*_args(tiny_sam_yaml, out, "--input", str(images), "--batch-size", "1"), *ANYTHING]
    proc = subprocess.Popen([sys.executable, str(TOOL), *args], env=_env(data_root),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    shard = out / "shards" / "shard-00000-of-00001.jsonl"
    deadline = time.monotonic() + 120
    while not (shard.exists() and shard.read_bytes().count(b"\n") >= 1):
        assert proc.poll() is None and time.monotonic() < deadline, "no shard line before the end"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert shard.read_bytes().count(b"\n") < 10, "killed after the last image"
    assert not (out / "results.json").exists()
    _run_tool(args, data_root)
    assert (out / "results.json").read_bytes() == (one_process / "results.json").read_bytes()

    with open(shard, "ab") as f:  # a torn line, as a kill during a write leaves it
        f.write(b'{"file_name": "img3.png", "regi')
    _run_tool(args, data_root)
    assert shard.read_bytes().endswith(b"}\n")
    assert len(repair(shard)) == 10
    assert (out / "results.json").read_bytes() == (one_process / "results.json").read_bytes()


def test_bad_files_are_listed_and_exit_3(tiny_sam_yaml, images, tmp_path, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    good = (images / "img0.png").read_bytes()
    (folder / "good.png").write_bytes(good)
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    (folder / "text.jpg").write_text("not an image\n")
    (folder / "empty.png").write_bytes(b"")
    Image.new("RGB", (120, 100)).save(folder / "huge.png")
    (folder / "notes.txt").write_text("not an input: not an image extension")
    out = tmp_path / "out"
    argv = _args(tiny_sam_yaml, out, "--input", str(folder), "--max-pixels", "10000", *ANYTHING)
    assert main(argv) == EXIT_SKIPPED
    summary = json.loads((out / "summary.json").read_text())
    reasons = {Path(k).name: v for k, v in summary["skipped"].items()}
    assert set(reasons) == {"truncated.png", "text.jpg", "empty.png", "huge.png"}
    assert reasons["truncated.png"].startswith("truncated or corrupt")
    assert reasons["text.jpg"] == "not an image"
    assert reasons["empty.png"] == "zero-size file"
    assert reasons["huge.png"].startswith("over the pixel limit (120x100 = 12000 > 10000)")
    assert summary["images_done"] == 1 and summary["images"] == 5


def _boxes(images: Path) -> dict[str, list[list[float]]]:
    return {f"img{i}.png": [[2.0, 3.0, 30.0, 25.5], [10.0, 10.0, 20.0, 40.0]] for i in range(4)}


def test_boxes_in_coco_json_and_jsonl_give_the_same_results(tiny_sam_yaml, images, tmp_path):
    boxes = _boxes(images)
    jsonl = tmp_path / "boxes.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"file_name": k, "boxes": v}) + "\n" for k, v in boxes.items())
    )
    coco = {"images": [], "annotations": []}
    for i, (name, name_boxes) in enumerate(boxes.items()):
        w, h = Image.open(images / name).size
        coco["images"].append({"id": i + 1, "file_name": name, "width": w, "height": h})
        for x1, y1, x2, y2 in name_boxes:
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": i + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "caption": "a square",
                }
            )
    (tmp_path / "boxes.json").write_text(json.dumps(coco))
    inputs = [f"--input={images}/img{i}.png" for i in range(4)]
    for form in ("boxes.jsonl", "boxes.json"):
        argv = _args(
            tiny_sam_yaml, tmp_path / f"out-{form}", *inputs, "--boxes", str(tmp_path / form)
        )
        assert main([*argv, "--batch-size", "2"]) == EXIT_OK
    first, second = (
        (tmp_path / f"out-{f}" / "results.json").read_bytes() for f in ("boxes.jsonl", "boxes.json")
    )
    assert first == second
    # the same file as a data set of the config (DATASETS.COCO_JSON), prompted with its boxes
    entries = f"(('mine', '{tmp_path / 'boxes.json'}', '{images}'),)"
    argv = _args(tiny_sam_yaml, tmp_path / "out-dataset", "--input", "dataset:mine", "--gt-boxes")
    assert main([*argv, "DATASETS.COCO_JSON", entries]) == EXIT_OK
    assert (tmp_path / "out-dataset" / "results.json").read_bytes() == first
    results = json.loads(first)
    assert len(results) == 8
    assert results[0]["bbox"] == [2.0, 3.0, 28.0, 22.5]  # the prompt box, XYWH, in the image frame


def test_bad_arguments_exit_2(tiny_sam_yaml, images, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"file_name": "img0.png", "boxes": [[1, 2, 3]]}\n')
    argv = _args(tiny_sam_yaml, tmp_path / "out", "--input", str(images), "--boxes", str(bad))
    assert main(argv) == EXIT_ARGUMENTS
    assert f"{bad}:1: boxes[0]" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(_args(tiny_sam_yaml, tmp_path / "out", "--input", str(images), "--gt-boxes"))
    assert e.value.code == EXIT_ARGUMENTS


def test_gt_boxes_give_the_captions_of_the_test_loader(
    tiny_sam_yaml, data_root, tmp_path, monkeypatch
):
    out = tmp_path / "gt"
    _run_tool(_args(tiny_sam_yaml, out, "--input", "dataset:sca_shapes_test", "--gt-boxes",
                    "--batch-size", "4"), data_root)  # fmt: skip
    by_file: dict[str, list[str]] = {}
    for r in json.loads((out / "results.json").read_text()):
        by_file.setdefault(r["file_name"], []).append(r["caption"])

    from sca.data.build import build_sca_test_loader
    from sca.engine.batch.caption import load_model
    from sca.model_zoo import resolve_config

    monkeypatch.setenv("DETECTRON2_DATASETS", str(data_root))
    cfg = resolve_config(str(tiny_sam_yaml), opts=["DATALOADER.NUM_WORKERS", "0"])
    model = load_model(cfg, "gt")
    checked = 0
    with torch.no_grad():
        for batch in build_sca_test_loader(cfg, "sca_shapes_test"):
            for x, output in zip(batch, model.inference(batch)):
                assert by_file[x["file_name"]] == output["instances"].pred_captions
                checked += 1
            if checked >= 6:
                break
    assert checked >= 6
