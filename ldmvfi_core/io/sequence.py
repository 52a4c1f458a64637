# SPDX-License-Identifier: MIT
"""Image-sequence patterns and frame sets, in the words a pipeline TD uses every day.

A *pattern* names every file of a sequence with one frame number placeholder in the file name:

* Nuke hashes: ``plate.####.exr`` (one digit per ``#``; ``plate.#.exr`` is unpadded);
* printf: ``plate.%04d.exr``, ``plate.%d.exr``;
* Houdini: ``plate.$F4.exr``, ``plate.$F.exr`` (``${F4}`` also reads).

Hashes follow Nuke, not oiiotool (where ``#`` alone means four digits). Negative frames are written the
way Nuke writes them: ``-`` and then the zero-padded absolute value (``-0005`` with padding 4), and a
frame number longer than the padding is written in full (``12345`` with padding 4).

A *frame set* is the farm/Nuke frame list syntax: ``1001-1100``, ``1001-1100x2``, ``1001``, and comma
lists of those, such as ``1001-1010,1020,1030-1040x5`` or ``-10--1``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

SequenceStyle = Literal["hash", "printf", "houdini"]
"""How the frame number placeholder is spelled: ``####``, ``%04d`` or ``$F4``."""

MAX_FRAME_SET_SIZE = 10_000_000
"""A frame set expanding to more frames than this is refused (a typo, not a shot)."""

# One placeholder of any style. The Houdini variable ends where a name character would continue it
# ($FF, $FPS and $F4_x are other variables), hence the look-ahead; ${F4} is the braced spelling.
_PLACEHOLDER = re.compile(
    r"(?P<printf>%(?P<flags>[-+ #0]*)(?P<width>\d*)d)"
    r"|\$\{F(?P<braced>\d*)\}"
    r"|\$F(?P<houdini>\d*)(?![A-Za-z0-9_])"
    r"|(?P<hash>#+)",
    re.ASCII,
)
_HOUDINI_LOOKALIKE = re.compile(r"\$F(\d*)([A-Za-z_]\w*)", re.ASCII)
_NAME_CHAR = re.compile(r"[A-Za-z0-9_]")
_FRAME_ITEM = re.compile(r"(?P<first>-?\d+)(?:-(?P<last>-?\d+)(?:x(?P<step>-?\d+))?)?", re.ASCII)
_TRAILING_NUMBER = re.compile(r"(?:(?<=[._])-)?\d+(?=\D*$)", re.ASCII)


class SequenceError(ValueError):
    """A pattern, frame set or frame range that cannot be used; the message is one line."""


def _show(text: str) -> str:
    """The text as typed, or its repr when it would not print on one readable line."""
    return text if text.isprintable() else repr(text)


def _format_frame(frame: int, padding: int) -> str:
    """Nuke's spelling of a frame number: zero-padded absolute value, ``-`` in front when negative."""
    digits = str(abs(frame)).zfill(padding)
    return f"-{digits}" if frame < 0 else digits


@dataclass(frozen=True)
class _Placeholder:
    start: int
    end: int
    style: SequenceStyle
    padding: int


def _placeholders(name: str, shown: str) -> list[_Placeholder]:
    """Every frame number placeholder in ``name``; unusable printf forms raise (``shown`` names the input)."""
    found: list[_Placeholder] = []
    for match in _PLACEHOLDER.finditer(name):
        token = match.group(0)
        if match.group("printf") is not None:
            flags, width = match.group("flags"), match.group("width")
            if not set(flags) <= {"0"} or (flags == "" and width):
                good = f"%0{width}d" if width and width.strip("0") else "%04d"
                raise SequenceError(
                    f"{shown}: {token} is not a zero-padded frame number; use {good} (or %d for no padding)"
                )
            found.append(_Placeholder(match.start(), match.end(), "printf", max(1, int(width or 0))))
        elif match.group("hash") is not None:
            found.append(_Placeholder(match.start(), match.end(), "hash", len(token)))
        else:
            width = match.group("braced") if match.group("braced") is not None else match.group("houdini")
            found.append(_Placeholder(match.start(), match.end(), "houdini", max(1, int(width or 0))))
    return found


def _suggest(name: str) -> str:
    """A hash pattern for a file name that has none: its last frame-like number (or a new one) as hashes."""
    numbers = list(_TRAILING_NUMBER.finditer(name))
    if numbers:
        number = numbers[-1]
        return name[: number.start()] + "#" * len(number.group(0).lstrip("-")) + name[number.end() :]
    stem, dot, extension = name.rpartition(".")
    return f"{stem}.####.{extension}" if dot and stem else f"{name}.####"


