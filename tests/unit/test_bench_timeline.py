# SPDX-License-Identifier: MIT
"""bench/shot_timeline.py's arithmetic on hand-made timelines: busy time is the union of the
kernels' intervals across streams, overlap what they ran side by side, idle the rest."""

from __future__ import annotations

import pytest

from bench.shot_timeline import Span, merge, timeline_summary


def test_merge_joins_overlapping_and_touching_intervals_only() -> None:
    spans = [Span(10, 20, 7, "b"), Span(0, 5, 7, "a"), Span(15, 30, 9, "c"), Span(30, 32, 7, "d"),
             Span(40, 41, 9, "e")]
    assert merge(spans) == [(0, 5), (10, 32), (40, 41)]


def test_two_streams_side_by_side_and_a_gap() -> None:
    # stream 1: 0-40 and 60-100; stream 2: 20-50. Union 0-50 and 60-100 = 90; work 110; wall 120.
    spans = [Span(0, 40, 1, "decode"), Span(60, 100, 1, "encode"), Span(20, 50, 2, "unet")]
    got = timeline_summary(spans, wall_us=120_000 / 1000, per=1)
    assert got["kernels"] == 3
    assert got["kernel_sum_ms"] == pytest.approx(0.110)
    assert got["busy_ms"] == pytest.approx(0.090)
    assert got["overlap_ms"] == pytest.approx(0.020)
    assert got["idle_ms"] == pytest.approx(0.030)
    assert got["idle_between_kernels_ms"] == pytest.approx(0.010)
    assert got["streams_busy_ms"] == {"1": pytest.approx(0.080), "2": pytest.approx(0.030)}
    assert got["longest_gaps"] == [{"us": 10.0, "after": "unet", "before": "encode"}]


def test_figures_are_per_in_between() -> None:
    spans = [Span(0, 1000, 0, "k"), Span(3000, 4000, 0, "k")]
    got = timeline_summary(spans, wall_us=5000, per=2)
    assert got["wall_ms"] == pytest.approx(2.5) and got["busy_ms"] == pytest.approx(1.0)
    assert got["idle_between_kernels_ms"] == pytest.approx(1.0)
    assert timeline_summary([], wall_us=5000, per=2) == {"wall_ms": 2.5, "kernels": 0}
