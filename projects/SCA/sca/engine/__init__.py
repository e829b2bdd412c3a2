"""Training and evaluation glue around Detectron2's engine."""

from .launch import launch_from_args
from .nonfinite import NonFiniteLossError, NonFiniteLossGuard
from .predictor import SCAPredictor
from .preemption import PREEMPTED_EXIT_CODE, PreemptionHook, TrainingPreempted
from .setup import setup_from_args
from .trainer import SCATrainer

__all__ = [
    "PREEMPTED_EXIT_CODE",
    "NonFiniteLossError",
    "NonFiniteLossGuard",
    "PreemptionHook",
    "SCAPredictor",
    "SCATrainer",
    "TrainingPreempted",
    "launch_from_args",
    "setup_from_args",
]
