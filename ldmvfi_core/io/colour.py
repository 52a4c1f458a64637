# SPDX-License-Identifier: MIT
"""Transfer functions between plate values and the model's display range, and OCIO conversions.

The model was trained on 8-bit display-referred video: it sees RGB in [0, 1]. Scene-linear plates
are encoded before inference and decoded after. All curves are odd functions (mirrored for
negative values, which grading and denoising leave in plates) and are exactly invertible.

``srgb``
    The IEC 61966-2-1 curve, continued past 1.0 with the same power law. Fine for plates that
    stay near display range; 65504 would encode to ~107, far outside what the model has seen.

``hdr`` (the retimer's default for scene-linear plates)
    ``y = 0.8 * srgb(x)`` for ``|x| <= 1``: the whole display range keeps the sRGB shape the
    model knows, squeezed into [0, 0.8]. Above 1 a logarithmic shoulder takes over::

        y = 0.8 + k * ln(1 + a * (x - 1))

    with ``k * a = 0.8 * 1.055 / 2.4`` (the slope of ``0.8 * srgb`` at 1, so the curve is
    C1-continuous there) and ``a`` solved numerically so that the half-float maximum 65504 maps
    to exactly 1.0: ``a = 25.1715363...``, ``k = 0.0139708...``. Key values::

        x        -0.00385   0.0      0.18     1.0     10       100      33664 (sun)  65504
        hdr(x)   -0.0392    0.0      0.3691   0.800   0.8758   0.9093   0.9907       1.000

    So every value a half-float plate can hold lands in [-1, 1] and nothing is clipped, while
    mid-tones keep the sRGB shape the model knows, 20% darker (0.18 encodes to 0.369 instead
    of sRGB's 0.461). The price is coarse highlight steps:
    1 -> 65504 (16 stops) shares 0.2 of the range, which is fine for interpolation (highlights
    move with the image) and is undone exactly by ``hdr_decode``. Inputs beyond +-65504 (only
    possible in float32 plates) and +-inf saturate to +-1.0; on decode the model's output is
    clamped to [-1, 1] first, so a small overshoot cannot turn into a value a half-float EXR
    cannot store. NaN passes through.

    Precision: the shoulder spreads ln(65504) over 0.2 of encoded range, so rounding the encoded
    value to float32 (ulp 6e-8 near 1.0) moves the decoded value by up to 2.2e-6 relative above
    1.0 (1.7e-7 in display range): 200x finer than a half-float step (4.9e-4), but more than one
    float32 ulp of the plate value. Float64 input is processed and returned in float64 and
    round-trips to 1e-14.

``none``
    Pixels pass unchanged (for display-referred inputs such as PNG frames).

OCIO conversions (``ocio_convert``) go through OpenImageIO's ``ColorConfig``: the config named by
``$OCIO`` if set, else OIIO's built-in one. Library code never hard-codes a colourspace name;
callers pass them in.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import Literal, TypeVar

import numpy as np
import torch
from torch import Tensor

Transfer = Literal["hdr", "srgb", "none"]
TRANSFERS: tuple[str, ...] = ("hdr", "srgb", "none")

HALF_MAX = 65504.0
HDR_KNEE = 0.8  # encoded value of scene-linear 1.0 under "hdr"
_SRGB_SLOPE_AT_1 = 1.055 / 2.4


# --- computing the curves: torch, on whatever device the pixels are -----------------------------
#
# Why torch and not numpy: the retimer encodes every source frame and decodes every in-between at
# full resolution. In numpy (one core, float64) that took ~0.28 s each way for a 1080p frame on the
# GPU machine (session 16, bench/retime_profile.py): most of a retime's time, next to a ~0.07 s
# in-between. Torch runs the same curves on all CPU cores, or on the GPU where the frame already is.
# The curves are evaluated in float64 (float32 only on devices without float64, such as Apple's
# MPS), so every device gives the precision stated above.

Pixels = TypeVar("Pixels", np.ndarray, Tensor)

#: Values per chunk of ``encode_transfer`` / ``decode_transfer``: bounds their float64
#: temporaries (a 4K frame would otherwise take ~1.6 GB of them on a GPU) and stays in cache on CPUs.
CHUNK_VALUES = 1 << 21


def _wide(values: np.ndarray | Tensor) -> Tensor:
    """``values`` as a tensor in the dtype the curves are computed in (a view of numpy data where it can)."""
    if isinstance(values, Tensor):
        t = values
    else:
        array = np.asarray(values)
        if any(stride < 0 for stride in array.strides):  # torch.from_numpy refuses reversed views
            array = array.copy()
        t = torch.from_numpy(array)
    return t.to(torch.float32 if t.device.type == "mps" else torch.float64)


def _returned(result: Tensor, like: Pixels) -> Pixels:
    """``result`` as the caller's kind (numpy or tensor), float64 for float64 input, else float32."""
    if isinstance(like, Tensor):
        return result.to(torch.float64 if like.dtype == torch.float64 else torch.float32)
    wide = np.asarray(like).dtype == np.float64
    return result.numpy().astype(np.float64 if wide else np.float32)  # type: ignore[return-value]


