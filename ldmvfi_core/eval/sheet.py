# SPDX-License-Identifier: MIT
"""Contact sheet: a PNG grid of triplets, one row each, columns frame0 / frame2 / methods / truth.

Geometry (so callers and tests can predict it): every column is ``column_width`` pixels wide; a
row is a title strip (the triplet's name), a label strip (each column's name and caption) and the
images, each resized (Lanczos, aspect kept) to ``column_width`` wide. With ``STRIP_HEIGHT`` = 16:

    width  = len(columns) * column_width
    height = sum over rows of (2 * STRIP_HEIGHT + max over the row's images of round(h * column_width / w))

A column a row lacks is left grey. Text uses Pillow's default font.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ldmvfi_core.io.atomic import atomic_path

STRIP_HEIGHT = 16
DEFAULT_COLUMN_WIDTH = 240
_BACKGROUND = (24, 24, 24)
_MISSING = (96, 96, 96)
_TEXT = (235, 235, 235)


@dataclass(frozen=True)
class SheetRow:
    """One triplet: ``images`` maps column name -> H x W x 3 uint8; ``captions`` adds text to labels."""

    title: str
    images: Mapping[str, np.ndarray]
    captions: Mapping[str, str] = field(default_factory=dict)


def _pil():  # type: ignore[no-untyped-def]
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise ImportError("the contact sheet needs Pillow: pip install pillow") from None
    return Image, ImageDraw, ImageFont


def _scaled_height(image: np.ndarray, column_width: int) -> int:
    h, w = image.shape[:2]
    return max(1, round(h * column_width / w))


def contact_sheet(
    rows: Sequence[SheetRow],
    out_png: str | os.PathLike[str],
    *,
    columns: Sequence[str] | None = None,
    column_width: int = DEFAULT_COLUMN_WIDTH,
) -> tuple[int, int]:
    """Write the grid to ``out_png`` (temporary name, then renamed); returns (width, height).

    ``columns`` defaults to frame0, frame2, the other columns in first-seen order, then truth.
    """
    Image, ImageDraw, ImageFont = _pil()
    if not rows:
        raise ValueError("contact sheet: no rows")
    if columns is None:
        seen = [c for row in rows for c in row.images]
        middle = [c for c in dict.fromkeys(seen) if c not in ("frame0", "frame2", "truth")]
        columns = [c for c in ("frame0", "frame2") if c in seen] + middle + (["truth"] if "truth" in seen else [])
    heights = [max((_scaled_height(im, column_width) for im in row.images.values()), default=column_width)
               for row in rows]
    width = len(columns) * column_width
    height = sum(2 * STRIP_HEIGHT + h for h in heights)
    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    y = 0
    for row, row_h in zip(rows, heights, strict=True):
        draw.text((4, y + 2), row.title, fill=_TEXT, font=font)
        y += STRIP_HEIGHT
        for i, column in enumerate(columns):
            x = i * column_width
            label = f"{column} {row.captions[column]}" if column in row.captions else column
            draw.text((x + 4, y + 2), label, fill=_TEXT, font=font)
            image = row.images.get(column)
            if image is None:
                draw.rectangle((x, y + STRIP_HEIGHT, x + column_width - 1, y + STRIP_HEIGHT + row_h - 1),
                               fill=_MISSING)
                continue
            cell = Image.fromarray(np.ascontiguousarray(image[..., :3], dtype=np.uint8), "RGB")
            cell = cell.resize((column_width, _scaled_height(image, column_width)), Image.Resampling.LANCZOS)
            sheet.paste(cell, (x, y + STRIP_HEIGHT))
        y += STRIP_HEIGHT + row_h
    path = Path(out_png)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return width, height
