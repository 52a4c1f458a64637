# SPDX-License-Identifier: MIT
"""Frame sets in the two spellings a farm job meets, and how Open Job Description chunks them.

Ours (``ldmvfi_core.io.sequence``) writes a step as ``1001-1100x2``; Open Job Description range
expressions write it ``1001-1100:2``. Everything else (``-``, ``,``, negative frames) is the same.
"""

from __future__ import annotations

from collections.abc import Iterable

from ldmvfi_core.io.sequence import format_frame_set, parse_frame_set


def openjd_range(frames: Iterable[int]) -> str:
    """Frames as an Open Job Description range expression (``1-10,12,20-30:2``)."""
    return format_frame_set(frames).replace("x", ":")


def parse_frames(text: str) -> list[int]:
    """A frame set in either spelling, ours (``1-9x2``) or Open Job Description's (``1-9:2``)."""
    return parse_frame_set(text.replace(":", "x"))


def contiguous_chunks(frames: Iterable[int], size: int) -> list[tuple[int, int]]:
    """(first, last) of each task: runs of consecutive frames cut into pieces of at most ``size``.

    This is how ``rangeConstraint: CONTIGUOUS`` with ``defaultTaskCount: size`` chunks a range.
    """
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    chunks: list[tuple[int, int]] = []
    for frame in sorted(set(frames)):
        if chunks and frame == chunks[-1][1] + 1 and frame - chunks[-1][0] < size:
            chunks[-1] = (chunks[-1][0], frame)
        else:
            chunks.append((frame, frame))
    return chunks
