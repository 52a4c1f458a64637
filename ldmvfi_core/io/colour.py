# SPDX-License-Identifier: MIT
"""Transfer functions between plate values and the model's display range.

The model was trained on 8-bit display-referred video, so scene-linear plates are encoded
before inference and decoded after. ``srgb`` is the IEC 61966-2-1 curve, extended as an odd
function for negative values and continued past 1.0 with the same power law, so it is exactly
invertible for every finite value.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Transfer = Literal["none", "srgb"]
TRANSFERS: tuple[str, ...] = ("none", "srgb")


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Scene-linear -> sRGB-encoded (mirrored below 0)."""
    a = np.abs(linear)
    encoded = np.where(a <= 0.0031308, a * 12.92, 1.055 * np.power(a, 1.0 / 2.4) - 0.055)
    return (np.sign(linear) * encoded).astype(np.float32)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """sRGB-encoded -> scene-linear (exact inverse of ``srgb_encode``)."""
    a = np.abs(encoded)
    linear = np.where(a <= 0.04045, a / 12.92, np.power((a + 0.055) / 1.055, 2.4))
    return (np.sign(encoded) * linear).astype(np.float32)


def encode_transfer(pixels: np.ndarray, transfer: str) -> np.ndarray:
    """Apply ``transfer`` to the RGB channels (0-2); other channels pass unchanged."""
    if transfer == "none":
        return pixels
    if transfer != "srgb":
        raise ValueError(f"unknown transfer {transfer!r}: choose from {', '.join(TRANSFERS)}")
    out = pixels.astype(np.float32, copy=True)
    out[..., :3] = srgb_encode(out[..., :3])
    return out


def decode_transfer(pixels: np.ndarray, transfer: str) -> np.ndarray:
    """Inverse of ``encode_transfer``."""
    if transfer == "none":
        return pixels
    if transfer != "srgb":
        raise ValueError(f"unknown transfer {transfer!r}: choose from {', '.join(TRANSFERS)}")
    out = pixels.astype(np.float32, copy=True)
    out[..., :3] = srgb_decode(out[..., :3])
    return out
