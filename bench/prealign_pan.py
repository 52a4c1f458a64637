# SPDX-License-Identifier: MIT
"""A clean camera pan with exact truth: `ldmvfi retime` with and without `--prealign`.

    python bench/prealign_pan.py --device cuda --size 1920x1080 --move 48 --json out.json

A textured scene (smooth value noise at three scales plus hard-edged blocks, scene-linear in
[0, 1]) is cut into source frames that pan ``--move`` px a frame; the in-betweens' truth is the cut
half-way. Each setting retimes the plate twice at 2x (the first run pays model load, CUDA and
CuPy start-up) and reports the second run's seconds per output frame and the in-betweens' PSNR
on the plate's values (clipped to [0, 1]). Why this bench: pre-alignment's quality was judged on
real footage on the CPU (bench/RESULTS.md, "Pre-alignment"); this is its cost on a GPU plate and
what it gives where the camera move is the whole motion (CG, a slider, a distant scene).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from ldmvfi_core.io.exr import read_exr  # noqa: E402
from ldmvfi_core.io.images import write_image  # noqa: E402
from ldmvfi_core.retime.runner import RetimeOptions, run_retime  # noqa: E402


def scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1]: value noise at 64, 16 and 4 px plus 200 flat blocks."""
    rng = np.random.default_rng(seed)
    out = np.zeros((height, width, 3), np.float32)
    for cell, weight in ((64, 0.5), (16, 0.3), (4, 0.2)):
        grid = rng.random((height // cell + 2, width // cell + 2, 3)).astype(np.float32)
        y, x = np.arange(height) / cell, np.arange(width) / cell
        y0, x0 = y.astype(int), x.astype(int)
        fy, fx = (y - y0)[:, None, None], (x - x0)[None, :, None]
        top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
        bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
        out += weight * (top * (1 - fy) + bottom * fy)
    for _ in range(200):
        h, w = rng.integers(8, 80, size=2)
        y, x = rng.integers(0, height - h), rng.integers(0, width - w)
        out[y : y + h, x : x + w] = rng.random(3)
    return out


def psnr(made: np.ndarray, truth: np.ndarray) -> float:
    mse = float(np.mean((np.clip(made, 0, 1) - np.clip(truth, 0, 1)) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="1920x1080")
    p.add_argument("--move", type=int, default=48, help="px the picture pans per source frame (even)")
    p.add_argument("--frames", type=int, default=9, help="source frames")
    p.add_argument("--device", default="cuda")
    p.add_argument("--precision", default="float32")
    p.add_argument("--json")
    args = p.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    if args.move % 2:
        raise SystemExit("--move must be even (the truth is the cut half-way, in whole pixels)")
    wide = scene(height, width + args.move * args.frames)
    results: dict[str, object] = {"size": args.size, "move": args.move, "frames": args.frames,
                                  "device": args.device, "precision": args.precision}
    with tempfile.TemporaryDirectory() as tmp:
        plate = Path(tmp) / "plate"
        plate.mkdir()
        for i in range(args.frames):
            write_image(plate / f"pan.{1001 + i}.exr", wide[:, i * args.move : i * args.move + width])
        for prealign in (False, True):
            seconds = []
            for run in range(2):
                out = Path(tmp) / f"out_{prealign}_{run}"
                start = time.perf_counter()
                result = run_retime(RetimeOptions(input=str(plate / "pan.####.exr"), output=str(out / "rt.####.exr"),
                                                  factor=2, device=args.device, precision=args.precision,
                                                  prealign=prealign))
                seconds.append((time.perf_counter() - start) / len(result.written))
            scores = []
            for k in range(args.frames - 1):
                made = read_exr(out / f"rt.{1002 + 2 * k}.exr").pixels[..., :3]
                x = k * args.move + args.move // 2
                scores.append(psnr(made, wide[:, x : x + width]))
            key = "prealign" if prealign else "alone"
            results[key] = {"seconds_per_output_frame": seconds[1], "first_run_seconds_per_output_frame": seconds[0],
                            "psnr_inbetweens": scores, "psnr_mean": float(np.mean(scores))}
            print(f"{key}: {seconds[1]:.3f} s an output frame, in-betweens {np.mean(scores):.2f} dB "
                  f"(min {min(scores):.2f})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
