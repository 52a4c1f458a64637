# SPDX-License-Identifier: MIT
"""How long one EXR takes to write and read on this machine, and how writes scale over threads.

    python3 bench/exr_io.py --size 1920x1080 --out exr_io.json

A frame of ``--size``, RGBA half float, is written with each of ``--compressions`` through the
project's own ``write_exr`` (temporary name, rename), then read back with ``read_exr``:
- ``write_s`` / ``read_s``: one frame at a time, median of ``--repeats``;
- ``write_s_exr_threads_1``: the same with OpenEXR's own thread pool off (``exr_threads`` 1), which
  says how much of a write OpenEXR already spreads over the cores;
- ``frames_per_s_writers_N``: N Python threads each writing frames at once (the writer's pool),
  frames per second in all.
The pixels are a smooth gradient with noise (grain), as a plate's are, so compression works as hard
as on real footage.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ldmvfi_core.io.exr import ExrFrame, Window, read_exr, write_exr


def plate_frame(width: int, height: int, compression: str) -> ExrFrame:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([x / width, y / height, 0.5 + 0.25 * np.sin(x / 37.0) * np.cos(y / 23.0)], axis=-1)
    rgb = rgb * 2.0 + rng.normal(0.0, 0.02, rgb.shape).astype(np.float32)  # scene-linear, with grain
    pixels = np.concatenate([rgb, np.ones((height, width, 1), np.float32)], axis=-1)
    window = Window(0, 0, width - 1, height - 1)
    return ExrFrame(pixels=np.ascontiguousarray(pixels), channel_names=("R", "G", "B", "A"),
                    channel_formats=("half",) * 4, data_window=window, display_window=window,
                    compression=compression)


def median_seconds(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 4)


def writes_per_second(frame: ExrFrame, folder: Path, writers: int, frames: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=writers) as pool:
        list(pool.map(lambda k: write_exr(folder / f"many.{k:04d}.exr", frame), range(frames)))
    return round(frames / (time.perf_counter() - started), 2)


def measure(frame: ExrFrame, folder: Path, repeats: int, writers: list[int], default_threads: int) -> dict:
    import OpenImageIO as oiio

    path = folder / f"one.{frame.compression}.exr"
    row: dict = {"write_s": median_seconds(lambda: write_exr(path, frame), repeats)}
    row["bytes"] = path.stat().st_size
    row["read_s"] = median_seconds(lambda: read_exr(path), repeats)
    oiio.attribute("exr_threads", 1)
    row["write_s_exr_threads_1"] = median_seconds(lambda: write_exr(path, frame), repeats)
    oiio.attribute("exr_threads", default_threads)
    for n in writers:
        row[f"frames_per_s_writers_{n}"] = writes_per_second(frame, folder, n, 2 * max(n, 4))
    return row


def main() -> None:
    import OpenImageIO as oiio

    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--compressions", default="zip,piz,dwaa,none")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--writers", default="1,2,4,8")
    parser.add_argument("--out")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    default_threads = oiio.get_int_attribute("exr_threads")
    result: dict = {"date": datetime.date.today().isoformat(), "command": " ".join(["python3", *sys.argv]),
                    "cpus": os.cpu_count(), "size": args.size, "oiio": oiio.__version__,
                    "exr_threads_default": default_threads, "compressions": {}}
    with tempfile.TemporaryDirectory(prefix="ldmvfi-exr-io-") as tmp:
        folder = Path(tmp)
        for compression in args.compressions.split(","):
            row = measure(plate_frame(width, height, compression), folder, args.repeats,
                          [int(n) for n in args.writers.split(",")], default_threads)
            result["compressions"][compression] = row
            print(json.dumps({compression: row}), flush=True)
    print(json.dumps(result), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
