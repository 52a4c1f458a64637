# SPDX-License-Identifier: MIT
"""``ops.conv_relu.conv3x3_relu``: relu(conv3x3(x) + bias) as one registered op (cuDNN's fused
call on GPUs, tests/gpu/test_conv_relu_cuda.py; the plain pair here), traceable by torch.compile."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ldmvfi_core.ops.conv_relu import conv3x3_relu


def _inputs(channels_last: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 10, 14, generator=g)
    w = torch.randn(16, 8, 3, 3, generator=g) * 0.2
    b = torch.randn(16, generator=g) * 0.1
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, w, b


@pytest.mark.parametrize("channels_last", [False, True])
def test_it_is_a_convolution_with_bias_then_relu_in_channels_last(channels_last: bool) -> None:
    x, w, b = _inputs(channels_last)
    y = conv3x3_relu(x, w, b)
    expected = F.relu(F.conv2d(x, w, b, padding=1))
    torch.testing.assert_close(y, expected, rtol=1e-6, atol=1e-6)
    assert float(y.min()) == 0.0 and float((y == 0).float().mean()) > 0.2  # the ReLU clipped something
    assert y.is_contiguous(memory_format=torch.channels_last)  # whatever came in: what cuDNN wants


def test_torch_compile_traces_it_with_the_right_shape_and_layout() -> None:
    x, w, b = _inputs(channels_last=True)
    compiled = torch.compile(lambda x, w, b: conv3x3_relu(x, w, b) * 2.0, backend="aot_eager", fullgraph=True)
    y = compiled(x, w, b)
    torch.testing.assert_close(y, F.relu(F.conv2d(x, w, b, padding=1)) * 2.0, rtol=1e-6, atol=1e-6)
    assert y.is_contiguous(memory_format=torch.channels_last)


def test_wrong_weights_or_mixed_dtypes_are_refused() -> None:
    x, w, b = _inputs(channels_last=False)
    with pytest.raises(ValueError, match="3x3 weight with 8 input channels"):
        conv3x3_relu(x, w[:, :4], b)
    with pytest.raises(ValueError, match="differ in dtype"):
        conv3x3_relu(x, w.to(torch.bfloat16), b)
