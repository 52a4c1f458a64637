# SPDX-License-Identifier: MIT
"""Knob values -> settings, output frame ranges, frame-map text (no Nuke needed)."""

from __future__ import annotations

import math

import pytest
from ldmvfi_nuke.settings import (
    DEFAULTS,
    K,
    SettingsError,
    frame_map_text,
    output_info,
    settings_from_values,
    timing_range,
)

from ldmvfi_core.retime.timing import by_factor, by_frame_map, by_speed, read_frame_map


def values(**changes: object) -> dict[str, object]:
    base = dict(DEFAULTS)
    base.update({K.INPUT_FIRST: 1001, K.INPUT_LAST: 1100})
    base.update(changes)
    return base


@pytest.mark.parametrize("factor", [1, 2, 3, 8])
def test_factor_range_matches_the_runner(factor: int) -> None:
    expected = by_factor(1001, 1100, factor).output_frames
    assert timing_range("factor", 1001, 1100, factor, 1.0) == (expected[0], expected[-1])
    assert timing_range("factor", 1001, 1100, factor, 1.0)[1] == 1001 + 99 * factor


@pytest.mark.parametrize("speed", [0.1, 0.25, 0.4, 0.5, 1.0, 1.5, 2.0, 3.0, -0.5, -2.0, 0.3])
def test_speed_range_matches_the_runner(speed: float) -> None:
    expected = by_speed(1001, 1100, speed).output_frames
    assert timing_range("speed", 1001, 1100, 2, speed) == (expected[0], expected[-1])
    assert timing_range("speed", 1001, 1100, 2, speed)[1] == 1001 + math.floor(99 / abs(speed) + 1e-9)


def test_frame_curve_range_is_the_keyed_range() -> None:
    assert timing_range("frame curve", 1001, 1100, 2, 1.0, [990.0, 1240.0, 1100.0]) == (990, 1240)
    assert timing_range("frame curve", 1001, 1100, 2, 1.0, [990.5, 1000.2]) == (991, 1000)
    assert timing_range("frame curve", 1001, 1100, 2, 1.0, []) == (1001, 1100)


def test_range_errors() -> None:
    with pytest.raises(SettingsError, match="before the first"):
        timing_range("factor", 10, 5, 2, 1.0)
    with pytest.raises(SettingsError, match="factor must be"):
        timing_range("factor", 1, 5, 0, 1.0)
    with pytest.raises(SettingsError, match="speed must be"):
        timing_range("speed", 1, 5, 2, 0.0)
    with pytest.raises(SettingsError, match="do not span"):
        timing_range("frame curve", 1, 5, 2, 1.0, [3.2, 3.7])


def test_output_info() -> None:
    assert output_info(1001, 1199) == "output 1001-1199 (199 frames)"
    assert output_info(7, 7) == "output 7-7 (1 frame)"


def test_frame_map_text_round_trips_through_the_runner_parser(tmp_path) -> None:
    pairs = [(990, 1001.0), (991, 1001.125), (992, 1001.3333333333), (993, -4.5)]
    path = tmp_path / "map.txt"
    path.write_text(frame_map_text(pairs))
    assert read_frame_map(path) == pairs
    assert by_frame_map(read_frame_map(path), 1001, 1002).output_frames == [990, 991, 992, 993]


def test_defaults_give_valid_settings() -> None:
    s = settings_from_values(values())
    assert (s.method, s.factor, s.depth, s.steps, s.eta, s.seed) == ("factor", 2, 3, 0, 1.0, 0)
    assert s.output_range == (1001, 1199)
    assert s.ocio_from == s.ocio_to == s.ocio_config == ""
    assert s.prealign is False  # pre-alignment is off unless asked for


def test_frame_curve_settings_need_consecutive_frames() -> None:
    s = settings_from_values(values(method="frame curve"), frame_map=[(5, 1001.0), (6, 1001.5)])
    assert s.output_range == (5, 6)
    with pytest.raises(SettingsError, match="consecutive"):
        settings_from_values(values(method="frame curve"), frame_map=[(5, 1001.0), (7, 1001.5)])
    with pytest.raises(SettingsError, match="no output frames"):
        settings_from_values(values(method="frame curve"))
    # Outside frame-curve mode the curve is not part of the settings (nor of the cache key).
    assert settings_from_values(values(), frame_map=[(5, 1.0)]).frame_map == ()


def test_ocio_names_default_and_validation() -> None:
    s = settings_from_values(values(transfer="ocio", ocio_to="disp"), working_space="work", ocio_config="/c.ocio")
    assert (s.ocio_from, s.ocio_to, s.ocio_config) == ("work", "disp", "/c.ocio")
    s = settings_from_values(values(transfer="ocio", ocio_from=" plate ", ocio_to="disp"), working_space="work")
    assert s.ocio_from == "plate"
    with pytest.raises(SettingsError, match="plate's colourspace"):
        settings_from_values(values(transfer="ocio", ocio_to="disp"))
    # Names typed while another transfer is chosen are ignored (and stay out of the cache key).
    s = settings_from_values(values(transfer="hdr", ocio_from="a", ocio_to="b"), ocio_config="/c.ocio")
    assert s.ocio_from == s.ocio_to == s.ocio_config == ""


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"depth": 0}, "recursion depth must be 1-16"),
        ({"depth": 17}, "recursion depth must be 1-16"),
        ({"steps": -1}, r"steps must be 0 \(the model's own\) or more"),
        ({"batch": 0}, "batch must be >= 1"),
        ({"eta": -0.1}, "eta must be >= 0"),
        ({"eta": float("nan")}, "not a finite number"),
        ({"factor": 2.5}, "not a whole number"),
        ({"device": "tpu"}, "device: 'tpu' is not one of"),
        ({"ensemble": "3"}, "ensemble: '3' is not one of 1, 2, 4, 8, 16"),
        ({"input_last": 1000}, "before the first"),
        ({"method": "speed", "speed": 0}, "speed must be"),
    ],
)
def test_invalid_values_give_one_line_errors(changes: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as err:
        settings_from_values(values(**changes))
    assert "\n" not in str(err.value)


def test_result_fields_leave_out_the_device() -> None:
    a = settings_from_values(values(device="cuda"))
    b = settings_from_values(values(device="cpu"))
    assert a.result_fields() == b.result_fields()
    assert a.result_fields() != settings_from_values(values(precision="bfloat16")).result_fields()
    # the ensemble changes the pixels: its frames are cached apart
    assert a.result_fields() != settings_from_values(values(ensemble="2")).result_fields()
    assert settings_from_values(values(ensemble="8")).ensemble == 8
    # pre-alignment changes the pixels too: its frames are cached apart
    on = settings_from_values(values(prealign=True))
    assert on.prealign is True and a.prealign is False
    assert a.result_fields() != on.result_fields() and on.result_fields()["prealign"] is True
