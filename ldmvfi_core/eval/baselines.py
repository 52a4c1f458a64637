# SPDX-License-Identifier: MIT
"""Model-free interpolators the learned model must beat: frame averaging and classical flow.

Both take the two 8-bit RGB neighbours (H x W x 3 uint8) and return the middle frame as uint8.

``flow_baseline`` recipe (OpenCV DIS, bidirectional, occlusion-weighted), step by step:

1. Grey 8-bit inputs ``g0, g2`` (``cv2.cvtColor(RGB2GRAY)``, Rec. 601 luma weights).
2. Dense flow both ways with DIS (Kroeger et al., ECCV 2016), preset MEDIUM:
   ``F02 = dis.calc(g0, g2)`` (``g0(x) ~ g2(x + F02(x))``) and ``F20 = dis.calc(g2, g0)``.
3. Flows from the middle frame, assuming linear motion and locally smooth flow (Super SloMo's
   approximation, Jiang et al. CVPR 2018, at t = 1/2):
   ``Fm0 = (F20 - F02) / 4`` and ``Fm2 = (F02 - F20) / 4 = -Fm0``: each is the half flow
   ``F20 / 2`` (resp. ``F02 / 2``) averaged with the negated half flow the other way, which halves
   the error of reading a flow field at the middle frame's pixel instead of where it belongs.
4. Backward warping of both frames to the middle: ``W0(x) = I0(x + Fm0(x))``,
   ``W2(x) = I2(x + Fm2(x))`` with ``cv2.remap``, bilinear, ``BORDER_REPLICATE``.
5. Occlusion from forward-backward consistency: ``e0(x) = |F02(x) + F20(x + F02(x))|`` (pixels of
   frame 0 whose round trip 0 -> 2 -> 0 does not come back are hidden in frame 2), likewise
   ``e2``. Each map is warped to the middle with the same sampling as its frame (``e0`` like
   ``I0``).
6. Blend with weights ``w0 = 1 / (1 + (e0 / tau)^2)``, ``w2`` likewise (``tau`` = 1 px):
   ``out = (w0 W0 + w2 W2) / (w0 + w2)``. Where both round trips agree the two warps get equal
   weight (t = 1/2); where one frame's round trip fails, its weight goes to the other frame.
   A small floor keeps the division defined where both fail (the plain average then).
7. Round to uint8 (half up), clipped to [0, 255].
"""

from __future__ import annotations

import numpy as np

DIS_PRESET = "medium"
OCCLUSION_TAU_PX = 1.0
_WEIGHT_FLOOR = 1e-6


def frame_average(f0: np.ndarray, f2: np.ndarray) -> np.ndarray:
    """The per-pixel mean of the two frames, rounded half up: ``(f0 + f2 + 1) // 2`` exactly."""
    _check_inputs(f0, f2)
    return ((f0.astype(np.uint16) + f2.astype(np.uint16) + 1) // 2).astype(np.uint8)


def _check_inputs(f0: np.ndarray, f2: np.ndarray) -> None:
    if f0.shape != f2.shape:
        raise ValueError(f"frames differ in size: {f0.shape} vs {f2.shape}")
    if f0.dtype != np.uint8 or f2.dtype != np.uint8 or f0.ndim != 3 or f0.shape[2] != 3:
        raise ValueError(f"expected two H x W x 3 uint8 frames, got {f0.dtype} {f0.shape} and {f2.dtype} {f2.shape}")


def require_opencv():  # type: ignore[no-untyped-def]
    try:
        import cv2
    except ImportError:
        raise ImportError(
            "the flow baseline needs OpenCV: pip install opencv-python-headless") from None
    return cv2


def dis_flows(f0: np.ndarray, f2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DIS (preset MEDIUM) flows ``F02`` and ``F20``, each H x W x 2 float32 (x, y) in pixels."""
    cv2 = require_opencv()
    g0 = cv2.cvtColor(np.ascontiguousarray(f0), cv2.COLOR_RGB2GRAY)
    g2 = cv2.cvtColor(np.ascontiguousarray(f2), cv2.COLOR_RGB2GRAY)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    f02 = dis.calc(g0, g2, None)
    f20 = dis.calc(g2, g0, None)
    return f02, f20


def backward_warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image(x + flow(x))``: bilinear backward warp, edges repeated."""
    cv2 = require_opencv()
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], interpolation=cv2.INTER_LINEAR,  # type: ignore[no-any-return]
                     borderMode=cv2.BORDER_REPLICATE)


def round_trip_error(flow_ab: np.ndarray, flow_ba: np.ndarray) -> np.ndarray:
    """``|F_ab(x) + F_ba(x + F_ab(x))|`` in pixels, H x W float32 (0 for consistent motion)."""
    back = backward_warp(flow_ba, flow_ab)
    return np.linalg.norm(flow_ab + back, axis=-1).astype(np.float32)  # type: ignore[no-any-return]


def flow_baseline(f0: np.ndarray, f2: np.ndarray) -> np.ndarray:
    """Middle frame by DIS flow both ways, warping to t = 1/2 and an occlusion-weighted blend.

    See the module docstring for the exact recipe.
    """
    _check_inputs(f0, f2)
    f02, f20 = dis_flows(f0, f2)
    fm0 = (f20 - f02) * 0.25
    fm2 = -fm0
    warped0 = backward_warp(f0.astype(np.float32), fm0)
    warped2 = backward_warp(f2.astype(np.float32), fm2)
    e0 = backward_warp(round_trip_error(f02, f20), fm0)
    e2 = backward_warp(round_trip_error(f20, f02), fm2)
    w0 = 1.0 / (1.0 + (e0 / OCCLUSION_TAU_PX) ** 2) + _WEIGHT_FLOOR
    w2 = 1.0 / (1.0 + (e2 / OCCLUSION_TAU_PX) ** 2) + _WEIGHT_FLOOR
    out = (w0[..., None] * warped0 + w2[..., None] * warped2) / (w0 + w2)[..., None]
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)
