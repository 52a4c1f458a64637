# SPDX-License-Identifier: MIT
"""Where a stage-1 training step's time goes, on one GPU, with no training data needed.

    python3 bench/train_profile.py --config small --batch-size 32 --crop 256 --out train_profile.json
    python3 bench/train_profile.py ... --compile          # the same with `ldmvfi train --compile`
    python3 bench/train_profile.py ... --channels-last    # ... and with `--channels-last`

Builds the task exactly as ``ldmvfi train --stage 1`` does (the lineage's loss: perceptual term if
its package is installed, flow teacher 0.05, no discriminator yet) and feeds it smooth random
textures shifted by a few pixels, with a flow teacher of the same shape as the real one (the
values do not change the work). Reports images per second over ``--steps`` timed steps after
``--warmup`` steps (compiling happens there), without ``--compile`` the forward time of the
encoder, the decoder and the perceptual network (CUDA events in hooks), and the step's GPU
kernels by time, grouped as in ``codec_modules.py --kernels``. At 0.28 s per step of 32 on an
H200 (session 6), the step runs far below the card's arithmetic rate: this says where.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.codec_modules import ModuleTimer, kernel_table
from ldmvfi_core.train.configs import Stage1Loss, model_config
from ldmvfi_core.train.loop import TrainOptions, build_task
from ldmvfi_core.train.runtime import setup_runtime


def synthetic_batch(batch: int, crop: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, 3, H, W) frames in [-1, 1] (a smooth texture moving 2 px per frame) and a
    (B, 2, 3, H, W) flow teacher (displacements and weights)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, crop // 8 + 1, crop // 8 + 1, generator=gen)
    texture = F.interpolate(coarse, scale_factor=8, mode="bilinear", align_corners=False)
    frames = torch.stack([texture[..., 2 * t : 2 * t + crop, :crop] for t in range(3)], dim=1) * 2 - 1
    teacher = torch.zeros(batch, 2, 3, crop, crop)
    teacher[:, 0, 1], teacher[:, 1, 1], teacher[:, :, 2] = -2.0, 2.0, 1.0
    return frames.to(device), teacher.to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="small")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    parser.add_argument("--perceptual", default="auto", choices=("auto", "on", "off"))
    parser.add_argument("--compile", nargs="?", const="inductor", default="", metavar="BACKEND")
    parser.add_argument("--channels-last", action="store_true", help="as `ldmvfi train --channels-last`")
    parser.add_argument("--device")
    parser.add_argument("--out")
    args = parser.parse_args()

    rt = setup_runtime(args.device, args.precision)
    loss = Stage1Loss(flow_teacher_weight=0.05, disc_start=20000)
    opts = TrainOptions(stage=1, out="", config=args.config, batch_size=args.batch_size, crop=args.crop,
                        lr=6.4e-4, precision=args.precision, perceptual=args.perceptual, compile=args.compile,
                        channels_last=args.channels_last, loss=loss)
    task = build_task(opts, model_config(args.config), rt, fresh=True)
    frames, teacher = synthetic_batch(args.batch_size, args.crop, rt.device)
    cuda = rt.device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    started = time.perf_counter()
    for step in range(args.warmup):
        task.train_step(frames, step, teacher)
    sync()
    result: dict = {"card": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
                    "config": args.config, "batch_size": args.batch_size, "crop": args.crop,
                    "precision": args.precision, "compile": args.compile or "off",
                    "channels_last": args.channels_last,
                    "perceptual": task.perceptual is not None, "warmup_s": round(time.perf_counter() - started, 1)}

    seconds = []
    for step in range(args.warmup, args.warmup + args.steps):
        t0 = time.perf_counter()
        task.train_step(frames, step, teacher)
        sync()
        seconds.append(time.perf_counter() - t0)
    per_step = statistics.median(seconds)
    result.update(step_s=round(per_step, 4), images_per_s=round(args.batch_size / per_step, 1))
    shown = ("card", "compile", "channels_last", "warmup_s", "step_s", "images_per_s")
    print(json.dumps({k: result[k] for k in shown}), flush=True)

    # Forward time of the big parts (eager only: a hook on a compiled module would be traced into
    # its graph and break it).
    if not args.compile:
        parts = {"encoder": task.ae.encoder, "decoder": task.ae.decoder, "perceptual": task.perceptual}
        timers = {name: ModuleTimer(module, name, 1) for name, module in parts.items() if module is not None}
        for step in range(3):
            task.train_step(frames, args.warmup + args.steps + step, teacher)
        forward_ms: dict[str, float] = {}
        for name, timer in timers.items():
            forward_ms[name] = round(timer.totals_ms()[name]["ms"] / 3, 2)  # its own call only
            timer.remove()
        result["forward_ms_per_step"] = forward_ms
        print(json.dumps({"forward_ms_per_step": forward_ms}), flush=True)

    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    repeats = 3
    with profile(activities=activities) as prof:
        for step in range(repeats):
            task.train_step(frames, args.warmup + args.steps + 3 + step, teacher)
        sync()
    kernels = result["kernels_per_step"] = kernel_table(prof, repeats, cuda, top=40)
    print(json.dumps({"kernels_ms_per_step": kernels["total_ms"], "kernel_groups_ms": kernels["groups_ms"]}),
          flush=True)
    for row in kernels["top"][:15]:
        print(f"{row['ms']:9.3f} ms  {row['calls']:6.1f}  {row['kernel'][:100]}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
