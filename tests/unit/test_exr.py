# SPDX-License-Identifier: MIT
"""EXR frames: channels, formats, windows, storage and metadata survive a read/write round trip."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

oiio = pytest.importorskip("OpenImageIO")

from ldmvfi_core.io import exr  # noqa: E402
from ldmvfi_core.io.exr import (  # noqa: E402
    ExrFrame,
    ImageError,
    Window,
    check_compatible,
    crop,
    nonfinite_report,
    place,
    read_exr,
    write_exr,
)

# OIIO's order: R, G, B, A first, then the other channels alphabetically (OpenEXR's storage order).
PLATE_CHANNELS = ("R", "G", "B", "A", "depth.Z", "forward.u", "forward.v")
PLATE_FORMATS = ("half", "half", "half", "half", "float", "half", "half")
DISPLAY = Window(0, 0, 95, 63)
TIMECODE = (0x01000012, 0)  # 01:00:00:12 in SMPTE BCD

PLATE_ATTRIBUTES: list[tuple[str, str, object]] = [
    ("framesPerSecond", "rational", (24000, 1001)),
    ("smpte:TimeCode", "timecode", TIMECODE),
    ("chromaticities", "float[8]", (0.64, 0.33, 0.3, 0.6, 0.15, 0.06, 0.3127, 0.329)),
    ("owner", "string", "LDMVFI tests"),
    ("studio:shot", "string", "sh010"),
    ("studio:take", "int", 7),
    ("studio:offset", "vector2i", (3, -4)),
    ("worldToCamera", "matrix", tuple(float(i) for i in range(16))),
]


def _plate_pixels(window: Window, seed: int = 0) -> np.ndarray:
    """Values exactly representable in each channel's format, different per pixel and channel."""
    rng = np.random.default_rng(seed)
    shape = (window.height, window.width)
    rgba = rng.uniform(-0.01, 40000.0, (*shape, 4)).astype(np.float16).astype(np.float32)
    depth = rng.uniform(0.1, 1000.0, (*shape, 1)).astype(np.float32)  # float32 precision needed
    depth[0, 0, 0] = 1.0 + 2.0**-20  # not representable in half
    vectors = rng.uniform(-30.0, 30.0, (*shape, 2)).astype(np.float16).astype(np.float32)
    return np.concatenate([rgba, depth, vectors], axis=-1)


def _write_with_oiio(
    path: Path,
    pixels: np.ndarray,
    *,
    data: Window,
    display: Window = DISPLAY,
    names: tuple[str, ...] = PLATE_CHANNELS,
    formats: tuple[str, ...] = PLATE_FORMATS,
    compression: str = "zip",
    tile: int | None = None,
    attributes: list[tuple[str, str, object]] = PLATE_ATTRIBUTES,
) -> None:
    """A source EXR written with OIIO directly (independent of the module under test)."""
    # OIIO's EXR writer ignores channelformats that are all alike and uses the spec's format.
    uniform = len(set(formats)) == 1
    spec = oiio.ImageSpec(data.width, data.height, len(names), formats[0] if uniform else "float")
    spec.x, spec.y = data.xmin, data.ymin
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = (
        display.xmin,
        display.ymin,
        display.width,
        display.height,
    )
    spec.channelnames = names
    if not uniform:
        spec.channelformats = tuple(oiio.TypeDesc(f) for f in formats)
    spec.attribute("compression", compression)
    if tile:
        spec.tile_width = spec.tile_height = tile
    for name, typestr, value in attributes:
        spec.attribute(name, exr._type_desc(oiio, typestr), value)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec), out.geterror()
    assert out.write_image(np.ascontiguousarray(pixels, dtype=np.float32)), out.geterror()
    assert out.close()


def _spec_of(path: Path):  # type: ignore[no-untyped-def]
    image = oiio.ImageInput.open(str(path))
    assert image is not None, oiio.geterror()
    spec = image.spec()
    image.close()
    return spec


def _attrs(spec) -> dict[str, tuple[str, object]]:  # type: ignore[no-untyped-def]
    return {a.name: (str(a.type), a.value) for a in spec.extra_attribs}


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(
        np.ascontiguousarray(a, np.float32).view(np.uint32),
        np.ascontiguousarray(b, np.float32).view(np.uint32),
    )


