# SPDX-License-Identifier: MIT
"""Window attention: the SDPA reference against the textbook formula, when the fused CUDA kernel
may run, and that every kernel the Python side can ask for exists (the parts that run on a CPU;
the kernel itself is tested in tests/gpu)."""

from __future__ import annotations

import math
import re

import pytest
import torch

from ldmvfi_core.ops import cupy_runtime
from ldmvfi_core.ops import window_attention as wa


def _textbook(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, heads: int) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + bias) v per head, written out with loops over heads."""
    d = q.shape[-1] // heads
    outs = []
    for h in range(heads):
        part = slice(h * d, (h + 1) * d)
        scores = q[..., part] @ k[..., part].transpose(-1, -2) / math.sqrt(d) + bias[0, h]
        outs.append(scores.softmax(dim=-1) @ v[..., part])
    return torch.cat(outs, dim=-1)


@pytest.mark.parametrize(("tokens", "heads", "head_width"), [(4, 2, 16), (9, 3, 32), (16, 1, 64), (64, 2, 32)])
def test_reference_is_the_textbook_formula(tokens: int, heads: int, head_width: int) -> None:
    g = torch.Generator().manual_seed(tokens)
    q, k, v = (torch.randn(5, tokens, heads * head_width, generator=g, dtype=torch.float64) for _ in range(3))
    bias = torch.randn(1, heads, tokens, tokens, generator=g, dtype=torch.float64)
    got = wa.reference_window_attention(q, k, v, bias, heads)
    torch.testing.assert_close(got, _textbook(q, k, v, bias, heads), rtol=1e-12, atol=1e-12)


def test_the_registered_op_agrees_with_its_shape_function() -> None:
    """opcheck runs the op eagerly and through its fake (torch.compile) registration."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(6, 4, 64, generator=g) for _ in range(3))
    bias = torch.randn(1, 2, 4, 4, generator=g)
    torch.library.opcheck(wa._window_attention_op, (q, k, v, bias, 2))
    torch.testing.assert_close(wa._window_attention_op(q, k, v, bias, 2), _textbook(q, k, v, bias, 2))


def test_cpu_tensors_never_take_the_kernel() -> None:
    q = torch.randn(3, 4, 64)
    assert not wa.can_fuse(q, 2)
    torch.testing.assert_close(wa.window_attention(q, q, q, torch.zeros(1, 2, 4, 4), 2),
                               _textbook(q, q, q, torch.zeros(1, 2, 4, 4), 2))


def test_every_kernel_the_dispatch_can_ask_for_is_defined() -> None:
    source = cupy_runtime.kernel_source(wa.SOURCE)
    heads = {int(d) for d in re.findall(r"LDMVFI_WINDOW_ATTENTION_TYPES\(N, (\d+)\)", source)}
    tokens = {int(n) for n in re.findall(r"^LDMVFI_WINDOW_ATTENTION_HEADS\((\d+)\)", source, re.M)}
    types = set(re.findall(r"LDMVFI_WINDOW_ATTENTION\(N, D, (\w+), \w+\)", source)) - {"SUFFIX"}
    assert heads == set(wa.FUSED_HEAD_WIDTHS)
    assert tokens == set(wa.FUSED_TOKENS)
    assert types == {cupy_runtime.DTYPE_SUFFIX[t] for t in (torch.float32, torch.float16, torch.bfloat16)}
    entry = re.compile(r'extern "C" __global__ void window_attention_n##N##_d##D##_##SUFFIX\(')
    assert entry.search(source), "the entry-point name pattern the dispatch builds has changed"


def test_kernel_sources_inline_our_headers() -> None:
    for name in ("dsepconv.cu", wa.SOURCE):
        text = cupy_runtime.kernel_source(name)
        assert '#include "' not in text
        assert "struct bf16" in text and "__device__ __forceinline__ float widen(bf16 v)" in text
