"""A frozen module's forward replayed as a CUDA graph.

On a GPU the training step and decoding are bound by the CPU's kernel launches, not by the GPU.
SAM's frozen image encoder is a fixed sequence of launches (tens per block, 32 blocks in ViT-H)
on inputs of a fixed size, so it can be captured once per input shape and replayed as one
launch. The graph reads the module's weights where they were at capture: loading new values
into them in place is seen, replacing them (``.to(dtype)``) captures anew.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    static_input: Tensor
    static_output: Tensor


class CUDAGraphForward:
    """Calls ``module(x)`` through a CUDA graph captured for each (shape, dtype, device,
    autocast state) of ``x``. Only for a module that runs without a gradient, reads nothing but
    ``x`` and its own parameters and buffers, and returns one tensor."""

    def __init__(self, module: nn.Module, warmup: int = 2):
        self.module = module
        self.warmup = warmup
        self._graphs: dict[tuple, _Captured] = {}
        self._weights: tuple[int, ...] = ()

    def __call__(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled():
            raise RuntimeError("a CUDA graph replays a forward without a gradient")
        dtype = torch.get_autocast_dtype("cuda")
        key = (tuple(x.shape), x.dtype, x.device, torch.is_autocast_enabled("cuda"), dtype)
        weights = tuple(t.data_ptr() for t in (*self.module.parameters(), *self.module.buffers()))
        if weights != self._weights:  # every graph read the old tensors: freed before capturing
            self._graphs.clear()
            self._weights = weights
        captured = self._graphs.get(key)
        if captured is None:
            captured = self._graphs[key] = self._capture(x)
        captured.static_input.copy_(x)
        captured.graph.replay()
        # a copy: the next replay overwrites the graph's output
        return captured.static_output.clone()

    def _capture(self, x: Tensor) -> _Captured:
        static_input = x.clone()
        side = torch.cuda.Stream(x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):  # lazy initialisations (cuBLAS handles) outside the graph
            for _ in range(self.warmup):
                self.module(static_input)
        torch.cuda.current_stream(x.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # autocast's cast cache would hand tensors of the graph's memory pool to later eager code
        autocast = torch.autocast(
            "cuda",
            dtype=torch.get_autocast_dtype("cuda"),
            enabled=torch.is_autocast_enabled("cuda"),
            cache_enabled=False,
        )
        with autocast, torch.cuda.graph(graph):
            static_output = self.module(static_input)
        return _Captured(graph, static_input, static_output)
