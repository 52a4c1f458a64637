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
from typing import Literal

import numpy as np

Transfer = Literal["hdr", "srgb", "none"]
TRANSFERS: tuple[str, ...] = ("hdr", "srgb", "none")

HALF_MAX = 65504.0
HDR_KNEE = 0.8  # encoded value of scene-linear 1.0 under "hdr"
_SRGB_SLOPE_AT_1 = 1.055 / 2.4


# --- sRGB -------------------------------------------------------------------------------------


def _srgb_encode64(linear: np.ndarray) -> np.ndarray:
    a = np.abs(np.asarray(linear, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        encoded = np.where(a <= 0.0031308, a * 12.92, 1.055 * np.power(a, 1.0 / 2.4) - 0.055)
    return np.sign(linear) * encoded


def _srgb_decode64(encoded: np.ndarray) -> np.ndarray:
    a = np.abs(np.asarray(encoded, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        linear = np.where(a <= 0.04045, a / 12.92, np.power((a + 0.055) / 1.055, 2.4))
    return np.sign(encoded) * linear


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Scene-linear -> sRGB-encoded (mirrored below 0), float32."""
    return _srgb_encode64(linear).astype(np.float32)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """sRGB-encoded -> scene-linear (exact inverse of ``srgb_encode``), float32."""
    return _srgb_decode64(encoded).astype(np.float32)


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


def _out_dtype(x: np.ndarray) -> type[np.floating]:
    return np.float64 if np.asarray(x).dtype == np.float64 else np.float32


def hdr_encode(linear: np.ndarray) -> np.ndarray:
    """Scene-linear -> [-1, 1] for the model (see the module docstring for the curve).

    Returns float32 (float64 for float64 input).
    """
    a, k = hdr_constants()
    x = np.clip(np.asarray(linear, dtype=np.float64), -HALF_MAX, HALF_MAX)
    mag = np.abs(x)
    low = HDR_KNEE * _srgb_encode64(np.minimum(mag, 1.0))
    high = HDR_KNEE + k * np.log1p(a * np.maximum(mag - 1.0, 0.0))
    y = np.sign(x) * np.where(mag <= 1.0, low, high)
    return y.astype(_out_dtype(linear))


def hdr_decode(encoded: np.ndarray) -> np.ndarray:
    """Exact inverse of ``hdr_encode``; input is clamped to [-1, 1] first, so |result| <= 65504.

    Returns float32 (float64 for float64 input).
    """
    a, k = hdr_constants()
    y = np.clip(np.asarray(encoded, dtype=np.float64), -1.0, 1.0)
    mag = np.abs(y)
    low = _srgb_decode64(np.minimum(mag, HDR_KNEE) / HDR_KNEE)
    high = 1.0 + np.expm1(np.maximum(mag - HDR_KNEE, 0.0) / k) / a
    x = np.sign(y) * np.where(mag <= HDR_KNEE, low, np.minimum(high, HALF_MAX))
    return x.astype(_out_dtype(encoded))


# --- transfer dispatch -------------------------------------------------------------------------

_ENCODERS = {"hdr": hdr_encode, "srgb": srgb_encode}
_DECODERS = {"hdr": hdr_decode, "srgb": srgb_decode}


def _check_transfer(transfer: str) -> None:
    if transfer not in TRANSFERS:
        raise ValueError(f"unknown transfer {transfer!r}: choose from {', '.join(TRANSFERS)}")


def encode_transfer(pixels: np.ndarray, transfer: str) -> np.ndarray:
    """Apply ``transfer`` to the RGB channels (0-2); other channels pass unchanged."""
    _check_transfer(transfer)
    if transfer == "none":
        return pixels
    out = pixels.astype(np.float32, copy=True)
    out[..., :3] = _ENCODERS[transfer](out[..., :3])
    return out


def decode_transfer(pixels: np.ndarray, transfer: str) -> np.ndarray:
    """Inverse of ``encode_transfer``."""
    _check_transfer(transfer)
    if transfer == "none":
        return pixels
    out = pixels.astype(np.float32, copy=True)
    out[..., :3] = _DECODERS[transfer](out[..., :3])
    return out


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
