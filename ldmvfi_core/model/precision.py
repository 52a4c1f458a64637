# SPDX-License-Identifier: MIT
"""Reduced-precision weights for inference.

Under ``torch.autocast`` every convolution and linear layer casts its float32 weight to bf16 on
each call. With autocast's weight cache off (required inside CUDA graphs) that is one extra
kernel per layer per U-Net step: ~660 of the ~2,200 kernels of a released-config step. Casting
those weights once gives the same products (autocast would have rounded them identically) and
leaves norms, embeddings and biases of norms in float32, where autocast keeps them too.
"""

from __future__ import annotations

import torch
from torch import nn

MATMUL_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def cast_matmul_weights(module: nn.Module, dtype: torch.dtype) -> int:
    """Cast the weights and biases of every conv / linear layer in ``module`` to ``dtype``, in place.

    Returns the number of layers cast. Use only under autocast to the same ``dtype``.
    """
    count = 0
    for layer in module.modules():
        if isinstance(layer, MATMUL_LAYERS):
            layer.to(dtype)
            count += 1
    return count
