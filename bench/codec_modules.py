# SPDX-License-Identifier: MIT
"""Where the autoencoder's time goes: GPU time per module of one encode and one decode.

Forward hooks put CUDA events around every module down to ``--depth`` levels below the encoder
and the decoder; times are inclusive (a parent holds its children) and summed over calls. The
run is the Interpolator's bf16 path at one size, after a warm-up, so kernels and cuDNN choices are
the ones a retime gets.

    python3 bench/codec_modules.py --config released --size 1920x1080 --out codec_modules.json

``--kernels`` instead lists GPU kernels by time (torch.profiler) for one encode and one decode,
grouped into convolutions, inductor's Triton kernels, attention, the warp and the rest; with
``--compile`` for the compiled encoder and decoder (module hooks cannot see inside those).
``--heads`` picks how the ten synthesis heads run (``HEAD_VARIANTS``; the same function):

    python3 bench/codec_modules.py --config released --size 1920x1080 --kernels --compile --heads padded
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.speed import config_named
from ldmvfi_core.interpolate import Interpolator, compile_autoencoder
from ldmvfi_core.model.fused_heads import fuse_heads, pad_heads, unfuse_heads
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI

# separate: the ten heads as in the checkpoint; grouped: four stacked convolutions (fuse_heads);
# padded: channel counts rounded up to multiples of 8 (what the Interpolator does on GPUs in bf16 or
# fp16 since session 8); padded-first: that, and the ten first layers as one convolution (pad_heads);
# padded-block: padded, and the five 8 -> 8 last layers as one block-diagonal convolution (session 12).
HEAD_VARIANTS = ("separate", "grouped", "padded", "padded-first", "padded-block", "padded-block-relu")


def use_heads(model: LatentDiffusionVFI, variant: str, dtype: torch.dtype = torch.bfloat16) -> None:
    """Run the decoder's synthesis heads as ``variant`` from now on (after the model is on its
    device and dtype: the variants copy the weights as they are; ``padded-block-relu`` (the
    Interpolator's default since session 16) runs its conv+ReLU layers as cuDNN's fused call in ``dtype``)."""
    decoder = model.first_stage_model.decoder
    if variant == "grouped":
        fuse_heads(decoder)
    elif variant in ("padded", "padded-first", "padded-block", "padded-block-relu"):
        pad_heads(decoder, fuse_first=variant == "padded-first", block_tail=variant.startswith("padded-block"),
                  fused_relu_dtype=dtype if variant == "padded-block-relu" else None)
    elif variant == "separate":
        unfuse_heads(decoder)
    else:
        raise ValueError(f"--heads {variant!r}: not one of {', '.join(HEAD_VARIANTS)}")


class _WallClock:
    """``torch.cuda.Event``'s interface on the CPU (for a dry run of this script without a GPU)."""

    def __init__(self, enable_timing: bool = True) -> None:
        self.t = 0.0

    def record(self) -> None:
        self.t = time.perf_counter()

    def elapsed_time(self, end: _WallClock) -> float:
        return (end.t - self.t) * 1000


class ModuleTimer:
    """CUDA events around each hooked module; ``totals_ms()`` after a synchronize."""

    def __init__(self, root: torch.nn.Module, prefix: str, depth: int) -> None:
        self.event = torch.cuda.Event if torch.cuda.is_available() else _WallClock
        self.events: dict[str, list[tuple[torch.cuda.Event, torch.cuda.Event]]] = defaultdict(list)
        self._open: dict[str, list[torch.cuda.Event]] = defaultdict(list)
        self.handles: list[torch.utils.hooks.RemovableHandle] = []
        for name, module in root.named_modules():
            if name.count(".") < depth:
                label = f"{prefix}.{name}" if name else prefix
                self.handles.append(module.register_forward_pre_hook(self._start(label)))
                self.handles.append(module.register_forward_hook(self._stop(label)))

    def _start(self, label: str):  # type: ignore[no-untyped-def]
        def hook(*_: object) -> None:
            event = self.event(enable_timing=True)
            event.record()
            self._open[label].append(event)
        return hook

    def _stop(self, label: str):  # type: ignore[no-untyped-def]
        def hook(*_: object) -> None:
            end = self.event(enable_timing=True)
            end.record()
            self.events[label].append((self._open[label].pop(), end))
        return hook

    def clear(self) -> None:
        self.events.clear()

    def totals_ms(self) -> dict[str, dict[str, float]]:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return {label: {"ms": round(sum(a.elapsed_time(b) for a, b in pairs), 3), "calls": len(pairs)}
                for label, pairs in self.events.items()}

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


