# SPDX-License-Identifier: MIT
"""GPU timing shared by the benchmarks: CUDA events around each call, median after warm-up."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median milliseconds of ``repeats`` calls of ``fn``, after ``warmup`` untimed calls.

    Without a GPU, wall-clock time (for dry runs of the benchmarks on a CPU, not for figures)."""
    for _ in range(warmup):
        fn()
    if not torch.cuda.is_available():
        return statistics.median(_wall_ms(fn) for _ in range(repeats))
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def _wall_ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0
