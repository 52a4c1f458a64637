# SPDX-License-Identifier: MIT
"""OpenEXR frames for the retimer: pixels, windows, channel layout and metadata, read and written losslessly.

A frame keeps everything a compositing pipeline relies on: the data window and the display window
(overscan, negative origins, data windows smaller than the format), every channel by name in the
order OpenImageIO reports it (``R, G, B, A`` first, then the rest alphabetically, which is also the
order OpenEXR stores them in), each channel's own pixel format (half stays half, float stays float),
the compression, scanline or tiled storage, and every metadata attribute with its OIIO type.

Pixels are float32 H x W x C covering the data window only; use :func:`place` to put them into a
bigger window (zeros outside, the EXR convention) and :func:`crop` for the reverse.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ldmvfi_core.io.atomic import atomic_path
from ldmvfi_core.io.images import ImageError, open_image

#: Attributes :func:`write_exr` does not copy from ``ExrFrame.attributes``: OIIO computes them when
#: reading, they describe a storage detail that the rewrite decides itself, or they would be wrong
#: for the single-part, single-level file that is written.
SKIPPED_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "oiio:subimages",  # number of parts of the file read; the rewrite has one part
        "oiio:subimagename",  # part name reported by the reader, not a header attribute of its own
        "oiio:RowsPerChunk",  # scanlines per chunk: follows from the compression that is written
        "oiio:BitsPerSample",  # computed from the pixel format; meaningless with per-channel formats
        "openexr:chunkCount",  # computed by OpenEXR for the chunk table of the file written
        "openexr:levelmode",  # mip/rip levels: only the first level is read and written
        "openexr:roundingmode",  # rounding of mip level sizes: as above
        "compression",  # written from ExrFrame.compression, which is authoritative
    }
)

_FORMATS = ("half", "float", "uint")
_UINT_MAX = 4294967295.0


def _oiio() -> Any:
    try:
        import OpenImageIO as oiio
    except ImportError:
        raise ImageError("OpenImageIO is not installed: pip install 'ldmvfi[exr]'") from None
    return oiio


def _one_line(message: str, default: str) -> str:
    """OIIO error text (often several repeated lines) as one line."""
    lines: list[str] = []
    for line in message.splitlines():
        line = line.strip()
        if line and line not in lines:
            lines.append(line)
    return "; ".join(lines) or default


@dataclass(frozen=True)
class Window:
    """A pixel rectangle with inclusive integer bounds, as OpenEXR stores data and display windows."""

    xmin: int
    ymin: int
    xmax: int
    ymax: int

    def __post_init__(self) -> None:
        if self.xmax < self.xmin or self.ymax < self.ymin:
            raise ValueError(f"empty window {self}")

    @property
    def width(self) -> int:
        return self.xmax - self.xmin + 1

    @property
    def height(self) -> int:
        return self.ymax - self.ymin + 1

    @classmethod
    def from_size(cls, x: int, y: int, width: int, height: int) -> Window:
        """The window of ``width`` x ``height`` pixels whose top-left pixel is (``x``, ``y``)."""
        return cls(x, y, x + width - 1, y + height - 1)

    def union(self, other: Window) -> Window:
        """The smallest window containing both."""
        return Window(
            min(self.xmin, other.xmin),
            min(self.ymin, other.ymin),
            max(self.xmax, other.xmax),
            max(self.ymax, other.ymax),
        )

    def intersection(self, other: Window) -> Window | None:
        """The pixels both windows cover, or None if they do not overlap."""
        xmin, ymin = max(self.xmin, other.xmin), max(self.ymin, other.ymin)
        xmax, ymax = min(self.xmax, other.xmax), min(self.ymax, other.ymax)
        if xmax < xmin or ymax < ymin:
            return None
        return Window(xmin, ymin, xmax, ymax)

    def contains(self, other: Window) -> bool:
        """True if every pixel of ``other`` lies inside this window."""
        return (
            self.xmin <= other.xmin
            and self.ymin <= other.ymin
            and self.xmax >= other.xmax
            and self.ymax >= other.ymax
        )

    @classmethod
    def from_spec(cls, spec: Any, *, display: bool = False) -> Window:
        """The data window of an ``oiio.ImageSpec`` (x, y, width, height), or with ``display=True``
        its display (full) window (full_x, full_y, full_width, full_height)."""
        if display:
            return cls.from_size(spec.full_x, spec.full_y, spec.full_width, spec.full_height)
        return cls.from_size(spec.x, spec.y, spec.width, spec.height)

    def to_spec(self, spec: Any, *, display: bool = False) -> None:
        """Set this window as the data window (or with ``display=True`` the display window) of ``spec``."""
        if display:
            spec.full_x, spec.full_y = self.xmin, self.ymin
            spec.full_width, spec.full_height = self.width, self.height
        else:
            spec.x, spec.y = self.xmin, self.ymin
            spec.width, spec.height = self.width, self.height


@dataclass
class ExrFrame:
    """One EXR frame: pixels over the data window plus everything needed to write it back unchanged.

    ``attributes`` holds every metadata attribute of the file as (name, OIIO type string, value);
    ``compression`` and ``tile_size`` (None for scanline files) are the storage of the file read.
    """

    pixels: np.ndarray
    data_window: Window
    display_window: Window
    channel_names: tuple[str, ...]
    channel_formats: tuple[str, ...]
    attributes: list[tuple[str, str, object]] = field(default_factory=list)
    compression: str = "zip"
    tile_size: tuple[int, int] | None = None
    path: Path = field(default_factory=Path)

    def attribute(self, name: str, default: object = None) -> object:
        """The value of the metadata attribute ``name``, or ``default``."""
        for key, _, value in self.attributes:
            if key == name:
                return value
        return default


def read_exr(path: str | os.PathLike[str]) -> ExrFrame:
    """Read all channels of the first subimage (part) of an EXR, scanline or tiled, into an ExrFrame.

    Half and float channels come back exactly as float32. 32-bit uint channels (ids) hold their integer
    values as float32, exact up to 2**24. Deep files are not supported. Raises a one-line
    :class:`ImageError` naming the file for a missing, unreadable, corrupt or truncated file.
    """
    path = Path(path)
    image = open_image(path)
    try:
        spec = image.spec()
        if spec.deep:
            raise ImageError(f"{path}: deep EXR data is not supported")
        if image.format_name() != "openexr":
            raise ImageError(f"{path}: not an OpenEXR file ({image.format_name()} image)")
        names = tuple(spec.channelnames)
        formats = tuple(str(f) for f in spec.channelformats) or (str(spec.format),) * len(names)
        formats = tuple(_format_name(f) for f in formats)
        # OIIO may defer errors in pixel data (missing chunks of a truncated file) to read time.
        pixels = image.read_image(0, 0, 0, len(names), "float")
        if pixels is None or image.has_error:
            raise ImageError(f"{path}: cannot read pixels ({_one_line(image.geterror(), 'corrupt file')})")
        pixels = np.array(pixels, dtype=np.float32).reshape(spec.height, spec.width, len(names))
        for c, fmt in enumerate(formats):
            if fmt == "uint":  # float conversion would normalise to [0, 1]: keep the integer values
                ids = image.read_image(0, 0, c, c + 1, "uint")
                if ids is None or image.has_error:
                    message = _one_line(image.geterror(), "corrupt file")
                    raise ImageError(f"{path}: cannot read channel {names[c]} ({message})")
                pixels[..., c] = np.asarray(ids).reshape(spec.height, spec.width)
        attributes = [(a.name, str(a.type), a.value) for a in spec.extra_attribs]
        compression = spec.get_string_attribute("compression", "none")
        tile_size = (spec.tile_width, spec.tile_height) if spec.tile_width > 0 else None
        return ExrFrame(
            pixels=pixels,
            data_window=Window.from_spec(spec),
            display_window=Window.from_spec(spec, display=True),
            channel_names=names,
            channel_formats=formats,
            attributes=attributes,
            compression=compression,
            tile_size=tile_size,
            path=path,
        )
    finally:
        image.close()


def _format_name(typestr: str) -> str:
    """OIIO pixel type string -> 'half' / 'float' / 'uint' (the three EXR pixel types)."""
    return {"half": "half", "float": "float", "uint": "uint", "uint32": "uint"}.get(typestr, "float")


def _type_desc(oiio: Any, typestr: str) -> Any:
    """Parse an OIIO type string back to a TypeDesc, including forms ``TypeDesc(str)`` rejects
    (``vector2i``, ``point2``, ``vector3d``, ``matrixd``, ...) by matching OIIO's own spelling."""
    parsed = oiio.TypeDesc(typestr)
    if str(parsed) == typestr:
        return parsed
    match = re.fullmatch(r"(.+?)(?:\[(\d*)\])?", typestr)
    base, arraylen = (match.group(1), match.group(2)) if match else (typestr, None)
    basetypes = [b for name, b in oiio.BASETYPE.__members__.items() if name not in ("UNKNOWN", "NONE", "PTR")]
    for basetype in basetypes:
        for aggregate in oiio.AGGREGATE.__members__.values():
            for semantics in oiio.VECSEMANTICS.__members__.values():
                candidate = oiio.TypeDesc(basetype, aggregate, semantics)
                if str(candidate) == base:
                    if arraylen is not None:
                        length = int(arraylen) if arraylen else -1
                        candidate = oiio.TypeDesc(basetype, aggregate, semantics, length)
                    return candidate
    raise ValueError(f"unknown OIIO type {typestr!r}")


