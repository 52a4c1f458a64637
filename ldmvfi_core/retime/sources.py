# SPDX-License-Identifier: MIT
"""Source frames of a retime: read once, checked, and shaped for the model.

``SourcePlate`` wraps an input sequence. It reads frames lazily (OpenImageIO), checks that they
fit together (display window, channel names), applies the NaN/Inf policy, and gives each frame
as a float32 (H, W, C) array over a *working window* with the channels in model order: R, G, B
first (transfer-encoded into the model's display range), then every other channel raw.

Working window of a pair = display window U data window(a) U data window(b). Pixels outside a
data window are zero by the EXR convention, so a plate whose letterbox bars are stored as zeros
and one whose data window stops at the picture give the model the same input.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ldmvfi_core.io.colour import decode_transfer, encode_transfer, ocio_convert
from ldmvfi_core.io.exr import ExrFrame, Window, check_compatible, nonfinite_report, place, read_exr
from ldmvfi_core.io.images import ImageError
from ldmvfi_core.io.sequence import SequencePattern
from ldmvfi_core.ops.finite import all_finite
from ldmvfi_core.ops.upload import Download, upload

NonFinitePolicy = Literal["error", "zero"]
HALF_MAX = 65504.0
RGB = ("R", "G", "B")


@dataclass(frozen=True)
class ColourSettings:
    """How plate RGB maps to the model's display range: an optional OCIO conversion, then a transfer."""

    transfer: str = "hdr"
    ocio_from: str | None = None
    ocio_to: str | None = None
    ocio_config: str | None = None


def rgb_indices(names: tuple[str, ...], path: object) -> tuple[int, int, int]:
    try:
        return (names.index("R"), names.index("G"), names.index("B"))
    except ValueError:
        raise ImageError(f"{path}: needs R, G and B channels to drive the model, has {', '.join(names)}") from None