@dataclass(frozen=True)
class SequencePattern:
    """Where the frames of one image sequence live: ``directory / (prefix + frame number + suffix)``.

    ``padding`` is the frame zero padding (OpenImageIO's ``frame_zero_padding``); ``style`` only decides
    how ``str()`` spells the placeholder. Two patterns naming the same files in different styles differ.
    """

    directory: Path
    prefix: str
    suffix: str
    padding: int = 4
    style: SequenceStyle = "hash"

    def __post_init__(self) -> None:
        object.__setattr__(self, "directory", Path(self.directory))
        if self.style not in get_args(SequenceStyle):
            raise SequenceError(f"unknown sequence style {self.style!r}; use one of hash, printf, houdini")
        if isinstance(self.padding, bool) or not isinstance(self.padding, int) or self.padding < 1:
            raise SequenceError(f"frame padding must be a whole number >= 1, not {self.padding!r}")
        for part in (self.prefix, self.suffix):
            if "/" in part or os.sep in part or "\0" in part:
                raise SequenceError(f"{part!r}: a file name prefix or suffix cannot hold a path separator")
        # Every style must read back as this very pattern, so str(), with_style() and parse agree.
        for style in get_args(SequenceStyle):
            name = self._name(self._placeholder(style))
            found = _placeholders(name, _show(name))
            if len(found) != 1 or (
                name[: found[0].start],
                name[found[0].end :],
                found[0].padding,
            ) != (self.prefix, self.suffix, self.padding):
                raise SequenceError(
                    f"{_show(self.prefix + '#' + self.suffix)}: prefix or suffix reads as a frame number "
                    f"placeholder when written as {style}; rename the files"
                )

    def _placeholder(self, style: SequenceStyle) -> str:
        width = str(self.padding) if self.padding > 1 else ""
        if style == "hash":
            return "#" * self.padding
        if style == "printf":
            return f"%0{width}d" if width else "%d"
        if self.suffix and _NAME_CHAR.match(self.suffix[0]):
            return f"${{F{width}}}"  # $F4 followed by a name character would read as another variable
        return f"$F{width}"

    def _name(self, placeholder: str) -> str:
        return f"{self.prefix}{placeholder}{self.suffix}"

    def __str__(self) -> str:
        return str(self.directory / self._name(self._placeholder(self.style)))

    def with_style(self, style: SequenceStyle) -> SequencePattern:
        """The same files, the placeholder spelled in another style."""
        return dataclasses.replace(self, style=style)

    def nuke_string(self) -> str:
        """The pattern with hashes, as a Nuke Read or Write node expects it."""
        return str(self.with_style("hash"))

    def path(self, frame: int) -> Path:
        """The file of one frame."""
        return self.directory / self._name(_format_frame(frame, self.padding))

    def frame_of(self, path: str | os.PathLike[str]) -> int | None:
        """The frame number of a file of this sequence (by its name alone), or None if it is not one.

        Only the spelling ``path()`` writes is accepted: with padding 4, ``0042`` and ``12345`` are
        frames, ``42``, ``00042`` and ``-0000`` are not.
        """
        name = Path(path).name
        if len(name) <= len(self.prefix) + len(self.suffix):
            return None
        if not (name.startswith(self.prefix) and name.endswith(self.suffix)):
            return None
        number = name[len(self.prefix) : len(name) - len(self.suffix)]
        digits = number.removeprefix("-")
        if not (digits.isascii() and digits.isdigit()):
            return None
        try:
            frame = -int(digits) if number.startswith("-") else int(digits)
        except ValueError:  # thousands of digits: past Python's int parsing limit, no frame of ours
            return None
        return frame if _format_frame(frame, self.padding) == number else None

    def scan(self) -> list[int]:
        """The frames whose files are in ``directory`` now, sorted; a missing folder is an error."""
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            raise SequenceError(f"{self}: folder {self.directory} does not exist") from None
        except NotADirectoryError:
            raise SequenceError(f"{self}: {self.directory} is not a folder") from None
        frames = []
        for entry in entries:
            frame = self.frame_of(entry.name)
            if frame is not None and entry.is_file():
                frames.append(frame)
        return sorted(frames)


