# SPDX-License-Identifier: MIT
"""The fused GroupNorm + swish path computes what autocast's GroupNorm then swish computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ldmvfi_core.config import LDMVFIConfig
from ldmvfi_core.interpolate import Interpolator
from ldmvfi_core.model.ae_blocks import group_norm, swish
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI
from ldmvfi_core.model.norm_swish import group_norm_swish, use_fused_norm_swish


def test_group_norm_swish_equals_the_two_steps() -> None:
    g = torch.Generator().manual_seed(0)
    norm = group_norm(64)
    with torch.no_grad():
        norm.weight.normal_(1.0, 0.2, generator=g)
        norm.bias.normal_(0.0, 0.2, generator=g)
        x = torch.randn(2, 64, 9, 11, generator=g) * 3 + 1
        expected = swish(norm(x))
        got = group_norm_swish(x, norm.weight, norm.bias, norm.num_groups, norm.eps)
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
        # bf16 input: CUDA autocast runs GroupNorm in float32 on the upcast map, swish stays float32
        # and the next convolution rounds to bf16; the fused path returns that rounding directly.
        xb = x.bfloat16()
        cuda_autocast = swish(norm(xb.float())).bfloat16()
        fused = group_norm_swish(xb, norm.weight, norm.bias, norm.num_groups, norm.eps)
        assert fused.dtype == torch.bfloat16 and torch.equal(fused, cuda_autocast)


def test_switched_model_gives_the_same_frames_and_state_dict() -> None:
    torch.manual_seed(0)
    model = LatentDiffusionVFI(LDMVFIConfig.tiny()).eval()
    keys = list(model.state_dict())
    rng = np.random.default_rng(0)
    a = rng.random((64, 96, 3), dtype=np.float32)
    b = np.roll(a, 3, axis=1)
    interp = Interpolator(model)
    plain = interp.interpolate(a, b, steps=4, seed=1)
    calls = []

    def counting(*args: object) -> torch.Tensor:
        calls.append(1)
        return group_norm_swish(*args)  # type: ignore[arg-type]

    switched = use_fused_norm_swish(model, counting)
    assert switched == sum(1 for _ in model.first_stage_model.modules() if hasattr(_, "norm_swish"))
    assert switched > 5 and list(model.state_dict()) == keys
    fused = interp.interpolate(a, b, steps=4, seed=1)
    assert calls  # the path was taken
    np.testing.assert_allclose(fused, plain, rtol=0, atol=1e-5)
    use_fused_norm_swish(model, None)
    assert np.array_equal(interp.interpolate(a, b, steps=4, seed=1), plain)


def test_training_never_takes_the_fused_path() -> None:
    from ldmvfi_core.model.ae_blocks import ResnetBlock

    block = ResnetBlock(32, 32)
    use_fused_norm_swish(block, lambda *args: pytest.fail("fused path used with autograd on"))  # type: ignore[arg-type,return-value]
    block(torch.randn(1, 32, 8, 8, requires_grad=True)).sum().backward()
