"""A resumable training stream: sample k depends on (seed, k) alone.

Detectron2's samplers restart from their seed when training resumes, and augmentations draw from
whatever global random state a worker has, so a resumed run sees other images and other crops
than an uninterrupted one. Here the k-th sample of each rank picks its data set index and seeds
every augmentation from ``(seed, k)``: a run resumed at iteration i continues with exactly the
samples the uninterrupted run would have seen, whatever the number of loader workers.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator

import numpy as np
import torch
from detectron2.utils import comm
from torch.utils.data import IterableDataset, get_worker_info


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
            mapped = self.mapper(copy.deepcopy(self.dicts[self._index(generator)]))
            if mapped is not None:
                yield mapped
            k += num_workers
