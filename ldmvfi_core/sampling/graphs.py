# SPDX-License-Identifier: MIT
"""Functions of tensors as CUDA graphs: captured once per input shapes, then replayed.

The U-Net step is the reason: it runs 10-200 times per frame on a latent of 1/32 the frame size,
so each call is ~1,300 small kernel launches and the GPU mostly waits for the CPU. A CUDA graph
replays the whole launch sequence at once. Inputs are copied into static buffers before each
replay; the output is cloned out of the graph's buffer. The decode can be graphed the same way
(``Interpolator.decode_graphs``, experimental: it removes the decode's launch gaps, which along a
shot are already hidden behind the sampler; bench/RESULTS.md, twelfth round).

Use it with autocast's weight cache disabled (``torch.autocast(..., cache_enabled=False)``):
cached casts made during capture would be freed behind the graph's back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor


def capture_graph(fn: Callable[..., Any], static_inputs: Sequence[Tensor], warmup: int
                  ) -> tuple[torch.cuda.CUDAGraph, Any]:
    """Run ``fn(*static_inputs)`` ``warmup`` times on a side stream (lazy inits, cuDNN plans,
    compiling), then capture it: (the graph, its output buffers). Call on the inputs' device."""
    device = static_inputs[0].device
    side = torch.cuda.Stream(device=device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(warmup):
            fn(*static_inputs)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    # An explicit capture stream on the inputs' device: torch.cuda.graph's default capture stream
    # is made once per process on whatever device was current then, so a later capture for
    # another GPU would run its kernels eagerly instead of recording them.
    with torch.cuda.graph(graph, stream=side):
        out = fn(*static_inputs)
    return graph, out


class GraphedCall:
    """``fn(*tensors) -> tensor`` replaying one CUDA graph per input shapes, dtypes and devices
    (and autocast on or off): inputs are copied into static buffers, the output is cloned out.
    Each graph keeps its intermediates' memory between calls. Whatever else ``fn`` bakes in
    (sizes, flags) is the caller's to key. The capture runs on the inputs' device: a model on
    cuda:1 (the multi-GPU retime's workers) is not captured against cuda:0."""

    def __init__(self, fn: Callable[..., Tensor], warmup: int = 2) -> None:
        self.fn = fn
        self.warmup = warmup
        self._graphs: dict[tuple[object, ...], tuple[torch.cuda.CUDAGraph, list[Tensor], Tensor]] = {}

    def __call__(self, *inputs: Tensor) -> Tensor:
        key = (torch.is_autocast_enabled(), *((t.shape, t.dtype, t.device) for t in inputs))
        if key not in self._graphs:
            static = [t.clone() for t in inputs]
            with torch.cuda.device(inputs[0].device):
                graph, out = capture_graph(self.fn, static, self.warmup)
            self._graphs[key] = (graph, static, out)
        graph, static, out = self._graphs[key]
        for buffer, value in zip(static, inputs, strict=True):
            buffer.copy_(value)
        with torch.cuda.device(inputs[0].device):
            graph.replay()
        return out.clone()