KERNEL_GROUPS = (  # first match wins: cuDNN's convolution kernels also say "gemm"
    ("warp (dsepconv)", re.compile(r"dsepconv", re.I)),
    ("attention", re.compile(r"flash|fmha|attention|window_attn|efficient_attention", re.I)),
    ("convolution", re.compile(r"conv|xmma|cudnn|nhwc|nchw|dgrad|wgrad|fprop|implicit|winograd", re.I)),
    ("inductor triton", re.compile(r"^triton_")),
    ("matmul", re.compile(r"gemm|cublas|cutlass|sm90_", re.I)),
)


def kernel_group(name: str) -> str:
    return next((group for group, pattern in KERNEL_GROUPS if pattern.search(name)), "other")


def kernel_table(prof: torch.profiler.profile, repeats: int, cuda: bool, top: int = 45) -> dict:
    """A finished profile of ``repeats`` identical calls as ms per call: the total, the groups of
    ``kernel_group`` and the ``top`` kernels. GPU kernels on CUDA; on a CPU (a dry run) the
    operators' self-times stand in for them."""
    kernels = []
    for event in prof.key_averages():
        if cuda and event.device_type != torch.autograd.DeviceType.CUDA:
            continue
        us = event.device_time_total if cuda else event.self_cpu_time_total
        kernels.append((event.key, us / repeats / 1000, event.count / repeats))
    kernels.sort(key=lambda row: -row[1])
    groups: dict[str, float] = defaultdict(float)
    for key, ms, _ in kernels:
        groups[kernel_group(key)] += ms
    return {
        "total_ms": round(sum(ms for _, ms, _ in kernels), 3),
        "groups_ms": {k: round(v, 3) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])},
        "top": [{"kernel": key[:160], "ms": round(ms, 3), "calls": calls} for key, ms, calls in kernels[:top]],
    }


def kernel_profile(model: LatentDiffusionVFI, interp: Interpolator, frame: np.ndarray, compiled: bool,
                   repeats: int = 3) -> dict:
    """Per-kernel GPU time of one encode and one decode (mean of ``repeats``), top kernels and groups."""
    from torch.profiler import ProfilerActivity, profile

    if compiled:
        compile_autoencoder(model.first_stage_model)
    cuda = torch.cuda.is_available()
    result: dict = {"card": torch.cuda.get_device_name() if cuda else "cpu", "size": list(frame.shape[:2]),
                    "compiled": compiled}
    with torch.inference_mode():
        f0, f1 = interp.prepare(frame), interp.prepare(np.roll(frame, 8, axis=1))
        with interp._autocast():
            z = torch.randn(f0.encoded.latent.shape, generator=torch.Generator().manual_seed(0)).to(f0.encoded.latent)
            tiles = interp.tiles_for(f0.padding)
            valid = f0.padding.size  # as Interpolator decodes
            parts = {"encode": lambda: interp.prepare(frame),
                     "decode": lambda: model.decode(z, f0.encoded, f1.encoded, tiles=tiles, valid=valid)}
            for name, call in parts.items():
                for _ in range(2):  # warm-up (and compiling)
                    call()
                if cuda:
                    torch.cuda.synchronize()
                activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
                with profile(activities=activities) as prof:
                    for _ in range(repeats):
                        call()
                    if cuda:
                        torch.cuda.synchronize()
                result[name] = kernel_table(prof, repeats, cuda)
                print(f"{name}: {result[name]['total_ms']} ms of kernels; {result[name]['groups_ms']}", flush=True)
    return result


