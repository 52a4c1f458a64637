# SPDX-License-Identifier: MIT
"""cuDNN's fused conv+bias+ReLU (``ops.conv_relu``) on a GPU: the pair's result within bf16
rounding, NHWC kept, inside torch.compile and a CUDA graph (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ldmvfi_core.ops.conv_relu import conv3x3_relu

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _inputs(cin: int, cout: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(1, cin, 136, 240, device="cuda", generator=g).to(torch.bfloat16)
    w = (torch.randn(cout, cin, 3, 3, device="cuda", generator=g) / (3 * cin**0.5)).to(torch.bfloat16)
    b = (torch.randn(cout, device="cuda", generator=g) * 0.1).to(torch.bfloat16)
    return x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last), b


def _pair(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.relu(F.conv2d(x, w, b, padding=1))


@pytest.mark.parametrize(("cin", "cout"), [(64, 64), (64, 32), (32, 32), (32, 8)])
def test_the_fused_call_is_the_pair_within_bf16_rounding(cin: int, cout: int) -> None:
    x, w, b = _inputs(cin, cout)
    fused, pair = conv3x3_relu(x, w, b), _pair(x, w, b)
    exact = _pair(x.float(), w.float(), b.float())
    assert fused.dtype == torch.bfloat16 and fused.is_contiguous(memory_format=torch.channels_last)
    assert float((fused == 0).float().mean()) > 0.2  # the ReLU clipped
    # one bf16 step (2^-8 relative) of rounding each, against the float32 result
    for result in (fused, pair):
        err = (result.float() - exact).abs()
        assert bool((err <= exact.abs() * 2**-7 + 1e-3).all())


def test_it_compiles_and_replays_in_a_cuda_graph() -> None:
    x, w, b = _inputs(64, 32)
    compiled = torch.compile(lambda x, w, b: conv3x3_relu(x, w, b) + 1.0, fullgraph=True)
    torch.testing.assert_close(compiled(x, w, b), conv3x3_relu(x, w, b) + 1.0, rtol=0, atol=0)
    static_x = x.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        conv3x3_relu(static_x, w, b)  # warm-up outside the capture (cuDNN picks its plan)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = conv3x3_relu(static_x, w, b)
    other, _, _ = _inputs(64, 32, seed=1)
    static_x.copy_(other)
    graph.replay()
    torch.testing.assert_close(static_y, conv3x3_relu(other, w, b), rtol=0, atol=0)
