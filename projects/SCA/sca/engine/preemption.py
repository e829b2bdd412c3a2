"""Preemption: a signal becomes one checkpoint at an iteration every rank agreed on, then an exit.

A cluster announces a preemption with a signal: Slurm sends SIGTERM before the kill (or the signal
of ``--signal``, often SIGUSR1, ahead of the time limit), torchrun forwards its own SIGTERM to the
workers. :class:`PreemptionHook` turns the signals named in ``CLUSTER.PREEMPTION_SIGNALS`` into a
flag; after every iteration the ranks all-reduce it (one integer), so all of them stop after the
same iteration even when only some received the signal. The main process writes the trainer's
state after that iteration (the same file a periodic checkpoint would be, atomically, tagged in
``last_checkpoint``), every rank waits for the write and raises :class:`TrainingPreempted`; the
launcher (:mod:`sca.engine.launch`) turns it into exit code :data:`PREEMPTED_EXIT_CODE`.
``--resume`` then continues bit-identically to a run that was never stopped.

Further signals while the checkpoint is written are noted and ignored: the handlers stay installed
until training has stopped, so a second SIGTERM cannot interrupt the write (and a SIGKILL leaves
the previous checkpoint, as every write is atomic).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Sequence

from detectron2.engine import HookBase
from detectron2.utils import comm

from .distributed import all_reduce_max

logger = logging.getLogger(__name__)

# sysexits.h's EX_TEMPFAIL: "a temporary failure; the user is invited to retry"
PREEMPTED_EXIT_CODE = 75


class TrainingPreempted(BaseException):
    """Training stopped on a preemption signal after a checkpoint was written.

    A BaseException, like KeyboardInterrupt: a requested stop, not an error, so that Detectron2's
    training loop does not log it as a failure (its hooks' ``after_train`` still run)."""

    def __init__(self, message: str, iteration: int, checkpoint: str | None):
        super().__init__(message)
        self.iteration = iteration
        self.checkpoint = checkpoint


def signal_numbers(names: Sequence[str]) -> list[signal.Signals]:
    """``("SIGTERM", "USR1", 10)`` -> signal numbers; unknown names raise ValueError."""
    numbers = []
    for name in names:
        if isinstance(name, int) or str(name).isdigit():
            numbers.append(signal.Signals(int(name)))
            continue
        key = str(name).upper()
        key = key if key.startswith("SIG") else "SIG" + key
        if not hasattr(signal.Signals, key) or key in ("SIGKILL", "SIGSTOP"):
            raise ValueError(
                f"CLUSTER.PREEMPTION_SIGNALS: {name!r} is not a signal that can be caught"
            )
        numbers.append(signal.Signals[key])
    return numbers


class PreemptionHook(HookBase):
    """After every iteration: did any rank receive a preemption signal? If so, save the state
    after this iteration once and raise :class:`TrainingPreempted` on every rank (module doc).

    On the last iteration nothing is saved here: training ends normally with ``model_final``."""

    def __init__(self, signals: Sequence[str]):
        self.signals = signal_numbers(signals)
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, object] = {}

    def _on_signal(self, signum: int, frame) -> None:
        # Only a flag and a raw write here: the handler may run in the middle of anything,
        # including a logging call or the checkpoint write itself.
        name = signal.Signals(signum).name
        if self.received is None:
            self.received = signal.Signals(signum)
            note = f"[rank {comm.get_rank()}] {name}: stopping after the current iteration\n"
        else:
            note = f"[rank {comm.get_rank()}] {name} again: ignored, the stop is under way\n"
        try:
            os.write(2, note.encode())
        except OSError:
            pass

    def before_train(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            logger.warning("Training outside the main thread: preemption signals are not caught")
            return
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def after_train(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def after_step(self) -> None:
        if not all_reduce_max(0 if self.received is None else 1):
            return
        trainer = self.trainer
        iteration = trainer.iter
        if iteration + 1 >= trainer.max_iter:
            return  # the last iteration: model_final is written as usual
        name = f"model_{iteration:07d}"
        checkpointer = trainer.checkpointer
        path = os.path.join(checkpointer.save_dir, name + ".pth") if checkpointer.save_dir else None
        if comm.is_main_process() and path:
            if checkpointer.get_checkpoint_file() != path:  # not just saved by the periodic hook
                checkpointer.save(name, iteration=iteration)
        comm.synchronize()  # nobody exits (and gets its peers killed) before the file is whole
        why = self.received.name if self.received is not None else "a signal to another rank"
        raise TrainingPreempted(
            f"Preempted ({why}) after iteration {iteration}: the state is saved as {path}; "
            f"--resume continues from iteration {iteration + 1}",
            iteration,
            path,
        )