def write_exr(
    path: str | os.PathLike[str],
    frame: ExrFrame,
    *,
    extra_attributes: Iterable[tuple[str, str, object] | tuple[str, object]] = (),
) -> None:
    """Write ``frame`` as an EXR with the same channels, formats, windows, storage and metadata.

    Channels keep their names, order and own pixel format (through ``ImageSpec.channelformats``; the
    order is the one :func:`read_exr` reports, since OpenEXR stores channels sorted by name); the
    data and display windows, compression and tiling come from the frame. Every attribute of
    ``frame.attributes`` is written except :data:`SKIPPED_ATTRIBUTES`: ``oiio:subimages``,
    ``oiio:subimagename``, ``oiio:RowsPerChunk``, ``oiio:BitsPerSample``, ``openexr:chunkCount``,
    ``openexr:levelmode``, ``openexr:roundingmode`` (computed by OIIO/OpenEXR or wrong for the
    single-part, single-level file written) and ``compression`` (``frame.compression`` is used).
    Then ``extra_attributes`` are set, as (name, type, value) or (name, value) with the type taken
    from the Python value; they override attributes of the same name.

    The file is written to a temporary name in the same folder and renamed over ``path``, so a reader
    never sees half a file and an existing frame is replaced whole or not at all. Raises a one-line
    :class:`ImageError` naming the file if it cannot be written.
    """
    oiio = _oiio()
    path = Path(path)
    spec = _frame_spec(oiio, path, frame)
    for item in extra_attributes:
        try:
            if len(item) == 3:
                name, typestr, value = item  # type: ignore[misc]
                spec.attribute(str(name), _type_desc(oiio, str(typestr)), value)
            else:
                name, value = item  # type: ignore[misc]
                spec.attribute(str(name), value)
        except (TypeError, ValueError) as exc:
            raise ImageError(f"{path}: cannot set extra attribute {item[0]!r} ({exc})") from None
    pixels = _pixels_for_output(frame)

    with atomic_path(path) as tmp:
        out = oiio.ImageOutput.create("openexr")
        if out is None:
            raise ImageError(f"{path}: cannot write ({_one_line(oiio.geterror(), 'no OpenEXR writer')})")
        if not out.open(str(tmp), spec):
            message = _one_line(out.geterror() or oiio.geterror(), "cannot create file")
            raise ImageError(f"{path}: cannot write ({message})")
        try:
            _write_pixels(out, pixels, path)
        finally:
            closed = out.close()
        if not closed:
            raise ImageError(f"{path}: write failed ({_one_line(out.geterror(), 'close failed')})")