def _one_line_naming(exc: pytest.ExceptionInfo[ImageError], path: Path) -> None:
    message = str(exc.value)
    assert "\n" not in message
    assert str(path) in message


# ---------------------------------------------------------------------------------------------- Window


def test_window_geometry_and_spec() -> None:
    w = Window(-16, -8, 111, 71)
    assert (w.width, w.height) == (128, 80)
    assert w.contains(DISPLAY) and not DISPLAY.contains(w) and w.contains(w)
    assert Window(0, 8, 95, 55).union(Window(10, 0, 120, 20)) == Window(0, 0, 120, 55)
    assert Window(0, 0, 9, 9).intersection(Window(20, 20, 30, 30)) is None
    spec = oiio.ImageSpec(4, 4, 3, "half")
    w.to_spec(spec)
    DISPLAY.to_spec(spec, display=True)
    assert (spec.x, spec.y, spec.width, spec.height) == (-16, -8, 128, 80)
    assert (spec.full_x, spec.full_y, spec.full_width, spec.full_height) == (0, 0, 96, 64)
    assert Window.from_spec(spec) == w
    assert Window.from_spec(spec, display=True) == DISPLAY
    with pytest.raises(ValueError):
        Window(5, 0, 4, 0)


# ------------------------------------------------------------------------------------------ round trip

