# SPDX-License-Identifier: MIT
"""Retime throughput on 1, 2, 4 ... GPUs of one host, and byte-identical outputs (issue 9).

    python3 bench/multi_gpu.py --config released --gpus 1,2 --frames 9 --steps 200 --out multi.json

Writes a 1920x1080 RGBA half-float EXR plate (a textured pan, ``--frames`` source frames), random
weights of ``--config`` as safetensors (speed does not depend on the weights), then runs
``ldmvfi retime --factor 2 --precision bfloat16 --devices cuda:0,...`` once per GPU count. Per run:
wall time of the command (model loads included), steady in-betweens per second (from the arrival
times of the JSON progress events, first frame to last), scaling efficiency against one GPU, and
whether every output file is byte-identical to the one-GPU run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_plate(folder: Path, frames: int, width: int = 1920, height: int = 1080) -> str:
    import OpenImageIO as oiio

    rng = np.random.default_rng(0)
    coarse = rng.random((height // 16 + 2, (width + 40 * frames) // 16 + 2, 3)).astype(np.float32)
    texture = np.kron(coarse, np.ones((16, 16, 1), np.float32))  # blocky detail the model can track
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        rgb = texture[:height, 6 * i : 6 * i + width] * 1.5  # 6 px/frame pan, values above 1 (HDR)
        rgba = np.concatenate([rgb, np.ones((height, width, 1), np.float32)], axis=2)
        spec = oiio.ImageSpec(width, height, 4, oiio.HALF)
        spec.channelnames = ("R", "G", "B", "A")
        path = folder / f"plate.{1001 + i}.exr"
        out = oiio.ImageOutput.create(str(path))
        out.open(str(path), spec)
        out.write_image(rgba)
        out.close()
    return str(folder / "plate.####.exr")


def write_weights(config: str, path: Path) -> None:
    import torch

    from bench.speed import config_named
    from ldmvfi_core.model.export import save_safetensors
    from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI

    torch.manual_seed(0)
    save_safetensors(LatentDiffusionVFI(config_named(config)).eval(), path)


def run_retime(plate: str, out: Path, weights: Path, gpus: int, steps: int, kind: str = "cuda") -> dict:
    devices = ",".join(f"cuda:{i}" for i in range(gpus)) if kind == "cuda" else ",".join(["cpu"] * gpus)
    cmd = [sys.executable, "-m", "ldmvfi_core.cli", "retime", plate, str(out / "rt.####.exr"), "--factor", "2",
           "--model", str(weights), "--precision", "bfloat16", "--steps", str(steps), "--devices", devices,
           "--progress", "json"]
    started = time.perf_counter()
    start_event = started
    per_device: dict[str, list[float]] = {}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            if event.get("event") == "start":
                start_event = time.perf_counter()
            action = str(event.get("action", ""))
            if event.get("event") == "frame" and "interpolate" in action:
                device = action.rsplit("[", 1)[-1].rstrip("]") if action.endswith("]") else devices
                per_device.setdefault(device, []).append(time.perf_counter())
    wall = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"retime on {devices} failed (exit {proc.returncode})")
    arrivals = sorted(t for times in per_device.values() for t in times)
    # steady rate: each device's frames after its first (model load and CUDA-graph capture excluded)
    rates = [(len(t) - 1) / (t[-1] - t[0]) for t in per_device.values() if len(t) > 1]
    return {"gpus": gpus, "devices": devices, "wall_s": round(wall, 2), "inbetweens": len(arrivals),
            "inbetweens_per_s_from_start": round(len(arrivals) / (arrivals[-1] - start_event), 3) if arrivals else None,
            "steady_inbetweens_per_s": round(sum(rates), 3) if len(rates) == len(per_device) else None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="released", help="released | small")
    parser.add_argument("--gpus", default="1,2", help="GPU counts to run, e.g. 1,2,4")
    parser.add_argument("--frames", type=int, default=9, help="source frames (factor 2: frames-1 in-betweens)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--device-kind", default="cuda", choices=("cuda", "cpu"),
                        help="cpu: a smoke test of the script")
    parser.add_argument("--out")
    args = parser.parse_args()
    import torch

    width, height = (int(v) for v in args.size.split("x"))

    work = Path(tempfile.mkdtemp(prefix="ldmvfi-multi-"))
    plate = write_plate(work / "plate", args.frames, width, height)
    weights = work / "weights.safetensors"
    write_weights(args.config, weights)
    rows = []
    for gpus in (int(g) for g in args.gpus.split(",")):
        out = work / f"out{gpus}"
        row = run_retime(plate, out, weights, gpus, args.steps, args.device_kind)
        if rows:
            base = rows[0]
            ref_dir = work / f"out{base['gpus']}"
            names = sorted(p.name for p in ref_dir.iterdir())
            row["identical_to_1_gpu"] = names == sorted(p.name for p in out.iterdir()) and all(
                (ref_dir / n).read_bytes() == (out / n).read_bytes() for n in names)
            if base["steady_inbetweens_per_s"] and row["steady_inbetweens_per_s"]:
                row["scaling_efficiency"] = round(
                    row["steady_inbetweens_per_s"] / (base["steady_inbetweens_per_s"] * gpus / base["gpus"]), 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    cuda = torch.cuda.is_available()
    result = {"card": torch.cuda.get_device_name() if cuda else "cpu",
              "gpus_visible": torch.cuda.device_count() if cuda else 0,
              "torch": torch.__version__, "config": args.config, "steps": args.steps, "size": args.size,
              "source_frames": args.frames, "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