def parse_pattern(text: str | os.PathLike[str]) -> SequencePattern:
    """Read a sequence pattern (``plate.####.exr``, ``plate.%04d.exr``, ``plate.$F4.exr``, with folders)."""
    text = os.fspath(text)
    shown = _show(text)
    if not text.strip():
        raise SequenceError("empty sequence pattern; write it like plate.####.exr")
    full = Path(text)
    name = full.name
    if not name:
        raise SequenceError(f"{shown}: no file name; write the pattern like plate.####.exr")
    if text.endswith(("/", os.sep)):
        raise SequenceError(f"{shown}: ends with a folder separator; name the files, like plate.####.exr")
    if _placeholders(str(full.parent), shown):
        raise SequenceError(
            f"{shown}: frame number placeholder in the folder part; only the file name may hold one"
        )
    found = _placeholders(name, shown)
    other_variable = _HOUDINI_LOOKALIKE.search(name)
    if not found and other_variable is not None:
        token, digits, rest = other_variable.group(0, 1, 2)
        good = f"${{F{digits}}}{rest}" if digits else "$F4"
        raise SequenceError(f"{shown}: {token} is not Houdini's frame number variable; use {good}")
    if not found:
        raise SequenceError(
            f"{shown}: no frame number placeholder; use {_show(str(full.parent / _suggest(name)))}"
        )
    if len(found) > 1:
        tokens = ", ".join(name[p.start : p.end] for p in found)
        raise SequenceError(
            f"{shown}: {len(found)} frame number placeholders ({tokens}); the file name must hold exactly one"
        )
    only = found[0]
    return SequencePattern(
        directory=full.parent,
        prefix=name[: only.start],
        suffix=name[only.end :],
        padding=only.padding,
        style=only.style,
    )


@dataclass(frozen=True)
class FrameRange:
    """Every frame from ``first`` to ``last``, both included."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if self.first > self.last:
            raise SequenceError(f"frame range {self.first}-{self.last} runs backwards; first must be <= last")

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.first, self.last + 1))

    def __contains__(self, frame: object) -> bool:
        return isinstance(frame, int) and self.first <= frame <= self.last

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


def frame_range_of(frames: Iterable[int]) -> FrameRange:
    """The smallest range holding every frame given (at least one)."""
    frames = list(frames)
    if not frames:
        raise SequenceError("no frames: cannot take the frame range of an empty list")
    return FrameRange(min(frames), max(frames))


def find_missing(frames: Iterable[int]) -> list[int]:
    """The frames between the first and the last that are not in ``frames``, sorted."""
    present = set(frames)
    if not present:
        return []
    return [frame for frame in range(min(present), max(present) + 1) if frame not in present]


def parse_frame_set(text: str) -> list[int]:
    """Expand a frame set such as ``1001-1010,1020,1030-1040x5`` to its frames, sorted, no duplicates."""
    shown = repr(text)
    if not text.strip():
        raise SequenceError(f"frame set {shown} is empty; write frames like 1001-1100 or 1001-1100x2")
    spans: list[range] = []
    total = 0
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            raise SequenceError(f"frame set {shown}: empty item between commas")
        match = _FRAME_ITEM.fullmatch(item)
        if match is None:
            raise SequenceError(
                f"frame set {shown}: cannot read {item!r}; write frames like 1001, 1001-1100 or 1001-1100x2"
            )
        try:
            first = int(match.group("first"))
            last = int(match.group("last")) if match.group("last") is not None else first
            step = int(match.group("step")) if match.group("step") is not None else 1
        except ValueError:  # thousands of digits: past Python's int parsing limit
            raise SequenceError(f"frame set {shown}: {item[:40]!r}... is too long a number") from None
        if step <= 0:
            raise SequenceError(f"frame set {shown}: step in {item!r} must be 1 or more")
        if first > last:
            raise SequenceError(f"frame set {shown}: {item!r} runs backwards; write {last}-{first}")
        total += (last - first) // step + 1
        if total > MAX_FRAME_SET_SIZE:
            raise SequenceError(
                f"frame set {shown}: more than {MAX_FRAME_SET_SIZE} frames; check the numbers"
            )
        spans.append(range(first, last + 1, step))
    return sorted({frame for span in spans for frame in span})


def _stepped_runs(frames: list[int]) -> Iterator[str]:
    """Frames none of which are consecutive integers, as ``a-bxN`` runs (two or more) and single frames."""
    start = 0
    while start < len(frames):
        end = start
        if start + 1 < len(frames):
            step = frames[start + 1] - frames[start]
            end = start + 1
            while end + 1 < len(frames) and frames[end + 1] - frames[end] == step:
                end += 1
            yield f"{frames[start]}-{frames[end]}x{step}"
        else:
            yield str(frames[start])
        start = end + 1


def format_frame_set(frames: Iterable[int]) -> str:
    """A compact frame set for these frames; ``parse_frame_set`` gives them back sorted, once each.

    Blocks of consecutive frames become ``a-b``; the frames between two blocks are written as stepped
    runs ``a-bxN`` (two frames or more with one step) or single frames, so the items stay in order.
    """
    ordered = sorted(set(frames))
    items: list[str] = []
    loose: list[int] = []
    index = 0
    while index < len(ordered):
        end = index
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        if end > index:
            items.extend(_stepped_runs(loose))
            loose = []
            items.append(f"{ordered[index]}-{ordered[end]}")
        else:
            loose.append(ordered[index])
        index = end + 1
    items.extend(_stepped_runs(loose))
    return ",".join(items)
