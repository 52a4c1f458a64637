# SPDX-License-Identifier: MIT
"""Wall-clock time of a whole ``ldmvfi retime`` with each frame written in line (before session
15), written on a background thread, and written there with the next frame's sources read ahead on
another (the default since session 15); the arms alternate, one run at a time.

    python3 bench/retime_io.py --frames 9 --method blend --out retime_io.json             # CPU
    python3 bench/retime_io.py --frames 17 --device cuda --precision bfloat16 --compile   # GPU

The plate is made from ``--source`` (an EXR, default the bundled sample's first frame) scaled by
whole pixels to ``--size`` (1920x1080), RGBA half float, ZIP, as a 2x retime of ``--frames``
source frames writes ``2 * frames - 1`` outputs; ``--input`` takes an existing sequence instead.
Reported: seconds per output frame, median of ``--repeats`` per arm. A GPU run with the model
(``--method ldmvfi``) measures the case the writer is for; ``--method blend`` on a CPU measures
the I/O alone.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from unittest.mock import patch

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ldmvfi_core.io.exr import Window, read_exr, write_exr
from ldmvfi_core.retime import runner
from ldmvfi_core.retime.runner import RetimeOptions, run_retime
from ldmvfi_core.retime.sources import SourcePlate
from ldmvfi_core.retime.writer import OrderedWriter

SAMPLE = Path(__file__).resolve().parents[1] / "ldmvfi_core" / "samples"


def default_source() -> Path:
    exrs = sorted(SAMPLE.rglob("*.exr"))
    if not exrs:
        raise SystemExit(f"no EXR under {SAMPLE}: pass --source or --input")
    return exrs[0]


def make_plate(source: Path, folder: Path, frames: int, width: int, height: int) -> str:
    """``frames`` RGBA half-float ZIP frames of ``width`` x ``height``: the source scaled up by
    whole pixels and moved 4 px a frame (so the blend and the model see motion)."""
    frame = read_exr(source)
    rgb = frame.pixels[..., :3]
    scale = max(-(-height // rgb.shape[0]), -(-width // rgb.shape[1]))
    big = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    window = Window(0, 0, width - 1, height - 1)
    for k in range(frames):
        moved = np.roll(big, 4 * k, axis=1)[:height, :width]
        pixels = np.concatenate([moved, np.ones((height, width, 1), np.float32)], axis=-1)
        out = replace(frame, pixels=np.ascontiguousarray(pixels, dtype=np.float32), data_window=window,
                      display_window=window, channel_names=("R", "G", "B", "A"), channel_formats=("half",) * 4,
                      compression="zip", attributes=[])
        write_exr(folder / f"plate.{1001 + k:04d}.exr", out)
    return str(folder / "plate.####.exr")


def add_retime_arguments(parser: argparse.ArgumentParser, frames: int) -> None:
    """The plate and retime options this script and ``bench/retime_profile.py`` share."""
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--frames", type=int, default=frames, help="source frames of the made plate")
    parser.add_argument("--method", default="ldmvfi", choices=("ldmvfi", "blend", "nearest"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--prealign", action="store_true",
                        help="as ldmvfi retime --prealign (the made plate pans 4 px a frame)")
    parser.add_argument("--compile", action="store_true")


def retime_options(args: argparse.Namespace, plate: str, work: Path, detect_cuts: bool = False) -> RetimeOptions:
    """A 2x retime of ``plate`` into ``work``/out, RGBA, as ``add_retime_arguments`` asked."""
    return RetimeOptions(input=plate, output=str(work / "out" / "rt.####.exr"), factor=2, method=args.method,
                         device=args.device, precision=args.precision, steps=args.steps, compile=args.compile,
                         channels="rgba", detect_cuts=detect_cuts, prealign=args.prealign)


def card_name(device: str) -> str:
    if not device.startswith("cuda"):
        return "CPU"
    import torch

    return torch.cuda.get_device_name()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", help="an existing EXR sequence (plate.####.exr) instead of a made one")
    parser.add_argument("--source", type=Path, help="the EXR the made plate scales up (default: the bundled sample)")
    add_retime_arguments(parser, frames=9)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="ldmvfi-retime-io-"))
    try:
        if args.input:
            plate = args.input
        else:
            (work / "plate").mkdir()
            plate = make_plate(args.source or default_source(), work / "plate", args.frames, width, height)
        base = retime_options(args, plate, work)
        arms = {"in_line": (False, False), "background_writes": (True, False),
                "background_writes_and_read_ahead": (True, True)}
        timings: dict[str, list[float]] = {arm: [] for arm in arms}
        outputs = 0
        run_retime(replace(base, output=str(work / "warm" / "rt.####.exr")))  # loads, compiles, warms caches
        for _ in range(args.repeats):
            for arm, (background, read_ahead) in arms.items():
                shutil.rmtree(work / "out", ignore_errors=True)
                writer = OrderedWriter if background else partial(OrderedWriter, background=False)
                prefetch = SourcePlate.prefetch if read_ahead else (lambda self, frames: None)
                started = time.perf_counter()
                with patch.object(runner, "OrderedWriter", writer), patch.object(SourcePlate, "prefetch", prefetch):
                    result = run_retime(base)
                outputs = len(result.written)
                timings[arm].append((time.perf_counter() - started) / outputs)
                print(json.dumps({"arm": arm, "seconds_per_output_frame": round(timings[arm][-1], 4)}), flush=True)
        summary = {arm: round(statistics.median(v), 4) for arm, v in timings.items()}
        result_json = {"date": datetime.date.today().isoformat(), "command": " ".join(["python3", *sys.argv]),
                       "card": card_name(args.device), "cpus": os.cpu_count(), "size": args.size,
                       "outputs_per_run": outputs, "method": args.method, "device": args.device, "runs": timings,
                       "median_seconds_per_output_frame": summary}
        print(json.dumps(result_json), flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(result_json, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
