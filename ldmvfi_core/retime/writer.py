# SPDX-License-Identifier: MIT
"""Output frames written on a background thread while the next one renders.

Why: writing an EXR is slow next to a GPU in-between. A 1920x1080 RGBA half-float frame with ZIP
compression takes 0.2-0.5 s to write on a 2-core machine and 0.07 s on the 16-core GPU machine,
about as long as a 10-step 1080p in-between on its H100 (sessions 15-16, ``bench/exr_io.py``); a
GPU retime writing in line took 0.165 s an output frame, 0.105 with this writer (session 16).
OpenImageIO releases the GIL while it encodes, so one thread overlaps the write with the next
frame's rendering.

Order and safety stay as before: writes run one at a time in plan order, every report (a frame
written, a frame skipped) is made on the calling thread in plan order and only once the file is
on disk (each write is still atomic: a temporary name, then a rename), at most ``max_pending``
rendered frames wait in memory, and an error of a write is raised on the calling thread at the
next call. When the caller stops on an error or an interrupt, the frames it has already handed
over are still written before the error goes on (so a resumed run does not render them again).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType


class OrderedWriter:
    """``submit(write, then)`` runs ``write`` on one background thread and ``then`` on the calling
    thread once ``write`` is done, in submission order; ``after(then)`` queues a report with no
    write (a skipped frame), so it still comes after the reports of the frames before it."""

    def __init__(self, max_pending: int = 2, background: bool = True) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self.max_pending = max_pending
        self.background = background  # False: each write runs inside submit (the A/B of bench/retime_io.py)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ldmvfi-write")
        self._queue: deque[tuple[Future[None] | None, Callable[[], None]]] = deque()

    def submit(self, write: Callable[[], None], then: Callable[[], None]) -> None:
        if not self.background:
            self.flush()
            write()
            then()
            return
        self._queue.append((self._pool.submit(write), then))
        self._report(keep=self.max_pending)

    def after(self, then: Callable[[], None]) -> None:
        self._queue.append((None, then))
        self._report(keep=self.max_pending)

    def flush(self) -> None:
        """Wait for every write and make every report."""
        self._report(keep=0)

    def _report(self, keep: int) -> None:
        # Report the finished head of the queue; block on the head while more than `keep` writes wait.
        while self._queue:
            future, then = self._queue[0]
            waiting = sum(f is not None and not f.done() for f, _ in self._queue)
            if future is not None and not future.done() and waiting <= keep:
                return
            self._queue.popleft()
            if future is not None:
                future.result()  # re-raises the write's error here, on the calling thread
            then()

    def close(self) -> None:
        """Finish the writes already submitted (at most ``max_pending`` frames: work an interrupted
        run would otherwise redo), without their reports, and stop the thread."""
        self._pool.shutdown(wait=True)
        self._queue.clear()

    def __enter__(self) -> OrderedWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        try:
            if kind is None:
                self.flush()
        finally:
            self.close()
