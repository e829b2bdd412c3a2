"""Training and evaluation glue around Detectron2's engine."""

from .checkpoint import SCACheckpointer
from .trainer import SCATrainer

__all__ = ["SCACheckpointer", "SCATrainer"]
