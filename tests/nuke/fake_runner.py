# SPDX-License-Identifier: MIT
"""Stands in for ``python -m ldmvfi_core.cli retime|farm bundle`` in the Nuke tests.

Set the node's Python knob to ``<python> <this file>``: this script then receives the node's
real command line (``-m ldmvfi_core.cli retime INPUT OUTPUT ...``). ``FAKE_LDMVFI_MODE``:

* ``ok``: plan with the core's timing functions, write one small file per output frame, print
  the JSON progress events the real runner prints;
* ``slow``: print ``start`` then a ``frame`` event every 0.1 s for a minute, writing nothing;
* ``stubborn``: like ``slow`` but ignores SIGTERM (only a kill stops it);
* ``fail``: an ``error`` event, a one-line error on stderr, exit code 2.

Every invocation is appended to ``FAKE_LDMVFI_LOG`` (one JSON line: argv, pid).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for ldmvfi_core.retime.timing

from ldmvfi_core.retime.timing import by_factor, by_frame_map, by_speed, read_frame_map


def emit(**event: object) -> None:
    print(json.dumps(event), flush=True)


def frame_file(pattern: str, frame: int) -> Path:
    match = re.search(r"#+", pattern)
    assert match is not None
    return Path(pattern[: match.start()] + f"{frame:0{match.end() - match.start()}d}" + pattern[match.end():])


def parse(argv: list[str]) -> tuple[str, argparse.Namespace]:
    assert argv[:2] == ["-m", "ldmvfi_core.cli"], argv
    words = argv[2:]
    command = words.pop(0)
    if command == "farm":
        command += " " + words.pop(0)
    p = argparse.ArgumentParser()
    p.add_argument("input")
    p.add_argument("output")
    for option in ("--frames", "--factor", "--speed", "--frame-map", "--depth", "--method", "--model", "--device",
                   "--precision", "--steps", "--eta", "--seed", "--batch", "--ensemble", "--transfer", "--ocio-from",
                   "--ocio-to", "--ocio-config", "--channels", "--other-channels", "--progress", "--bundle-dir"):
        p.add_argument(option)
    p.add_argument("--skip-existing", action="store_true")
    p.add_argument("--no-cut-detection", action="store_true")
    p.add_argument("--prealign", action="store_true")
    return command, p.parse_args(words)


def main() -> int:
    argv = sys.argv[1:]
    log = os.environ.get("FAKE_LDMVFI_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"argv": argv, "pid": os.getpid()}) + "\n")
    mode = os.environ.get("FAKE_LDMVFI_MODE", "ok")
    command, args = parse(argv)
    if mode == "fail":
        emit(event="start", total=3, input=args.input, output=args.output, frames="1-3")
        emit(event="error", message="plate.1002.exr: channel R holds NaN")
        print(f"ldmvfi {command}: error: {Path(args.input).name}: frame 1002: channel R holds NaN", file=sys.stderr)
        return 2
    if mode in ("slow", "stubborn"):
        if mode == "stubborn":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        emit(event="start", total=600, input=args.input, output=args.output, frames="x")
        for i in range(600):
            time.sleep(0.1)
            emit(event="frame", frame=1001 + i, done=i + 1, total=600, eta=(600 - i) * 0.1, action="slow")
        return 0
    if command == "farm bundle":
        bundle = Path(args.bundle_dir)
        bundle.mkdir(parents=True, exist_ok=True)
        (bundle / "template.yaml").write_text("specificationVersion: jobtemplate-2023-09\n")
        print(f"wrote {bundle}")
        return 0
    first, last = (int(x) for x in args.frames.split("-"))
    if args.speed is not None:
        timing = by_speed(first, last, float(args.speed))
    elif args.frame_map is not None:
        timing = by_frame_map(read_frame_map(args.frame_map), first, last)
    else:
        timing = by_factor(first, last, int(args.factor))
    for frame in range(first, last + 1):
        if not frame_file(args.input, frame).is_file():
            print(f"ldmvfi retime: error: {frame_file(args.input, frame)}: missing", file=sys.stderr)
            return 2
    emit(event="start", total=len(timing.times), input=args.input, output=args.output, frames=f"{first}-{last}")
    written = skipped = 0
    for done, (out, source) in enumerate(timing.times, 1):
        target = frame_file(args.output, out)
        if args.skip_existing and target.is_file():
            skipped += 1
            emit(event="skip", frame=out, done=done, total=len(timing.times), reason="exists")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({"output": out, "source": source}))
        written += 1
        emit(event="frame", frame=out, done=done, total=len(timing.times), eta=0.0, action=f"source {source}")
    emit(event="done", written=written, skipped=skipped, seconds=0.01)
    return 0


if __name__ == "__main__":
    sys.exit(main())
