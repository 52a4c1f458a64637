# SPDX-License-Identifier: MIT
"""Timing: which source time each output frame shows.

Three ways to say it, all ending as a list of ``(output_frame, source_time)``:

* ``factor N``: N output frames per source frame (slow motion by N). Output frames are numbered
  from the first source frame, so a Nuke Read of the result starts where the plate started:
  source 1001-1100 at factor 2 gives output 1001-1199, output 1001 + i showing 1001 + i/2.
* ``speed S``: constant speed, any real S != 0 (0.4 = 2.5x slower; 2 = twice as fast; negative
  plays backwards from the last frame). Output frames are numbered from the first source frame.
* ``frame map``: an explicit output-frame -> source-frame curve, e.g. baked from a Nuke
  ``Retime``/``Kronos`` ``frame`` knob. Accepted files: two columns per line (output frame,
  source frame), separated by spaces, tabs or a comma, ``#`` comments and a non-numeric header
  line allowed (Nuke's *Export ascii* / ``.chan``-style text and CSV); or JSON, either
  ``{"1001": 1001.0, ...}`` or ``[[1001, 1001.0], ...]``. Output frames between two listed ones
  get a linearly interpolated source time.

Source times outside the source range are clamped to the first/last source frame (we never
extrapolate) and reported by ``clamped_frames``.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path


class TimingError(ValueError):
    """A timing request that cannot be satisfied; one line."""


@dataclass(frozen=True)
class TimeMap:
    """Output frame -> source time, in output-frame order."""

    times: tuple[tuple[int, float], ...]
    source_first: int
    source_last: int

    def __len__(self) -> int:
        return len(self.times)

    @property
    def output_frames(self) -> list[int]:
        return [o for o, _ in self.times]

    def clamped_frames(self) -> list[int]:
        """Output frames whose requested time was outside the source range (held at an end)."""
        return [o for o, s in self.requested if s < self.source_first or s > self.source_last]

    requested: tuple[tuple[int, float], ...] = ()


def _clamped(requested: list[tuple[int, float]], first: int, last: int) -> TimeMap:
    times = tuple((o, min(max(s, float(first)), float(last))) for o, s in requested)
    return TimeMap(times=times, source_first=first, source_last=last, requested=tuple(requested))


def by_factor(first: int, last: int, factor: int) -> TimeMap:
    """``factor`` output frames per source frame over ``first..last`` (inclusive)."""
    if factor < 1:
        raise TimingError(f"--factor must be a whole number >= 1, got {factor}")
    count = (last - first) * factor + 1
    return _clamped([(first + i, first + i / factor) for i in range(count)], first, last)


def by_speed(first: int, last: int, speed: float) -> TimeMap:
    """Constant ``speed`` (source frames per output frame); negative plays backwards."""
    if not math.isfinite(speed) or speed == 0:
        raise TimingError(f"--speed must be a finite non-zero number, got {speed}")
    span = last - first
    # The last output frame is the last one whose time stays inside the range (small tolerance
    # so 0.1 * 10 still reaches the end).
    count = math.floor(span / abs(speed) + 1e-9) + 1
    start = first if speed > 0 else last
    requested = [(first + i, start + i * speed) for i in range(count)]
    return _clamped(requested, first, last)


def by_frame_map(curve: list[tuple[int, float]], first: int, last: int) -> TimeMap:
    """An explicit curve; output frames between keys are filled by linear interpolation."""
    if not curve:
        raise TimingError("the frame map is empty")
    keys = sorted(dict(curve).items())
    requested: list[tuple[int, float]] = []
    for (o0, s0), (o1, s1) in itertools.pairwise(keys):
        for o in range(o0, o1):
            requested.append((o, s0 + (s1 - s0) * (o - o0) / (o1 - o0)))
    requested.append(keys[-1])
    return _clamped(requested, first, last)


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def read_frame_map(path: str | Path) -> list[tuple[int, float]]:
    """Parse a frame-map file (see the module docstring for the formats)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise TimingError(f"{path}: cannot read frame map ({err.strerror})") from None
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return _parse_json_map(path, stripped)
    curve: list[tuple[int, float]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f for f in re.split(r"[\s,;]+", line) if f]
        if len(fields) < 2 or not (_NUMBER.match(fields[0]) and _NUMBER.match(fields[1])):
            if not curve:  # a header line
                continue
            raise TimingError(f"{path}:{number}: expected 'output_frame source_frame', got {raw.strip()!r}")
        curve.append((_as_frame(path, number, fields[0]), float(fields[1])))
    if not curve:
        raise TimingError(f"{path}: no 'output_frame source_frame' lines found")
    return curve


def _as_frame(path: Path, line: int, text: str) -> int:
    value = float(text)
    if value != round(value):
        raise TimingError(f"{path}:{line}: output frame {text} is not a whole number")
    return round(value)


def _parse_json_map(path: Path, text: str) -> list[tuple[int, float]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise TimingError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    items = data.items() if isinstance(data, dict) else data
    try:
        return [(_as_frame(path, 0, str(o)), float(s)) for o, s in items]
    except (TypeError, ValueError):
        raise TimingError(f"{path}: JSON frame map must be {{output: source}} or [[output, source], ...]") from None
