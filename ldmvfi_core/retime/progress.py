# SPDX-License-Identifier: MIT
"""Progress for people (a tqdm bar) and for programs (JSON lines on stdout).

JSON events, one object per line (the Nuke node and the farm read these):

    {"event": "start", "total": 20, "input": "...", "output": "...", "frames": "1001-1020"}
    {"event": "frame", "frame": 1003, "done": 3, "total": 20, "eta": 12.5, "action": "interpolate ..."}
    {"event": "skip", "frame": 1004, "done": 4, "total": 20, "reason": "exists"}
    {"event": "warning", "message": "..."}
    {"event": "done", "written": 18, "skipped": 2, "seconds": 41.2}
    {"event": "error", "message": "..."}

``eta`` is seconds left, estimated from the frames rendered so far (null before the first).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Protocol, TextIO


class Progress(Protocol):
    def start(self, total: int, **info: Any) -> None: ...
    def frame(self, frame: int, action: str) -> None: ...
    def skip(self, frame: int, reason: str) -> None: ...
    def warning(self, message: str) -> None: ...
    def error(self, message: str) -> None: ...
    def finish(self) -> None: ...


class _Counter:
    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.written = 0
        self.skipped = 0
        self.t0 = time.monotonic()
        self._render_time = 0.0
        self._last = self.t0

    def tick(self, rendered: bool) -> float | None:
        now = time.monotonic()
        self.done += 1
        if rendered:
            self.written += 1
            self._render_time += now - self._last
        else:
            self.skipped += 1
        self._last = now
        if not self.written:
            return None
        return round(self._render_time / self.written * (self.total - self.done), 1)


class JsonProgress:
    """One JSON object per line, flushed immediately."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.count = _Counter()

    def _emit(self, **event: Any) -> None:
        self.stream.write(json.dumps(event) + "\n")
        self.stream.flush()

    def start(self, total: int, **info: Any) -> None:
        self.count = _Counter()
        self.count.total = total
        self._emit(event="start", total=total, **info)

    def frame(self, frame: int, action: str) -> None:
        eta = self.count.tick(rendered=True)
        self._emit(event="frame", frame=frame, done=self.count.done, total=self.count.total, eta=eta,
                   action=action)

    def skip(self, frame: int, reason: str) -> None:
        self.count.tick(rendered=False)
        self._emit(event="skip", frame=frame, done=self.count.done, total=self.count.total, reason=reason)

    def warning(self, message: str) -> None:
        self._emit(event="warning", message=message)

    def error(self, message: str) -> None:
        self._emit(event="error", message=message)

    def finish(self) -> None:
        c = self.count
        self._emit(event="done", written=c.written, skipped=c.skipped,
                   seconds=round(time.monotonic() - c.t0, 2))


class BarProgress:
    """A tqdm bar on stderr; warnings printed above it."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.count = _Counter()

    def start(self, total: int, **info: Any) -> None:
        from tqdm import tqdm

        self.count = _Counter()
        self.count.total = total
        print(f"retime {info.get('input')} -> {info.get('output')}: {total} frames "
              f"({info.get('frames')})", file=sys.stderr)
        self.bar = tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True)

    def frame(self, frame: int, action: str) -> None:
        self.count.tick(rendered=True)
        self.bar.set_postfix_str(str(frame))
        self.bar.update(1)

    def skip(self, frame: int, reason: str) -> None:
        self.count.tick(rendered=False)
        self.bar.update(1)

    def warning(self, message: str) -> None:
        (self.bar.write if self.bar else print)(f"warning: {message}", file=sys.stderr)

    def error(self, message: str) -> None:
        pass  # the command line prints the error itself, once

    def finish(self) -> None:
        if self.bar:
            self.bar.close()
        c = self.count
        print(f"done: {c.written} written, {c.skipped} skipped, {time.monotonic() - c.t0:.1f} s",
              file=sys.stderr)


class SilentProgress:
    def start(self, total: int, **info: Any) -> None:
        pass

    def frame(self, frame: int, action: str) -> None:
        pass

    def skip(self, frame: int, reason: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def error(self, message: str) -> None:
        pass

    def finish(self) -> None:
        pass


def make_progress(kind: str) -> Progress:
    if kind == "json":
        return JsonProgress()
    if kind == "none":
        return SilentProgress()
    return BarProgress()
