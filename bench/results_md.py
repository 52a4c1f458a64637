# SPDX-License-Identifier: MIT
"""Write a benchmark's table into bench/RESULTS.md, between markers, so a rerun replaces it.

A section looks like::

    <!-- bench: speed released bfloat16 -->
    ...whatever the benchmark wrote...
    <!-- end bench: speed released bfloat16 -->

``update_section`` replaces the text between the markers of its label, or appends a new
section at the end of the file; the rest of the file is left byte for byte. The file is
rewritten through a temporary name (``io.atomic``), so an interrupted run never leaves half a
RESULTS.md.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ldmvfi_core.io.atomic import atomic_path


def markers(label: str) -> tuple[str, str]:
    if "-->" in label or "\n" in label:
        raise ValueError(f"a section label cannot hold '-->' or a line break: {label!r}")
    return f"<!-- bench: {label} -->", f"<!-- end bench: {label} -->"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if cell is None else str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def update_section(path: Path, label: str, body: str) -> None:
    """Put ``body`` between the markers of ``label`` in the markdown file ``path``."""
    start, end = markers(label)
    text = path.read_text() if path.exists() else ""
    block = f"{start}\n{body.rstrip()}\n{end}"
    head, found, rest = text.partition(start + "\n")
    if found:
        _, closed, tail = rest.partition(end)
        if not closed:
            raise ValueError(f"{path}: section '{label}' has no end marker")
        text = head + block + tail
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "") + block + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
