# SPDX-License-Identifier: MIT
"""The camera moves of a plate's source pairs (``ldmvfi_core.prealign``), measured ahead of need.

Measuring a 1080p pair takes ~0.1 s of numpy on the host (bench/RESULTS.md, "Pre-alignment"). On
the thread that feeds the GPU that is time the GPU waits, so ``PairMoves`` measures each pair on a
thread of its own, and when a pair is asked for it starts the next ``ahead`` pairs of the plate:
by the time the renderer reaches them their moves are ready. The result is the same either way:
a move depends only on the two frames' pixels.

Thread safety: the plate is touched only on the caller's thread (``SourcePlate.stored_later``
hands over the frames, read ahead by the plate's own reader); the measuring thread sees those
frames' arrays and its own cache of shrunk greys, nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ldmvfi_core.io.colour import encode_transfer
from ldmvfi_core.io.exr import ExrFrame, Window
from ldmvfi_core.prealign import CameraMove, alignment_grey, alignment_scale, move_between
from ldmvfi_core.retime.sources import SourcePlate, placed_pixels, working_window_of


class PairMoves:
    def __init__(self, plate: SourcePlate, ahead: int = 2) -> None:
        self.plate = plate
        self.ahead = ahead
        self._next = {a: b for a, b in zip(plate.frames, plate.frames[1:], strict=False)}
        self._moves: dict[tuple[int, int], Future[CameraMove | None]] = {}
        self._worker: ThreadPoolExecutor | None = None
        self._greys: dict[tuple[int, Window], np.ndarray] = {}  # the worker's alone
        self._rgb: tuple[int, int, int] | None = None  # the plate's R, G, B channels, read on the caller's thread

    def move(self, frame_a: int, frame_b: int) -> CameraMove | None:
        """The move from ``frame_a`` to ``frame_b`` (None: not pre-aligned); waits for it if it
        is not measured yet, and starts measuring the pairs after it."""
        self._request(frame_a, frame_b)
        later = frame_b
        for _ in range(self.ahead):
            after = self._next.get(later)
            if after is None:
                break
            self._request(later, after)
            later = after
        return self._moves[frame_a, frame_b].result()

    def forget_before(self, frame: int) -> None:
        """Drop the moves of pairs that start before ``frame`` (the renderer has passed them)."""
        self._moves = {k: v for k, v in self._moves.items() if k[0] >= frame}

    def close(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=True, cancel_futures=True)
            self._worker = None

    def _request(self, frame_a: int, frame_b: int) -> None:
        if (frame_a, frame_b) in self._moves:
            return
        if self._worker is None:
            r, g, b = self.plate.channel_order()[:3]
            self._rgb = (r, g, b)
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ldmvfi-moves")
        stored_a, stored_b = self.plate.stored_later(frame_a), self.plate.stored_later(frame_b)
        self._moves[frame_a, frame_b] = self._worker.submit(self._measure, frame_a, stored_a, frame_b, stored_b)

    def _measure(self, frame_a: int, stored_a: Callable[[], ExrFrame], frame_b: int,
                 stored_b: Callable[[], ExrFrame]) -> CameraMove | None:
        """On the worker: the pair's move over the window the renderer will use for it."""
        image_a, image_b = stored_a(), stored_b()
        window = working_window_of(image_a, image_b)
        self._greys = {k: v for k, v in self._greys.items() if k[0] >= frame_a}
        greys = [self._grey(frame, image, window) for frame, image in ((frame_a, image_a), (frame_b, image_b))]
        return move_between(greys[0], greys[1], alignment_scale(window.width))

    def _grey(self, frame: int, image: ExrFrame, window: Window) -> np.ndarray:
        """``alignment_grey`` in the model's display encoding; kept for the frame's other pair."""
        key = (frame, window)
        if key not in self._greys:
            transfer = self.plate.colour.transfer

            def encode(rgb: np.ndarray) -> np.ndarray:
                return np.asarray(encode_transfer(rgb, transfer))

            assert self._rgb is not None
            if image.data_window == window:  # the stored pixels, not a copy of them
                self._greys[key] = alignment_grey(image.pixels, encode, self._rgb)
            else:
                self._greys[key] = alignment_grey(placed_pixels(image, window, list(self._rgb)), encode)
        return self._greys[key]
