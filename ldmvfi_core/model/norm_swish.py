# SPDX-License-Identifier: MIT
"""GroupNorm followed by swish, optionally as one compiled kernel pair (inference on GPUs).

Why: at 1080p the autoencoder's full-resolution levels spend most of their time outside the
convolutions. Under bf16 autocast, GroupNorm runs in float32, so every ``swish(norm(x))`` casts
a 64-channel full-resolution map to float32, reduces it, normalises it, applies SiLU and hands a
float32 map to a convolution that casts it back: several passes over ~0.7 GB each (profile in
``bench/RESULTS.md``: 43 ms of elementwise kernels and 9 ms of GroupNorm statistics of a 131 ms
decode). Compiled, the same float32 arithmetic becomes one statistics pass and one fused
normalise + SiLU + cast pass over the bf16 map.

The fused path computes what autocast computes (float32 statistics and SiLU); only its output
is already rounded to the input's dtype, which is what the next convolution does to it anyway.
It is off unless ``use_fused_norm_swish`` switched it on for a model (``Interpolator(...,
compile_autoencoder=True)`` does so on GPUs), and only used without autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ldmvfi_core.model.ae_blocks import NormSwish, NormSwishUser

__all__ = ["NormSwish", "compiled_group_norm_swish", "group_norm_swish", "use_fused_norm_swish"]


def group_norm_swish(x: Tensor, weight: Tensor, bias: Tensor, groups: int, eps: float) -> Tensor:
    """``silu(group_norm(x))`` in float32, returned in ``x``'s dtype (the function that gets compiled)."""
    y = F.group_norm(x.float(), groups, weight.float(), bias.float(), eps)
    return F.silu(y).to(x.dtype)


_compiled: NormSwish | None = None


def compiled_group_norm_swish() -> NormSwish:
    """One compiled ``group_norm_swish`` per process, for every shape (``dynamic=True``)."""
    global _compiled
    if _compiled is None:
        _compiled = torch.compile(group_norm_swish, dynamic=True)
    return _compiled


def use_fused_norm_swish(model: nn.Module, fn: NormSwish | None) -> int:
    """Give every ``ae_blocks.NormSwishUser`` in ``model`` the function ``fn`` (``None``: the plain
    path). Returns how many modules were switched; the state dict does not change."""
    count = 0
    for module in model.modules():
        if isinstance(module, NormSwishUser):
            module.fused_norm_swish = fn
            count += 1
    return count