# --- sRGB -------------------------------------------------------------------------------------


def _srgb_encode_wide(linear: Tensor) -> Tensor:
    a = linear.abs()
    encoded = torch.where(a <= 0.0031308, a * 12.92, 1.055 * a.pow(1.0 / 2.4) - 0.055)
    return torch.copysign(encoded, linear)


def _srgb_decode_wide(encoded: Tensor) -> Tensor:
    a = encoded.abs()
    linear = torch.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055).pow(2.4))
    return torch.copysign(linear, encoded)


def srgb_encode(linear: Pixels) -> Pixels:
    """Scene-linear -> sRGB-encoded (mirrored below 0); float32 (a tensor stays a tensor)."""
    result = _srgb_encode_wide(_wide(linear)).to(torch.float32)
    return result if isinstance(linear, Tensor) else result.numpy()  # type: ignore[return-value]


def srgb_decode(encoded: Pixels) -> Pixels:
    """sRGB-encoded -> scene-linear (exact inverse of ``srgb_encode``); float32."""
    result = _srgb_decode_wide(_wide(encoded)).to(torch.float32)
    return result if isinstance(encoded, Tensor) else result.numpy()  # type: ignore[return-value]


# --- hdr: 0.8 * sRGB below 1, logarithmic shoulder up to the half-float maximum ----------------


@functools.cache
def hdr_constants() -> tuple[float, float]:
    """``(a, k)`` of the shoulder ``y = 0.8 + k * ln(1 + a * (x - 1))`` for ``x > 1``.

    C1 at 1 fixes ``k * a = 0.8 * 1.055 / 2.4``; ``HALF_MAX -> 1.0`` then needs
    ``ln(1 + a * (HALF_MAX - 1)) / a = (1 - 0.8) / (0.8 * 1.055 / 2.4)``, whose left side falls
    strictly with ``a``, so bisection finds the unique root.
    """
    slope = HDR_KNEE * _SRGB_SLOPE_AT_1
    target = (1.0 - HDR_KNEE) / slope
    lo, hi = 1e-6, 1e6
    for _ in range(200):
        mid = math.sqrt(lo * hi)  # geometric: the bracket spans 12 decades
        if math.log1p(mid * (HALF_MAX - 1.0)) / mid > target:
            lo = mid
        else:
            hi = mid
    a = 0.5 * (lo + hi)
    return a, slope / a


def _hdr_encode_wide(linear: Tensor) -> Tensor:
    a, k = hdr_constants()
    x = linear.clamp(-HALF_MAX, HALF_MAX)
    mag = x.abs()
    low = HDR_KNEE * _srgb_encode_wide(mag.clamp(max=1.0))
    high = HDR_KNEE + k * torch.log1p(a * (mag - 1.0).clamp(min=0.0))
    return torch.copysign(torch.where(mag <= 1.0, low, high), x)


def _hdr_decode_wide(encoded: Tensor) -> Tensor:
    a, k = hdr_constants()
    y = encoded.clamp(-1.0, 1.0)
    mag = y.abs()
    low = _srgb_decode_wide(mag.clamp(max=HDR_KNEE) / HDR_KNEE)
    high = 1.0 + torch.expm1((mag - HDR_KNEE).clamp(min=0.0) / k) / a
    return torch.copysign(torch.where(mag <= HDR_KNEE, low, high.clamp(max=HALF_MAX)), y)


def hdr_encode(linear: Pixels) -> Pixels:
    """Scene-linear -> [-1, 1] for the model (see the module docstring for the curve).

    Returns float32 (float64 for float64 input); a tensor stays a tensor on its device.
    """
    return _returned(_hdr_encode_wide(_wide(linear)), linear)


def hdr_decode(encoded: Pixels) -> Pixels:
    """Exact inverse of ``hdr_encode``; input is clamped to [-1, 1] first, so |result| <= 65504.

    Returns float32 (float64 for float64 input); a tensor stays a tensor on its device.
    """
    return _returned(_hdr_decode_wide(_wide(encoded)), encoded)


# --- transfer dispatch -------------------------------------------------------------------------

_ENCODERS: dict[str, Callable[[Tensor], Tensor]] = {"hdr": _hdr_encode_wide, "srgb": _srgb_encode_wide}
_DECODERS: dict[str, Callable[[Tensor], Tensor]] = {"hdr": _hdr_decode_wide, "srgb": _srgb_decode_wide}


def _check_transfer(transfer: str) -> None:
    if transfer not in TRANSFERS:
        raise ValueError(f"unknown transfer {transfer!r}: choose from {', '.join(TRANSFERS)}")