def _frame_spec(oiio: Any, path: Path, frame: ExrFrame) -> Any:
    """The ImageSpec that writes ``frame``: windows, channels with their formats, storage, attributes."""
    n = len(frame.channel_names)
    window = frame.data_window
    if frame.pixels.shape != (window.height, window.width, n):
        raise ImageError(
            f"{path}: pixels {frame.pixels.shape} do not match the data window "
            f"{window.width}x{window.height} with {n} channels"
        )
    if len(frame.channel_formats) != n:
        raise ImageError(f"{path}: {len(frame.channel_formats)} channel formats for {n} channels")
    bad = [f for f in frame.channel_formats if f not in _FORMATS]
    if bad:
        raise ImageError(f"{path}: unsupported channel format {bad[0]!r} (EXR stores half, float or uint)")
    if len(set(frame.channel_names)) != n:
        raise ImageError(f"{path}: duplicate channel names {frame.channel_names}")

    # OIIO's EXR writer uses the spec's format when all channel formats are alike.
    uniform = len(set(frame.channel_formats)) == 1
    widest = frame.channel_formats[0] if uniform else "float"
    spec = oiio.ImageSpec(window.width, window.height, n, oiio.TypeDesc(widest))
    window.to_spec(spec)
    frame.display_window.to_spec(spec, display=True)
    spec.channelnames = frame.channel_names
    if not uniform:
        spec.channelformats = tuple(oiio.TypeDesc(f) for f in frame.channel_formats)
    # Alpha and depth are found by name; OIIO would otherwise guess from the channel count.
    spec.alpha_channel = frame.channel_names.index("A") if "A" in frame.channel_names else -1
    spec.z_channel = frame.channel_names.index("Z") if "Z" in frame.channel_names else -1
    if frame.tile_size is not None:
        spec.tile_width, spec.tile_height = frame.tile_size
        spec.tile_depth = 1
    for name, typestr, value in frame.attributes:
        if name in SKIPPED_ATTRIBUTES:
            continue
        try:
            spec.attribute(name, _type_desc(oiio, typestr), value)
        except (TypeError, ValueError) as exc:
            raise ImageError(f"{path}: cannot write attribute {name!r} of type {typestr} ({exc})") from None
    spec.attribute("compression", frame.compression)
    return spec