CASES = {
    "data=display zip": dict(data=DISPLAY, compression="zip"),
    "data inside display piz": dict(data=Window(0, 8, 95, 55), compression="piz"),
    "overscan negative origin": dict(data=Window(-16, -8, 111, 71), compression="zip"),
    "tiled 64x64": dict(data=Window(-5, 3, 100, 70), compression="zip", tile=64),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_round_trip_keeps_everything(tmp_path: Path, case: dict) -> None:
    source, target = tmp_path / "plate.1001.exr", tmp_path / "out" / "plate.1001.exr"
    target.parent.mkdir()
    pixels = _plate_pixels(case["data"])
    _write_with_oiio(source, pixels, **case)

    frame = read_exr(source)
    assert frame.path == source
    assert frame.channel_names == PLATE_CHANNELS
    assert frame.channel_formats == PLATE_FORMATS
    assert frame.data_window == case["data"] and frame.display_window == DISPLAY
    assert frame.compression == case["compression"]
    assert frame.tile_size == ((64, 64) if case.get("tile") else None)
    assert frame.pixels.dtype == np.float32 and _same_bits(frame.pixels, pixels)

    extra = [("ldmvfi:sourceFrames", "string", "1001,1002"), ("ldmvfi:phase", 0.5)]
    write_exr(target, frame, extra_attributes=extra)
    spec = _spec_of(target)
    assert tuple(spec.channelnames) == PLATE_CHANNELS
    assert tuple(str(f) for f in spec.channelformats) == PLATE_FORMATS
    assert Window.from_spec(spec) == case["data"]
    assert Window.from_spec(spec, display=True) == DISPLAY
    assert (spec.tile_width, spec.tile_height) == ((64, 64) if case.get("tile") else (0, 0))
    assert spec.get_string_attribute("compression") == case["compression"]

    written = _attrs(spec)
    for name, (typestr, value) in _attrs(_spec_of(source)).items():
        if name not in ("oiio:subimages", "oiio:RowsPerChunk"):
            assert written[name] == (typestr, value), name
    assert written["framesPerSecond"] == ("rational", (24000, 1001))
    assert written["smpte:TimeCode"] == ("timecode", TIMECODE)
    assert written["studio:shot"] == ("string", "sh010")
    assert written["studio:take"] == ("int", 7)
    assert written["studio:offset"] == ("vector2i", (3, -4))
    assert written["ldmvfi:sourceFrames"] == ("string", "1001,1002")
    assert written["ldmvfi:phase"] == ("float", 0.5)

    again = read_exr(target)
    assert _same_bits(again.pixels, pixels)
    assert not [p for p in target.parent.iterdir() if p.name != target.name]  # no temp file left


def test_hdr_values_survive_half_exactly(tmp_path: Path) -> None:
    values = np.array([33664.0, -0.00385, 0.0, 1.0, 65504.0, -(2.0**-24)], np.float32)
    pixels = np.zeros((4, 6, 3), np.float32)
    pixels[..., :] = values[None, :, None]
    path = tmp_path / "hdr.1001.exr"
    _write_with_oiio(
        path, pixels, data=Window(0, 0, 5, 3), display=Window(0, 0, 5, 3), names=("R", "G", "B"),
        formats=("half",) * 3, compression="piz", attributes=[("framesPerSecond", "rational", (24, 1))],
    )  # fmt: skip
    frame = read_exr(path)
    assert frame.channel_formats == ("half",) * 3
    as_half = values.astype(np.float16).astype(np.float32)
    assert frame.pixels[0, 0, 0] == 33664.0 and frame.pixels[0, 1, 0] == as_half[1] < 0
    assert np.array_equal(frame.pixels[0, :, 1], as_half)
    write_exr(tmp_path / "hdr.out.exr", frame)
    again = read_exr(tmp_path / "hdr.out.exr")
    assert again.channel_formats == ("half",) * 3 and again.compression == "piz"
    assert _same_bits(again.pixels, frame.pixels)


def test_uint_channel_keeps_integer_values(tmp_path: Path) -> None:
    ids = np.array([0, 1, 12345, 2**24], np.float32)
    pixels = np.stack([np.full(4, 0.5, np.float32), ids], axis=-1)[None]  # 1 x 4 x 2
    window = Window(0, 0, 3, 0)
    frame = ExrFrame(pixels, window, window, ("R", "objectId"), ("half", "uint"), compression="zip")
    write_exr(tmp_path / "id.exr", frame)
    assert tuple(str(f) for f in _spec_of(tmp_path / "id.exr").channelformats) == ("half", "uint")
    again = read_exr(tmp_path / "id.exr")
    assert again.channel_formats == ("half", "uint")
    assert _same_bits(again.pixels, pixels)


def test_write_replaces_existing_frame(tmp_path: Path) -> None:
    path = tmp_path / "f.exr"
    _write_with_oiio(path, _plate_pixels(DISPLAY, seed=1), data=DISPLAY)
    frame = read_exr(path)
    frame.pixels = _plate_pixels(DISPLAY, seed=2)
    write_exr(path, frame)
    assert _same_bits(read_exr(path).pixels, frame.pixels)


def test_write_rejects_mismatched_pixels(tmp_path: Path) -> None:
    frame = ExrFrame(np.zeros((4, 4, 3), np.float32), Window(0, 0, 4, 3), Window(0, 0, 4, 3), ("R", "G", "B"),
                     ("half",) * 3)  # fmt: skip
    with pytest.raises(ImageError) as exc:
        write_exr(tmp_path / "bad.exr", frame)
    _one_line_naming(exc, tmp_path / "bad.exr")
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------------- windows and pixels


def test_place_then_crop_round_trip() -> None:
    data = Window(2, 3, 6, 5)
    pixels = np.arange(data.height * data.width * 2, dtype=np.float32).reshape(data.height, data.width, 2) + 1
    frame = ExrFrame(pixels, data, Window(0, 0, 9, 7), ("R", "G"), ("half", "half"))
    placed = place(frame, frame.display_window)
    assert placed.shape == (8, 10, 2)
    assert np.array_equal(placed[3:6, 2:7], pixels)
    assert placed.sum() == pixels.sum()  # zeros everywhere else
    assert np.array_equal(crop(placed, frame.display_window, data), pixels)
    bigger = Window(-4, -4, 12, 12)
    assert np.array_equal(crop(place(frame, bigger), bigger, data), pixels)
    assert np.array_equal(place(frame, data), pixels)


def test_crop_partial_overlap_is_zero_outside() -> None:
    pixels = np.ones((4, 4, 1), np.float32)
    out = crop(pixels, Window(0, 0, 3, 3), Window(2, 2, 5, 5))
    assert out[:2, :2].all() and out.sum() == 4


def test_check_compatible(tmp_path: Path) -> None:
    def frame(name: str, channels: tuple[str, ...], display: Window) -> ExrFrame:
        return ExrFrame(np.zeros((1, 1, len(channels)), np.float32), Window(0, 0, 0, 0), display, channels,
                        ("half",) * len(channels), path=tmp_path / name)  # fmt: skip

    a = frame("a.exr", ("R", "G", "B"), DISPLAY)
    check_compatible(a, frame("b.exr", ("R", "G", "B"), DISPLAY))
    for b in (
        frame("b.exr", ("R", "G", "B", "A"), DISPLAY),
        frame("b.exr", ("R", "G", "B"), Window(0, 0, 9, 9)),
    ):
        with pytest.raises(ImageError) as exc:
            check_compatible(a, b)
        _one_line_naming(exc, tmp_path / "a.exr")
        _one_line_naming(exc, tmp_path / "b.exr")


def test_nonfinite_report() -> None:
    pixels = np.zeros((2, 2, 3), np.float32)
    window = Window(0, 0, 1, 1)
    frame = ExrFrame(pixels, window, window, ("R", "G", "B"), ("half",) * 3)
    assert nonfinite_report(frame) == {}
    pixels[0, 0, 0] = np.nan
    pixels[1, 1, 0] = np.inf
    pixels[0, 1, 2] = -np.inf
    assert nonfinite_report(frame) == {"R": 2, "B": 1}


# ---------------------------------------------------------------------------------------------- errors


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError) as exc:
        read_exr(tmp_path / "missing.1001.exr")
    _one_line_naming(exc, tmp_path / "missing.1001.exr")


