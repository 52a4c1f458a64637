# SPDX-License-Identifier: MIT
"""Deformable separable convolution ("dsepconv"), reference implementation in plain PyTorch.

This is the warp op of the LDMVFI decoder (NOTES §7). For every output pixel (y, x) and every
tap (fy, fx) of a K x K kernel, the padded image is sampled bilinearly at

    px = (((offset_y + x) + fx) - (K - 1) // 2) + 1      (horizontal position, float32, this order)
    py = (((offset_x + y) + fy) - (K - 1) // 2) + 1      (vertical position)

(``offset_x`` is the *vertical* shift and ``offset_y`` the *horizontal* one, as in the official
code) and the samples are summed with the weight ``vertical[fy] * horizontal[fx] * mask[fy*K+fx]``.
Quirks reproduced on purpose:

* the built-in -1 shift: with zero offsets tap (fy, fx) reads padded pixel (y+fy-1, x+fx-1);
* the corner indices come from ``floor`` of the *unclamped* position, then the position and the
  indices are clamped to the image, and the bilinear weights are ``1 + (L - p)`` and
  ``1 - (R - p)``. A sample left of / above the image, right of / below it, or exactly on the
  last column / row therefore counts **twice** per axis (4x in a corner). No normalisation.

The loop runs over the K*K taps (never over pixels); each tap gathers the four bilinear corners
for all channels at once, so the working memory is O(B*C*H*W) per tap. The backward pass is
written by hand and recomputes the samples tap by tap instead of keeping K*K of them alive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = [
    "DSepConvFunction",
    "check_dsepconv_inputs",
    "compose_blend",
    "dsepconv_blend_torch",
    "dsepconv_torch",
]

_ARG_NAMES = ("image", "vertical", "horizontal", "offset_x", "offset_y", "mask")


def check_dsepconv_inputs(
    image: Tensor,
    vertical: Tensor,
    horizontal: Tensor,
    offset_x: Tensor,
    offset_y: Tensor,
    mask: Tensor,
    names: Sequence[str] = _ARG_NAMES,
) -> int:
    """Validate the six dsepconv arguments and return the kernel size K.

    ``names`` are used in the error messages (the blend passes e.g. ``"heads1[2] (offset_x)"``).
    Raises ``ValueError`` for wrong shapes or mixed devices, ``TypeError`` for non-float tensors.
    """
    args = (image, vertical, horizontal, offset_x, offset_y, mask)
    for name, t in zip(names, args, strict=True):
        if not isinstance(t, Tensor):
            raise TypeError(f"dsepconv: {name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"dsepconv: {name} must be a floating-point tensor, got {t.dtype}")
        if t.dim() != 4:
            raise ValueError(f"dsepconv: {name} must be 4-D (B, ., H, W), got shape {tuple(t.shape)}")
        if t.device != image.device:
            raise ValueError(f"dsepconv: {name} is on {t.device} but {names[0]} is on {image.device}")
    b, k, h, w = vertical.shape
    if k < 1:
        raise ValueError(f"dsepconv: {names[1]} must have K >= 1 channels, got shape {tuple(vertical.shape)}")
    if horizontal.shape != vertical.shape:
        raise ValueError(
            f"dsepconv: {names[2]} shape {tuple(horizontal.shape)} != "
            f"{names[1]} shape {tuple(vertical.shape)}"
        )
    expected = (b, k * k, h, w)
    for name, t in zip(names[3:], (offset_x, offset_y, mask), strict=True):
        if tuple(t.shape) != expected:
            raise ValueError(
                f"dsepconv: {name} must have shape (B, K*K, H, W) = {expected} "
                f"(K={k} from {names[1]}), got {tuple(t.shape)}"
            )
    if image.shape[1] < 1:
        raise ValueError(f"dsepconv: {names[0]} must have at least one channel, got {tuple(image.shape)}")
    if image.shape[0] != b or tuple(image.shape[2:]) != (h + k - 1, w + k - 1):
        raise ValueError(
            f"dsepconv: {names[0]} must have shape (B, C, H+K-1, W+K-1) = ({b}, C, {h + k - 1}, {w + k - 1}) "
            f"for {names[1]} of shape {tuple(vertical.shape)}, got {tuple(image.shape)}"
        )
    return k


def _compute_dtype(tensors: Sequence[Tensor]) -> torch.dtype:
    """float64 if any input is float64 (gradcheck), otherwise float32 (also for half/bfloat16)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _result_dtype(tensors: Sequence[Tensor]) -> torch.dtype:
    """Promoted dtype of all inputs: float16 everywhere stays float16, mixed float16/float32 -> float32."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


class _Tap(NamedTuple):
    """Sampling geometry of one tap for every output pixel; all (B, 1, HW) except ``index``."""

    index: Tensor  # (B, 4*HW) int64 flat corner indices, order TL, TR, BL, BR
    weights: Tensor  # (B, 1, 4, HW) bilinear weights in the same order
    wl: Tensor
    wr: Tensor
    wt: Tensor
    wb: Tensor
    inside_x: Tensor  # clamp passes the gradient: 0 <= px <= Win-1 (bounds included)
    inside_y: Tensor


def _tap_geometry(
    shift_x: Tensor, shift_y: Tensor, xs: Tensor, ys: Tensor, fx: int, fy: int, half: int, hin: int, win: int
) -> _Tap:
    """Official position / corner / weight arithmetic for tap (fy, fx). ``shift_*`` are (B, HW)."""
    px = (((shift_x + xs) + fx) - half) + 1
    py = (((shift_y + ys) + fy) - half) + 1
    left = torch.floor(px)  # from the UNCLAMPED position
    top = torch.floor(py)
    pxc = px.clamp(0, win - 1)
    pyc = py.clamp(0, hin - 1)
    lc = left.clamp(0, win - 1)
    rc = (left + 1).clamp(0, win - 1)
    tc = top.clamp(0, hin - 1)
    bc = (top + 1).clamp(0, hin - 1)
    wl = 1 + (lc - pxc)
    wr = 1 - (rc - pxc)
    wt = 1 + (tc - pyc)
    wb = 1 - (bc - pyc)
    # The second clamp only matters for NaN positions (NaN -> int is undefined); it keeps gather in range.
    li, ri = lc.long().clamp_(0, win - 1), rc.long().clamp_(0, win - 1)
    ti, bi = tc.long().clamp_(0, hin - 1) * win, bc.long().clamp_(0, hin - 1) * win
    index = torch.cat((ti + li, ti + ri, bi + li, bi + ri), dim=1)
    weights = torch.stack((wl * wt, wr * wt, wl * wb, wr * wb), dim=1).unsqueeze(1)
    inside_x = (px >= 0) & (px <= win - 1)
    inside_y = (py >= 0) & (py <= hin - 1)
    return _Tap(
        index,
        weights,
        wl.unsqueeze(1),
        wr.unsqueeze(1),
        wt.unsqueeze(1),
        wb.unsqueeze(1),
        inside_x,
        inside_y,
    )


def _pixel_grid(h: int, w: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """Flattened (HW,) x and y coordinates of the output pixels, row-major."""
    xs = torch.arange(w, dtype=dtype, device=device).repeat(h)
    ys = torch.arange(h, dtype=dtype, device=device).repeat_interleave(w)
    return xs, ys


class DSepConvFunction(torch.autograd.Function):
    """Autograd wrapper: forward per the official definition, hand-written backward.

    Gradients for vertical, horizontal, offset_x, offset_y and mask equal the official CUDA
    backward: the position clamp passes the gradient when the position is inside the image *or
    exactly on a bound* (``torch.clamp`` semantics); strictly outside it is zero, and exactly on
    the last index the two corners coincide so the derivative is zero. At an integer position the
    derivative is the forward (right/bottom minus left/top) difference. The gradient for the image
    is the true one (the official backward returns zeros there).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        image: Tensor,
        vertical: Tensor,
        horizontal: Tensor,
        offset_x: Tensor,
        offset_y: Tensor,
        mask: Tensor,
    ) -> Tensor:
        inputs = (image, vertical, horizontal, offset_x, offset_y, mask)
        ctx.save_for_backward(*inputs)
        out = _forward(*inputs, _compute_dtype(inputs))
        return out.to(_result_dtype(inputs))

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        inputs = ctx.saved_tensors
        grads = _backward(grad_output, *inputs, _compute_dtype(inputs), ctx.needs_input_grad)
        return tuple(None if g is None else g.to(t.dtype) for g, t in zip(grads, inputs, strict=True))