def compare_compiled(model: LatentDiffusionVFI, interp: Interpolator, frame: np.ndarray) -> dict:
    """Encode (one frame) and decode (one in-between) times, eager then with the encoder and the
    decoder compiled as ``--compile`` does (``interpolate.compile_autoencoder``)."""
    from bench.timing import median_ms

    ae = model.first_stage_model
    result: dict = {"card": torch.cuda.get_device_name(), "size": list(frame.shape[:2])}
    decoded: dict[str, torch.Tensor] = {}
    for variant in ("eager", "compiled"):
        started = time.perf_counter()
        if variant == "compiled":
            compile_autoencoder(ae)  # what --compile does on GPUs
        with torch.inference_mode():
            f0, f1 = interp.prepare(frame), interp.prepare(np.roll(frame, 8, axis=1))
            with interp._autocast():
                z = torch.randn(f0.encoded.latent.shape, generator=torch.Generator().manual_seed(0)).to(
                    f0.encoded.latent)
                tiles = interp.tiles_for(f0.padding)
                valid = f0.padding.size
                decoded[variant] = model.decode(z, f0.encoded, f1.encoded, tiles=tiles, valid=valid).float()
                result[f"first_call_s_{variant}"] = round(time.perf_counter() - started, 1)
                result[f"encode_ms_{variant}"] = round(median_ms(lambda: interp.prepare(frame), 5, warmup=2), 2)
                result[f"decode_ms_{variant}"] = round(median_ms(
                    lambda z=z, e0=f0.encoded, e1=f1.encoded, tiles=tiles, valid=valid: model.decode(
                        z, e0, e1, tiles=tiles, valid=valid),
                    5, warmup=2), 2)
    difference = (decoded["compiled"] - decoded["eager"]).abs()
    result["decode_max_abs_diff"] = round(difference.max().item(), 5)
    result["decode_mean_abs_diff"] = round(difference.mean().item(), 6)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="released")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--compile", action="store_true",
                        help="instead: encode/decode times eager and with the encoder and decoder torch.compiled, "
                             "and the compiled decode's largest difference from eager")
    parser.add_argument("--kernels", action="store_true",
                        help="instead: GPU kernels by time for one encode and one decode (with --compile: compiled)")
    parser.add_argument("--heads", default="separate", choices=HEAD_VARIANTS)
    parser.add_argument("--out")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    model = LatentDiffusionVFI(config_named(args.config)).eval().requires_grad_(False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    interp = Interpolator(model, device=device, dtype=torch.bfloat16 if device == "cuda" else torch.float32,
                          cuda_graphs=False)
    use_heads(model, args.heads, interp.dtype)
    ae = model.first_stage_model
    rng = np.random.default_rng(0)
    frame = rng.random((height, width, 3), dtype=np.float32)
    if args.kernels or args.compile:
        result = (kernel_profile(model, interp, frame, args.compile) if args.kernels
                  else compare_compiled(model, interp, frame))
        result["heads"] = args.heads
        print(json.dumps(result))
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=1))
        return
    timers = [ModuleTimer(ae.encoder, "encoder", args.depth), ModuleTimer(ae.decoder, "decoder", args.depth)]
    card = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    result: dict = {"card": card, "config": args.config, "size": args.size, "heads": args.heads}
    with torch.inference_mode():
        for _ in range(3):  # two warm-ups, then the measured run
            for timer in timers:
                timer.clear()
            f0, f1 = interp.prepare(frame), interp.prepare(np.roll(frame, 8, axis=1))
            with interp._autocast():
                z = torch.randn_like(f0.encoded.latent)
                model.decode(z, f0.encoded, f1.encoded, tiles=interp.tiles_for(f0.padding),
                             valid=f0.padding.size)
    for timer in timers:
        totals = timer.totals_ms()
        scale = 0.5 if timer is timers[0] else 1.0  # two encodes ran: report per frame
        rows = sorted(((k, {"ms": round(v["ms"] * scale, 3), "calls": v["calls"]}) for k, v in totals.items()),
                      key=lambda kv: -kv[1]["ms"])
        result[rows[0][0]] = dict(rows)
        for label, row in rows[:25]:
            print(f"{row['ms']:9.3f} ms  {row['calls']:4d}  {label}")
        timer.remove()
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
