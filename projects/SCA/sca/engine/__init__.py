"""Training and evaluation glue around Detectron2's engine."""

from .checkpoint import SCACheckpointer
from .nonfinite import NonFiniteLossError, NonFiniteLossGuard
from .trainer import SCATrainer

__all__ = ["NonFiniteLossError", "NonFiniteLossGuard", "SCACheckpointer", "SCATrainer"]
