# SPDX-License-Identifier: MIT
"""Timing (factor / speed / frame map) and the retime plan (recursive midpoints, cuts, seeds)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ldmvfi_core.retime.plan import (
    Copy,
    Hold,
    Node,
    Synthesize,
    ancestry,
    dyadic_fraction,
    node_seed,
    plan_retime,
)
from ldmvfi_core.retime.timing import TimingError, by_factor, by_frame_map, by_speed, read_frame_map

SOURCES = list(range(1001, 1006))


def test_factor_numbers_output_from_the_first_source_frame() -> None:
    tm = by_factor(1001, 1005, 2)
    assert tm.output_frames == list(range(1001, 1010))
    assert [s for _, s in tm.times] == [1001 + i / 2 for i in range(9)]


def test_speed_slower_faster_and_backwards() -> None:
    slow = by_speed(1001, 1011, 0.4)
    assert len(slow) == 26 and slow.times[-1][1] == pytest.approx(1011)
    fast = by_speed(1001, 1011, 2.0)
    assert [s for _, s in fast.times] == [1001, 1003, 1005, 1007, 1009, 1011]
    back = by_speed(1001, 1005, -1.0)
    assert [s for _, s in back.times] == [1005, 1004, 1003, 1002, 1001]
    tenth = by_speed(1001, 1002, 0.1)
    assert len(tenth) == 11
    with pytest.raises(TimingError, match="speed"):
        by_speed(1001, 1005, 0.0)


def test_frame_map_text_with_header_comments_and_gaps(tmp_path: Path) -> None:
    path = tmp_path / "retime.txt"
    path.write_text("frame value\n# exported from Nuke\n1001 1001\n1003, 1002.0\n1004\t1004.5  # keyed\n")
    curve = read_frame_map(path)
    assert curve == [(1001, 1001.0), (1003, 1002.0), (1004, 1004.5)]
    tm = by_frame_map(curve, 1001, 1005)
    assert tm.times == ((1001, 1001.0), (1002, 1001.5), (1003, 1002.0), (1004, 1004.5))


def test_frame_map_json_forms(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"1001": 1001.0, "1002": 1001.25}))
    b.write_text(json.dumps([[1001, 1001.0], [1002, 1001.25]]))
    assert read_frame_map(a) == read_frame_map(b) == [(1001, 1001.0), (1002, 1001.25)]


def test_frame_map_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("1001 1001\n1002 oops\n")
    with pytest.raises(TimingError, match=r"bad\.txt:2"):
        read_frame_map(bad)
    with pytest.raises(TimingError, match=r"nope\.txt"):
        read_frame_map(tmp_path / "nope.txt")


def test_times_outside_the_source_range_are_clamped_and_reported() -> None:
    tm = by_frame_map([(1, 999.0), (2, 1003.0), (3, 1010.0)], 1001, 1005)
    assert [s for _, s in tm.times] == [1001.0, 1003.0, 1005.0]
    assert tm.clamped_frames() == [1, 3]


def test_exact_source_times_are_copies_and_midpoints_are_nodes() -> None:
    plan = plan_retime(by_factor(1001, 1003, 2), [1001, 1002, 1003], depth=3)
    actions = [f.action for f in plan.frames]
    assert actions == [Copy(1001), Synthesize(Node(1001, 1002, Fraction(1, 2))), Copy(1002),
                       Synthesize(Node(1002, 1003, Fraction(1, 2))), Copy(1003)]


def test_quarter_frames_reuse_the_midpoint() -> None:
    plan = plan_retime(by_factor(1001, 1002, 4), [1001, 1002], depth=2)
    quarter = Node(1001, 1002, Fraction(1, 4))
    assert quarter.parents() == (1001, Node(1001, 1002, Fraction(1, 2)))
    assert set(ancestry(quarter)) == {quarter, Node(1001, 1002, Fraction(1, 2))}
    assert plan.nodes() == {Node(1001, 1002, Fraction(k, 4)) for k in (1, 2, 3)}


def test_depth_rounds_times_to_the_dyadic_grid() -> None:
    assert dyadic_fraction(0.3, 3) == Fraction(1, 4)
    assert dyadic_fraction(0.99, 3) == 1
    plan = plan_retime(by_speed(1001, 1002, 0.3), [1001, 1002], depth=1)
    assert [type(f.action).__name__ for f in plan.frames] == ["Copy", "Synthesize", "Synthesize", "Copy"]


def test_stepped_sources_interpolate_between_listed_frames() -> None:
    plan = plan_retime(by_factor(1001, 1005, 1), [1001, 1003, 1005], depth=3)
    assert plan.frames[1].action == Synthesize(Node(1001, 1003, Fraction(1, 2)))
    assert plan.frames[1].action.node.source_time == 1002


def test_cuts_hold_the_nearest_frame_and_nearest_method() -> None:
    plan = plan_retime(by_factor(1001, 1003, 4), [1001, 1002, 1003], depth=2, cuts=frozenset({1001}))
    held = [f.action for f in plan.frames if isinstance(f.action, Hold)]
    assert [h.source for h in held] == [1001, 1001, 1002]
    assert all("scene cut between 1001 and 1002" in h.reason for h in held)
    nearest = plan_retime(by_factor(1001, 1002, 4), [1001, 1002], method="nearest")
    assert [f.action for f in nearest.frames][1:4] == [Hold(1001, "nearest"), Hold(1001, "nearest"),
                                                        Hold(1002, "nearest")]


@given(seed=st.integers(0, 2**31), a=st.integers(-100, 5000), k=st.integers(1, 7))
def test_node_seed_depends_only_on_what_the_node_is(seed: int, a: int, k: int) -> None:
    node = Node(a, a + 1, Fraction(k, 8))
    assert node_seed(seed, node) == node_seed(seed, Node(a, a + 1, Fraction(2 * k, 16)))
    assert 0 <= node_seed(seed, node) < 2**63
    assert node_seed(seed, node) != node_seed(seed + 1, node)
    other = Node(a + 1, a + 2, Fraction(k, 8))
    assert node_seed(seed, node) != node_seed(seed, other)
