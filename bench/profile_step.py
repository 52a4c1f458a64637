# SPDX-License-Identifier: MIT
"""Where does a DDIM step's time go? Profiles one U-Net step and times the graphed sampler.

    python3 bench/profile_step.py --config released --sizes 448x256,1920x1080 --out profile.json

For each size and variant (conv/linear weights pre-cast to bf16 with window attention through
SDPA; plus channels-last; our fused window-attention kernel, the default; plus ``torch.compile``)
the graphed step's replay time (median of 50) and, for ``bf16_weights_sdpa`` and the default
``bf16_channels_last``, the number of CUDA kernels one eager step launches and the 15 kernels with
the most GPU time. (Session 3 also timed plain batched matmuls for the 4-token windows; the fused
kernel beat them at every size, so they are gone.)
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.speed import config_named
from bench.timing import median_ms
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI
from ldmvfi_core.model.precision import cast_matmul_weights
from ldmvfi_core.ops import window_attention
from ldmvfi_core.sampling.graphs import GraphedCall


def profile_eager(unet: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> dict:
    from torch.profiler import ProfilerActivity, profile

    with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
        for _ in range(2):
            unet(x, t, cond)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            unet(x, t, cond)
            torch.cuda.synchronize()
    return kernel_summary(prof)


def kernel_summary(prof: torch.profiler.profile) -> dict:
    """Kernels launched, GPU-busy time and the 15 kernel names with the most GPU time."""
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    by_name: dict[str, list[float]] = {}
    for e in kernels:
        by_name.setdefault(e.name[:90], []).append(e.device_time)
    top = sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:15]
    return {"kernels": len(kernels), "gpu_busy_ms": round(sum(e.device_time for e in kernels) / 1000, 3),
            "top": [{"name": n, "count": len(v), "ms": round(sum(v) / 1000, 3)} for n, v in top]}


CODEC_VARIANTS = ("default", "channels_last", "channels_last_fused_heads")


def profile_codec(model: LatentDiffusionVFI, width: int, height: int) -> dict:
    """Eager bf16 encoder (one frame) and decoder (one in-between) as the Interpolator runs them,
    for each of ``CODEC_VARIANTS`` (as is; then, cumulatively, conv weights pre-cast to bf16 and
    stored channels-last; plus the fused synthesis heads): time (median of 5), peak memory, kernels
    launched and the 15 kernels with the most GPU time. (Compiled: ``bench/codec_modules.py --compile``.)"""
    import numpy as np
    from torch.profiler import ProfilerActivity, profile

    from ldmvfi_core.interpolate import Interpolator
    from ldmvfi_core.model.fused_heads import fuse_heads

    interp = Interpolator(model, device="cuda", dtype=torch.bfloat16, cuda_graphs=False)
    ae = model.first_stage_model
    rng = np.random.default_rng(0)
    frame = rng.random((height, width, 3), dtype=np.float32)
    out: dict = {}
    for variant in CODEC_VARIANTS:
        if variant == "channels_last":
            cast_matmul_weights(ae, torch.bfloat16)
            ae.to(memory_format=torch.channels_last)
        if variant == "channels_last_fused_heads":
            fuse_heads(ae.decoder)
        with torch.inference_mode():
            f0, f1 = interp.prepare(frame), interp.prepare(np.roll(frame, 8, axis=1))
            tiles = interp.tiles_for(f0.padding)
            with interp._autocast():
                z = torch.randn_like(f0.encoded.latent)
                jobs = {"encode1": lambda: interp.prepare(frame),
                        "decode": lambda z=z, f0=f0, f1=f1, tiles=tiles: model.decode(
                            z, f0.encoded, f1.encoded, tiles=tiles, valid=f0.padding.size)}
                for name, job in jobs.items():
                    torch.cuda.reset_peak_memory_stats()
                    ms = median_ms(job, 5, warmup=2)
                    with profile(activities=[ProfilerActivity.CUDA]) as prof:
                        job()
                        torch.cuda.synchronize()
                    out[f"{name}_{variant}"] = {
                        "ms": round(ms, 2), "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                        **kernel_summary(prof)}
    return out


def graphed_ms(step: Callable[..., torch.Tensor], x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> float:
    graph = GraphedCall(step)
    with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
        graph(x, t, cond)
        return median_ms(lambda: graph(x, t, cond), 50, warmup=5)


VARIANTS = ("bf16_weights_sdpa", "bf16_channels_last_sdpa", "bf16_channels_last", "bf16_compiled")
PROFILED = ("fp32_weights", "bf16_weights", "bf16_weights_sdpa", "bf16_channels_last")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="released")
    parser.add_argument("--sizes", default="448x256,1920x1080")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--batches", default="",
                        help="also time the bf16 channels-last graphed step at these batch sizes, e.g. 2,4,8 "
                             "(several output frames per step)")
    parser.add_argument("--codec", action="store_true",
                        help="also profile the bf16 encoder (one frame) and decoder (one in-between)")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    model = LatentDiffusionVFI(config_named(args.config)).cuda().eval().requires_grad_(False)
    down = model.config.autoencoder.downscale
    results = []
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        ph, pw = -(-h // 256) * 256, -(-w // 256) * 256
        c = model.config.autoencoder.embed_dim
        x = torch.randn(1, c, ph // down, pw // down, device="cuda")
        cond = torch.randn(1, 2 * c, ph // down, pw // down, device="cuda")
        t = torch.full((1,), 500, dtype=torch.int64, device="cuda")
        row: dict = {"size": size, "latent": list(x.shape), "config": args.config}
        for variant in args.variants.split(","):
            unet = model.unet.float().to(memory_format=torch.contiguous_format)
            step: Callable[..., torch.Tensor] = unet
            if variant != "fp32_weights":
                cast_matmul_weights(unet, torch.bfloat16)
            if variant.startswith(("bf16_channels_last", "bf16_compiled")):
                unet.to(memory_format=torch.channels_last)
            # our fused window-attention kernel unless the variant asks for SDPA
            window_attention.FUSED = not variant.endswith("_sdpa")
            started = time.perf_counter()
            if variant == "bf16_compiled":
                step = torch.compile(unet, dynamic=False)
            with torch.inference_mode():
                if variant in PROFILED:
                    row[f"profile_{variant}"] = profile_eager(unet, x, t, cond)
                row[f"graph_step_ms_{variant}"] = round(graphed_ms(step, x, t, cond), 3)
            row[f"setup_s_{variant}"] = round(time.perf_counter() - started, 1)
            window_attention.FUSED = True
            print(json.dumps({k: v for k, v in row.items() if not k.startswith("profile")}), flush=True)
        if args.batches:
            unet = model.unet.float().to(memory_format=torch.contiguous_format)
            cast_matmul_weights(unet, torch.bfloat16)
            unet.to(memory_format=torch.channels_last)
            with torch.inference_mode():
                for b in (int(v) for v in args.batches.split(",")):
                    xb, cb = x.expand(b, -1, -1, -1).contiguous(), cond.expand(b, -1, -1, -1).contiguous()
                    ms = graphed_ms(unet, xb, t.expand(b).contiguous(), cb)
                    row[f"graph_step_ms_batch{b}"] = round(ms, 3)
                    row[f"graph_step_ms_per_frame_batch{b}"] = round(ms / b, 3)
            print(json.dumps({k: v for k, v in row.items() if "batch" in k}), flush=True)
        if args.codec:
            row["codec"] = profile_codec(copy.deepcopy(model), w, h)  # variants change the model in place
            print(json.dumps({k: {p: q for p, q in v.items() if p != "top"} for k, v in row["codec"].items()}),
                  flush=True)
        results.append(row)
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
