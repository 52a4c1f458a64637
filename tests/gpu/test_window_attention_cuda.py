# SPDX-License-Identifier: MIT
"""The fused small-window attention kernel against SDPA (skipped without a GPU and CuPy).

Run on the GPU machine: ``python -m pytest -m gpu tests/gpu -q``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ldmvfi_core.ops import window_attention as wa

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not (torch.cuda.is_available() and wa.fused_kernel_available()),
                       reason="needs a CUDA GPU and CuPy"),
]


def _inputs(windows: int, tokens: int, heads: int, head_width: int, seed: int
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    width = heads * head_width
    q, k, v = (torch.randn(windows, tokens, width, generator=g) for _ in range(3))
    bias = torch.randn(1, heads, tokens, tokens, generator=g)
    return q.cuda(), k.cuda(), v.cuda(), bias.cuda()


@pytest.mark.parametrize("tokens", wa.FUSED_TOKENS)
@pytest.mark.parametrize("head_width", wa.FUSED_HEAD_WIDTHS)
def test_float32_kernel_matches_float64_sdpa(tokens: int, head_width: int) -> None:
    q, k, v, bias = _inputs(37, tokens, 3, head_width, seed=tokens + head_width)
    with torch.no_grad():
        assert wa.can_fuse(q, 3)
        got = wa.window_attention(q, k, v, bias, 3)
        want = wa.reference_window_attention(*(t.double() for t in (q, k, v, bias)), 3)
    assert got.is_contiguous() and got.shape == q.shape
    torch.testing.assert_close(got.double(), want, rtol=0, atol=2e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_storage_accumulates_in_float32(dtype: torch.dtype) -> None:
    """Same rounded inputs, float64 truth: the error is the output's own rounding, not the sums'."""
    q, k, v, bias = (t.to(dtype) for t in _inputs(513, 4, 8, 32, seed=1))
    with torch.no_grad():
        got = wa.window_attention(q, k, v, bias, 8).double()
    want = wa.reference_window_attention(*(t.double() for t in (q, k, v, bias)), 8)
    step = 2.0 ** (-8 if dtype == torch.bfloat16 else -11)  # one unit of the last place, relative
    assert float(((got - want).abs() / want.abs().clamp_min(1.0)).max()) <= step


def test_projection_slices_are_read_in_place() -> None:
    """q, k, v as column slices of one (windows, tokens, 3 * width) tensor: token rows 3x apart."""
    q, k, v, bias = _inputs(64, 4, 4, 32, seed=2)
    packed = torch.cat([q, k, v], dim=-1)
    views = packed.split(q.shape[-1], dim=-1)
    with torch.no_grad():
        torch.testing.assert_close(wa.window_attention(*views, bias, 4), wa.window_attention(q, k, v, bias, 4),
                                   rtol=0, atol=0)


def test_gradients_keep_sdpa() -> None:
    q, k, v, bias = _inputs(8, 4, 2, 32, seed=3)
    q.requires_grad_(True)
    assert not wa.can_fuse(q, 2)
    wa.window_attention(q, k, v, bias, 2).sum().backward()
    assert q.grad is not None


def test_unet_step_with_the_kernel_matches_sdpa() -> None:
    """The released U-Net's layout (4-token windows, 32-channel heads) at a small latent, bf16."""
    from ldmvfi_core.config import LDMVFIConfig
    from ldmvfi_core.model.unet import UNet

    torch.manual_seed(0)
    unet = UNet(LDMVFIConfig.released().unet).cuda().eval()
    x, cond = torch.randn(2, 3, 8, 16, device="cuda"), torch.randn(2, 6, 8, 16, device="cuda")
    t = torch.tensor([500, 20], device="cuda")
    outs = []
    for fused in (False, True):
        wa.FUSED = fused
        try:
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                outs.append(unet(x, t, cond).float())
        finally:
            wa.FUSED = True
    err = (outs[1] - outs[0]).abs()
    assert float(err.max()) < 5e-2 and float(err.mean()) < 5e-3, (float(err.max()), float(err.mean()))


def test_graphed_tiny_model_matches_the_official_vectors(golden) -> None:
    """The tiny golden config attends in 4-token windows with 16-channel heads: float32 through
    the kernel (eager and CUDA-graphed) must still give the official frames."""
    from ldmvfi_core.interpolate import Interpolator
    from tests.conftest import TINY

    g = golden("e2e")
    for graphs in (False, True):
        interp = Interpolator.load(TINY / "weights.safetensors", device="cuda", padding="reference",
                                   cuda_graphs=graphs)
        f0 = interp.prepare(g["e2e1.frame0_u8"].permute(1, 2, 0).numpy())
        f1 = interp.prepare(g["e2e1.frame1_u8"].permute(1, 2, 0).numpy())
        out = interp.interpolate_prepared(f0, f1, steps=200, eta=0.0, x_T=g["e2e1.x_T"])
        torch.testing.assert_close(out.cpu(), g["e2e1.output"], atol=2e-5, rtol=0)


def test_bf16_frames_with_and_without_the_kernel_agree() -> None:
    from ldmvfi_core.interpolate import Interpolator
    from tests.conftest import TINY

    rng = np.random.default_rng(4)
    a, b = rng.random((64, 96, 3), dtype=np.float32), rng.random((64, 96, 3), dtype=np.float32)
    interp = Interpolator.load(TINY / "weights.safetensors", device="cuda", dtype=torch.bfloat16, cuda_graphs=True)
    fused = interp.interpolate(a, b, steps=20, eta=1.0, seed=3)
    wa.FUSED = False
    try:
        plain = Interpolator.load(TINY / "weights.safetensors", device="cuda", dtype=torch.bfloat16,
                                  cuda_graphs=True).interpolate(a, b, steps=20, eta=1.0, seed=3)
    finally:
        wa.FUSED = True
    assert np.abs(fused - plain).max() < 2e-2
