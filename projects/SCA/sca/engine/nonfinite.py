"""Stop training at the first NaN/inf loss, with what is needed to investigate and resume."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import torch
from detectron2.engine import HookBase
from detectron2.utils import comm

from .distributed import all_reduce_max

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """A training loss was NaN or infinite; the message names the iteration, the batch's image
    ids and the checkpoint of the state before that iteration."""


class NonFiniteLossGuard(HookBase):
    """Checks the loss dict of every training forward pass (a forward hook on the model, so before
    the backward pass and the optimizer step). On a NaN/inf loss it saves the state before this
    iteration, which nothing has changed yet, as ``model_nonfinite_<iteration>.pth`` (tagged as
    the last checkpoint: ``--resume`` repeats the failing iteration) and raises
    :class:`NonFiniteLossError`.

    Detectron2's own check (in ``SimpleTrainer``) raises too, but after the backward pass, without
    the images and without a checkpoint.

    Under DDP every rank all-reduces its verdict (one integer per iteration, before the backward
    pass and its gradient all-reduce), so all ranks stop in the same iteration however many saw
    the NaN: the reports of the ranks that did (rank, loss terms, image ids) are gathered, the
    main process writes the checkpoint once, every rank waits for it and raises the same error.
    """

    def before_train(self) -> None:
        self._handle = self.trainer.model.register_forward_hook(self._check)

    def after_train(self) -> None:
        self._handle.remove()

    def _check(self, module: torch.nn.Module, args: tuple, output: object) -> None:
        if not module.training or not isinstance(output, Mapping):
            return
        bad = {
            k: float(v.detach().float().sum())
            for k, v in output.items()
            if torch.is_tensor(v) and not torch.isfinite(v).all()
        }
        if not all_reduce_max(1 if bad else 0):
            return
        iteration = self.trainer.iter
        batch = args[0] if args and isinstance(args[0], Sequence) else []
        image_ids = [d.get("image_id") for d in batch if isinstance(d, Mapping)]
        world = comm.get_world_size()
        reports = comm.all_gather((comm.get_rank(), bad, image_ids)) if world > 1 else None
        saved = self._save_state_before(iteration)
        comm.synchronize()  # nobody exits (and gets its peers killed) before the file is whole
        where = (
            f"the state before it is saved as {saved} (--resume repeats this iteration)"
            if saved
            else "no checkpoint was written (no OUTPUT_DIR)"
        )
        if reports is None:
            what = f": {bad}; the batch's image ids: {image_ids}"
        else:
            what = " " + "; ".join(
                f"on rank {rank} of {world}: {terms}; the batch's image ids: {ids}"
                for rank, terms, ids in reports
                if terms
            )
        raise NonFiniteLossError(
            f"Non-finite loss at iteration {iteration}{what}; {where}. "
            "Lower SOLVER.BASE_LR or check these images."
        )

    def _save_state_before(self, iteration: int) -> str | None:
        """Save (main process) the trainer's state as of the end of ``iteration - 1``; the file
        name on every rank. Its iteration counters are set back while saving, so that a resume
        starts at ``iteration``."""
        checkpointer = self.trainer.checkpointer
        if not checkpointer.save_dir:
            return None
        name = f"model_nonfinite_{iteration:07d}"
        if comm.is_main_process():
            self._write(checkpointer, name, iteration)
        return os.path.join(checkpointer.save_dir, name + ".pth")

    def _write(self, checkpointer, name: str, iteration: int) -> None:
        trainers = [self.trainer, getattr(self.trainer, "_trainer", None)]
        counters = [(t, t.iter) for t in trainers if t is not None]
        try:
            for t, _ in counters:
                t.iter = iteration - 1
            checkpointer.save(name, iteration=iteration - 1)
        finally:
            for t, value in counters:
                t.iter = value
