# SPDX-License-Identifier: MIT
"""Deformable separable convolution: official goldens, analytic cases, gradients, dtypes, shapes."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import Tensor

from ldmvfi_core.ops import dsepconv, dsepconv_blend
from ldmvfi_core.ops.dsepconv import _backend_for

HEADS = ("vertical", "horizontal", "offset_x", "offset_y", "mask")
ATOL = 1e-5  # fixtures/tiny/README.md: suggested tolerance for the dsepconv output and gradients


def _golden_args(g: dict[str, Tensor], batch: slice) -> list[Tensor]:
    return [g["dsep.input"][batch].clone()] + [g[f"dsep.{n}"][batch].clone() for n in HEADS]


def _random_args(
    b: int, c: int, h: int, w: int, k: int, dtype: torch.dtype = torch.float32, offset_scale: float = 2.0
) -> list[Tensor]:
    gen = torch.Generator().manual_seed(1234 + 7 * c + h + w + k)
    image = torch.randn(b, c, h + k - 1, w + k - 1, generator=gen, dtype=dtype)
    vertical = torch.randn(b, k, h, w, generator=gen, dtype=dtype) * 0.5
    horizontal = torch.randn(b, k, h, w, generator=gen, dtype=dtype) * 0.5
    offset_x = torch.randn(b, k * k, h, w, generator=gen, dtype=dtype) * offset_scale
    offset_y = torch.randn(b, k * k, h, w, generator=gen, dtype=dtype) * offset_scale
    mask = torch.rand(b, k * k, h, w, generator=gen, dtype=dtype)
    return [image, vertical, horizontal, offset_x, offset_y, mask]


def _one_hot_heads(
    b: int, h: int, w: int, k: int, fy0: int, fx0: int, shift_y: float = 0.0, shift_x: float = 0.0
) -> list[Tensor]:
    """vertical = e_fy0, horizontal = e_fx0, mask = 1, constant offsets (shift_y down, shift_x right)."""
    vertical = torch.zeros(b, k, h, w)
    vertical[:, fy0] = 1.0
    horizontal = torch.zeros(b, k, h, w)
    horizontal[:, fx0] = 1.0
    offset_x = torch.full((b, k * k, h, w), shift_y)
    offset_y = torch.full((b, k * k, h, w), shift_x)
    return [vertical, horizontal, offset_x, offset_y, torch.ones(b, k * k, h, w)]


def _naive_dsepconv(args: list[Tensor]) -> np.ndarray:
    """Per-pixel transcription of the NOTES §7 pseudo-code (float32 positions, float64 sums)."""
    image, vertical, horizontal, offset_x, offset_y, mask = (a.detach().numpy() for a in args)
    b_, c_, hin, win = image.shape
    k = vertical.shape[1]
    h_, w_ = vertical.shape[2:]
    f32 = np.float32
    out = np.zeros((b_, c_, h_, w_), dtype=np.float64)
    for b in range(b_):
        for y in range(h_):
            for x in range(w_):
                for fy in range(k):
                    for fx in range(k):
                        t = fy * k + fx
                        px = f32(f32(f32(f32(offset_y[b, t, y, x]) + f32(x)) + f32(fx)) - f32((k - 1) // 2))
                        px = f32(px + f32(1))
                        py = f32(f32(f32(f32(offset_x[b, t, y, x]) + f32(y)) + f32(fy)) - f32((k - 1) // 2))
                        py = f32(py + f32(1))
                        left, top = math.floor(px), math.floor(py)
                        right, bottom = left + 1, top + 1
                        pxc, pyc = min(max(float(px), 0.0), win - 1.0), min(max(float(py), 0.0), hin - 1.0)
                        left, right = min(max(left, 0), win - 1), min(max(right, 0), win - 1)
                        top, bottom = min(max(top, 0), hin - 1), min(max(bottom, 0), hin - 1)
                        wl, wr = 1 + (left - pxc), 1 - (right - pxc)
                        wt, wb = 1 + (top - pyc), 1 - (bottom - pyc)
                        img = image[b].astype(np.float64)
                        s = (
                            img[:, top, left] * wl * wt
                            + img[:, top, right] * wr * wt
                            + img[:, bottom, left] * wl * wb
                            + img[:, bottom, right] * wr * wb
                        )
                        coef = float(vertical[b, fy, y, x]) * float(horizontal[b, fx, y, x])
                        out[b, :, y, x] += s * coef * float(mask[b, t, y, x])
    return out


# 1. forward against the official CUDA kernel -------------------------------------------------------------


@pytest.mark.parametrize("batch", [slice(0, 2), slice(0, 1), slice(1, 2)], ids=["both", "b0", "b1-edges"])
def test_forward_matches_official(golden: Callable[[str], dict[str, Tensor]], batch: slice) -> None:
    g = golden("dsepconv")
    out = dsepconv(*_golden_args(g, batch))
    assert out.shape == g["dsep.output"][batch].shape
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, g["dsep.output"][batch], atol=ATOL, rtol=0)


# 2. backward against the official CUDA backward ----------------------------------------------------------


@pytest.mark.parametrize("batch", [slice(0, 2), slice(1, 2)], ids=["both", "b1-edges"])
def test_backward_matches_official(golden: Callable[[str], dict[str, Tensor]], batch: slice) -> None:
    g = golden("dsepconv")
    args = [a.requires_grad_() for a in _golden_args(g, batch)]
    dsepconv(*args).backward(g["dsep.grad_output"][batch])
    for name, arg in zip(HEADS, args[1:], strict=True):
        torch.testing.assert_close(arg.grad, g[f"dsep.grad_{name}"][batch], atol=ATOL, rtol=0, msg=name)
    # The official backward returns zeros for the image; ours is the true gradient (checked by gradcheck).
    assert args[0].grad is not None and args[0].grad.abs().max() > 1.0


def test_backward_partial_requires_grad(golden: Callable[[str], dict[str, Tensor]]) -> None:
    """Only the offsets need a gradient (others skipped): same values as the full backward."""
    g = golden("dsepconv")
    args = _golden_args(g, slice(0, 2))
    args[3].requires_grad_()
    args[4].requires_grad_()
    dsepconv(*args).backward(g["dsep.grad_output"])
    assert all(a.grad is None for i, a in enumerate(args) if i not in (3, 4))
    torch.testing.assert_close(args[3].grad, g["dsep.grad_offset_x"], atol=ATOL, rtol=0)
    torch.testing.assert_close(args[4].grad, g["dsep.grad_offset_y"], atol=ATOL, rtol=0)


# 3. gradcheck in float64 (all six inputs, image included) ------------------------------------------------


def _gradcheck_args() -> list[Tensor]:
    """B=1, C=2, H=3, W=4, K=5 in float64, offsets kept off grid lines and clamp bounds."""
    args = _random_args(1, 2, 3, 4, 5, dtype=torch.float64)
    gen = torch.Generator().manual_seed(99)
    for i in (3, 4):  # integer part in [-4, 3] plus a fraction in [0.2, 0.8]: some samples fall outside
        whole = torch.randint(-4, 4, args[i].shape, generator=gen).to(torch.float64)
        args[i] = whole + 0.2 + 0.6 * torch.rand(args[i].shape, generator=gen, dtype=torch.float64)
    return [a.requires_grad_() for a in args]


def test_gradcheck_float64_fast() -> None:
    """All six gradients (random projections of the Jacobian), image included."""
    args = _gradcheck_args()
    assert torch.autograd.gradcheck(dsepconv, tuple(args), eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)


def test_gradcheck_float64_image() -> None:
    """Full Jacobian w.r.t. the image (the gradient the official op does not compute)."""
    args = _gradcheck_args()
    heads = args[1:]

    def fn(image: Tensor) -> Tensor:
        return dsepconv(image, *heads)

    assert torch.autograd.gradcheck(fn, (args[0],), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.slow
def test_gradcheck_float64_full() -> None:
    """Full Jacobian w.r.t. all six inputs (~10 s)."""
    args = _gradcheck_args()
    assert torch.autograd.gradcheck(dsepconv, tuple(args), eps=1e-6, atol=1e-7, rtol=1e-5)


# 4. analytic cases --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fy0", range(5))
@pytest.mark.parametrize("fx0", range(5))
def test_zero_offset_one_hot_is_a_shift(fy0: int, fx0: int) -> None:
    """Zero offsets, one-hot kernels: out = padded image at (y+fy0-1, x+fx0-1); position -1 counts twice."""
    b, c, h, w, k = 1, 2, 6, 7, 5
    image = torch.randn(b, c, h + k - 1, w + k - 1)
    out = dsepconv(image, *_one_hot_heads(b, h, w, k, fy0, fx0))
    rows = torch.arange(h) + fy0 - 1
    cols = torch.arange(w) + fx0 - 1
    expected = image[:, :, rows.clamp(min=0)][:, :, :, cols.clamp(min=0)]
    factor = torch.where(rows < 0, 2.0, 1.0)[:, None] * torch.where(cols < 0, 2.0, 1.0)[None, :]
    torch.testing.assert_close(out, expected * factor, atol=1e-6, rtol=0)
    # interior pixels (all of them for fy0, fx0 >= 1) are a plain shift
    y0, x0 = int(fy0 == 0), int(fx0 == 0)
    torch.testing.assert_close(
        out[:, :, y0:, x0:],
        image[:, :, fy0 - 1 + y0 : fy0 - 1 + h, fx0 - 1 + x0 : fx0 - 1 + w],
        atol=1e-6,
        rtol=0,
    )


def test_border_doubling() -> None:
    b, c, h, w, k = 1, 3, 4, 5, 5
    hin, win = h + k - 1, w + k - 1
    image = torch.randn(b, c, hin, win)

    def run(fy0: int, fx0: int, shift_y: float, shift_x: float) -> Tensor:
        return dsepconv(image, *_one_hot_heads(b, h, w, k, fy0, fx0, shift_y, shift_x))

    # left edge: tap fx0=0 at x=0 lands on column -1 -> 2x column 0 (rows are interior for fy0=2)
    out = run(2, 0, 0.0, 0.0)
    torch.testing.assert_close(out[:, :, :, 0], 2 * image[:, :, 1 : 1 + h, 0], atol=1e-6, rtol=0)
    # top-left corner: tap (0, 0) at (0, 0) lands on (-1, -1) -> 4x pixel (0, 0)
    out = run(0, 0, 0.0, 0.0)
    torch.testing.assert_close(out[:, :, 0, 0], 4 * image[:, :, 0, 0], atol=1e-6, rtol=0)
    # -0.5 left of column 0 is clamped too: 2x column 0
    out = run(2, 0, 0.0, 0.5)  # px = x - 0.5 -> -0.5 at x = 0
    torch.testing.assert_close(out[:, :, :, 0], 2 * image[:, :, 1 : 1 + h, 0], atol=1e-6, rtol=0)
    # exactly 0 is an ordinary sample (weight 1)
    out = run(2, 0, 0.0, 1.0)  # px = x -> 0 at x = 0
    torch.testing.assert_close(out, image[:, :, 1 : 1 + h, 0:w], atol=1e-6, rtol=0)
    # exactly on the last column counts twice; interior columns once
    out = run(2, k - 1, 0.0, 1.0)  # px = x + K - 1 -> Win - 1 at x = W - 1
    torch.testing.assert_close(
        out[:, :, :, : w - 1], image[:, :, 1 : 1 + h, k - 1 : win - 1], atol=1e-6, rtol=0
    )
    torch.testing.assert_close(out[:, :, :, w - 1], 2 * image[:, :, 1 : 1 + h, win - 1], atol=1e-6, rtol=0)
    # exactly on the last row counts twice
    out = run(k - 1, 2, 1.0, 0.0)
    torch.testing.assert_close(out[:, :, h - 1, :], 2 * image[:, :, hin - 1, 1 : 1 + w], atol=1e-6, rtol=0)
    # far outside on both axes: 4x the corner pixel, everywhere
    out = run(2, 2, -20.3, -30.7)
    torch.testing.assert_close(
        out, (4 * image[:, :, 0, 0])[..., None, None].expand_as(out), atol=1e-6, rtol=0
    )
    out = run(2, 2, 25.0, 19.25)
    torch.testing.assert_close(
        out, (4 * image[:, :, hin - 1, win - 1])[..., None, None].expand_as(out), atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("k", [3, 5])
def test_matches_per_pixel_transcription(k: int) -> None:
    """Independent per-pixel loop of the pseudo-code, with integer, half-integer and far-out offsets."""
    b, c, h, w = 2, 2, 4, 5
    args = _random_args(b, c, h, w, k, offset_scale=3.0)
    gen = torch.Generator().manual_seed(5)
    for i in (3, 4):
        pick = torch.randint(0, 4, args[i].shape, generator=gen)
        args[i] = torch.where(pick == 0, args[i].round(), args[i])  # exact grid lines and bounds
        args[i] = torch.where(pick == 1, args[i].round() - 0.5, args[i])
        args[i] = torch.where(pick == 2, args[i] * 4, args[i])  # often outside the image
    out = dsepconv(*args)
    np.testing.assert_allclose(out.numpy(), _naive_dsepconv(args), atol=ATOL, rtol=0)


# 5. channel generality ----------------------------------------------------------------------------------


def test_channels_are_independent() -> None:
    args = _random_args(2, 7, 5, 6, 5)
    out = dsepconv(*args)
    assert out.shape == (2, 7, 5, 6)
    for ch in range(7):
        single = dsepconv(args[0][:, ch : ch + 1], *args[1:])
        torch.testing.assert_close(out[:, ch : ch + 1], single, atol=1e-6, rtol=0)


# 6. blend -----------------------------------------------------------------------------------------------


def test_blend_equals_two_calls_plus_residual() -> None:
    b, c, h, w, k = 2, 4, 5, 6, 5
    a0 = _random_args(b, c, h, w, k)
    a1 = _random_args(b, c, h, w + 0, k, offset_scale=3.0)
    a1 = [a1[0].flip(-1).contiguous(), a1[1] * 0.7, a1[2].flip(1), a1[3] + 0.3, a1[4] - 1.1, a1[5]]
    mask = a0[5]
    residual = torch.randn(b, 3, h, w)
    explicit0 = dsepconv(a0[0], *a0[1:5], mask)
    explicit1 = dsepconv(a1[0], *a1[1:5], 1 - mask)
    out = dsepconv_blend(a0[0], a1[0], tuple(a0[1:5]), tuple(a1[1:5]), mask)
    torch.testing.assert_close(out, explicit0 + explicit1, atol=1e-6, rtol=0)
    # the RGB residual only goes to the first 3 channels; the extra channel gets none
    out = dsepconv_blend(a0[0], a1[0], tuple(a0[1:5]), tuple(a1[1:5]), mask, residual)
    expected = explicit0 + explicit1
    expected[:, :3] += residual
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    full = torch.randn(b, c, h, w)
    out = dsepconv_blend(a0[0], a1[0], tuple(a0[1:5]), tuple(a1[1:5]), mask, full)
    torch.testing.assert_close(out, explicit0 + explicit1 + full, atol=1e-6, rtol=0)


def test_blend_gradients_reach_every_input() -> None:
    b, c, h, w, k = 1, 3, 3, 4, 5
    a0 = [a.requires_grad_() for a in _random_args(b, c, h, w, k)]
    a1 = [a.requires_grad_() for a in _random_args(b, c, h, w, k, offset_scale=1.0)]
    residual = torch.randn(b, c, h, w, requires_grad=True)
    dsepconv_blend(a0[0], a1[0], a0[1:5], a1[1:5], a0[5], residual).square().sum().backward()
    for t in [*a0, *a1[:5], residual]:
        assert t.grad is not None and t.grad.abs().sum() > 0


# 7. half precision --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs(dtype: torch.dtype) -> None:
    # W = 40 so that positions near 40 would lose a lot if they were computed in bfloat16 (ulp 0.25).
    low = [a.to(dtype) for a in _random_args(1, 3, 6, 40, 5, offset_scale=3.0)]
    out = dsepconv(*low)
    assert out.dtype == dtype
    ref = dsepconv(*[a.float() for a in low])
    rel = (out.float() - ref).abs().max() / ref.abs().max()
    assert rel < 1e-2, f"relative error {rel:.3g}"
    args = [a.clone().requires_grad_() for a in low]
    dsepconv(*args).float().sum().backward()
    assert all(a.grad is not None and a.grad.dtype == dtype for a in args)


def test_mixed_dtypes_promote() -> None:
    args = _random_args(1, 3, 4, 5, 5)
    out = dsepconv(args[0], *[a.half() for a in args[1:]])
    assert out.dtype == torch.float32


# 8. validation ------------------------------------------------------------------------------------------


def _bad(args: list[Tensor], index: int, shape: tuple[int, ...]) -> list[Tensor]:
    out = list(args)
    out[index] = torch.zeros(shape)
    return out


@pytest.mark.parametrize(
    ("index", "shape", "name"),
    [
        (0, (1, 3, 8, 9), "image"),  # should be (1, 3, 8, 10)
        (0, (2, 3, 8, 10), "image"),  # batch mismatch
        (0, (1, 3, 8, 10, 1), "image"),  # not 4-D
        (1, (1, 5, 4), "vertical"),
        (2, (1, 4, 4, 6), "horizontal"),
        (2, (1, 5, 4, 5), "horizontal"),
        (3, (1, 24, 4, 6), "offset_x"),
        (4, (1, 25, 4, 5), "offset_y"),
        (5, (2, 25, 4, 6), "mask"),
    ],
)
def test_bad_shapes_raise(index: int, shape: tuple[int, ...], name: str) -> None:
    args = _random_args(1, 3, 4, 6, 5)
    with pytest.raises(ValueError, match=name):
        dsepconv(*_bad(args, index, shape))


def test_blend_bad_shapes_raise() -> None:
    a0 = _random_args(1, 3, 4, 6, 5)
    heads = tuple(a0[1:5])
    mask = a0[5]
    with pytest.raises(ValueError, match="frame1"):
        dsepconv_blend(a0[0], a0[0][:, :, :, :-1], heads, heads, mask)
    with pytest.raises(ValueError, match="frame1 shape"):
        dsepconv_blend(a0[0], a0[0][:, :2], heads, heads, mask)
    with pytest.raises(ValueError, match="heads1"):
        dsepconv_blend(a0[0], a0[0], heads, heads[:3], mask)
    with pytest.raises(ValueError, match=r"heads0\[2\] \(offset_x\)"):
        dsepconv_blend(a0[0], a0[0], (heads[0], heads[1], heads[2][:, :24], heads[3]), heads, mask)
    with pytest.raises(ValueError, match="mask"):
        dsepconv_blend(a0[0], a0[0], heads, heads, mask[:, :, :3])
    with pytest.raises(ValueError, match="residual"):
        dsepconv_blend(a0[0], a0[0], heads, heads, mask, torch.zeros(1, 4, 4, 6))
    with pytest.raises(ValueError, match="residual"):
        dsepconv_blend(a0[0], a0[0], heads, heads, mask, torch.zeros(1, 3, 4, 5))


def test_backend_is_torch_on_cpu() -> None:
    assert _backend_for(torch.zeros(1)) == "torch"
