# SPDX-License-Identifier: MIT
"""The retime plan: what each output frame is made from.

A source time ``s`` between two consecutive source frames ``a < b`` (usually ``b = a + 1``; a
stepped plate such as ``1001-1100x2`` has ``b = a + 2``) is reached by recursive midpoint
interpolation (the model only makes midpoints): the fraction ``(s - a) / (b - a)`` is rounded to the dyadic
grid ``k / 2**depth`` and the frame at ``k / 2**depth`` is the midpoint of its two neighbours on
the grid one level up, down to the two source frames. Every intermediate frame is a ``Node``,
named by its source pair and its reduced fraction, so the same node is computed once and reused
by every output frame that needs it.

The noise of a node comes from ``node_seed(seed, node)``: a hash of the user's seed and what the
node *is* (source pair and time), never of the order frames are rendered in, so any subset of
output frames in any chunking renders bit-identically on the same machine.

Actions per output frame:

* ``Copy(source)``: the time is a source frame (or rounds to one): the file is copied as is;
* ``Synthesize(node)``: an in-between;
* ``Hold(source, reason)``: a scene cut lies between the two sources (or the model is not used):
  the nearest source frame is shown instead.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from ldmvfi_core.retime.timing import TimeMap

Method = Literal["ldmvfi", "blend", "nearest"]


@dataclass(frozen=True, order=True)
class Node:
    """The in-between at fraction ``time`` of the way from source frame ``frame_a`` to ``frame_b``.

    ``time`` is a reduced dyadic fraction strictly between 0 and 1.
    """

    frame_a: int
    frame_b: int
    time: Fraction

    @property
    def source_time(self) -> float:
        return self.frame_a + (self.frame_b - self.frame_a) * float(self.time)

    def parents(self) -> tuple[Node | int, Node | int]:
        """The two neighbours on the next coarser grid (a source frame number or a node)."""
        step = Fraction(1, self.time.denominator)
        return self._at(self.time - step), self._at(self.time + step)

    def _at(self, time: Fraction) -> Node | int:
        if time == 0:
            return self.frame_a
        if time == 1:
            return self.frame_b
        return Node(self.frame_a, self.frame_b, time)

    def __str__(self) -> str:
        return f"{self.frame_a}-{self.frame_b}@{self.time}"


@dataclass(frozen=True)
class Copy:
    source: int


@dataclass(frozen=True)
class Synthesize:
    node: Node


@dataclass(frozen=True)
class Hold:
    source: int
    reason: str


Action = Copy | Synthesize | Hold


@dataclass(frozen=True)
class PlannedFrame:
    output_frame: int
    source_time: float
    action: Action

    def describe(self) -> str:
        a = self.action
        if isinstance(a, Copy):
            what = f"copy source {a.source}"
        elif isinstance(a, Hold):
            what = f"hold source {a.source} ({a.reason})"
        else:
            what = f"interpolate {a.node.frame_a}-{a.node.frame_b} at t={a.node.time}"
        return f"{self.output_frame}: source time {self.source_time:g} -> {what}"


@dataclass(frozen=True)
class RetimePlan:
    frames: tuple[PlannedFrame, ...]
    depth: int

    def nodes(self) -> set[Node]:
        """Every in-between the plan needs, intermediate ones included."""
        needed: set[Node] = set()
        for f in self.frames:
            if isinstance(f.action, Synthesize):
                needed.update(ancestry(f.action.node))
        return needed

    def source_frames(self) -> set[int]:
        """Source frames that must be read (copied, held, or interpolated from)."""
        out: set[int] = set()
        for f in self.frames:
            a = f.action
            if isinstance(a, Synthesize):
                out.update((a.node.frame_a, a.node.frame_b))
            else:
                out.add(a.source)
        return out

    def select(self, output_frames: set[int]) -> RetimePlan:
        return RetimePlan(tuple(f for f in self.frames if f.output_frame in output_frames), self.depth)


def ancestry(node: Node) -> Iterator[Node]:
    """``node`` and every intermediate node it is built from."""
    yield node
    for parent in node.parents():
        if isinstance(parent, Node):
            yield from ancestry(parent)


def dyadic_fraction(fraction: float, depth: int) -> Fraction:
    """``fraction`` in [0, 1] rounded to the nearest ``k / 2**depth`` (ties to the smaller k)."""
    scale = 2**depth
    k = math.floor(fraction * scale + 0.5 - 1e-9)
    return Fraction(min(max(k, 0), scale), scale)


def plan_retime(
    time_map: TimeMap,
    sources: Sequence[int],
    *,
    depth: int = 3,
    method: Method = "ldmvfi",
    cuts: frozenset[int] = frozenset(),
) -> RetimePlan:
    """Turn output times into actions.

    Args:
        depth: recursion depth; times are rounded to multiples of 1/2**depth of a source frame
            (3 -> 1/8 frame). Each extra level costs one more model call per new grid point.
        method: ``ldmvfi`` (the model), ``blend`` (cross-fade, computed from the same plan: the
            node's time is used directly) or ``nearest`` (hold the nearest source).
        cuts: source frames ``a`` such that a scene cut lies between ``a`` and the next source.
        sources: the source frame numbers, ascending (consecutive or stepped).
    """
    if not 1 <= depth <= 16:
        raise ValueError(f"recursion depth must be 1-16, got {depth}")
    frames = sorted(sources)
    planned = []
    for output_frame, source_time in time_map.times:
        i = min(max(bisect.bisect_right(frames, source_time) - 1, 0), len(frames) - 1)
        frame_a = frames[i]
        frame_b = frames[i + 1] if i + 1 < len(frames) else frame_a
        span = frame_b - frame_a
        fraction = dyadic_fraction((source_time - frame_a) / span, depth) if span else Fraction(0)
        nearest = frame_a if fraction <= Fraction(1, 2) else frame_b
        if fraction == 0 or fraction == 1:
            action: Action = Copy(frame_a if fraction == 0 else frame_b)
        elif method == "nearest":
            action = Hold(nearest, "nearest")
        elif frame_a in cuts:
            action = Hold(nearest, f"scene cut between {frame_a} and {frame_b}")
        else:
            action = Synthesize(Node(frame_a, frame_b, fraction))
        planned.append(PlannedFrame(output_frame, source_time, action))
    return RetimePlan(tuple(planned), depth)


def node_seed(seed: int, node: Node) -> int:
    """A 63-bit seed for ``node`` that depends only on the user's seed and what the node is."""
    key = f"ldmvfi:{seed}:{node.frame_a}:{node.frame_b}:{node.time.numerator}/{node.time.denominator}"
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") >> 1


def batch_groups(nodes: Iterable[Node], sources: Sequence[int], batch: int) -> dict[Node, tuple[Node, ...]]:
    """Which in-betweens are computed together when ``batch`` > 1 (``ldmvfi retime --batch``).

    Nodes at the same fraction of source pairs whose first frame falls in the same aligned block
    of ``batch`` pairs (by position in ``sources``) form one group, ordered by time. Pass the
    nodes of the *whole* plan, without cuts: the groups then never depend on which output frames a
    run renders or where cuts were found, so every chunking, resumed run and device computes each
    node in the same company and writes the same bits. Returns node -> its group (itself included).
    """
    if batch < 1:
        raise ValueError(f"--batch must be at least 1, got {batch}")
    position = {frame: i for i, frame in enumerate(sorted(sources))}
    grouped: dict[tuple[int, Fraction], list[Node]] = {}
    for node in nodes:
        grouped.setdefault((position[node.frame_a] // batch, node.time), []).append(node)
    groups: dict[Node, tuple[Node, ...]] = {}
    for members in grouped.values():
        group = tuple(sorted(members))
        for node in group:
            groups[node] = group
    return groups
