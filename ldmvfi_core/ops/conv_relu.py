# SPDX-License-Identifier: MIT
"""A 3x3 convolution (stride 1, padding 1) with its bias and ReLU in one cuDNN call on GPUs.

Why: the decoder's synthesis heads are 30 such layers at full frame resolution. Run as a
convolution and then a ReLU, each writes its output and then reads and writes it again; at 1080p
(1088x1928, bf16, H100, session 15, ``bench/conv_relu.py``) cuDNN's fused form takes 0.37 ms
for 64 -> 64 channels against 0.60 ms for the compiled pair, 0.40 against 0.59 ms for 64 -> 32
and 0.25 against 0.46 ms for 32 -> 32: about 5 ms of a 34-ms decode on paper. Session 15's
first tries lost that in the compiled decode to layout copies (NCHW inputs: 115 ms; channels-last
head outputs that the warp converted back in eager copies: +8 ms); with NHWC inside the heads and
NCHW handed to the warp (session 16) the decode's kernels take 30.8 against 34.5 ms compiled and
74.2 against 90.6 ms eager, and an in-between along a shot 68.3-68.6 against 74.1 ms. So the
Interpolator uses it on GPUs in half precision (``pad_heads(fused_relu_dtype=...)``). It sums the
same products; cuDNN adds the bias before its single rounding to bf16, so outputs may differ from
the pair by one bf16 step.

Registered with ``torch.library``, so ``torch.compile`` and CUDA graphs take it as one opaque
call (inductor has no lowering for ``aten.cudnn_convolution_relu``, nor a fake kernel). Off the
GPU it is the plain convolution and ReLU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


@torch.library.custom_op("ldmvfi::conv3x3_relu", mutates_args=())
def _conv3x3_relu_op(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    # NHWC in and out: cuDNN's fast bf16 kernels want it, and a layout that differs from the
    # weight's costs a conversion each way (session 15: a decode 43 -> 115 ms with NCHW inputs).
    x = x.contiguous(memory_format=torch.channels_last)
    if x.is_cuda and torch.backends.cudnn.is_available():
        y = torch.cudnn_convolution_relu(x, weight.contiguous(memory_format=torch.channels_last), bias,
                                         [1, 1], [1, 1], [1, 1], 1)
    else:
        y = F.relu(F.conv2d(x, weight, bias, padding=1))
    return y.contiguous(memory_format=torch.channels_last)


@_conv3x3_relu_op.register_fake
def _conv3x3_relu_shape(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    n, _, h, w = x.shape
    return x.new_empty((n, weight.shape[0], h, w)).contiguous(memory_format=torch.channels_last)


def conv3x3_relu(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``relu(conv2d(x, weight, bias, padding=1))`` for a (O, I, 3, 3) ``weight``, channels-last;
    all three tensors must share a dtype (no autocast inside a custom op: cast them before). Give it
    channels-last inputs: others are converted first."""
    if weight.shape[-2:] != (3, 3) or weight.shape[1] != x.shape[1]:
        raise ValueError(f"expected a 3x3 weight with {x.shape[1]} input channels, got {tuple(weight.shape)}")
    if not (x.dtype == weight.dtype == bias.dtype):
        raise ValueError(f"input, weight and bias differ in dtype: {x.dtype}, {weight.dtype}, {bias.dtype}")
    out: Tensor = _conv3x3_relu_op(x, weight, bias)
    return out