class SourcePlate:
    """Lazy, cached access to the frames of one input sequence."""

    def __init__(
        self,
        pattern: SequencePattern,
        frames: list[int],
        *,
        colour: ColourSettings,
        nonfinite: NonFinitePolicy = "error",
        cache_size: int = 8,
    ) -> None:
        self.pattern = pattern
        self.frames = frames
        self.colour = colour
        self.nonfinite = nonfinite
        self.warnings: list[str] = []
        self._cache: OrderedDict[int, ExrFrame] = OrderedDict()
        self._cache_size = cache_size
        self._reference: ExrFrame | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._loading: dict[int, Future[tuple[ExrFrame, dict[str, int]]]] = {}

    def prefetch(self, frames: Iterable[int]) -> None:
        """Start reading ``frames`` on a background thread, so that a later ``read`` finds them
        loaded. Why: a 1080p EXR takes 0.02-0.2 s to read (16 and 2 cores, ``bench/exr_io.py``),
        on the thread that feeds the GPU otherwise, and OpenImageIO reads (and numpy scans for
        NaN/Inf) without holding the GIL. Only the file is
        read and scanned there; the checks and the NaN/Inf policy run in ``read``, and a read error
        surfaces there too."""
        for frame in frames:
            if frame in self._cache or frame in self._loading or frame not in self.frames:
                continue
            if self._reader is None:
                self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ldmvfi-read")
            self._loading[frame] = self._reader.submit(_load, self.pattern.path(frame))

    def close(self) -> None:
        """Stop the read-ahead thread (reads under way finish; their frames are dropped)."""
        if self._reader is not None:
            self._reader.shutdown(wait=True, cancel_futures=True)
            self._reader = None
        self._loading.clear()

    def read(self, frame: int) -> ExrFrame:
        """The frame as stored (checked against the first frame read, NaN/Inf policy applied)."""
        if frame in self._cache:
            self._cache.move_to_end(frame)
            return self._cache[frame]
        loading = self._loading.pop(frame, None)
        image, nonfinite = loading.result() if loading is not None else _load(self.pattern.path(frame))
        if self._reference is None:
            rgb_indices(image.channel_names, image.path)
            self._reference = image
        else:
            check_compatible(self._reference, image)
        image = self._apply_nonfinite_policy(image, nonfinite)
        self._cache[frame] = image
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return image

    def _apply_nonfinite_policy(self, image: ExrFrame, bad: dict[str, int]) -> ExrFrame:
        if not bad:
            return image
        counts = ", ".join(f"{name}: {n}" for name, n in bad.items())
        if self.nonfinite == "error":
            raise ImageError(f"{image.path}: NaN/Inf pixels ({counts}); "
                             "fix the plate or pass --nonfinite zero")
        self.warnings.append(f"{image.path}: replaced NaN/Inf pixels ({counts}) with 0 / +-{HALF_MAX:g}")
        pixels = np.nan_to_num(image.pixels, nan=0.0, posinf=HALF_MAX, neginf=-HALF_MAX)
        return _with_pixels(image, pixels)

    @property
    def reference(self) -> ExrFrame:
        if self._reference is None:
            self.read(self.frames[0])
        assert self._reference is not None
        return self._reference

    def channel_order(self) -> list[int]:
        """File channel indices in model order: R, G, B, then the others in file order."""
        names = self.reference.channel_names
        rgb = list(rgb_indices(names, self.reference.path))
        return rgb + [i for i in range(len(names)) if i not in rgb]

    def working_window(self, a: int, b: int) -> Window:
        return working_window_of(self.read(a), self.read(b))

    def stored_later(self, frame: int) -> Callable[[], ExrFrame]:
        """The frame as stored, for another thread: a call that returns it once the read-ahead
        (started here when it is not already) has it, without this plate's checks or NaN/Inf policy
        (``read`` applies those when the frame is used). Only this call touches the plate's state."""
        if frame in self._cache:
            image = self._cache[frame]
            return lambda: image
        self.prefetch([frame])
        loading = self._loading.get(frame)
        if loading is None:
            raise ValueError(f"frame {frame} is not one of this plate's source frames")
        return lambda: loading.result()[0]

    def model_tensor(self, frame: int, window: Window, device: torch.device) -> Tensor:
        """(H, W, C) float32 on ``device`` over ``window``: encoded RGB first (the optional OCIO
        conversion on the CPU, then the transfer on ``device``), then the raw other channels. Why
        the transfer on the device: on a GPU it takes well under a millisecond, on the thread that
        feeds the GPU ~0.1-0.3 s a 1080p frame (session 16)."""
        pixels = placed_pixels(self.read(frame), window, self.channel_order())
        c = self.colour
        if c.ocio_from and c.ocio_to:
            pixels = ocio_convert(pixels, c.ocio_from, c.ocio_to, config=c.ocio_config)
            # checked here, on the CPU: the model's own check of a device tensor would wait for the GPU
            if not all_finite(torch.from_numpy(pixels)):
                raise ImageError(f"{self.pattern.path(frame)}: the OCIO conversion {c.ocio_from} -> {c.ocio_to} "
                                 "made NaN/Inf values")
        return encode_transfer(upload(torch.from_numpy(pixels), device), c.transfer)

    def decode_rgb(self, pixels: Tensor) -> np.ndarray:
        """Inverse of ``model_tensor``'s encoding: model display range back to plate values, as
        float32 numpy (the transfer on the tensor's device, then the OCIO conversion on the CPU)."""
        return self.decode_rgb_later(pixels)()

    def decode_rgb_later(self, pixels: Tensor) -> Callable[[], np.ndarray]:
        """``decode_rgb`` in two halves: the transfer and the download are queued now, and the
        returned call waits for that download alone and runs the OCIO conversion, on whichever
        thread calls it (the retimer's writer), so the thread that feeds the GPU never waits
        for the GPU to finish an in-between."""
        c = self.colour
        download = Download(decode_transfer(pixels, c.transfer).to(torch.float32))

        def finish() -> np.ndarray:
            decoded = download.result().numpy()
            if c.ocio_from and c.ocio_to:
                decoded = ocio_convert(decoded, c.ocio_to, c.ocio_from, config=c.ocio_config)
            return decoded

        return finish

    def linear_pixels(self, frame: int, window: Window) -> np.ndarray:
        """(H, W, C) float32 over ``window`` in model channel order, values as stored."""
        return placed_pixels(self.read(frame), window, self.channel_order())


def working_window_of(a: ExrFrame, b: ExrFrame) -> Window:
    """The window a pair is interpolated over: ``a``'s display window and both data windows."""
    return a.display_window.union(a.data_window).union(b.data_window)


def placed_pixels(image: ExrFrame, window: Window, channels: list[int]) -> np.ndarray:
    """The frame's pixels over ``window``, channels in ``channels`` order, as a new array. Why
    not always ``place``: when the data window is the window (most plates), placing is a second
    full copy of the frame (~15 ms at 1080p) on the thread that feeds the GPU."""
    if image.data_window == window:
        return image.pixels[..., channels]  # an index array copies: the cached frame stays as read
    return place(image, window)[..., channels]


def _load(path: Path) -> tuple[ExrFrame, dict[str, int]]:
    """Read a frame and count its NaN/Inf pixels per channel (the part of a read that can run on
    another thread: it touches no state of the plate)."""
    image = read_exr(path)
    return image, nonfinite_report(image)


def _with_pixels(image: ExrFrame, pixels: np.ndarray) -> ExrFrame:
    from dataclasses import replace

    return replace(image, pixels=pixels.astype(np.float32))
