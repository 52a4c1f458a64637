# SPDX-License-Identifier: MIT
"""``SourcePlate.model_tensor`` / ``decode_rgb`` of a tensor: the colour transfer run on the model's
device gives the pixels that the numpy transfer of the plate's values gives (session 16 moved it off
the thread that feeds the GPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ldmvfi_core.io.colour import decode_transfer, encode_transfer, ocio_convert
from ldmvfi_core.io.exr import Window
from ldmvfi_core.io.sequence import parse_pattern
from ldmvfi_core.retime.sources import ColourSettings, SourcePlate
from tests.unit.test_retime import plate  # noqa: F401  (a fixture)

OCIO = ColourSettings(transfer="hdr", ocio_from="Linear Rec.709 (sRGB)", ocio_to="ACEScg",
                      ocio_config="ocio://default")


@pytest.mark.parametrize("colour", [ColourSettings(), ColourSettings(transfer="srgb"),
                                    ColourSettings(transfer="none"), OCIO], ids=["hdr", "srgb", "none", "ocio"])
def test_model_tensor_and_decode_of_a_tensor_match_the_numpy_path(plate: Path,  # noqa: F811
                                                                  colour: ColourSettings) -> None:
    if colour.ocio_from:
        pytest.importorskip("OpenImageIO")
    source = SourcePlate(parse_pattern(str(plate)), [1001, 1002], colour=colour)
    try:
        frame = source.read(1002)
        bigger = Window(frame.data_window.xmin - 3, frame.data_window.ymin, frame.data_window.xmax + 2,
                        frame.data_window.ymax + 1)  # a working window larger than the data: placed with zeros
        for window in (frame.data_window, bigger):
            linear = source.linear_pixels(1002, window)
            if colour.ocio_from:
                expected = encode_transfer(ocio_convert(linear, colour.ocio_from, colour.ocio_to,  # type: ignore[arg-type]
                                                        config=colour.ocio_config), colour.transfer)
            else:
                expected = encode_transfer(linear, colour.transfer)
            tensor = source.model_tensor(1002, window, torch.device("cpu"))
            assert tensor.dtype == torch.float32 and tuple(tensor.shape) == expected.shape
            np.testing.assert_array_equal(tensor.numpy(), expected)
            decoded = source.decode_rgb(tensor)
            assert isinstance(decoded, np.ndarray) and decoded.dtype == np.float32
            if colour.ocio_from:
                expected_back = ocio_convert(decode_transfer(expected, colour.transfer), colour.ocio_to,  # type: ignore[arg-type]
                                             colour.ocio_from, config=colour.ocio_config)
            else:
                expected_back = decode_transfer(expected, colour.transfer)
            np.testing.assert_array_equal(decoded, expected_back)
            np.testing.assert_allclose(decoded[..., :3], linear[..., :3], rtol=1e-4, atol=1e-5)  # round trip
            np.testing.assert_array_equal(decoded[..., 3:], linear[..., 3:])
    finally:
        source.close()


def test_an_ocio_conversion_that_makes_nan_names_the_frame(plate: Path,  # noqa: F811
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The plate's NaN/Inf policy covers the values as stored; a conversion that makes NaN (a LUT,
    a log curve) is refused with the frame's file named, on the CPU, before the model sees it."""
    from ldmvfi_core.io.images import ImageError
    from ldmvfi_core.retime import sources

    def making_nan(pixels: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
        out = pixels.copy()
        out[0, 0, 0] = np.nan
        return out

    monkeypatch.setattr(sources, "ocio_convert", making_nan)
    source = SourcePlate(parse_pattern(str(plate)), [1001, 1002], colour=OCIO)
    try:
        window = source.read(1002).data_window
        with pytest.raises(ImageError, match=r"plate\.1002\.exr: the OCIO conversion .* made NaN/Inf"):
            source.model_tensor(1002, window, torch.device("cpu"))
    finally:
        source.close()
