#!/usr/bin/env python
"""Train and evaluate Segment and Caption Anything with Detectron2's engine.

    python tools/train_net.py --config-file configs/sca_vg.yaml --num-gpus 8
    python tools/train_net.py --config-file configs/sca_vg.yaml --eval-only MODEL.WEIGHTS ckpt.pth
    python tools/train_net.py --config-file configs/sca_demo.yaml          # CPU, no downloads
    torchrun --nproc-per-node 8 --max-restarts 3 tools/train_net.py --config-file ... --resume

Without CUDA, ``--num-gpus N`` starts N CPU processes that train together over gloo. Under
torchrun (or srun) the processes join through env://. Exit codes: 0 done, 75 preempted (a
checkpoint is written: rerun with --resume), 1 an error (sca.engine.launch, docs/RELIABILITY.md).
"""

import sys

if __name__ == "__main__":  # the allocator is chosen when the process starts: before torch
    from sca_cpu_malloc import restart_with_jemalloc

    restart_with_jemalloc()

try:  # first, so that a broken environment gives one message, not a deep traceback
    import sca  # noqa: F401
except ImportError as e:
    sys.exit(f"error: {e}")

from detectron2.engine import default_argument_parser  # noqa: E402
from detectron2.evaluation import verify_results  # noqa: E402
from detectron2.utils import comm  # noqa: E402

from sca.checkpoint import SCACheckpointer  # noqa: E402
from sca.data import (  # noqa: E402
    DatasetConfigError,
    DatasetNotFoundError,
    ImageReadError,
    TrainingSampleError,
)
from sca.engine import (  # noqa: E402
    NonFiniteLossError,
    SCATrainer,
    launch_from_args,
    setup_from_args,
)
from sca.evaluation import JavaNotFoundError  # noqa: E402
from sca.utils.safe_load import UnsafeCheckpointError  # noqa: E402


def main(args):
    cfg = setup_from_args(args)
    if args.eval_only:
        model = SCATrainer.build_model(cfg)
        SCACheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        results = SCATrainer.test(cfg, model)
        if comm.is_main_process():
            verify_results(cfg, results)
        return results
    trainer = SCATrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def guarded_main(args):
    """Missing or misdeclared data, missing weights, unsafe checkpoints and NaN/inf losses end the
    run with the message that names them."""
    try:
        return main(args)
    except (
        DatasetConfigError,
        DatasetNotFoundError,
        ImageReadError,
        FileNotFoundError,
        JavaNotFoundError,
        UnsafeCheckpointError,
        NonFiniteLossError,
        TrainingSampleError,
    ) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    sys.exit(launch_from_args(guarded_main, args))
