"""Stop training at the first NaN/inf loss, with what is needed to investigate and resume."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch
from detectron2.engine import HookBase
from detectron2.utils import comm

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
    the images and without a checkpoint. Under DDP each process checks its own losses; a process
    that stops leaves the others waiting in their next collective until its timeout.
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
        if not bad:
            return
        iteration = self.trainer.iter
        batch = args[0] if args and isinstance(args[0], Sequence) else []
        image_ids = [d.get("image_id") for d in batch if isinstance(d, Mapping)]
        saved = self._save_state_before(iteration)
        where = (
            f"the state before it is saved as {saved} (--resume repeats this iteration)"
            if saved
            else "no checkpoint was written by this process"
        )
        raise NonFiniteLossError(
            f"Non-finite loss at iteration {iteration}: {bad}; the batch's image ids: {image_ids}; "
            f"{where}. Lower SOLVER.BASE_LR or check these images."
        )

    def _save_state_before(self, iteration: int) -> str | None:
        """Save the trainer's state as of the end of ``iteration - 1`` (its iteration counters
        are set back while saving, so that a resume starts at ``iteration``)."""
        checkpointer = self.trainer.checkpointer
        if not comm.is_main_process() or not checkpointer.save_dir:
            return None
        trainers = [self.trainer, getattr(self.trainer, "_trainer", None)]
        counters = [(t, t.iter) for t in trainers if t is not None]
        name = f"model_nonfinite_{iteration:07d}"
        try:
            for t, _ in counters:
                t.iter = iteration - 1
            checkpointer.save(name, iteration=iteration - 1)
        finally:
            for t, value in counters:
                t.iter = value
        return checkpointer.get_checkpoint_file()
