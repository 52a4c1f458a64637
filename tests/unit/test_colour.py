# SPDX-License-Identifier: MIT
"""Transfers between plate values and the model's range (hdr, srgb, none) and OCIO conversions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ldmvfi_core.io import colour
from ldmvfi_core.io.colour import (
    HALF_MAX,
    TRANSFERS,
    decode_transfer,
    encode_transfer,
    hdr_constants,
    hdr_decode,
    hdr_encode,
    ocio_colorspaces,
    ocio_config_description,
    ocio_convert,
    srgb_decode,
    srgb_encode,
)

# Values a scene-linear half-float plate holds: negatives from grading, mid-grey, the sun, half max.
PLATE_VALUES = np.array([-1.0, -0.25, -0.00385, -1e-5, 0.0, 1e-6, 0.002, 0.0031308, 0.18, 0.5, 0.999,
                         1.0, 1.001, 2.0, 16.0, 100.0, 1000.0, 33664.0, 65504.0], np.float32)


def _dense_values() -> np.ndarray:
    positive = np.geomspace(1e-7, HALF_MAX, 20001)
    return np.concatenate([-positive[positive <= 1.0], [0.0], positive]).astype(np.float32)


# --- hdr --------------------------------------------------------------------------------------


def test_transfer_names() -> None:
    assert TRANSFERS == ("hdr", "srgb", "none")


def test_hdr_constants_make_the_shoulder_c1_and_end_at_half_max() -> None:
    a, k = hdr_constants()
    assert a == pytest.approx(25.1715363087, rel=1e-10)
    assert k == pytest.approx(0.0139708066426, rel=1e-10)
    assert k * a == pytest.approx(0.8 * 1.055 / 2.4, rel=1e-14)
    assert 0.8 + k * math.log1p(a * (HALF_MAX - 1.0)) == pytest.approx(1.0, abs=1e-15)


def test_hdr_key_values() -> None:
    x = np.array([-0.00385, 0.0, 0.18, 1.0, 100.0, 33664.0, 65504.0])
    expected = [-0.0392309, 0.0, 0.369085, 0.8, 0.909269, 0.990700, 1.0]
    np.testing.assert_allclose(hdr_encode(x), expected, atol=1e-6)
    assert hdr_encode(np.float64(65504.0)) == 1.0
    assert hdr_encode(np.array([65504.0], np.float16))[0] == np.float32(1.0)


def test_hdr_is_0p8_srgb_in_display_range() -> None:
    x = np.linspace(-1.0, 1.0, 2001)
    np.testing.assert_allclose(hdr_encode(x), 0.8 * srgb_encode(x).astype(np.float64), atol=1e-7)


def test_hdr_round_trip_float64_is_exact() -> None:
    x = _dense_values().astype(np.float64)
    np.testing.assert_allclose(hdr_decode(hdr_encode(x)), x, rtol=1e-13, atol=0)
    assert hdr_encode(x).dtype == np.float64


def test_hdr_round_trip_float32_is_exact_to_float32_rounding() -> None:
    # In display range the float32 round trip is within 1e-6. Above 1.0 the shoulder packs 16
    # stops into 0.2 of encoded range, so one float32 ulp of the encoded value is worth up to 2e-6
    # of the plate value: the round trip is as exact as storing the encoded value in float32
    # allows (checked against that bound), and 200x finer than a half-float step.
    x = np.concatenate([PLATE_VALUES, _dense_values()])
    y = hdr_encode(x)
    assert y.dtype == np.float32
    back = hdr_decode(y)
    assert back.dtype == np.float32
    display = np.abs(x) <= 1.0
    np.testing.assert_allclose(back[display], x[display], rtol=1e-6, atol=1e-12)
    one_ulp = np.abs(hdr_decode(np.nextafter(y, np.float32(np.inf))).astype(np.float64) - hdr_decode(y))
    err = np.abs(back.astype(np.float64) - x)
    assert np.all(err <= np.maximum(one_ulp, 1e-6 * np.abs(x)))
    np.testing.assert_allclose(back, x, rtol=2.5e-6, atol=1e-12)
    np.testing.assert_allclose(back, x, rtol=2.0**-11)  # half-float precision, with room to spare


def test_hdr_is_monotonic_and_maps_half_range_into_unit_range() -> None:
    x = np.linspace(0.0, 1.0, 100001)
    x = np.concatenate([x, np.geomspace(1.0, HALF_MAX, 100001)[1:]])
    y = hdr_encode(x.astype(np.float64))
    assert np.all(np.diff(y) > 0)
    assert y[0] == 0.0 and y[-1] == 1.0
    y32 = hdr_encode(x.astype(np.float32))
    assert np.all(np.diff(y32) >= 0) and y32.min() >= 0.0 and y32.max() <= 1.0
    assert np.all(np.diff(hdr_encode(-x)) < 0)  # odd function


def test_hdr_is_c1_at_one() -> None:
    h = 1e-6
    left = (hdr_encode(np.float64(1.0)) - hdr_encode(np.float64(1.0 - h))) / h
    right = (hdr_encode(np.float64(1.0 + h)) - hdr_encode(np.float64(1.0))) / h
    slope = 0.8 * 1.055 / 2.4
    assert left == pytest.approx(slope, rel=1e-4)
    assert right == pytest.approx(slope, rel=1e-4)
    assert hdr_encode(np.float64(1.0)) == pytest.approx(0.8, abs=1e-15)


def test_hdr_saturates_outside_the_half_range() -> None:
    y = hdr_encode(np.array([1e6, np.inf, -np.inf, np.nan], np.float32))
    np.testing.assert_array_equal(y[:3], [1.0, 1.0, -1.0])
    assert np.isnan(y[3])
    # A model overshoot above 1.0 must not decode to a value a half-float EXR cannot store.
    x = hdr_decode(np.array([1.0, 1.001, 1.5, -1.2], np.float32))
    np.testing.assert_array_equal(x, [65504.0, 65504.0, 65504.0, -65504.0])
    assert np.isfinite(x.astype(np.float16)).all()


def test_encode_transfer_hdr_touches_rgb_only() -> None:
    rng = np.random.default_rng(0)
    pixels = (rng.random((6, 7, 5)) * 100).astype(np.float16)
    encoded = encode_transfer(pixels, "hdr")
    assert encoded.dtype == np.float32
    np.testing.assert_array_equal(encoded[..., 3:], pixels[..., 3:].astype(np.float32))
    assert encoded[..., :3].max() <= 1.0
    back = decode_transfer(encoded, "hdr")
    np.testing.assert_allclose(back, pixels.astype(np.float32), rtol=2.5e-6)
    np.testing.assert_array_equal(back[..., 3:], pixels[..., 3:].astype(np.float32))


def test_transfer_none_and_unknown() -> None:
    pixels = np.full((2, 2, 3), 3.0, np.float32)
    assert encode_transfer(pixels, "none") is pixels
    assert decode_transfer(pixels, "none") is pixels
    with pytest.raises(ValueError, match=r"unknown transfer 'log'.*hdr, srgb, none"):
        encode_transfer(pixels, "log")
    with pytest.raises(ValueError, match="unknown transfer"):
        decode_transfer(pixels, "log")


def test_transfers_of_a_tensor_equal_those_of_the_same_numpy_pixels() -> None:
    # The retimer runs the curves on the model's device (torch); numpy callers get the same curve.
    rng = np.random.default_rng(2)
    pixels = (rng.standard_normal((40, 30, 5)) * 50).astype(np.float32)
    pixels[0, 0, :3] = [np.nan, np.inf, -0.0]
    for transfer in ("hdr", "srgb"):
        encoded = encode_transfer(pixels, transfer)
        encoded_t = encode_transfer(torch.from_numpy(pixels), transfer)
        assert isinstance(encoded_t, torch.Tensor) and encoded_t.dtype == torch.float32
        np.testing.assert_array_equal(encoded_t.numpy(), encoded)
        back_t = decode_transfer(torch.from_numpy(encoded), transfer)
        np.testing.assert_array_equal(back_t.numpy(), decode_transfer(encoded, transfer))
    assert np.signbit(encode_transfer(pixels, "hdr")[0, 0, 2])  # odd: -0.0 stays -0.0
    wide = torch.from_numpy(pixels[..., :3].astype(np.float64))
    assert hdr_encode(wide).dtype == torch.float64 and hdr_encode(wide[..., 0].float()).dtype == torch.float32
    np.testing.assert_array_equal(hdr_decode(hdr_encode(wide)).numpy(), hdr_decode(hdr_encode(wide.numpy())))


def test_transfers_give_the_same_values_chunk_by_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    # encode_transfer works through the pixels in chunks of CHUNK_VALUES (to bound its
    # temporaries); chunk edges that fall inside a row must not change any value.
    rng = np.random.default_rng(3)
    pixels = (rng.random((17, 23, 4)) * 8).astype(np.float32)
    whole = encode_transfer(pixels, "hdr")
    monkeypatch.setattr(colour, "CHUNK_VALUES", 3 * 7)  # 7 pixels a chunk: 391 pixels, a partial last one
    np.testing.assert_array_equal(encode_transfer(pixels, "hdr"), whole)
    np.testing.assert_array_equal(decode_transfer(whole, "hdr"), decode_transfer(whole[None], "hdr")[0])
    np.testing.assert_array_equal(whole[..., 3], pixels[..., 3])
    reversed_view = pixels[::-1]  # negative strides: torch.from_numpy refuses them
    np.testing.assert_array_equal(hdr_encode(reversed_view), hdr_encode(np.ascontiguousarray(reversed_view)))


# --- srgb -------------------------------------------------------------------------------------


def test_srgb_still_exact() -> None:
    x = np.concatenate([PLATE_VALUES, _dense_values()])
    np.testing.assert_allclose(srgb_decode(srgb_encode(x)), x, rtol=2e-6, atol=1e-12)
    assert srgb_encode(np.array([0.18], np.float32))[0] == pytest.approx(0.46135, abs=1e-5)
    assert srgb_encode(np.array([1.0], np.float32))[0] == pytest.approx(1.0, abs=1e-7)
    encoded = encode_transfer(np.full((1, 1, 4), 0.18, np.float32), "srgb")
    np.testing.assert_allclose(encoded[0, 0], [0.46135, 0.46135, 0.46135, 0.18], atol=1e-5)


# --- OCIO -------------------------------------------------------------------------------------

BUILT_IN = "ocio://default"  # OIIO's built-in config, whatever $OCIO says on the test machine
LINEAR = "Linear Rec.709 (sRGB)"
SRGB = "sRGB Encoded Rec.709 (sRGB)"


@pytest.fixture
def oiio() -> None:
    pytest.importorskip("OpenImageIO")


@pytest.mark.usefixtures("oiio")
def test_built_in_config_has_the_names_the_tests_use() -> None:
    names = ocio_colorspaces(BUILT_IN)
    assert LINEAR in names and SRGB in names


@pytest.mark.usefixtures("oiio")
def test_ocio_round_trip_linear_to_srgb_and_back() -> None:
    values = np.geomspace(1e-3, 1.0, 300).astype(np.float32)
    pixels = np.stack([values, values[::-1], np.sqrt(values)], axis=-1).reshape(15, 20, 3)
    encoded = ocio_convert(pixels, LINEAR, SRGB, config=BUILT_IN)
    np.testing.assert_allclose(encoded, srgb_encode(pixels), atol=1e-4)  # it is the sRGB curve
    back = ocio_convert(encoded, SRGB, LINEAR, config=BUILT_IN)
    np.testing.assert_allclose(back, pixels, rtol=1e-4)
    assert back.dtype == np.float32 and back.shape == pixels.shape


@pytest.mark.usefixtures("oiio")
def test_ocio_convert_leaves_alpha_and_extra_channels_untouched() -> None:
    rng = np.random.default_rng(1)
    pixels = rng.random((5, 6, 6)).astype(np.float32)
    pixels[..., 3] = 0.25  # premultiplied-looking alpha: must not unpremultiply
    out = ocio_convert(pixels, LINEAR, SRGB, config=BUILT_IN)
    np.testing.assert_array_equal(out[..., 3:], pixels[..., 3:])
    np.testing.assert_allclose(out[..., :3], srgb_encode(pixels[..., :3]), atol=1e-4)
    assert not np.shares_memory(out, pixels)


@pytest.mark.usefixtures("oiio")
def test_ocio_unknown_colourspace_is_a_one_line_error() -> None:
    pixels = np.zeros((2, 2, 3), np.float32)
    with pytest.raises(ValueError) as info:
        ocio_convert(pixels, LINEAR, "Not A Colourspace", config=BUILT_IN)
    message = str(info.value)
    assert "'Not A Colourspace'" in message and "\n" not in message
    assert sum(name in message for name in ocio_colorspaces(BUILT_IN)) >= 3
    with pytest.raises(ValueError, match="'nope'"):
        ocio_convert(pixels, "nope", LINEAR, config=BUILT_IN)


@pytest.mark.usefixtures("oiio")
def test_ocio_accepts_aliases_and_roles() -> None:
    pixels = np.full((1, 1, 3), 0.18, np.float32)
    np.testing.assert_allclose(ocio_convert(pixels, "lin_rec709", "srgb_tx", config=BUILT_IN),
                               srgb_encode(pixels), atol=1e-4)
    same = ocio_convert(pixels, "scene_linear", "scene_linear", config=BUILT_IN)
    np.testing.assert_allclose(same, pixels, atol=1e-6)


@pytest.mark.usefixtures("oiio")
def test_ocio_bad_shape_and_missing_config() -> None:
    with pytest.raises(ValueError, match="C >= 3"):
        ocio_convert(np.zeros((2, 2), np.float32), LINEAR, SRGB, config=BUILT_IN)
    with pytest.raises(ValueError, match="cannot load OCIO config"):
        ocio_colorspaces("/nonexistent/config.ocio")


@pytest.mark.usefixtures("oiio")
def test_ocio_config_description(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCIO", raising=False)
    assert ocio_config_description() == "built-in"
    monkeypatch.setenv("OCIO", "/studio/config.ocio")
    assert ocio_config_description().startswith("/studio/config.ocio")
