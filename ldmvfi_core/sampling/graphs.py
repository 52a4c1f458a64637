# SPDX-License-Identifier: MIT
"""The U-Net step as a CUDA graph: captured once per latent shape, replayed for every step.

The denoiser runs 10-200 times per frame on a latent of 1/32 the frame size, so each call is
~1,300 small kernel launches and the GPU mostly waits for the CPU. A CUDA graph replays the whole
launch sequence at once. Inputs are copied into static buffers before each replay; the output is
cloned out of the graph's buffer.

Use it with autocast's weight cache disabled (``torch.autocast(..., cache_enabled=False)``):
cached casts made during capture would be freed behind the graph's back.

``GraphedCall`` does the same for any function of tensors (session 12: the compiled decode, whose
kernels leave the GPU idle 5-10 ms of a 41-46-ms decode at 1080p; experimental, off by default).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn


class GraphedDenoiser:
    """``denoiser(x, t, cond) -> eps`` replaying one CUDA graph for fixed shapes and dtypes."""

    def __init__(self, unet: nn.Module | Callable[[Tensor, Tensor, Tensor], Tensor], warmup: int = 2) -> None:
        self.unet = unet
        self.warmup = warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self._key: tuple[object, ...] | None = None

    def _capture(self, x: Tensor, t: Tensor, cond: Tensor) -> None:
        # torch.cuda.graph captures on a stream of the *current* device: make it x's device, or a
        # model on cuda:1 would be captured against cuda:0 (the multi-GPU retime's workers).
        with torch.cuda.device(x.device):
            self._capture_here(x, t, cond)

    def _capture_here(self, x: Tensor, t: Tensor, cond: Tensor) -> None:
        self.static_x, self.static_t, self.static_cond = x.clone(), t.clone(), cond.clone()
        self.graph, self.static_out = capture_graph(self.unet, (self.static_x, self.static_t, self.static_cond),
                                                    self.warmup)
        self._key = (x.shape, x.dtype, t.shape, cond.shape, cond.dtype, torch.is_autocast_enabled())

    def __call__(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        key = (x.shape, x.dtype, t.shape, cond.shape, cond.dtype, torch.is_autocast_enabled())
        if self.graph is None or key != self._key:
            self._capture(x, t, cond)
        assert self.graph is not None
        self.static_x.copy_(x)
        self.static_t.copy_(t)
        self.static_cond.copy_(cond)
        with torch.cuda.device(x.device):
            self.graph.replay()
        return self.static_out.clone()


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
    """``fn(*tensors) -> tensor`` replaying one CUDA graph per input shapes and dtypes: inputs are
    copied into static buffers, the output is cloned out. The graph keeps its intermediates'
    memory between calls. Whatever else ``fn`` bakes in (sizes, flags) is the caller's to key."""

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
