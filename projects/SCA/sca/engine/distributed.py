"""Detectron2's engine on machines without CUDA: the snags handled in one place."""

import logging

import torch
from detectron2.utils import comm
from torch import nn
from torch.nn.parallel import DistributedDataParallel

logger = logging.getLogger(__name__)


def create_ddp_model(model: nn.Module, **kwargs) -> nn.Module:
    """Like Detectron2's ``create_ddp_model``, but valid on CPU (gloo): Detectron2 always passes
    ``device_ids=[local_rank]``, which DistributedDataParallel rejects for CPU modules."""
    if comm.get_world_size() == 1:
        return model
    on_cuda = next(model.parameters()).is_cuda
    kwargs.setdefault("device_ids", [comm.get_local_rank()] if on_cuda else None)
    return DistributedDataParallel(model, **kwargs)


def amp_precision(enabled: bool, precision: str) -> torch.dtype | None:
    """The AMP dtype to train with, or None. Detectron2's AMPTrainer asserts CUDA; without it
    AMP is switched off with a warning instead of a failed assertion."""
    if not enabled:
        return None
    dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16}
    if precision not in dtypes:
        raise ValueError(f"SOLVER.AMP.PRECISION={precision!r}: expected one of {sorted(dtypes)}")
    if not torch.cuda.is_available():
        logger.warning("SOLVER.AMP.ENABLED is set but CUDA is not available: training in float32.")
        return None
    return dtypes[precision]


def limit_cpu_threads() -> None:
    """Several CPU processes on one machine share its cores instead of oversubscribing them."""
    world = comm.get_local_size()
    if world > 1 and not torch.cuda.is_available():
        torch.set_num_threads(max(1, torch.get_num_threads() // world))
