# SPDX-License-Identifier: MIT
"""Public entry points of the deformable separable convolution (LDMVFI warp op, NOTES §7).

``dsepconv`` is the op itself; ``dsepconv_blend`` is what the decoder calls (two warps, the
per-tap visibility mask and the RGB residual, NOTES §5.6). Both validate their arguments and then
dispatch on ``_backend_for``, the single place where an implementation is chosen: the CUDA
kernels (``kernels/dsepconv.cu`` through CuPy) for CUDA tensors when CuPy is installed, the pure
torch path otherwise. ``LDMVFI_DSEPCONV=torch`` forces the torch path.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ldmvfi_core.ops.dsepconv_cuda import cupy_available, dsepconv_blend_cuda, dsepconv_cuda
from ldmvfi_core.ops.dsepconv_torch import (
    check_dsepconv_inputs,
    compose_blend,
    dsepconv_blend_torch,
    dsepconv_torch,
)

__all__ = ["dsepconv", "dsepconv_blend"]

_HEAD_NAMES = ("vertical", "horizontal", "offset_x", "offset_y")


def backend_name(device: torch.device | str) -> str:
    """Which implementation runs on ``device``: ``"cuda"`` (CuPy kernels) or ``"torch"``."""
    return "cuda" if torch.device(device).type == "cuda" and cupy_available() else "torch"


def _backend_for(tensor: Tensor) -> str:
    return backend_name(tensor.device)


def dsepconv(
    image: Tensor,
    vertical: Tensor,
    horizontal: Tensor,
    offset_x: Tensor,
    offset_y: Tensor,
    mask: Tensor,
) -> Tensor:
    """Deformable separable convolution, exactly as the official LDMVFI op (forward).

    Shapes: image (B,C,H+K-1,W+K-1) (frame already padded), vertical/horizontal (B,K,H,W),
    offset_x = vertical shift, offset_y = horizontal shift, mask (B,K*K,H,W); tap k = fy*K + fx.
    Returns (B,C,H,W); any C >= 1 (extra channels use the same kernels). Half/bfloat16 inputs are
    computed in float32 and returned in the promoted input dtype.

    Differences from the official op: it runs on any device, any channel count, and its backward
    returns the true gradient for ``image`` (the official backward returns zeros there). The
    other five gradients match the official backward.

    Raises ValueError when the shapes do not fit together (the message names the argument).
    """
    check_dsepconv_inputs(image, vertical, horizontal, offset_x, offset_y, mask)
    backend = _backend_for(image)
    if backend == "cuda":
        return dsepconv_cuda(image, vertical, horizontal, offset_x, offset_y, mask)
    if backend == "torch":
        return dsepconv_torch(image, vertical, horizontal, offset_x, offset_y, mask)
    raise RuntimeError(f"dsepconv: unknown backend {backend!r}")


def _check_heads(name: str, heads: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    if isinstance(heads, Tensor) or len(heads) != 4:
        raise ValueError(
            f"dsepconv_blend: {name} must be a sequence of 4 tensors "
            "(vertical, horizontal, offset_x, offset_y)"
        )
    return (heads[0], heads[1], heads[2], heads[3])


def _blend_names(i: int) -> tuple[str, ...]:
    return (f"frame{i}", *(f"heads{i}[{j}] ({n})" for j, n in enumerate(_HEAD_NAMES)), "mask")


def dsepconv_blend(
    frame0: Tensor,
    frame1: Tensor,
    heads0: Sequence[Tensor],
    heads1: Sequence[Tensor],
    mask: Tensor,
    residual: Tensor | None = None,
) -> Tensor:
    """Decoder composition (NOTES §5.6), one call for both warps.

    ``out = dsepconv(frame0, *heads0, mask) + dsepconv(frame1, *heads1, 1 - mask) + residual``.

    ``heads`` = (vertical, horizontal, offset_x, offset_y) of each frame; frames are already padded
    to (B, C, H+K-1, W+K-1) and have the same shape. ``residual`` (B, Cr, H, W), Cr <= C, is
    optional and added to the first Cr channels only (the RGB delta; extra channels get none).
    Returns (B, C, H, W). On CUDA without gradients this is one fused kernel launch.
    """
    h0 = _check_heads("heads0", heads0)
    h1 = _check_heads("heads1", heads1)
    check_dsepconv_inputs(frame0, *h0, mask, names=_blend_names(0))
    check_dsepconv_inputs(frame1, *h1, mask, names=_blend_names(1))
    if frame1.shape != frame0.shape:
        raise ValueError(
            f"dsepconv_blend: frame1 shape {tuple(frame1.shape)} != frame0 shape {tuple(frame0.shape)}"
        )
    if residual is not None:
        b, c = frame0.shape[:2]
        hw = tuple(mask.shape[2:])
        if not isinstance(residual, Tensor) or residual.dim() != 4:
            raise ValueError("dsepconv_blend: residual must be a 4-D tensor (B, Cr, H, W) or None")
        if residual.shape[0] != b or tuple(residual.shape[2:]) != hw or not 1 <= residual.shape[1] <= c:
            raise ValueError(
                f"dsepconv_blend: residual must have shape ({b}, Cr, {hw[0]}, {hw[1]}) with 1 <= Cr <= {c}, "
                f"got {tuple(residual.shape)}"
            )
        if residual.device != frame0.device:
            raise ValueError(
                f"dsepconv_blend: residual is on {residual.device} but frame0 is on {frame0.device}"
            )
    backend = _backend_for(frame0)
    if backend == "cuda":
        tensors = (frame0, frame1, *h0, *h1, mask) + ((residual,) if residual is not None else ())
        if not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)):
            return dsepconv_blend_cuda(frame0, frame1, h0, h1, mask, residual)
        # Training: two differentiable kernel calls; the fused kernel has no backward.
        return compose_blend(dsepconv_cuda, frame0, frame1, h0, h1, mask, residual)
    if backend == "torch":
        return dsepconv_blend_torch(frame0, frame1, h0, h1, mask, residual)
    raise RuntimeError(f"dsepconv_blend: unknown backend {backend!r}")
