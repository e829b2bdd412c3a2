"""A resumable training stream: sample k depends on (seed, k) alone.

Detectron2's samplers restart from their seed when training resumes, and augmentations draw from
whatever global random state a worker has, so a resumed run sees other images and other crops
than an uninterrupted one. Here the k-th sample of each rank picks its data set index and seeds
every augmentation from ``(seed, k)``: a run resumed at iteration i continues with exactly the
samples the uninterrupted run would have seen, whatever the number of loader workers.

A sample whose mapping raises is reported as :class:`~sca.data.errors.TrainingSampleError` naming
its image (an :class:`~sca.data.errors.ImageReadError` names it already and passes unchanged). The
record each loader worker is mapping is noted in shared memory, so that a worker that dies (a
segfault in a decoder, the OOM killer) can be reported with its image too: :meth:`in_flight`.
"""

from __future__ import annotations

import copy
import os
import random
import re
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
from detectron2.utils import comm
from torch.utils.data import IterableDataset, get_worker_info

from .errors import ImageReadError, TrainingSampleError

# loader workers whose current record is tracked (worker ids beyond it are not)
MAX_TRACKED_WORKERS = 256


def describe_record(record: dict) -> str:
    return f"image {record.get('file_name')!r} (image id {record.get('image_id')!r})"


class ResumableTrainingStream(IterableDataset):
    """Endless mapped samples of ``dicts``, drawn with probability proportional to ``weights``
    (uniform when None). Set :attr:`start` (samples already consumed by this rank) to resume."""

    def __init__(
        self,
        dicts: list[dict],
        mapper: Callable[[dict], dict | None],
        seed: int,
        weights: torch.Tensor | None = None,
    ):
        if not dicts:
            raise ValueError("the training data sets are empty (DATASETS.TRAIN)")
        self.dicts = dicts
        self.mapper = mapper
        self.seed = int(seed)
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.start = 0
        self.rank = comm.get_rank()
        self.world_size = comm.get_world_size()
        # per worker: (its pid, the index into dicts it is mapping or -1)
        self._in_flight = torch.full((MAX_TRACKED_WORKERS, 2), -1, dtype=torch.int64)
        self._in_flight.share_memory_()

    def in_flight(self, pids: Iterable[int] | None = None) -> list[str]:
        """The records that loader workers (those with ``pids``, or all) are mapping now."""
        wanted = None if pids is None else set(pids)
        return [
            f"worker {w} (pid {pid}) was mapping {describe_record(self.dicts[index])}"
            for w, (pid, index) in enumerate(self._in_flight.tolist())
            if index >= 0 and (wanted is None or pid in wanted)
        ]

    def _sample_seed(self, k: int) -> int:
        global_k = k * self.world_size + self.rank
        return (self.seed * 1_000_003 + global_k * 7919) % (2**31 - 1)

    def _index(self, generator: torch.Generator) -> int:
        if self.weights is None:
            return int(torch.randint(len(self.dicts), (1,), generator=generator))
        return int(torch.multinomial(self.weights, 1, generator=generator))

    def __iter__(self) -> Iterator[dict]:
        worker = get_worker_info()
        worker_id, num_workers = (0, 1) if worker is None else (worker.id, worker.num_workers)
        k = self.start + worker_id
        while True:
            sample_seed = self._sample_seed(k)
            generator = torch.Generator().manual_seed(sample_seed)
            # the mapper and Detectron2's transforms draw from the global generators
            random.seed(sample_seed)
            np.random.seed(sample_seed)
            index = self._index(generator)
            tracked = worker is not None and worker_id < MAX_TRACKED_WORKERS
            if tracked:
                self._in_flight[worker_id] = torch.tensor([os.getpid(), index])
            try:
                mapped = self.mapper(copy.deepcopy(self.dicts[index]))
            except ImageReadError:
                raise
            except Exception as e:
                raise TrainingSampleError(
                    f"training sample {k} of rank {self.rank} failed: "
                    f"{describe_record(self.dicts[index])}: {type(e).__name__}: {e}"
                ) from e
            if tracked:
                self._in_flight[worker_id, 1] = -1
            if mapped is not None:
                yield mapped
            k += num_workers


# "DataLoader worker (pid 12) is killed by signal", "DataLoader worker (pid(s) 12, 13) exited"
_WORKER_PIDS = re.compile(r"DataLoader worker \(pid(?:\(s\))? ([\d, ]+)\)")


class NamedWorkerFailures:
    """Iterates a data loader over a :class:`ResumableTrainingStream`; when one of its worker
    processes dies (PyTorch's "DataLoader worker (pid N) ... exited unexpectedly / killed by
    signal"), raises :class:`TrainingSampleError` naming the image that worker was mapping."""

    def __init__(self, loader: Iterable, stream: ResumableTrainingStream):
        self.loader = loader
        self.stream = stream
        self.dataset = getattr(loader, "dataset", stream)

    def __iter__(self) -> Iterator:
        batches = iter(self.loader)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except RuntimeError as e:
                if isinstance(e, TrainingSampleError) or "DataLoader worker" not in str(e):
                    raise
                found = _WORKER_PIDS.search(str(e))
                pids = [int(p) for p in re.findall(r"\d+", found.group(1))] if found else []
                culprits = self.stream.in_flight(pids) or self.stream.in_flight()
                raise TrainingSampleError(
                    f"{e} {'; '.join(culprits) or '(it was mapping no training record)'}"
                ) from e
            yield batch
