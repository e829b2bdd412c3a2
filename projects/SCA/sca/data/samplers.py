"""An infinite, seeded, rank-sharded sampler drawing indices i.i.d. with given weights."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import torch
from detectron2.utils import comm
from torch.utils.data import Sampler


class WeightedInfiniteSampler(Sampler):
    """Draw dataset indices i.i.d. with probability proportional to ``weights``, forever.

    Every rank computes the same stream from ``seed`` and keeps every ``world_size``-th index from
    its rank on, like Detectron2's ``TrainingSampler``, so ranks see disjoint draws.
    """

    def __init__(
        self,
        weights: Sequence[float] | torch.Tensor,
        seed: int | None = None,
        chunk_size: int = 4096,
    ):
        weights = torch.as_tensor(weights, dtype=torch.float64)
        if weights.ndim != 1 or len(weights) == 0 or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(
                "weights must be a non-empty 1-D sequence of non-negative numbers "
                "with a positive sum"
            )
        self._weights = weights
        self._seed = int(comm.shared_random_seed() if seed is None else seed)
        self._chunk_size = chunk_size
        self._rank = comm.get_rank()
        self._world_size = comm.get_world_size()

    def __iter__(self) -> Iterator[int]:
        yield from itertools.islice(self._infinite_indices(), self._rank, None, self._world_size)

    def _infinite_indices(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self._seed)
        while True:
            yield from torch.multinomial(
                self._weights, self._chunk_size, replacement=True, generator=g
            ).tolist()
