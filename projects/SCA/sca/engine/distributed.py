"""Detectron2's engine on machines without CUDA: the snags handled in one place."""

import logging

import torch
import torch.distributed as dist
from detectron2.utils import comm
from torch import nn
from torch.nn.parallel import DistributedDataParallel

logger = logging.getLogger(__name__)


def create_ddp_model(model: nn.Module, **kwargs) -> nn.Module:
    """Like Detectron2's ``create_ddp_model``, but valid on CPU (gloo): Detectron2 always passes
    ``device_ids=[local_rank]``, which DistributedDataParallel rejects for CPU modules. Every rank
    starts with rank 0's buffers too, also with ``broadcast_buffers=False``."""
    if comm.get_world_size() == 1:
        return model
    on_cuda = next(model.parameters()).is_cuda
    kwargs.setdefault("device_ids", [comm.get_local_rank()] if on_cuda else None)
    ddp = DistributedDataParallel(model, **kwargs)
    if not kwargs.get("broadcast_buffers", True):
        # DDP copies rank 0's parameters to every rank, but its buffers only with
        # broadcast_buffers: a buffer initialised at random (SAM's positional encoding when no SAM
        # checkpoint is loaded) would differ between ranks, and a resumed run, which loads rank
        # 0's from the checkpoint everywhere, would not continue as the uninterrupted one did.
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)
    return ddp


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


def all_reduce_max(value: int) -> int:
    """The largest ``value`` over all ranks (one integer all-reduced; ``value`` itself when
    training alone): how the ranks agree on a stop that only some of them have seen."""
    if comm.get_world_size() == 1:
        return int(value)
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    flag = torch.tensor([int(value)], dtype=torch.int64, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item())


# what gloo and NCCL say when a peer died, hung past the collective timeout or dropped the link
_LOST_PEER_MARKERS = (
    "gloo",
    "nccl",
    "connection reset",
    "connection closed",
    "connection refused",
    "broken pipe",
    "timed out",
    "timeout",
    "socket",
)


def is_lost_peer_error(error: BaseException) -> bool:
    """Whether ``error`` is a collective that failed because another rank is gone or hangs."""
    if not dist.is_available() or not dist.is_initialized() or comm.get_world_size() == 1:
        return False
    dist_error = getattr(dist, "DistError", ())
    if dist_error and isinstance(error, dist_error):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(m in text for m in _LOST_PEER_MARKERS)
