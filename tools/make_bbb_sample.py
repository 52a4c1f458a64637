# SPDX-License-Identifier: MIT
"""Rebuild the bundled sample plate (ldmvfi_core/samples/bbb) from bigbuckbunny.mp4.

Big Buck Bunny, (c) copyright 2008, Blender Foundation, www.bigbuckbunny.org, CC BY 3.0.
Frames 40-47 of the excerpt, resized to 320x180, decoded 8-bit sRGB -> scene-linear
(IEC 61966-2-1 inverse transfer), RGBA half float, zip compression, numbered 1001-1008.

    python tools/make_bbb_sample.py ../shared/data/video/bigbuckbunny.mp4
"""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
import OpenImageIO as oiio

FIRST, COUNT, SIZE = 40, 8, (320, 180)
OUT = Path(__file__).resolve().parents[1] / "ldmvfi_core" / "samples" / "bbb"


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def main(video: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with av.open(video) as container:
        frames = container.decode(video=0)
        for index, frame in enumerate(frames):
            if index < FIRST:
                continue
            if index >= FIRST + COUNT:
                break
            rgb = frame.reformat(width=SIZE[0], height=SIZE[1], format="rgb24").to_ndarray()
            linear = srgb_to_linear(rgb.astype(np.float32) / 255.0)
            rgba = np.concatenate([linear, np.ones_like(linear[..., :1])], axis=-1)
            spec = oiio.ImageSpec(SIZE[0], SIZE[1], 4, "half")
            spec.channelnames = ("R", "G", "B", "A")
            spec.attribute("compression", "zip")
            spec.attribute("oiio:ColorSpace", "lin_rec709_scene")
            spec.attribute("framesPerSecond", oiio.TypeDesc("rational"), (25, 1))
            spec.attribute("comments", "Big Buck Bunny, (c) copyright 2008, Blender Foundation, "
                           "www.bigbuckbunny.org, CC BY 3.0")
            number = 1001 + index - FIRST
            out = oiio.ImageOutput.create(str(OUT / f"bbb.{number}.exr"))
            out.open(str(OUT / f"bbb.{number}.exr"), spec)
            out.write_image(rgba)
            out.close()


if __name__ == "__main__":
    main(sys.argv[1])