def _flatten(
    image: Tensor,
    vertical: Tensor,
    horizontal: Tensor,
    offset_x: Tensor,
    offset_y: Tensor,
    mask: Tensor,
    dtype: torch.dtype,
) -> tuple[Tensor, ...]:
    b, c, hin, win = image.shape
    _, k, h, w = vertical.shape
    return (
        image.to(dtype).reshape(b, c, hin * win),
        vertical.to(dtype).reshape(b, k, h * w),
        horizontal.to(dtype).reshape(b, k, h * w),
        offset_x.to(dtype).reshape(b, k * k, h * w),
        offset_y.to(dtype).reshape(b, k * k, h * w),
        mask.to(dtype).reshape(b, k * k, h * w),
    )


def _forward(
    image: Tensor,
    vertical: Tensor,
    horizontal: Tensor,
    offset_x: Tensor,
    offset_y: Tensor,
    mask: Tensor,
    dtype: torch.dtype,
) -> Tensor:
    b, c, hin, win = image.shape
    _, k, h, w = vertical.shape
    hw = h * w
    img, v, hk, ox, oy, m = _flatten(image, vertical, horizontal, offset_x, offset_y, mask, dtype)
    xs, ys = _pixel_grid(h, w, dtype, image.device)
    half = (k - 1) // 2
    acc = torch.zeros(b, c, hw, dtype=dtype, device=image.device)
    for fy in range(k):
        for fx in range(k):
            tap = fy * k + fx
            geo = _tap_geometry(oy[:, tap], ox[:, tap], xs, ys, fx, fy, half, hin, win)
            corners = torch.gather(img, 2, geo.index.unsqueeze(1).expand(b, c, 4 * hw)).view(b, c, 4, hw)
            sample = (corners * geo.weights).sum(2)
            coef = (v[:, fy] * hk[:, fx]) * m[:, tap]
            acc.addcmul_(sample, coef.unsqueeze(1))
    return acc.view(b, c, h, w)