def _apply_to_rgb(pixels: Pixels, curve: Callable[[Tensor], Tensor]) -> Pixels:
    """A float32 copy of ``pixels`` (..., C) with ``curve`` applied to channels 0-2, chunk by chunk."""
    if isinstance(pixels, Tensor):
        out = pixels.to(torch.float32, copy=True, memory_format=torch.contiguous_format)
        result: Pixels = out  # type: ignore[assignment]
    else:
        array = np.array(pixels, dtype=np.float32, order="C")  # a copy, C-contiguous
        out = torch.from_numpy(array)
        result = array  # type: ignore[assignment]
    if out.numel():
        flat = out.view(-1, out.shape[-1])
        rows = max(1, CHUNK_VALUES // 3)
        for start in range(0, flat.shape[0], rows):
            rgb = flat[start:start + rows, :3]
            rgb.copy_(curve(_wide(rgb)))
    return result


def encode_transfer(pixels: Pixels, transfer: str) -> Pixels:
    """Apply ``transfer`` to the RGB channels (0-2); other channels pass unchanged. Returns a
    float32 copy (numpy for numpy, a tensor on the same device for a tensor); ``none`` returns
    ``pixels`` itself."""
    _check_transfer(transfer)
    if transfer == "none":
        return pixels
    return _apply_to_rgb(pixels, _ENCODERS[transfer])


def decode_transfer(pixels: Pixels, transfer: str) -> Pixels:
    """Inverse of ``encode_transfer``."""
    _check_transfer(transfer)
    if transfer == "none":
        return pixels
    return _apply_to_rgb(pixels, _DECODERS[transfer])


# --- OCIO through OpenImageIO ------------------------------------------------------------------


def _oiio():  # imported lazily: OpenImageIO is an optional dependency (the "exr" extra)
    import OpenImageIO as oiio

    return oiio


class OcioConfigError(ValueError):
    """An OCIO config that OpenImageIO cannot load (``reason`` is OIIO's message)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"cannot load OCIO config {name}: {reason}")
        self.reason = reason


def _config_path(config: str | None) -> str:
    """The config to load: ``config``, else ``$OCIO``, else "" (OIIO's built-in config)."""
    return config or os.environ.get("OCIO", "").strip()


def _color_config(config: str | None):
    return _load_color_config(_config_path(config))


@functools.cache
def _load_color_config(path: str):
    oiio = _oiio()
    cfg = oiio.ColorConfig(path) if path else oiio.ColorConfig()
    # OIIO falls back to a minimal config when the file cannot be read; refuse rather than
    # convert with the wrong config.
    err = " ".join(cfg.geterror().split())
    if err:
        raise OcioConfigError(path or "built-in", err)
    return cfg


def ocio_colorspaces(config: str | None = None) -> list[str]:
    """Colourspace names of ``config`` (a path; None = ``$OCIO`` or OIIO's built-in config)."""
    return list(_color_config(config).getColorSpaceNames())


def ocio_config_description() -> str:
    """Which OCIO config ``config=None`` uses, for ``ldmvfi doctor``.

    The ``$OCIO`` path (with the reason appended when it cannot be loaded), or ``"built-in"``.
    """
    path = _config_path(None)
    if not path:
        return "built-in"
    try:
        _color_config(None)
    except OcioConfigError as exc:
        return f"{path} (cannot be loaded: {exc.reason})"
    return path


def _resolve_colorspace(cfg, name: str, config: str | None) -> None:
    """Raise a one-line ValueError unless ``name`` is a colourspace, alias or role of ``cfg``."""
    names = list(cfg.getColorSpaceNames())
    if name in names or cfg.getColorSpaceIndex(name) >= 0:
        return
    if name in list(cfg.getRoles()) or cfg.resolve(name) in names:
        return
    where = _config_path(config) or "built-in"
    shown = ", ".join(repr(n) for n in names[:6])
    more = f", ... ({len(names)} in all)" if len(names) > 6 else ""
    raise ValueError(f"unknown OCIO colourspace {name!r} in config {where}: available {shown}{more}")


def ocio_convert(pixels: np.ndarray, src: str, dst: str, *, config: str | None = None) -> np.ndarray:
    """Convert the first 3 channels of ``pixels`` (H x W x C, C >= 3) from ``src`` to ``dst``.

    Uses ``ImageBufAlgo.colorconvert`` with the OCIO config ``config`` (a path or an ``ocio://``
    URI; None = ``$OCIO`` or OIIO's built-in config). RGB is converted as stored (no
    unpremultiply); channels from 3 on (alpha, depth, ...) are returned untouched. Returns float32.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[2] < 3:
        raise ValueError(f"ocio_convert needs H x W x C pixels with C >= 3, got shape {pixels.shape}")
    oiio = _oiio()
    cfg = _color_config(config)
    for name in (src, dst):
        _resolve_colorspace(cfg, name, config)
    out = pixels.astype(np.float32, copy=True)
    rgb = oiio.ImageBuf(np.ascontiguousarray(out[..., :3]))
    converted = oiio.ImageBufAlgo.colorconvert(rgb, src, dst, unpremult=False,
                                               colorconfig=_config_path(config))
    if converted.has_error:
        raise ValueError(f"OCIO {src!r} -> {dst!r} failed: {' '.join(converted.geterror().split())}")
    out[..., :3] = converted.get_pixels(oiio.FLOAT).reshape(out.shape[0], out.shape[1], 3)
    return out
