"""``tools/caption_images.py``: the batch job on every process of Detectron2's ``launch``.

Each process captions the images it owns (:func:`~.shards.owner`) into its own shard, skipping
those a previous run wrote; after all have finished, rank 0 merges the shards.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

import torch.distributed as dist
from detectron2.config import CfgNode
from detectron2.engine import launch
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ...data import register_config_datasets
from ...model_zoo import resolve_config
from ..distributed import limit_cpu_threads
from .args import EXIT_ARGUMENTS, EXIT_OK, EXIT_SKIPPED, parse_args
from .boxes_file import attach_boxes, read_boxes_file
from .caption import caption_items, load_model
from .inputs import InputItem, collect_inputs
from .loader import ImageItems, build_loader
from .merge import merge
from .shards import ShardWriter, owner, read_shard, shard_path

logger = logging.getLogger(__name__)


def job_config(args: argparse.Namespace) -> CfgNode:
    """The config of ``--config-file`` with the command line's ``KEY VALUE`` overrides."""
    cfg = resolve_config(args.config_file, opts=args.opts or [])
    cfg.OUTPUT_DIR = args.output
    register_config_datasets(cfg)  # before dataset:NAME inputs are looked up, in every process
    cfg.freeze()
    return cfg


def job_inputs(args: argparse.Namespace) -> list[InputItem]:
    """Every input item, sorted by key, with its box prompts for ``--boxes`` / ``--gt-boxes``."""
    items = collect_inputs(args.input, gt_boxes=args.gt_boxes)
    if args.boxes:
        items = attach_boxes(items, read_boxes_file(args.boxes), args.boxes)
    return items


def _this_run(stats: list[dict]) -> dict:
    seconds = max(s["seconds"] for s in stats)
    images = sum(s["images"] + s["skipped"] for s in stats)
    regions = sum(s["regions"] for s in stats)
    return {
        "images": images,
        "regions": regions,
        "seconds": round(seconds, 3),
        "images_per_s": round(images / seconds, 3) if seconds else None,
        "regions_per_s": round(regions / seconds, 3) if seconds else None,
    }


def run_job(args: argparse.Namespace) -> None:
    """One process's part of the job (the function ``launch`` runs)."""
    cfg = job_config(args)
    rank, world = comm.get_rank(), comm.get_world_size()
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=rank, name="sca")
    limit_cpu_threads()
    items = job_inputs(args)
    path = shard_path(cfg.OUTPUT_DIR, rank, world)
    done = {key for key, line in read_shard(path).items() if "skipped" not in line}
    mine = [i for i in items if owner(i.key, world) == rank]
    todo = [i for i in mine if i.key not in done]
    out = Path(cfg.OUTPUT_DIR)
    if comm.is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(cfg.dump())
        logger.info(
            "Captioning %d images on %d processes into %s; results go to %s and %s",
            len(items),
            world,
            path.parent,
            out / "results.json",
            out / "summary.json",
        )
    logger.info("Rank %d: %d images, %d already done", rank, len(mine), len(mine) - len(todo))
    model = load_model(cfg, args.prompt_source)
    dataset = ImageItems(
        todo,
        model.image_size,
        cfg.INPUT.FORMAT,
        args.max_pixels,
        f"no boxes in {args.boxes}" if args.boxes else None,
    )
    batch_size = args.batch_size or cfg.TEST.SCA.IMS_PER_BATCH
    workers = cfg.DATALOADER.NUM_WORKERS if args.num_workers is None else args.num_workers
    writer = ShardWriter(path)
    try:
        stats = caption_items(
            model,
            build_loader(dataset, batch_size, workers),
            writer,
            len(todo),
            comm.is_main_process(),
        )
    finally:
        writer.close()
    comm.synchronize()
    gathered = comm.gather(asdict(stats), dst=0)
    if comm.is_main_process():
        _merge_and_report(args, out, items, gathered)
    if comm.get_world_size() > 1:
        # every rank leaves together, its process group closed: a rank that exits while gloo's
        # threads still run can abort ("terminate called without an active exception")
        comm.synchronize()
        dist.destroy_process_group()


def _merge_and_report(
    args: argparse.Namespace, out: Path, items: list[InputItem], stats: list[dict]
) -> None:
    prompts = "boxes" if args.boxes else "gt-boxes" if args.gt_boxes else "anything"
    extra = {
        "this_run": _this_run(stats),
        "config_file": args.config_file,
        "opts": list(args.opts or []),
        "prompts": prompts,
        "world_size": len(stats),
    }
    summary = merge(out, items, len(stats), extra)
    logger.info(
        "Wrote %s: %d regions on %d images (%d skipped, listed in %s)",
        out / "results.json",
        summary["regions"],
        summary["images_done"],
        summary["images_skipped"],
        out / "summary.json",
    )


def main(argv: list[str] | None = None) -> int:
    """Runs the job on ``--num-gpus`` processes per machine; returns the exit code."""
    args = parse_args(argv)
    try:  # argument errors before any process starts
        job_config(args)
        job_inputs(args)
    except (OSError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ARGUMENTS
    summary_path = Path(args.output) / "summary.json"
    if args.machine_rank == 0:
        summary_path.unlink(missing_ok=True)
    launch(
        run_job,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
    if args.machine_rank != 0:
        return EXIT_OK
    summary = json.loads(summary_path.read_text())
    return EXIT_SKIPPED if summary["images_skipped"] else EXIT_OK
