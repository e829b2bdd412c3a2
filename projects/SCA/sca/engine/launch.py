"""Starting the training processes, three ways, and what their exit codes mean.

* ``torchrun`` (or ``srun`` with the variables exported, see docs/RELIABILITY.md): each process
  finds ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` (and ``LOCAL_RANK``,
  ``LOCAL_WORLD_SIZE``) in its environment and joins the process group through ``env://``
  itself; ``--num-gpus``/``--num-machines``/``--dist-url`` are then ignored. A process that
  torchrun restarted (``--max-restarts``; ``TORCHELASTIC_RESTART_COUNT`` > 0) resumes from the
  last checkpoint, as with ``--resume``.
* Detectron2's flags (``--num-gpus N --num-machines M --machine-rank R --dist-url URL``): this
  process starts N workers and supervises them: it forwards the preemption signals to them, and
  when one fails it waits at most the collective timeout for the others to stop by themselves
  (a collective with a dead peer fails within it) before killing them. Should it die, the
  workers get SIGTERM (Linux): they stop as if preempted instead of training on as orphans.
* One process: neither of the above.

Every process group is created with the timeout ``CLUSTER.COLLECTIVE_TIMEOUT_S``: a rank whose
peer died or hangs gets an error within it and exits with a message saying so, never hangs.

Exit codes: 0 done; :data:`~sca.engine.preemption.PREEMPTED_EXIT_CODE` (75) preempted, a
checkpoint of the agreed iteration is written and ``--resume`` continues; 1 an error (its message
names it); 128 + n a worker killed by signal n (the supervising process reports it).
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from detectron2.utils import comm

from ..config import get_sca_cfg
from .distributed import is_lost_peer_error
from .preemption import PREEMPTED_EXIT_CODE, TrainingPreempted, signal_numbers

logger = logging.getLogger(__name__)

EXIT_ERROR = 1


@dataclass(frozen=True)
class Rendezvous:
    """Where this process belongs in the job and how it meets the others."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    init_method: str
    restart_count: int = 0


def env_rendezvous(environ: Mapping[str, str] = os.environ) -> Rendezvous | None:
    """The rendezvous that torchrun (or srun with exported variables) describes in the
    environment, or None when ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT`` are not
    all set."""
    if not all(k in environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")):
        return None
    try:
        rank, world = int(environ["RANK"]), int(environ["WORLD_SIZE"])
        local_rank = int(environ.get("LOCAL_RANK", 0))
        local_world = int(environ.get("LOCAL_WORLD_SIZE", 1))
        restarts = int(environ.get("TORCHELASTIC_RESTART_COUNT", 0))
    except ValueError as e:
        raise ValueError(f"the distributed environment variables are not integers: {e}") from e
    if not (0 <= rank < world and 0 <= local_rank < local_world and world % local_world == 0):
        raise ValueError(
            f"inconsistent distributed environment: RANK={rank} WORLD_SIZE={world} "
            f"LOCAL_RANK={local_rank} LOCAL_WORLD_SIZE={local_world}"
        )
    return Rendezvous(rank, world, local_rank, local_world, "env://", restarts)


def cluster_settings(args: argparse.Namespace) -> tuple[timedelta, list[str]]:
    """``CLUSTER.COLLECTIVE_TIMEOUT_S`` and ``CLUSTER.PREEMPTION_SIGNALS`` of the command line's
    config (the defaults where it cannot be read: the workers then report why)."""
    cfg = get_sca_cfg()
    try:
        cfg = get_sca_cfg(args.config_file)
        cfg.merge_from_list(list(args.opts))
    except Exception:  # noqa: BLE001 - reported by setup_from_args in every worker
        pass
    return timedelta(seconds=float(cfg.CLUSTER.COLLECTIVE_TIMEOUT_S)), list(
        cfg.CLUSTER.PREEMPTION_SIGNALS
    )


def _join_process_group(rdv: Rendezvous, timeout: timedelta) -> None:
    on_cuda = torch.cuda.is_available()
    if on_cuda:
        torch.cuda.set_device(rdv.local_rank)
    try:
        if rdv.init_method == "env://":
            # torchrun's store outlives a restart, with the previous attempt's addresses in it:
            # without a prefix per attempt a restarted rank would connect to a dead peer
            store, _, _ = next(
                dist.rendezvous("env://", rank=rdv.rank, world_size=rdv.world_size, timeout=timeout)
            )
            store = dist.PrefixStore(f"sca/attempt_{rdv.restart_count}", store)
            init = {"store": store}
        else:
            init = {"init_method": rdv.init_method}
        dist.init_process_group(
            backend="nccl" if on_cuda else "gloo",
            world_size=rdv.world_size,
            rank=rdv.rank,
            timeout=timeout,
            **init,
        )
    except Exception as e:
        raise RuntimeError(
            f"rank {rdv.rank} of {rdv.world_size} could not join the process group at "
            f"{rdv.init_method} within {timeout.total_seconds():g} s: {e}"
        ) from e
    comm.create_local_process_group(rdv.local_world_size)
    comm.synchronize()


def run_process(
    main_func: Callable, args: argparse.Namespace, rdv: Rendezvous | None, timeout: timedelta
) -> int:
    """Join the process group (if ``rdv``), run ``main_func(args)``; the process's exit code.

    Errors that ``main_func`` does not handle propagate, except a failed collective (another
    rank died or hangs), which is reported in one message."""
    if rdv is not None:
        _join_process_group(rdv, timeout)
    try:
        main_func(args)
    except TrainingPreempted as e:
        print(f"[rank {comm.get_rank()}] {e}", file=sys.stderr, flush=True)
        return PREEMPTED_EXIT_CODE
    except Exception as e:
        if not is_lost_peer_error(e):
            raise
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(
            f"error: rank {comm.get_rank()} of {comm.get_world_size()} stopped: a collective "
            f"failed ({first_line}). Another rank died, hung for longer than "
            f"CLUSTER.COLLECTIVE_TIMEOUT_S ({timeout.total_seconds():g} s) or lost its "
            "connection; its own log names the cause. Continue with --resume from the last "
            "checkpoint.",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_ERROR
    if rdv is not None and dist.is_initialized():
        dist.destroy_process_group()
    return 0


def _spawned_worker(
    local_rank: int,
    parent_pid: int,
    main_func: Callable,
    args: argparse.Namespace,
    num_gpus: int,
    machine_rank: int,
    world_size: int,
    dist_url: str,
    timeout: timedelta,
) -> None:
    _terminate_with_parent(parent_pid)
    rank = machine_rank * num_gpus + local_rank
    rdv = Rendezvous(rank, world_size, local_rank, num_gpus, dist_url)
    sys.exit(run_process(main_func, args, rdv, timeout))


def _terminate_with_parent(parent_pid: int) -> None:
    """SIGTERM this worker when the supervising process dies (Linux), as if it had been
    preempted, instead of training on as an orphan."""
    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM))
    if os.getppid() != parent_pid:  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


