# SPDX-License-Identifier: MIT
"""Peak memory of one 3840x2160 in-between with the full released config (random weights).

    python bench/memory_4k.py --device cuda [--precision bfloat16] [--steps 2] [--tile auto|none]
                                               [--cuda-graphs] [--compile]
    python bench/memory_4k.py --device cpu --steps 1     # run under /usr/bin/time -v for peak RSS

Peak memory does not depend on the number of DDIM steps (the U-Net works on the 1/32 latent),
so a couple of steps are enough. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ldmvfi_core.config import LDMVFIConfig
from ldmvfi_core.interpolate import Interpolator, dtype_named
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--tile", default="auto", choices=("auto", "none"))
    parser.add_argument("--size", default="3840x2160")
    parser.add_argument("--cuda-graphs", action="store_true")
    parser.add_argument("--compile", action="store_true", help="as --compile does: one graph per tile shape")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    model = LatentDiffusionVFI(LDMVFIConfig.released()).eval()
    dtype = dtype_named(args.precision)
    interp = Interpolator(model, device=args.device, dtype=dtype, tile="auto" if args.tile == "auto" else None,
                          cuda_graphs=args.cuda_graphs, compile=args.compile)
    rng = np.random.default_rng(0)
    a = rng.random((height, width, 3), dtype=np.float32)
    b = np.roll(a, 8, axis=1)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    out = interp.interpolate(a, b, steps=args.steps, eta=0.0, seed=0)
    seconds = time.perf_counter() - t0
    result = {"size": args.size, "device": args.device, "precision": args.precision, "steps": args.steps,
              "tile": args.tile, "seconds": round(seconds, 2), "finite": bool(np.isfinite(out).all())}
    result.update(cuda_graphs=args.cuda_graphs, compile=args.compile)
    if args.device.startswith("cuda"):
        result["card"] = torch.cuda.get_device_name()
        result["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        result["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
    result["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