def _backward(
    grad_output: Tensor,
    image: Tensor,
    vertical: Tensor,
    horizontal: Tensor,
    offset_x: Tensor,
    offset_y: Tensor,
    mask: Tensor,
    dtype: torch.dtype,
    needs: Sequence[bool],
) -> tuple[Tensor | None, ...]:
    b, c, hin, win = image.shape
    _, k, h, w = vertical.shape
    hw = h * w
    dev = image.device
    img, v, hk, ox, oy, m = _flatten(image, vertical, horizontal, offset_x, offset_y, mask, dtype)
    g = grad_output.to(dtype).reshape(b, c, hw)
    xs, ys = _pixel_grid(h, w, dtype, dev)
    half = (k - 1) // 2
    need_img, need_v, need_h, need_ox, need_oy, need_m = needs[:6]
    need_coef = need_v or need_h or need_m
    g_img = torch.zeros(b, c, hin * win, dtype=dtype, device=dev) if need_img else None
    g_v = torch.zeros(b, k, hw, dtype=dtype, device=dev) if need_v else None
    g_h = torch.zeros(b, k, hw, dtype=dtype, device=dev) if need_h else None
    g_ox = torch.zeros(b, k * k, hw, dtype=dtype, device=dev) if need_ox else None
    g_oy = torch.zeros(b, k * k, hw, dtype=dtype, device=dev) if need_oy else None
    g_m = torch.zeros(b, k * k, hw, dtype=dtype, device=dev) if need_m else None
    if any(needs[:6]):
        for fy in range(k):
            for fx in range(k):
                tap = fy * k + fx
                geo = _tap_geometry(oy[:, tap], ox[:, tap], xs, ys, fx, fy, half, hin, win)
                index = geo.index.unsqueeze(1).expand(b, c, 4 * hw)
                vk, hk_, mk = v[:, fy], hk[:, fx], m[:, tap]
                if need_coef or need_ox or need_oy:
                    corners = torch.gather(img, 2, index).view(b, c, 4, hw)
                if need_coef:
                    # d out / d (V*Hk*M) = sample, summed over channels
                    g_coef = (g * (corners * geo.weights).sum(2)).sum(1)
                    if g_v is not None:
                        g_v[:, fy] += (g_coef * hk_) * mk
                    if g_h is not None:
                        g_h[:, fx] += (g_coef * vk) * mk
                    if g_m is not None:
                        g_m[:, tap] = (g_coef * vk) * hk_
                if not (need_img or need_ox or need_oy):
                    continue
                g_sample = g * ((vk * hk_) * mk).unsqueeze(1)  # (B, C, HW)
                if need_ox or need_oy:
                    tl, tr, bl, br = corners.unbind(2)
                    if g_oy is not None:  # horizontal position: d wl/dpx = -1, d wr/dpx = +1
                        d_px = geo.wt * (tr - tl) + geo.wb * (br - bl)
                        g_oy[:, tap] = (g_sample * d_px).sum(1) * geo.inside_x
                    if g_ox is not None:  # vertical position: d wt/dpy = -1, d wb/dpy = +1
                        d_py = geo.wl * (bl - tl) + geo.wr * (br - tr)
                        g_ox[:, tap] = (g_sample * d_py).sum(1) * geo.inside_y
                if g_img is not None:
                    contrib = (g_sample.unsqueeze(2) * geo.weights).reshape(b, c, 4 * hw)
                    g_img.scatter_add_(2, index, contrib)
    return (
        None if g_img is None else g_img.view(b, c, hin, win),
        None if g_v is None else g_v.view(b, k, h, w),
        None if g_h is None else g_h.view(b, k, h, w),
        None if g_ox is None else g_ox.view(b, k * k, h, w),
        None if g_oy is None else g_oy.view(b, k * k, h, w),
        None if g_m is None else g_m.view(b, k * k, h, w),
    )