@pytest.mark.parametrize("tile", [None, 64])
def test_truncated_file_fails(tmp_path: Path, tile: int | None) -> None:
    path = tmp_path / "cut.exr"
    data = Window(0, 0, 127, 127)
    noisy = np.random.default_rng(3).uniform(0, 1, (128, 128, 7)).astype(np.float32)  # not compressible
    _write_with_oiio(path, noisy, data=data, display=data, tile=tile)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageError, match="cannot read pixels") as exc:  # header intact: fails at read time
        read_exr(path)
    _one_line_naming(exc, path)


def test_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.exr"
    path.write_text("not an image\n")
    with pytest.raises(ImageError) as exc:
        read_exr(path)
    _one_line_naming(exc, path)


def test_deep_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.exr"
    spec = oiio.ImageSpec(2, 2, 2, "float")
    spec.channelnames = ("A", "Z")
    spec.deep = True
    deep = oiio.DeepData()
    deep.init(spec)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec) and out.write_deep_image(deep) and out.close()
    with pytest.raises(ImageError, match="deep") as exc:
        read_exr(path)
    _one_line_naming(exc, path)


def test_unwritable_folder(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("a file, not a folder")
    path = tmp_path / "afile" / "x.exr"
    frame = ExrFrame(np.zeros((2, 2, 3), np.float32), Window(0, 0, 1, 1), Window(0, 0, 1, 1), ("R", "G", "B"),
                     ("half",) * 3)  # fmt: skip
    with pytest.raises(ImageError) as exc:
        write_exr(path, frame)
    _one_line_naming(exc, path)


def test_interrupted_write_leaves_target_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "plate.1001.exr"
    _write_with_oiio(path, _plate_pixels(DISPLAY), data=DISPLAY)
    before = path.read_bytes()
    frame = read_exr(path)
    frame.pixels = frame.pixels * 2
    temps: list[str] = []

    def fail_midway(out, pixels, target) -> None:  # type: ignore[no-untyped-def]
        assert out.write_scanlines(0, 8, 0, np.ascontiguousarray(pixels[:8]))
        temps.extend(p.name for p in tmp_path.iterdir() if p != path)
        raise KeyboardInterrupt  # e.g. the farm kills the task

    monkeypatch.setattr(exr, "_write_pixels", fail_midway)
    with pytest.raises(KeyboardInterrupt):
        write_exr(path, frame)
    assert temps and all(name.startswith(".plate.1001.exr.tmp") and name.endswith(".exr") for name in temps)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [path.name]

    monkeypatch.undo()

    def no_rename(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(exr.os, "replace", no_rename)
    with pytest.raises(OSError):
        write_exr(path, frame)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [path.name]
