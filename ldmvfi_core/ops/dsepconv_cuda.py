# SPDX-License-Identifier: MIT
"""CUDA dsepconv through CuPy: ``kernels/dsepconv.cu`` compiled at first use, launched on torch's stream.

Nothing here imports CuPy at module import time; ``cupy_available()`` answers whether the
kernels can run. Tensors are handed to the kernels as raw device pointers (zero copy) and the
launch goes on ``torch.cuda.current_stream()``, so the kernels order correctly with torch's own
work and CUDA graphs can capture them. CuPy keeps compiled kernels in its on-disk cache
(``~/.cupy/kernel_cache``), so the NVRTC compile happens once per machine and source version.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from ldmvfi_core.ops import cupy_runtime

_SUFFIX = cupy_runtime.DTYPE_SUFFIX
_THREADS = 256
MAX_KERNEL_SIZE = 8  # the backward keeps K horizontal-kernel gradients in registers
SOURCE = "dsepconv.cu"


def kernel_source_path() -> Path:
    """``kernels/dsepconv.cu``: installed as package data, or at the top of a source checkout."""
    return cupy_runtime.kernel_source_path(SOURCE)


@functools.cache
def cupy_available() -> bool:
    """CuPy imports and sees a GPU (``LDMVFI_DSEPCONV=torch`` forces the torch path)."""
    return cupy_runtime.kernel_enabled("LDMVFI_DSEPCONV")


def _kernel(name: str, dtype: torch.dtype, device: torch.device) -> Any:
    # LDMVFI_KERNEL_DEFINES="A=1 B=2": compile-time tuning, used by the benchmark.
    defines = tuple(os.environ.get("LDMVFI_KERNEL_DEFINES", "").split())
    module = cupy_runtime.compiled_module(SOURCE, cupy_runtime.device_index(device), defines)
    return module.get_function(f"{name}_{_SUFFIX[dtype]}")


def _launch(name: str, like: Tensor, pixels: int, *args: Any) -> None:
    blocks = max(1, min((pixels + _THREADS - 1) // _THREADS, 65535 * 8))
    cupy_runtime.launch(_kernel(name, like.dtype, like.device), like.device, blocks, _THREADS, args)


def pack_channels(frame: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, ceil(C/4), H, W, 4), zero-filled: four channels per vector load."""
    b, c, h, w = frame.shape
    groups = (c + 3) // 4
    if c % 4:
        frame = torch.nn.functional.pad(frame, (0, 0, 0, 0, 0, 4 * groups - c))
    return frame.reshape(b, groups, 4, h, w).permute(0, 1, 3, 4, 2).contiguous()