def _pixels_for_output(frame: ExrFrame) -> np.ndarray:
    """The buffer handed to OIIO: float32, or float64 with uint channels normalised, because OIIO
    converts float to uint by scaling [0, 1] to the full uint range (float64 keeps every integer)."""
    uint = [c for c, f in enumerate(frame.channel_formats) if f == "uint"]
    if not uint:
        return np.ascontiguousarray(frame.pixels, dtype=np.float32)
    pixels = np.array(frame.pixels, dtype=np.float64)
    pixels[..., uint] = np.clip(np.rint(pixels[..., uint]), 0.0, _UINT_MAX) / _UINT_MAX
    return pixels


def _write_pixels(out: Any, pixels: np.ndarray, path: Path) -> None:
    """Write the whole image through an open ImageOutput (scanline or tiled alike)."""
    if not out.write_image(pixels):
        raise ImageError(f"{path}: write failed ({_one_line(out.geterror(), 'unknown error')})")


def crop(pixels: np.ndarray, from_window: Window, to_window: Window) -> np.ndarray:
    """The ``to_window`` part of ``pixels`` (H x W x C over ``from_window``) as a new array.

    Usually ``to_window`` lies inside ``from_window``; pixels of ``to_window`` that ``from_window``
    does not cover are zero, the EXR convention for pixels outside a data window.
    """
    if pixels.shape[:2] != (from_window.height, from_window.width):
        raise ValueError(f"pixels {pixels.shape} do not cover the window {from_window}")
    out = np.zeros((to_window.height, to_window.width, *pixels.shape[2:]), dtype=pixels.dtype)
    common = from_window.intersection(to_window)
    if common is not None:
        src = pixels[
            common.ymin - from_window.ymin : common.ymax - from_window.ymin + 1,
            common.xmin - from_window.xmin : common.xmax - from_window.xmin + 1,
        ]
        out[
            common.ymin - to_window.ymin : common.ymax - to_window.ymin + 1,
            common.xmin - to_window.xmin : common.xmax - to_window.xmin + 1,
        ] = src
    return out


def place(frame: ExrFrame, window: Window) -> np.ndarray:
    """The frame's pixels placed into ``window`` (usually one containing the data window, such as the
    display window or a union of data windows), with zeros outside the data window."""
    return crop(frame.pixels, frame.data_window, window)


def check_compatible(a: ExrFrame, b: ExrFrame) -> None:
    """Raise a one-line ImageError naming both files if their channels or display windows differ."""
    if a.channel_names != b.channel_names:
        channels = f"{','.join(a.channel_names)} vs {','.join(b.channel_names)}"
        raise ImageError(f"{a.path} and {b.path}: channels differ ({channels})")
    if a.display_window != b.display_window:
        raise ImageError(
            f"{a.path} and {b.path}: display windows differ ({_describe(a.display_window)} vs "
            f"{_describe(b.display_window)})"
        )


def _describe(window: Window) -> str:
    return f"({window.xmin},{window.ymin})-({window.xmax},{window.ymax})"


def nonfinite_report(frame: ExrFrame) -> dict[str, int]:
    """Number of NaN or infinite pixels per channel name; only channels that have any (empty when clean)."""
    if np.isfinite(frame.pixels).all():  # the usual case, ~10x cheaper than counting per channel
        return {}
    counts = np.count_nonzero(~np.isfinite(frame.pixels.reshape(-1, frame.pixels.shape[-1])), axis=0)
    return {name: int(n) for name, n in zip(frame.channel_names, counts, strict=True) if n}


__all__: Sequence[str] = (
    "SKIPPED_ATTRIBUTES",
    "ExrFrame",
    "ImageError",
    "Window",
    "check_compatible",
    "crop",
    "nonfinite_report",
    "place",
    "read_exr",
    "write_exr",
)
