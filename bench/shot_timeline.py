# SPDX-License-Identifier: MIT
"""Where an in-between's time goes along a shot, between the GPU's kernels.

    python3 bench/shot_timeline.py --compile --out shot_timeline.json

Session 17 measured 57.9 ms of kernels for one 1080p in-between along a shot (one encode, ten
U-Net steps, one decode) against 62.8-68.4 ms of wall time (bench/RESULTS.md, sixteenth round).
The difference is either the GPU idle (waiting for the host to queue the next source's encode
or the decode's launches) or the two streams' kernels slowing each other while they overlap.
This runs the shot of ``bench/speed.py --sequence N`` (released config, bf16, CUDA graphs,
random weights) with both of its download orders (each in-between's download awaited after the
next one's work is queued, or at once), alternated ``--repeats`` times unprofiled, then each once
under the profiler (GPU activity only: little overhead on the host), and reports per in-between:

* ``wall_ms``: the profiled shot's wall time;
* ``kernel_sum_ms``: every kernel, memcpy and memset added up (the work);
* ``busy_ms``: the union of their intervals on all streams (time the GPU ran anything);
* ``overlap_ms`` = sum - busy (work the streams ran side by side), ``idle_ms`` = wall - busy;
* per stream: busy time; and the longest idle gaps with the kernels just before and after them.

On a CPU it is a dry run of the code path (no kernels are recorded).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.speed import config_named, release_compile_workers, sequence_per_frame_ms
from ldmvfi_core.interpolate import Interpolator, dtype_named
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI


@dataclass(frozen=True)
class Span:
    """One GPU activity: [start, end) in microseconds, on a stream."""

    start: float
    end: float
    stream: int
    name: str


def merge(spans: Sequence[Span]) -> list[tuple[float, float]]:
    """The union of the spans' intervals, as sorted disjoint [start, end) pairs."""
    merged: list[tuple[float, float]] = []
    for span in sorted(spans, key=lambda s: s.start):
        if merged and span.start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], span.end))
        else:
            merged.append((span.start, span.end))
    return merged


def timeline_summary(spans: Sequence[Span], wall_us: float, per: int, gaps: int = 12) -> dict:
    """Sum, union (busy), overlap and idle of ``spans`` over a wall time, divided by ``per``
    (in-betweens), the busy time of each stream, and the ``gaps`` longest idle gaps between the
    first and the last span with the names of the spans that end and start around them."""
    if not spans:
        return {"wall_ms": round(wall_us / 1000 / per, 3), "kernels": 0}
    merged = merge(spans)
    busy = sum(end - start for start, end in merged)
    work = sum(s.end - s.start for s in spans)
    by_stream: dict[int, list[Span]] = defaultdict(list)
    for span in spans:
        by_stream[span.stream].append(span)
    ordered_ends = sorted(spans, key=lambda s: s.end)
    ordered_starts = sorted(spans, key=lambda s: s.start)
    holes = [(merged[i][1], merged[i + 1][0]) for i in range(len(merged) - 1)]
    holes.sort(key=lambda h: h[0] - h[1])

    def last_before(t: float) -> str:
        before = [s for s in ordered_ends if s.end <= t]
        return before[-1].name[:80] if before else ""

    def first_after(t: float) -> str:
        after = [s for s in ordered_starts if s.start >= t]
        return after[0].name[:80] if after else ""

    ms = 1000.0 * per
    return {
        "kernels": len(spans),
        "wall_ms": round(wall_us / ms, 3),
        "kernel_sum_ms": round(work / ms, 3),
        "busy_ms": round(busy / ms, 3),
        "overlap_ms": round((work - busy) / ms, 3),
        "idle_ms": round((wall_us - busy) / ms, 3),
        "idle_between_kernels_ms": round(sum(b - a for a, b in holes) / ms, 3),
        "streams_busy_ms": {str(stream): round(sum(e - s for s, e in merge(group)) / ms, 3)
                            for stream, group in sorted(by_stream.items())},
        "longest_gaps": [{"us": round(b - a, 1), "after": last_before(a), "before": first_after(b)}
                         for a, b in holes[:gaps]],
    }