def _prepare(tensors: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    if dtype not in _SUFFIX:
        raise TypeError(f"dsepconv CUDA kernel: unsupported dtype {dtype}")
    return tuple(t.to(dtype).contiguous() for t in tensors)


def _check_k(k_size: int) -> None:
    if k_size > MAX_KERNEL_SIZE:
        raise ValueError(f"dsepconv CUDA kernel supports K <= {MAX_KERNEL_SIZE}, got {k_size}")


def dsepconv_forward_cuda(image: Tensor, vertical: Tensor, horizontal: Tensor, offset_x: Tensor,
                          offset_y: Tensor, mask: Tensor) -> Tensor:
    image, vertical, horizontal, offset_x, offset_y, mask = _prepare(
        (image, vertical, horizontal, offset_x, offset_y, mask))
    batch, channels = image.shape[:2]
    k_size, height, width = vertical.shape[1:]
    _check_k(k_size)
    out = torch.empty(batch, channels, height, width, device=image.device, dtype=image.dtype)
    _launch("dsepconv_forward", image, batch * height * width, image, vertical, horizontal, offset_x,
            offset_y, mask, out, batch, channels, height, width, k_size)
    return out


def dsepconv_blend_cuda(frame0: Tensor, frame1: Tensor, heads0: tuple[Tensor, Tensor, Tensor, Tensor],
                        heads1: tuple[Tensor, Tensor, Tensor, Tensor], mask: Tensor,
                        residual: Tensor | None, channels: int | None = None) -> Tensor:
    """The fused inference kernel: both warps, the visibility blend and the residual in one launch.

    Frames are (B, C, Hin, Win), or already packed by ``pack_channels`` (B, G, Hin, Win, 4) when the
    caller reuses a source frame for several output frames; ``channels`` then says how many of
    the 4*G packed channels are real.
    """
    tensors = (frame0, frame1, *heads0, *heads1, mask) + ((residual,) if residual is not None else ())
    prepared = _prepare(tensors)
    if frame0.dim() == 5:
        if channels is None:
            raise ValueError("dsepconv_blend_cuda: packed frames need channels=")
        frame0, frame1 = prepared[0].contiguous(), prepared[1].contiguous()
    else:
        channels = prepared[0].shape[1]
        frame0, frame1 = pack_channels(prepared[0]), pack_channels(prepared[1])
    v0, h0, ox0, oy0 = prepared[2:6]
    v1, h1, ox1, oy1 = prepared[6:10]
    mask = prepared[10]
    res = prepared[11] if residual is not None else None
    batch = prepared[0].shape[0]
    k_size, height, width = v0.shape[1:]
    _check_k(k_size)
    res_channels = 0 if res is None else res.shape[1]
    out = torch.empty(batch, channels, height, width, device=frame0.device, dtype=frame0.dtype)
    _launch("dsepconv_blend", frame0, batch * height * width, frame0, frame1, v0, h0, ox0, oy0, v1, h1,
            ox1, oy1, mask, res, out, batch, channels, res_channels, height, width, k_size)
    return out


class DSepConvCUDAFunction(torch.autograd.Function):
    """Autograd wrapper: CUDA forward, CUDA backward for all six inputs (the image included)."""

    @staticmethod
    def forward(ctx: FunctionCtx, image: Tensor, vertical: Tensor, horizontal: Tensor, offset_x: Tensor,
                offset_y: Tensor, mask: Tensor) -> Tensor:
        prepared = _prepare((image, vertical, horizontal, offset_x, offset_y, mask))
        ctx.save_for_backward(*prepared)
        ctx.input_dtypes = tuple(t.dtype for t in (image, vertical, horizontal, offset_x, offset_y, mask))  # type: ignore[attr-defined]
        return dsepconv_forward_cuda(*prepared)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        image, vertical, horizontal, offset_x, offset_y, mask = ctx.saved_tensors  # type: ignore[attr-defined]
        needs = ctx.needs_input_grad  # type: ignore[attr-defined]
        grad_out = grad_out.to(image.dtype).contiguous()
        batch, channels = image.shape[:2]
        k_size, height, width = vertical.shape[1:]
        compute = torch.float64 if image.dtype == torch.float64 else torch.float32
        grad_image = torch.zeros(image.shape, device=image.device, dtype=compute) if needs[0] else None
        grads = [torch.empty_like(t) for t in (vertical, horizontal, offset_x, offset_y, mask)]
        _launch("dsepconv_backward", image, batch * height * width, grad_out, image, vertical, horizontal,
                offset_x, offset_y, mask, grad_image, *grads, batch, channels, height, width, k_size)
        all_grads = [grad_image.to(image.dtype) if grad_image is not None else None, *grads]
        dtypes = ctx.input_dtypes  # type: ignore[attr-defined]
        return tuple(g.to(dt) if (g is not None and need) else None
                     for g, dt, need in zip(all_grads, dtypes, needs, strict=True))


def dsepconv_cuda(image: Tensor, vertical: Tensor, horizontal: Tensor, offset_x: Tensor, offset_y: Tensor,
                  mask: Tensor) -> Tensor:
    return DSepConvCUDAFunction.apply(image, vertical, horizontal, offset_x, offset_y, mask)  # type: ignore[no-any-return]