def dsepconv_torch(
    image: Tensor,
    vertical: Tensor,
    horizontal: Tensor,
    offset_x: Tensor,
    offset_y: Tensor,
    mask: Tensor,
) -> Tensor:
    """Deformable separable convolution, pure torch (any device, any C >= 1).

    image (B,C,H+K-1,W+K-1), vertical/horizontal (B,K,H,W), offset_x (vertical shift),
    offset_y (horizontal shift) and mask (B,K*K,H,W) -> (B,C,H,W). Positions and sums are
    computed in float32 (float64 if any input is float64); the result has the promoted input
    dtype. Differentiable in all six inputs; unlike the official op, the image gradient is the
    true gradient rather than zeros.
    """
    check_dsepconv_inputs(image, vertical, horizontal, offset_x, offset_y, mask)
    return DSepConvFunction.apply(image, vertical, horizontal, offset_x, offset_y, mask)


def compose_blend(
    warp: Callable[..., Tensor],
    frame0: Tensor,
    frame1: Tensor,
    heads0: Sequence[Tensor],
    heads1: Sequence[Tensor],
    mask: Tensor,
    residual: Tensor | None = None,
) -> Tensor:
    """``warp(frame0, *heads0, mask) + warp(frame1, *heads1, 1 - mask) [+ residual]``, any warp op.

    ``residual`` (B, Cr, H, W) with Cr <= C is added to the first Cr channels only.
    """
    out = warp(frame0, *heads0, mask) + warp(frame1, *heads1, 1 - mask)
    if residual is None:
        return out
    cr = residual.shape[1]
    if cr == out.shape[1]:
        return out + residual
    return torch.cat((out[:, :cr] + residual, out[:, cr:]), dim=1)


def dsepconv_blend_torch(
    frame0: Tensor,
    frame1: Tensor,
    heads0: Sequence[Tensor],
    heads1: Sequence[Tensor],
    mask: Tensor,
    residual: Tensor | None = None,
) -> Tensor:
    """``dsepconv(frame0, *heads0, mask) + dsepconv(frame1, *heads1, 1 - mask) [+ residual]``.

    Inputs are assumed validated (see ``ldmvfi_core.ops.dsepconv.dsepconv_blend``).
    """
    return compose_blend(DSepConvFunction.apply, frame0, frame1, heads0, heads1, mask, residual)
