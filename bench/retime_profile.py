# SPDX-License-Identifier: MIT
"""Where the time of a whole ``ldmvfi retime`` goes: setup, first frame, steady state, hot spots.

    python3 bench/retime_profile.py --frames 17 --device cuda --precision bfloat16 --out profile.json

Makes the same plate as ``bench/retime_io.py`` (1080p RGBA half ZIP, moving), runs one retime to
warm the process (kernels, cuDNN's autotuning, graph pools), then one measured retime in which each
progress report's time is kept, under cProfile. Reported:
- ``setup_s``: from the call to the progress ``start`` (plan, cut scan) and to the first frame
  written (model load, first render, first write);
- ``steady_s_per_output``: between the first and the last frame reports, per frame;
- ``peak_gib``: on a GPU, the most memory allocated at once during the measured run;
- ``hot``: functions by their own and their callees' time (top ``--top``); from Python 3.12 on
  cProfile sees every thread (the writer's and the read-ahead's too), before only the calling one.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import itertools
import json
import pstats
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.retime_io import add_retime_arguments, card_name, default_source, make_plate, retime_options
from ldmvfi_core.retime.runner import run_retime


class TimedProgress:
    """A ``Progress`` that keeps the time of each report."""

    def __init__(self) -> None:
        self.started = 0.0
        self.frames: list[float] = []

    def start(self, total: int, **info: Any) -> None:
        self.started = time.perf_counter()

    def frame(self, frame: int, action: str) -> None:
        self.frames.append(time.perf_counter())

    def skip(self, frame: int, reason: str) -> None: ...

    def warning(self, message: str) -> None: ...

    def error(self, message: str) -> None: ...

    def finish(self) -> None: ...


def main() -> None:
    parser = argparse.ArgumentParser()
    add_retime_arguments(parser, frames=17)
    parser.add_argument("--detect-cuts", action="store_true", help="scan for scene cuts first (the retime default)")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--out")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="ldmvfi-retime-profile-"))
    try:
        (work / "plate").mkdir()
        plate = make_plate(default_source(), work / "plate", args.frames, width, height)
        base = retime_options(args, plate, work, detect_cuts=args.detect_cuts)
        run_retime(replace(base, output=str(work / "warm" / "rt.####.exr")))
        progress = TimedProgress()
        cuda = args.device.startswith("cuda")
        if cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        profiler = cProfile.Profile()
        called = time.perf_counter()
        profiler.enable()
        run_retime(base, progress)
        profiler.disable()
        ended = time.perf_counter()
        frames = progress.frames
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(args.top)
        result = {
            "date": datetime.date.today().isoformat(), "command": " ".join(["python3", *sys.argv]),
            "card": card_name(args.device), "size": args.size, "method": args.method, "outputs": len(frames),
            "total_s": round(ended - called, 3),
            "setup_s": {"to_start": round(progress.started - called, 3),
                        "to_first_frame": round(frames[0] - called, 3)},
            "steady_s_per_output": round((frames[-1] - frames[0]) / max(1, len(frames) - 1), 4),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
            "gaps_s": [round(b - a, 3) for a, b in itertools.pairwise(frames)],
            "hot": stream.getvalue().splitlines(),
        }
        print("\n".join(result["hot"]))
        summary = {k: v for k, v in result.items() if k != "hot"}
        print(json.dumps(summary), flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
