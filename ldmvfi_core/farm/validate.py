# SPDX-License-Identifier: MIT
"""``ldmvfi farm validate``: did a farm job write every output frame, and does each one read?

Every expected frame is opened with OpenImageIO and all its pixels are read, so a truncated or
corrupt file is caught (``--skip-existing`` only checks that a file opens). Temp files that a
killed task left beside the outputs (``.NAME.tmpPID.exr``, see ``io/exr.py``) never count as
frames; ``--clean-temp`` removes them. ``--quarantine`` renames unreadable frames to
``.NAME.invalid``, so requeueing the Render step re-creates them instead of skipping them.

Exit status: 0 when every frame is there and reads, 1 otherwise (the problems are listed), 2 for
a bad request.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ldmvfi_core.farm.frames import parse_frames
from ldmvfi_core.io.sequence import SequencePattern, format_frame_set, parse_pattern

EXIT_INVALID = 1
EXIT_USER_ERROR = 2
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.tmp\d+(?:\.[^.]*)?")
_SHOWN = 20  # unreadable frames listed one per line; the rest are counted


@dataclass
class ValidationReport:
    pattern: SequencePattern
    expected: list[int]
    missing: list[int] = field(default_factory=list)
    unreadable: dict[int, str] = field(default_factory=dict)  # frame -> why
    temp_files: list[Path] = field(default_factory=list)  # left by interrupted writers
    removed_temp_files: list[Path] = field(default_factory=list)
    quarantined: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unreadable

    def lines(self) -> list[str]:
        """What a farm log should say, one finding per line."""
        total = len(self.expected)
        out: list[str] = []
        if self.missing:
            out.append(f"missing {len(self.missing)} of {total} frames: {format_frame_set(self.missing)} "
                       f"(first: {self.pattern.path(self.missing[0])})")
        if self.unreadable:
            frames = sorted(self.unreadable)
            out.append(f"unreadable {len(frames)} of {total} frames: {format_frame_set(frames)}")
            out.extend(f"  {self.pattern.path(f)}: {self.unreadable[f]}" for f in frames[:_SHOWN])
            if len(frames) > _SHOWN:
                out.append(f"  ... and {len(frames) - _SHOWN} more")
        if self.quarantined:
            out.append(f"renamed {len(self.quarantined)} unreadable frames to .NAME.invalid; "
                       "requeue the Render step to re-create them")
        if self.removed_temp_files:
            out.append(f"removed {len(self.removed_temp_files)} temp files left by interrupted tasks")
        elif self.temp_files:
            out.append(f"{len(self.temp_files)} temp files left by interrupted tasks (not frames; "
                       f"--clean-temp removes them), e.g. {self.temp_files[0]}")
        if self.ok:
            out.append(f"ok: all {total} frames of {self.pattern} read ({format_frame_set(self.expected)})")
        return out


def check_frame(path: Path) -> str | None:
    """Why ``path`` is not a complete image (None when every pixel reads)."""
    try:
        import OpenImageIO as oiio
    except ImportError:
        raise OSError("OpenImageIO is not installed: pip install 'ldmvfi[exr]'") from None

    image = oiio.ImageInput.open(str(path))
    if image is None:
        return _one_line(oiio.geterror()) or "cannot open"
    try:
        spec = image.spec()
        pixels = image.read_image(0, 0, 0, spec.nchannels, oiio.FLOAT)
        if pixels is None or image.has_error:
            return _one_line(image.geterror()) or "cannot read the pixels"
        if pixels.size != spec.width * spec.height * spec.depth * spec.nchannels:
            return f"read {pixels.size} values, expected {spec.width}x{spec.height}x{spec.nchannels}"
    finally:
        image.close()
    return None


def _one_line(message: str) -> str:
    seen: list[str] = []
    for line in message.splitlines():
        line = line.strip()
        if line and line not in seen:
            seen.append(line)
    return "; ".join(seen)


def temp_files(pattern: SequencePattern, frames: Sequence[int]) -> list[Path]:
    """Temp files of the expected frames' writers (``.NAME.tmpPID[.ext]``) in the output folder."""
    names = {pattern.path(f).name for f in frames}
    try:
        entries = list(os.scandir(pattern.directory))
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if match and match.group("name") in names and entry.is_file():
            found.append(Path(entry.path))
    return sorted(found)


def validate_outputs(pattern: str | SequencePattern, frames: Sequence[int], *, clean_temp: bool = False,
                     quarantine: bool = False, jobs: int = 4) -> ValidationReport:
    """Check that every frame of ``frames`` exists under ``pattern`` and reads completely."""
    seq = parse_pattern(pattern) if isinstance(pattern, str) else pattern
    expected = sorted(set(frames))
    report = ValidationReport(pattern=seq, expected=expected)
    present: list[int] = []
    for frame in expected:
        (present if seq.path(frame).is_file() else report.missing).append(frame)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        reasons = list(pool.map(lambda f: check_frame(seq.path(f)), present))
    report.unreadable = {f: r for f, r in zip(present, reasons, strict=True) if r is not None}

    if quarantine:
        for frame in sorted(report.unreadable):
            path = seq.path(frame)
            aside = path.with_name(f".{path.name}.invalid")
            os.replace(path, aside)
            report.quarantined.append(aside)
    report.temp_files = temp_files(seq, expected)
    if clean_temp:
        for path in report.temp_files:
            try:
                path.unlink()
            except FileNotFoundError:  # its writer finished or cleaned up meanwhile
                continue
            report.removed_temp_files.append(path)
    return report


def build_parser(prog: str = "ldmvfi farm validate") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Check that every expected output frame exists and reads completely "
                               "(OpenImageIO); list the missing and unreadable ones.")
    p.add_argument("pattern", help="output sequence pattern, e.g. /out/plate.####.exr")
    p.add_argument("--frames", required=True,
                   help="expected output frames: 1001-1199, 1001-1199x2 or Open Job Description's 1001-1199:2")
    p.add_argument("--clean-temp", action="store_true",
                   help="remove the temp files (.NAME.tmpPID.exr) that killed tasks left beside the frames")
    p.add_argument("--quarantine", action="store_true",
                   help="rename unreadable frames to .NAME.invalid so a rerun with --skip-existing re-creates them")
    p.add_argument("--jobs", type=int, default=4, help="frames read at once (default 4)")
    return p


def main_validate(argv: Sequence[str] | None = None, prog: str = "ldmvfi farm validate") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        frames = parse_frames(args.frames)
        report = validate_outputs(args.pattern, frames, clean_temp=args.clean_temp,
                                  quarantine=args.quarantine, jobs=args.jobs)
    except (ValueError, OSError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    stream = sys.stdout if report.ok else sys.stderr
    for line in report.lines():
        print(line, file=stream)
    return 0 if report.ok else EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main_validate(prog="python -m ldmvfi_core.farm.validate"))
