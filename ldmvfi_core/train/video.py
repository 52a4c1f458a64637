# SPDX-License-Identifier: MIT
"""Training triplets from video clips: decoding (PyAV) and cut-safe triplet indices.

A triplet ``(i, i + gap, i + 2 * gap)`` is only valid inside one shot: a hard cut between any two
of its frames would teach the model to blend two scenes. Shot boundaries come from a known cut
list (``KNOWN_CUTS`` for the project's clips, or the caller's) plus automatic detection with
``ldmvfi_core.retime.cuts.is_cut`` on consecutive frames, so unknown footage is safe too.

Frame indices are 0-based decode indices (``container.decode(video=0)`` order), as in
``../shared/data/video/README.md``. A *cut at k* means frames k - 1 and k belong to different shots.
PyAV is imported inside the functions: the GPU machine, which only reads the cache, has no PyAV.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from ldmvfi_core.retime.cuts import is_cut

Triplet = tuple[int, int, int]


@dataclass(frozen=True)
class KnownCuts:
    """Hard cuts of a known clip: each index starts a new shot; ``frames`` identifies the clip."""

    frames: int
    cuts: tuple[int, ...]


# Clips with hand-checked cuts (../shared/data/video/README.md), by file name. Applied only when
# the decoded frame count matches, so another file of the same name is not cut at random places.
KNOWN_CUTS = MappingProxyType({
    "bikes.mp4": KnownCuts(frames=250, cuts=(30, 76, 137, 187, 242)),
    "bigbuckbunny.mp4": KnownCuts(frames=132, cuts=()),
    "vtest.avi": KnownCuts(frames=795, cuts=()),
})

CUT_SCAN_SIDE = 256  # frames are thumbnailed to 128 px for the cut score anyway


def _scaled_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if max_side is None or max(width, height) <= max_side:
        return width, height
    k = max_side / max(width, height)
    return max(1, round(width * k)), max(1, round(height * k))


def read_video_frames(path: str | Path, *, max_side: int | None = None) -> Iterator[np.ndarray]:
    """Decode the first video stream: H x W x 3 uint8 RGB frames in decode order.

    Limited-range YUV is converted to full-range RGB by FFmpeg (``rgb24``). With ``max_side`` the
    frames are area-downscaled so that the longer side is at most ``max_side`` (never upscaled).
    """
    import av  # optional dependency: only the cache builder decodes video

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            width, height = _scaled_size(frame.width, frame.height, max_side)
            if (width, height) == (frame.width, frame.height):
                yield frame.to_ndarray(format="rgb24")
            else:
                yield frame.reformat(width=width, height=height, format="rgb24",
                                     interpolation="AREA").to_ndarray()


def detect_cuts(frames: Iterable[np.ndarray]) -> tuple[int, list[int]]:
    """Frame count and hard cuts (indices starting a new shot) of uint8 RGB ``frames``."""
    cuts, count, previous = [], 0, None
    for frame in frames:
        current = frame.astype(np.float32) * (1.0 / 255.0)  # display-range RGB, as is_cut expects
        if previous is not None and is_cut(previous, current):
            cuts.append(count)
        previous, count = current, count + 1
    return count, cuts


def shots(count: int, cuts: Iterable[int]) -> list[tuple[int, int]]:
    """[start, stop) frame ranges of the shots of a ``count``-frame clip cut at ``cuts``."""
    edges = sorted({0, count, *(c for c in cuts if 0 < c < count)})
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def triplets_in_shots(spans: Sequence[tuple[int, int]], *, stride: int = 1, gap: int = 1) -> list[Triplet]:
    """All ``(i, i + gap, i + 2 * gap)`` inside one span, i stepping by ``stride`` from the span start."""
    if stride < 1 or gap < 1:
        raise ValueError(f"stride and gap must be >= 1, got stride={stride} gap={gap}")
    return [(i, i + gap, i + 2 * gap) for start, stop in spans for i in range(start, stop - 2 * gap, stride)]


def clip_cuts(path: str | Path, *, cuts: Sequence[int] | None = None, auto_cuts: bool = True) -> tuple[int, list[int]]:
    """Frame count and every cut of a clip: ``cuts`` (default: ``KNOWN_CUTS``) plus detected ones."""
    path = Path(path)
    if auto_cuts:
        count, found = detect_cuts(read_video_frames(path, max_side=CUT_SCAN_SIDE))
    else:
        count, found = sum(1 for _ in read_video_frames(path, max_side=CUT_SCAN_SIDE)), []
    if cuts is None:
        known = KNOWN_CUTS.get(path.name)
        cuts = known.cuts if known is not None and known.frames == count else ()
    return count, sorted({*found, *(int(c) for c in cuts)})


def video_triplets(path: str | Path, *, stride: int = 1, gap: int = 1, cuts: Sequence[int] | None = None,
                   auto_cuts: bool = True) -> list[Triplet]:
    """Frame-index triplets ``(i, i + gap, i + 2 * gap)`` of a clip that never straddle a cut.

    Args:
        path: a video file PyAV can decode.
        stride: step between consecutive triplets' first frames, within each shot.
        gap: frames between frame0 and frame1 (2 or more makes larger motion from the same clip).
        cuts: indices that start a new shot; ``None`` uses ``KNOWN_CUTS`` for the file name
            (when its frame count matches), ``()`` none.
        auto_cuts: also detect cuts with ``is_cut`` (decodes the clip once at <= 256 px).
    """
    count, all_cuts = clip_cuts(path, cuts=cuts, auto_cuts=auto_cuts)
    return triplets_in_shots(shots(count, all_cuts), stride=stride, gap=gap)
