# SPDX-License-Identifier: MIT
"""Single images through OpenImageIO: read to float32 H x W x C, write atomically.

Sequences, windows, channel layouts and metadata of plates are handled by the retimer's EXR
module; this is the small path used by ``ldmvfi interpolate`` and the tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ldmvfi_core.io.atomic import atomic_path


class ImageError(ValueError):
    """An image that cannot be read or written; one line naming the file."""


def _oiio():  # type: ignore[no-untyped-def]
    try:
        import OpenImageIO as oiio
    except ImportError:
        raise ImageError("OpenImageIO is not installed: pip install 'ldmvfi[exr]'") from None
    return oiio


def open_image(path: Path):  # type: ignore[no-untyped-def]
    """``oiio.ImageInput`` for ``path``, or a one-line ImageError naming the file."""
    oiio = _oiio()
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    image = oiio.ImageInput.open(str(path))
    if image is None:
        lines = [line.strip() for line in oiio.geterror().splitlines() if line.strip()]
        raise ImageError(f"{path}: cannot open image ({lines[0] if lines else 'unknown format'})")
    return image


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """All channels of the first subimage as float32 H x W x C (uint formats scaled to [0, 1])."""
    path = Path(path)
    image = open_image(path)
    try:
        pixels = image.read_image(format="float")
        if pixels is None:
            raise ImageError(f"{path}: cannot read pixels ({image.geterror().strip() or 'corrupt file'})")
    finally:
        image.close()
    return np.asarray(pixels, dtype=np.float32).reshape(pixels.shape[0], pixels.shape[1], -1)


def write_image(path: str | os.PathLike[str], pixels: np.ndarray) -> None:
    """Write H x W x C float pixels; 8-bit formats are rounded, EXR stores half float.

    Written to a temporary name in the same folder and renamed, so a reader never sees half a file.
    """
    oiio = _oiio()
    path = Path(path)
    height, width, channels = pixels.shape
    is_exr = path.suffix.lower() == ".exr"
    spec = oiio.ImageSpec(width, height, channels, "half" if is_exr else "uint8")
    if channels in (3, 4):
        spec.channelnames = ("R", "G", "B", "A")[:channels]
    with atomic_path(path) as tmp:
        out = oiio.ImageOutput.create(str(path))
        if out is None or not out.open(str(tmp), spec):
            raise ImageError(f"{path}: cannot write ({oiio.geterror().strip() or 'unsupported format'})")
        try:
            data = np.ascontiguousarray(pixels if is_exr else np.clip(pixels, 0.0, 1.0), dtype=np.float32)
            if not out.write_image(data):
                raise ImageError(f"{path}: write failed ({out.geterror().strip()})")
        finally:
            out.close()
