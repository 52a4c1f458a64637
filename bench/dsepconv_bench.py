# SPDX-License-Identifier: MIT
"""Benchmark: the fused CUDA dsepconv (decoder composition) against the torch path.

    python bench/dsepconv_bench.py [--sizes 1080,2160] [--out results.json]

For each frame size: two RGB frames, K = 5 (the released config), the fused inference kernel
``v*K0(I0) + (1-v)*K1(I1) + delta`` vs the torch path of the same composition; fp32 and bf16.
Reports median time (CUDA events, after warm-up), the memory-traffic floor (every input read
once, the output written once, over the card's measured device-to-device copy bandwidth),
effective GB/s and the speed-up. Also times forward+backward of one differentiable dsepconv.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.timing import median_ms
from ldmvfi_core.ops.dsepconv import dsepconv, dsepconv_blend
from ldmvfi_core.ops.dsepconv_cuda import dsepconv_blend_cuda, pack_channels
from ldmvfi_core.ops.dsepconv_torch import dsepconv_blend_torch, dsepconv_torch

K = 5
SIZES = {720: (720, 1280), 1080: (1080, 1920), 2160: (2160, 3840)}


def time_ms(fn, repeats: int = 20, warmup: int = 3) -> float:  # type: ignore[no-untyped-def]
    return median_ms(fn, repeats, warmup)


def copy_bandwidth_gbs() -> float:
    """Device-to-device copy, bytes read + written per second (the practical memory ceiling)."""
    n = 1 << 28  # 1 GiB of float32
    src = torch.rand(n, device="cuda")
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), repeats=20)
    return 2 * src.numel() * 4 / (ms * 1e-3) / 1e9


def make_inputs(height: int, width: int, dtype: torch.dtype, seed: int) -> dict[str, object]:
    g = torch.Generator(device="cuda").manual_seed(seed)

    def rnd(*shape: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
        return (torch.rand(*shape, device="cuda", generator=g) * scale + shift).to(dtype)

    frames = [rnd(1, 3, height + K - 1, width + K - 1) for _ in range(2)]
    def offsets() -> torch.Tensor:
        return rnd(1, K * K, height, width, scale=6, shift=-3)

    heads = [(rnd(1, K, height, width, scale=0.4), rnd(1, K, height, width, scale=0.4), offsets(), offsets())
             for _ in range(2)]
    return {"frames": frames, "heads": heads, "mask": rnd(1, K * K, height, width),
            "residual": rnd(1, 3, height, width, scale=0.1)}


def floor_bytes(height: int, width: int, itemsize: int) -> int:
    pixels = height * width
    frames = 2 * 3 * (height + K - 1) * (width + K - 1)
    per_pixel = 2 * (2 * K + 2 * K * K) + K * K + 3 + 3  # heads x2, mask, residual, output
    return (frames + per_pixel * pixels) * itemsize


@functools.cache
def torch_path_ms(label: int, dtype: torch.dtype) -> float:
    height, width = SIZES[label]
    x = make_inputs(height, width, dtype, seed=label)
    f0, f1 = x["frames"]  # type: ignore[misc]
    h0, h1 = x["heads"]  # type: ignore[misc]
    with torch.no_grad():
        return time_ms(lambda: dsepconv_blend_torch(f0, f1, h0, h1, x["mask"], x["residual"]), repeats=5,
                       warmup=1)


def bench_size(label: int, dtype: torch.dtype, bandwidth: float) -> dict[str, object]:
    height, width = SIZES[label]
    torch_ms = torch_path_ms(label, dtype)
    x = make_inputs(height, width, dtype, seed=label)
    f0, f1 = x["frames"]  # type: ignore[misc]
    h0, h1 = x["heads"]  # type: ignore[misc]
    mask, residual = x["mask"], x["residual"]
    with torch.no_grad():
        fused_ms = time_ms(lambda: dsepconv_blend(f0, f1, h0, h1, mask, residual))
        p0, p1 = pack_channels(f0), pack_channels(f1)
        kernel_ms = time_ms(lambda: dsepconv_blend_cuda(p0, p1, h0, h1, mask, residual, channels=3))
    floor_b = floor_bytes(height, width, torch.finfo(dtype).bits // 8)
    floor_ms = floor_b / (bandwidth * 1e9) * 1e3
    return {"size": f"{width}x{height}", "dtype": str(dtype).replace("torch.", ""),
            "variant": os.environ.get("LDMVFI_KERNEL_DEFINES") or "default",
            "fused_ms": round(fused_ms, 3), "kernel_only_ms": round(kernel_ms, 3),
            "kernel_vs_floor": round(kernel_ms / floor_ms, 2), "torch_ms": round(torch_ms, 2),
            "speedup": round(torch_ms / fused_ms, 1), "floor_ms": round(floor_ms, 3),
            "vs_floor": round(fused_ms / floor_ms, 2),
            "effective_gbs": round(floor_b / (fused_ms * 1e-3) / 1e9, 1)}


def bench_backward(label: int, bandwidth: float) -> dict[str, object]:
    height, width = SIZES[label]
    x = make_inputs(height, width, torch.float32, seed=7)
    image = x["frames"][0].requires_grad_()  # type: ignore[index]
    heads = [t.requires_grad_() for t in x["heads"][0]]  # type: ignore[index]
    mask = x["mask"].requires_grad_()  # type: ignore[union-attr]

    def step(fn) -> None:  # type: ignore[no-untyped-def]
        out = fn(image, *heads, mask)
        out.backward(torch.ones_like(out))

    cuda_ms = time_ms(lambda: step(dsepconv), repeats=10)
    torch_ms = time_ms(lambda: step(dsepconv_torch), repeats=3, warmup=1)
    return {"size": f"{width}x{height}", "dtype": "float32", "fwd_bwd_cuda_ms": round(cuda_ms, 2),
            "fwd_bwd_torch_ms": round(torch_ms, 2), "speedup": round(torch_ms / cuda_ms, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1080,2160")
    parser.add_argument("--out", default=None)
    parser.add_argument("--variants", default="",
                        help="';'-separated -D sets for kernels/dsepconv.cu, "
                        "e.g. 'LDMVFI_BLEND_MIN_BLOCKS=2;LDMVFI_BLEND_MIN_BLOCKS=4'")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    bandwidth = copy_bandwidth_gbs()
    name = torch.cuda.get_device_name()
    print(f"device: {name}; measured copy bandwidth {bandwidth:.0f} GB/s (read + write)")
    rows = []
    for variant in args.variants.split(";") if args.variants else [""]:
        os.environ["LDMVFI_KERNEL_DEFINES"] = variant
        for label in (int(s) for s in args.sizes.split(",")):
            for dtype in (torch.float32, torch.bfloat16):
                row = bench_size(label, dtype, bandwidth)
                rows.append(row)
                print(json.dumps(row))
                torch.cuda.empty_cache()
    os.environ.pop("LDMVFI_KERNEL_DEFINES")
    backward = [bench_backward(1080, bandwidth)]
    print(json.dumps(backward[0]))
    result = {"device": name, "copy_gbs": round(bandwidth, 1), "torch": torch.__version__,
              "blend": rows, "backward": backward}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
