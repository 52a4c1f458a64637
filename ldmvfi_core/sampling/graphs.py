# SPDX-License-Identifier: MIT
"""The U-Net step as a CUDA graph: captured once per latent shape, replayed for every step.

The denoiser runs 10-200 times per frame on a latent of 1/32 the frame size, so each call is
~1,300 small kernel launches and the GPU mostly waits for the CPU. A CUDA graph replays the whole
launch sequence at once. Inputs are copied into static buffers before each replay; the output is
cloned out of the graph's buffer.

Use it with autocast's weight cache disabled (``torch.autocast(..., cache_enabled=False)``):
cached casts made during capture would be freed behind the graph's back.
"""

from __future__ import annotations

from collections.abc import Callable

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
        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):  # warm-up outside the graph: lazy inits, cuDNN plans
            for _ in range(self.warmup):
                self.unet(self.static_x, self.static_t, self.static_cond)
        torch.cuda.current_stream(x.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        # An explicit capture stream on x's device: torch.cuda.graph's default capture stream is
        # made once per process on whatever device was current then, so a later capture for
        # another GPU would run its kernels eagerly instead of recording them.
        with torch.cuda.graph(self.graph, stream=side):
            self.static_out = self.unet(self.static_x, self.static_t, self.static_cond)
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