def _exit_code(exitcode: int) -> int:
    return 128 - exitcode if exitcode < 0 else exitcode


def _describe(rank: int, pid: int, exitcode: int) -> str:
    if exitcode < 0:
        return f"rank {rank} (pid {pid}) was killed by {signal.Signals(-exitcode).name}"
    return f"rank {rank} (pid {pid}) exited with code {exitcode}"


def supervise(processes: list[mp.Process], forward: list[signal.Signals], grace_s: float) -> int:
    """Wait for started ``processes`` (index = local rank); the exit code of the group.

    The signals in ``forward`` are passed on to the workers. After the first failure the others
    get ``grace_s`` seconds to stop by themselves, then they are killed. The result is 0 when all
    succeed, :data:`PREEMPTED_EXIT_CODE` when every failure is a preemption, otherwise the exit
    code of the first worker that failed."""

    def forward_signal(signum, frame):
        for p in processes:
            if p.exitcode is None and p.pid:
                try:
                    os.kill(p.pid, signum)
                except ProcessLookupError:
                    pass

    previous = {s: signal.signal(s, forward_signal) for s in forward}
    pending = {p.sentinel: rank for rank, p in enumerate(processes)}
    failures: list[tuple[int, int]] = []  # (rank, exitcode) in the order they ended
    deadline = None
    try:
        while pending:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = multiprocessing.connection.wait(list(pending), wait)
            if not ready:
                for rank in pending.values():
                    p = processes[rank]
                    print(
                        f"error: rank {rank} (pid {p.pid}) did not stop within {grace_s:g} s "
                        "after another rank failed: killing it",
                        file=sys.stderr,
                        flush=True,
                    )
                    p.kill()
                for rank in pending.values():
                    processes[rank].join()
                break
            for sentinel in ready:
                rank = pending.pop(sentinel)
                processes[rank].join()
                if processes[rank].exitcode != 0:
                    failures.append((rank, processes[rank].exitcode))
                    if deadline is None:
                        deadline = time.monotonic() + grace_s
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if not failures:
        return 0
    if all(code == PREEMPTED_EXIT_CODE for _, code in failures):
        return PREEMPTED_EXIT_CODE
    failed = {rank: code for rank, code in failures}
    report = "; ".join(_describe(r, processes[r].pid, c) for r, c in failed.items())
    print(f"error: {report}", file=sys.stderr, flush=True)
    return _exit_code(failures[0][1])


def launch_from_args(main_func: Callable, args: argparse.Namespace) -> int:
    """Run ``main_func(args)`` in the processes that Detectron2's command line (``args``) or
    torchrun's environment asks for (module doc); the exit code for this process."""
    timeout, signals = cluster_settings(args)
    rdv = env_rendezvous()
    if rdv is not None:
        if args.num_gpus > 1 or args.num_machines > 1:
            logger.warning(
                "RANK/WORLD_SIZE/MASTER_ADDR are set (torchrun or srun): the process group comes "
                "from them; --num-gpus/--num-machines/--dist-url are ignored"
            )
        if rdv.restart_count > 0 and not args.resume:
            print(
                f"[rank {rdv.rank}] restart {rdv.restart_count} by torchrun: resuming from the "
                "last checkpoint",
                file=sys.stderr,
                flush=True,
            )
            args.resume = True
        return run_process(main_func, args, rdv, timeout)
    world_size = args.num_gpus * args.num_machines
    if world_size <= 1:
        return run_process(main_func, args, None, timeout)
    dist_url = args.dist_url
    if dist_url == "auto":
        if args.num_machines != 1:
            raise ValueError("--dist-url auto works on one machine only")
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("", 0))
            dist_url = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    context = mp.get_context("spawn")
    processes = [
        context.Process(
            target=_spawned_worker,
            args=(
                local_rank,
                os.getpid(),
                main_func,
                args,
                args.num_gpus,
                args.machine_rank,
                world_size,
                dist_url,
                timeout,
            ),
            daemon=False,
        )
        for local_rank in range(args.num_gpus)
    ]
    for p in processes:
        p.start()
    return supervise(processes, signal_numbers(signals), timeout.total_seconds() + 10)