def gpu_spans(prof: torch.profiler.profile) -> list[Span]:
    """Kernels, memcpys and memsets the profiler recorded on CUDA devices."""
    spans = []
    for event in prof.profiler.kineto_results.events():  # type: ignore[union-attr]
        if event.device_type() != torch.autograd.DeviceType.CUDA:
            continue
        start = event.start_ns() / 1000.0
        spans.append(Span(start, start + event.duration_ns() / 1000.0, event.device_resource_id(), event.name()))
    return spans


def host_profile(shot: Callable[[], object], top: int = 25) -> list[dict]:
    """The host functions that take the feeding thread's time in ``shot`` (cProfile, by own time):
    where the thread waits for the GPU shows as the call that blocks."""
    profiler = cProfile.Profile()
    profiler.runcall(shot)
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = sorted(stats.items(), key=lambda item: -item[1][2])[:top]
    return [{"function": f"{path.rsplit('/', 1)[-1]}:{line} {name}", "calls": calls, "own_ms": round(own * 1e3, 1),
             "cumulative_ms": round(cumulative * 1e3, 1)}
            for (path, line, name), (_, calls, own, cumulative, _) in rows]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="released")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--sequence", type=int, default=8, metavar="N", help="in-betweens in the shot")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="unprofiled shots of each download order")
    parser.add_argument("--host-profile", action="store_true",
                        help="also the shot (deferred downloads; a warm-up and the timed run) under cProfile: "
                             "the feeding thread's time by function")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cuda = args.device.startswith("cuda")
    interp = Interpolator(LatentDiffusionVFI(config_named(args.config)).eval(), device=args.device,
                          dtype=dtype_named("bfloat16" if cuda else "float32"), cuda_graphs=cuda,
                          compile=args.compile)
    width, height = (int(v) for v in args.size.split("x"))
    frame = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    with torch.inference_mode():
        interp.interpolate(frame, np.roll(frame, 8, axis=1), steps=2, eta=1.0, seed=0)  # compiles every part
        release_compile_workers()
        result: dict = {"card": torch.cuda.get_device_name() if cuda else "cpu (dry run)", "torch": torch.__version__,
                        "command": " ".join(["python3", *sys.argv]), "size": args.size, "steps": args.steps,
                        "compile": args.compile}
        # the two download orders of speed.py's shot, alternated unprofiled, then each once profiled
        unprofiled: dict[str, list[float]] = {"deferred": [], "waiting": []}
        for repeat in range(args.repeats):
            for order in sorted(unprofiled, reverse=repeat % 2 == 1):  # neither order always first
                unprofiled[order].append(sequence_per_frame_ms(interp, frame, args.steps, args.sequence,
                                                               deferred_downloads=order == "deferred"))
        for order, times in unprofiled.items():
            activities = [torch.profiler.ProfilerActivity.CUDA] if cuda else [torch.profiler.ProfilerActivity.CPU]
            with torch.profiler.profile(activities=activities) as prof:
                started = time.perf_counter()
                sequence_per_frame_ms(interp, frame, args.steps, args.sequence, deferred_downloads=order == "deferred")
                if cuda:
                    torch.cuda.synchronize()
                wall_us = (time.perf_counter() - started) * 1e6
            # sequence_per_frame_ms runs the shot twice (a warm-up and the timed run): two shots profiled
            summary = timeline_summary(gpu_spans(prof) if cuda else [], wall_us, 2 * args.sequence)
            result[order] = {"unprofiled_per_frame_ms": [round(t, 2) for t in times], **summary}
        if args.host_profile:
            result["host"] = host_profile(lambda: sequence_per_frame_ms(interp, frame, args.steps, args.sequence))
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
