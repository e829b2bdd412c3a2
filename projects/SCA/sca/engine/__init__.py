"""Training and evaluation glue around Detectron2's engine."""

from .nonfinite import NonFiniteLossError, NonFiniteLossGuard
from .predictor import SCAPredictor
from .setup import setup_from_args
from .trainer import SCATrainer

__all__ = [
    "NonFiniteLossError",
    "NonFiniteLossGuard",
    "SCAPredictor",
    "SCATrainer",
    "setup_from_args",
]
