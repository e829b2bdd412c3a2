"""Training and evaluation glue around Detectron2's engine."""

from .checkpoint import SCACheckpointer
from .predictor import SCAPredictor
from .trainer import SCATrainer

__all__ = ["SCACheckpointer", "SCAPredictor", "SCATrainer"]
