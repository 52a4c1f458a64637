# SPDX-License-Identifier: MIT
"""Where a U-Net step's GPU time goes, and whether its 3x3 convolutions can use more of the card.

    python3 bench/unet_convs.py --size 1920x1080 --out unet_convs.json

At 1080p the released U-Net works on a 40x64 latent: its convolutions are GEMMs of only 160-2,560
rows, so an implicit-GEMM kernel with 128-row tiles has 16-40 tiles for the H100's 132 SMs
(bench/RESULTS.md, tenth round: ~104 TFLOP/s a step). Three things are measured:

1. every distinct convolution of one step alone (bf16, channels-last, median of 50): cuDNN as
   PyTorch calls it, cuDNN after ``cudnn.benchmark`` has timed its algorithms, and the same
   product as one cuBLAS matmul over an im2col copy (cuBLAS can split K across SMs);
2. the GPU kernels of one compiled step, grouped (``codec_modules.kernel_table``);
3. the graphed step (eager and compiled) with the default convolutions, with ``cudnn.benchmark``,
   and with the im2col matmuls, and each one's largest difference from the default's output.

Random weights: speed does not depend on them. On a CPU it is a dry run of the code paths.
Session 17 on an H100 (bench/RESULTS.md, sixteenth round): neither alternative helps. cuDNN runs
these convolutions at up to ~166 TFLOP/s, ``cudnn.benchmark`` finds nothing faster, and the
im2col copy costs more than cuBLAS gains (one step's convolutions 1.85 -> 4.22 ms).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.codec_modules import kernel_table
from bench.speed import config_named, release_compile_workers
from bench.timing import median_ms
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI
from ldmvfi_core.model.precision import cast_matmul_weights
from ldmvfi_core.sampling.graphs import GraphedCall


def im2col_conv3x3(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int) -> Tensor:
    """``conv2d(x, weight, bias, stride, padding=1)`` for a 3x3 ``weight`` as one matmul.

    The nine shifted (strided) views of the zero-padded NHWC input are concatenated along the
    channels, in the order of ``weight.permute(0, 2, 3, 1)``; a channels-last weight makes that
    permute a view, so the (O, 9*I) matrix costs nothing."""
    b, c, h, w = x.shape
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)
    span_h, span_w = stride * (ho - 1) + 1, stride * (wo - 1) + 1
    cols = torch.cat([padded[:, i:i + span_h:stride, j:j + span_w:stride, :] for i in range(3) for j in range(3)],
                     dim=-1)
    matrix = weight.permute(0, 2, 3, 1).reshape(weight.shape[0], 9 * c)
    y = F.linear(cols.reshape(b * ho * wo, 9 * c), matrix, bias)
    return y.view(b, ho, wo, -1).permute(0, 3, 1, 2)


class Im2colConv2d(nn.Conv2d):
    """A 3x3 ``nn.Conv2d`` (padding 1) computed by ``im2col_conv3x3``; same parameters, same keys."""

    def forward(self, x: Tensor) -> Tensor:
        weight, bias = self.weight, self.bias
        if torch.is_autocast_enabled(x.device.type):
            dtype = torch.get_autocast_dtype(x.device.type)
            x, weight = x.to(dtype), weight.to(dtype)
            bias = None if bias is None else bias.to(dtype)
        return im2col_conv3x3(x, weight, bias, self.stride[0])


def swap_convs(unet: nn.Module, min_channels: int) -> int:
    """Turn the U-Net's 3x3, padding-1 convolutions with at least ``min_channels`` inputs into
    ``Im2colConv2d`` (in place, same parameters). Returns how many."""
    count = 0
    for layer in unet.modules():
        if (type(layer) is nn.Conv2d and layer.kernel_size == (3, 3) and layer.padding == (1, 1)
                and layer.groups == 1 and layer.in_channels >= min_channels):
            layer.__class__ = Im2colConv2d
            count += 1
    return count


def restore_convs(unet: nn.Module) -> None:
    """Undo ``swap_convs``."""
    for layer in unet.modules():
        if type(layer) is Im2colConv2d:
            layer.__class__ = nn.Conv2d


def conv_shapes(unet: nn.Module, x: Tensor, t: Tensor, cond: Tensor) -> list[dict]:
    """Every distinct convolution one step runs, with its input size and how often it runs."""
    seen: dict[tuple[int, ...], dict] = {}
    hooks = []

    def record(layer: nn.Conv2d, inputs: tuple[Tensor, ...], _: Tensor) -> None:
        n, c, h, w = inputs[0].shape
        key = (n, c, h, w, layer.out_channels, layer.kernel_size[0], layer.stride[0])
        seen.setdefault(key, {"input": [n, c, h, w], "out_channels": layer.out_channels,
                              "kernel": layer.kernel_size[0], "stride": layer.stride[0], "calls": 0})["calls"] += 1

    for layer in unet.modules():
        if isinstance(layer, nn.Conv2d):
            hooks.append(layer.register_forward_hook(record))
    unet(x, t, cond)
    for hook in hooks:
        hook.remove()
    return list(seen.values())


def time_convs(shapes: list[dict], device: str, dtype: torch.dtype) -> list[dict]:
    """Each convolution of ``conv_shapes`` alone on random data: cuDNN, cuDNN after
    ``cudnn.benchmark``, and (3x3 only) the im2col matmul with its largest difference to cuDNN."""
    rows = []
    for spec in shapes:
        n, c, h, w = spec["input"]
        k, s, o = spec["kernel"], spec["stride"], spec["out_channels"]
        x = torch.randn(n, c, h, w, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
        weight = torch.randn(o, c, k, k, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
        bias = torch.randn(o, device=device, dtype=dtype)
        ho, wo = (h + 2 * (k // 2) - k) // s + 1, (w + 2 * (k // 2) - k) // s + 1
        gflop = 2 * n * ho * wo * o * c * k * k / 1e9
        row = {**spec, "gflop": round(gflop, 3)}

        def cudnn(x: Tensor = x, weight: Tensor = weight, bias: Tensor = bias, s: int = s, k: int = k) -> Tensor:
            return F.conv2d(x, weight, bias, stride=s, padding=k // 2)

        for label, benchmark in (("cudnn_ms", False), ("cudnn_benchmark_ms", True)):
            torch.backends.cudnn.benchmark = benchmark
            row[label] = round(median_ms(cudnn, 50, warmup=5), 4)
        torch.backends.cudnn.benchmark = False
        if k == 3:
            def gemm(x: Tensor = x, weight: Tensor = weight, bias: Tensor = bias, s: int = s) -> Tensor:
                return im2col_conv3x3(x, weight, bias, s)

            row["im2col_ms"] = round(median_ms(gemm, 50, warmup=5), 4)
            row["im2col_max_abs_diff"] = round((gemm().float() - cudnn().float()).abs().max().item(), 4)
        for label in ("cudnn_ms", "cudnn_benchmark_ms", "im2col_ms"):
            if label in row and row[label] > 0:
                row[label.replace("_ms", "_tflops")] = round(gflop / row[label], 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def profile_kernels(step: nn.Module, x: Tensor, t: Tensor, cond: Tensor) -> dict:
    """GPU kernels of one step (mean of 3 calls, not graphed: the kernels are the same)."""
    from torch.profiler import ProfilerActivity, profile

    with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(3):
                step(x, t, cond)
            torch.cuda.synchronize()
    table = kernel_table(prof, 3, True, top=25)
    print("kernels:", table["total_ms"], table["groups_ms"], flush=True)
    return table


def step_variants(unet: nn.Module, x: Tensor, t: Tensor, cond: Tensor, compiled: bool, cuda: bool,
                  min_channels: int) -> dict:
    """Graphed step time (median of 50 replays) for the default convolutions, ``cudnn.benchmark``
    and the im2col matmuls, each output's largest difference from the default's and, on a GPU,
    each one's kernels."""
    out: dict = {}
    reference: Tensor | None = None
    compiled_default: nn.Module | None = None
    for variant in ("default", "cudnn_benchmark", "im2col"):
        torch.backends.cudnn.benchmark = variant == "cudnn_benchmark"
        if variant == "im2col":
            out["im2col_convs"] = swap_convs(unet, min_channels)
        started = time.perf_counter()
        step: nn.Module = unet
        if compiled:
            # cudnn.benchmark is read at run time: the default's compiled code serves both
            if variant == "cudnn_benchmark" and compiled_default is not None:
                step = compiled_default
            else:
                step = torch.compile(unet, dynamic=False)
            if compiled_default is None:
                compiled_default = step
        call = GraphedCall(step) if cuda else step
        with torch.autocast(x.device.type, dtype=torch.bfloat16, cache_enabled=False):
            result = call(x, t, cond).float()
            release_compile_workers()
            ms = median_ms(lambda call=call: call(x, t, cond), 50, warmup=5)
        out[f"{variant}_setup_s"] = round(time.perf_counter() - started, 1)
        out[f"{variant}_step_ms"] = round(ms, 3)
        if reference is None:
            reference = result
        else:
            out[f"{variant}_max_abs_diff"] = round((result - reference).abs().max().item(), 5)
        if cuda:
            out[f"{variant}_kernels"] = profile_kernels(step, x, t, cond)
        print(json.dumps({k: v for k, v in out.items() if not k.endswith("_kernels")}), flush=True)
        if variant == "im2col":
            restore_convs(unet)
    out["reference_rms"] = round(reference.pow(2).mean().sqrt().item(), 4) if reference is not None else None
    torch.backends.cudnn.benchmark = False
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="released")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--min-channels", type=int, default=64,
                        help="convolutions with fewer input channels keep cuDNN (the 9-channel input layer)")
    parser.add_argument("--skip-eager", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = LatentDiffusionVFI(config_named(args.config)).to(device).eval().requires_grad_(False)
    unet = model.unet
    # As the Interpolator did in half precision until session 17; its stacked q/k/v projections
    # (maxvit.fuse_attention_projections) are left out here: this measures the convolutions.
    cast_matmul_weights(unet, torch.bfloat16)
    if cuda:
        unet.to(memory_format=torch.channels_last)
    width, height = (int(v) for v in args.size.split("x"))
    multiple, down = model.config.latent_multiple, model.config.autoencoder.downscale
    ph, pw = -(-height // multiple) * multiple, -(-width // multiple) * multiple
    c = model.config.autoencoder.embed_dim
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, c, ph // down, pw // down, generator=gen).to(device)
    cond = torch.randn(1, 2 * c, ph // down, pw // down, generator=gen).to(device)
    t = torch.full((1,), 500, dtype=torch.int64, device=device)
    result: dict = {"card": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
                    "config": args.config, "size": args.size, "latent": list(x.shape)}
    with torch.inference_mode():
        with torch.autocast(device, dtype=torch.bfloat16, cache_enabled=False):
            shapes = conv_shapes(unet, x, t, cond)
        result["convs"] = time_convs(shapes, device, torch.bfloat16)
        for key in ("cudnn_ms", "cudnn_benchmark_ms"):
            result[f"sum_{key}"] = round(sum(r[key] * r["calls"] for r in result["convs"]), 3)
        result["sum_im2col_or_cudnn_ms"] = round(sum(
            (r["im2col_ms"] if "im2col_ms" in r and r["input"][1] >= args.min_channels else r["cudnn_ms"]) * r["calls"]
            for r in result["convs"]), 3)
        print(json.dumps({k: v for k, v in result.items() if k.startswith("sum")}), flush=True)
        if not args.skip_eager:
            result["eager_graphed"] = step_variants(unet, x, t, cond, False, cuda, args.min_channels)
        if cuda:
            torch._dynamo.reset()
            result["compiled_graphed"] = step_variants(unet, x, t, cond, True, cuda, args.min_channels)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
