# SPDX-License-Identifier: MIT
"""Attention inside small MaxViT windows: one fused CUDA kernel for GPU inference, SDPA elsewhere.

The U-Net attends in 2x2 windows, so one call holds thousands of 4-token sequences; fused
attention kernels tile 64+ queries and spend most of their time on padding.
``kernels/window_attention.cu`` gives each (window, head) one warp instead and reads the
projections in the layout ``to_q``/``to_k``/``to_v`` write, writing the layout ``to_out`` reads.

It runs only where it can: a CUDA tensor, float32/float16/bfloat16, 4, 9 or 16 tokens, heads of
16, 32, 64 or 128 channels, no gradient wanted (training keeps SDPA, which has a backward), CuPy
present, and neither ``FUSED`` switched off nor ``LDMVFI_WINDOW_ATTENTION=torch`` set. The op is
registered with ``torch.library`` so ``torch.compile`` and CUDA graphs treat it as one opaque call.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from ldmvfi_core.ops import cupy_runtime

FUSED_TOKENS = (4, 9, 16)
FUSED_HEAD_WIDTHS = (16, 32, 64, 128)
SOURCE = "window_attention.cu"
# Switch for benchmarks and A/B checks (bench/profile_step.py's SDPA variant sets it False).
FUSED = True
_THREADS = 256  # 8 warps, 8 (window, head) pairs per block


@functools.cache
def fused_kernel_available() -> bool:
    """CuPy sees a GPU and ``LDMVFI_WINDOW_ATTENTION=torch`` is not set."""
    return cupy_runtime.kernel_enabled("LDMVFI_WINDOW_ATTENTION")


def can_fuse(q: Tensor, heads: int) -> bool:
    """Whether :func:`window_attention` would run the fused kernel on projections like ``q``."""
    if not (FUSED and q.is_cuda and q.dim() == 3 and q.dtype in (torch.float32, torch.float16, torch.bfloat16)):
        return False
    if torch.is_grad_enabled() and q.requires_grad:
        return False
    tokens, width = q.shape[1], q.shape[2]
    return tokens in FUSED_TOKENS and width % heads == 0 and width // heads in FUSED_HEAD_WIDTHS \
        and fused_kernel_available()


def reference_window_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, heads: int) -> Tensor:
    """``softmax(q k^T / sqrt(d) + bias) v`` per head through SDPA.

    q, k, v: (windows, tokens, heads * d); bias: (1, heads, tokens, tokens). Returns
    (windows, tokens, heads * d).
    """
    q4, k4, v4 = (rearrange(t, "b n (h d) -> b h n d", h=heads) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q4, k4, v4, attn_mask=bias)
    return rearrange(out, "b h n d -> b n (h d)")


def _token_rows(t: Tensor) -> Tensor:
    """``t`` itself when its tokens are evenly spaced rows of contiguous channels, else a copy."""
    if t.stride(2) == 1 and t.stride(0) == t.shape[1] * t.stride(1):
        return t
    return t.contiguous()


@torch.library.custom_op("ldmvfi::window_attention", mutates_args=())
def _window_attention_op(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, heads: int) -> Tensor:
    if not (q.is_cuda and fused_kernel_available()):
        return reference_window_attention(q, k, v, bias, heads).contiguous()
    q, k, v = (_token_rows(t.to(q.dtype)) for t in (q, k, v))
    windows, tokens, width = q.shape
    head_width = width // heads
    table = bias.to(q.dtype).reshape(heads, tokens, tokens).contiguous()
    out = torch.empty((windows, tokens, width), dtype=q.dtype, device=q.device)
    module = cupy_runtime.compiled_module(SOURCE, cupy_runtime.device_index(q.device))
    name = f"window_attention_n{tokens}_d{head_width}_{cupy_runtime.DTYPE_SUFFIX[q.dtype]}"
    warps_per_block = _THREADS // 32
    blocks = (windows * heads + warps_per_block - 1) // warps_per_block
    cupy_runtime.launch(module.get_function(name), q.device, blocks, _THREADS,
                        (q, k, v, table, out, windows, heads, q.stride(1), k.stride(1), v.stride(1),
                         float(head_width) ** -0.5))
    return out


@_window_attention_op.register_fake
def _window_attention_shape(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, heads: int) -> Tensor:
    return q.new_empty(q.shape)


def window_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, heads: int) -> Tensor:
    """Window attention on projections (windows, tokens, heads * d) -> (windows, tokens, heads * d).

    The fused kernel where :func:`can_fuse` allows, SDPA otherwise; both compute the same
    function (the kernel in float32 arithmetic whatever the storage type).
    """
    if can_fuse(q, heads):
        return _window_attention_op(q, k, v, bias, heads)  # type: ignore[no-any-return]
    return reference_window_attention(q, k, v, bias, heads)
