# SPDX-License-Identifier: MIT
"""Sequence patterns (hash, printf, Houdini), frame sets and frame ranges."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ldmvfi_core.io.sequence import (
    MAX_FRAME_SET_SIZE,
    FrameRange,
    SequenceError,
    SequencePattern,
    find_missing,
    format_frame_set,
    frame_range_of,
    parse_frame_set,
    parse_pattern,
)

STYLES = ("hash", "printf", "houdini")


def _message(excinfo: pytest.ExceptionInfo[SequenceError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    assert isinstance(excinfo.value, ValueError)
    return message


# --- parse_pattern: accepted forms -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "directory", "prefix", "suffix", "padding", "style"),
    [
        ("plate.####.exr", ".", "plate.", ".exr", 4, "hash"),
        ("plate.#.exr", ".", "plate.", ".exr", 1, "hash"),
        ("/a/b/plate.########.exr", "/a/b", "plate.", ".exr", 8, "hash"),
        ("plate.%04d.exr", ".", "plate.", ".exr", 4, "printf"),
        ("plate.%d.exr", ".", "plate.", ".exr", 1, "printf"),
        ("plate.%0d.exr", ".", "plate.", ".exr", 1, "printf"),
        ("rel/dir/plate.%06d.exr", "rel/dir", "plate.", ".exr", 6, "printf"),
        ("plate.$F4.exr", ".", "plate.", ".exr", 4, "houdini"),
        ("plate.$F.exr", ".", "plate.", ".exr", 1, "houdini"),
        ("plate_${F3}v.exr", ".", "plate_", "v.exr", 3, "houdini"),
        ("####.exr", ".", "", ".exr", 4, "hash"),
        ("plate_v002_####", ".", "plate_v002_", "", 4, "hash"),
        ("./plate.####.exr", ".", "plate.", ".exr", 4, "hash"),
    ],
)
def test_parse_pattern_forms(
    text: str, directory: str, prefix: str, suffix: str, padding: int, style: str
) -> None:
    pattern = parse_pattern(text)
    assert pattern == SequencePattern(Path(directory), prefix, suffix, padding, style)  # type: ignore[arg-type]


def test_parse_pattern_accepts_path_objects() -> None:
    assert parse_pattern(Path("/a/plate.####.exr")) == parse_pattern("/a/plate.####.exr")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plate.####.exr", "plate.####.exr"),
        ("/a/plate.%04d.exr", "/a/plate.%04d.exr"),
        ("/a/plate.%d.exr", "/a/plate.%d.exr"),
        ("/a/plate.%0d.exr", "/a/plate.%d.exr"),
        ("plate.$F4.exr", "plate.$F4.exr"),
        ("plate.$F.exr", "plate.$F.exr"),
        ("plate_${F3}v.exr", "plate_${F3}v.exr"),
        ("plate.${F3}.exr", "plate.$F3.exr"),
        ("./plate.#.exr", "plate.#.exr"),
    ],
)
def test_str_keeps_style(text: str, expected: str) -> None:
    assert str(parse_pattern(text)) == expected


def test_with_style_and_nuke_string() -> None:
    pattern = parse_pattern("/shots/sh010/plate.$F4.exr")
    assert pattern.nuke_string() == "/shots/sh010/plate.####.exr"
    assert str(pattern.with_style("printf")) == "/shots/sh010/plate.%04d.exr"
    assert str(pattern.with_style("houdini")) == "/shots/sh010/plate.$F4.exr"
    assert pattern.with_style("hash").style == "hash"
    assert pattern.with_style("hash").path(1001) == pattern.path(1001)
    assert parse_pattern("p.%d.exr").nuke_string() == "p.#.exr"
    assert str(parse_pattern("p.#1.exr").with_style("houdini")) == "p.${F}1.exr"


# --- parse_pattern: errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("plate.1001.exr", "plate.1001.exr: no frame number placeholder; use plate.####.exr"),
        ("/a/plate.1001.exr", "/a/plate.1001.exr: no frame number placeholder; use /a/plate.####.exr"),
        ("/a/plate.5.exr", "use /a/plate.#.exr"),
        ("plate.-0005.exr", "use plate.####.exr"),
        ("plate.exr", "plate.exr: no frame number placeholder; use plate.####.exr"),
        ("plate", "plate: no frame number placeholder; use plate.####"),
        ("/a/##/plate.####.exr", "/a/##/plate.####.exr: frame number placeholder in the folder part"),
        ("/a/$F4/plate.exr", "/a/$F4/plate.exr: frame number placeholder in the folder part"),
        ("plate.##.%04d.exr", "plate.##.%04d.exr: 2 frame number placeholders (##, %04d)"),
        ("plate.####_####.exr", "plate.####_####.exr: 2 frame number placeholders"),
        ("plate.%4d.exr", "plate.%4d.exr: %4d is not a zero-padded frame number; use %04d"),
        ("plate.%-4d.exr", "plate.%-4d.exr: %-4d is not a zero-padded frame number; use %04d"),
        ("plate.$FF.exr", "plate.$FF.exr: $FF is not Houdini's frame number variable; use $F4"),
        ("plate.$F4_v2.exr", "plate.$F4_v2.exr: $F4_v2 is not Houdini's frame number variable; use ${F4}_v2"),
        ("plates/####/", "plates/####/: ends with a folder separator"),
        ("", "empty sequence pattern"),
        ("   ", "empty sequence pattern"),
    ],
)
def test_parse_pattern_errors(text: str, fragment: str) -> None:
    with pytest.raises(SequenceError) as excinfo:
        parse_pattern(text)
    message = _message(excinfo)
    assert fragment in message
    if text.strip():
        assert message.startswith(text)


def test_parse_pattern_error_with_newline_is_one_line() -> None:
    with pytest.raises(SequenceError) as excinfo:
        parse_pattern("plate\n.1001.exr")
    assert "'plate\\n.1001.exr'" in _message(excinfo)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"padding": 0}, "frame padding must be a whole number >= 1, not 0"),
        ({"padding": True}, "frame padding must be a whole number >= 1, not True"),
        ({"style": "nuke"}, "unknown sequence style 'nuke'"),
        ({"prefix": "a/b."}, "'a/b.': a file name prefix or suffix cannot hold a path separator"),
        ({"prefix": "p.#."}, "p.#.#.exr: prefix or suffix reads as a frame number placeholder"),
        ({"suffix": ".%d.exr"}, "prefix or suffix reads as a frame number placeholder"),
    ],
)
def test_sequence_pattern_validation(kwargs: dict[str, object], fragment: str) -> None:
    fields: dict[str, object] = {"directory": Path("/a"), "prefix": "p.", "suffix": ".exr"} | kwargs
    with pytest.raises(SequenceError) as excinfo:
        SequencePattern(**fields)  # type: ignore[arg-type]
    assert fragment in _message(excinfo)


def test_sequence_pattern_directory_becomes_path() -> None:
    pattern = SequencePattern("/a", "p.", ".exr")  # type: ignore[arg-type]
    assert pattern.directory == Path("/a")
    assert pattern == parse_pattern("/a/p.####.exr")


# --- path / frame_of ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "frame", "name"),
    [
        ("plate.####.exr", 1001, "plate.1001.exr"),
        ("plate.####.exr", 7, "plate.0007.exr"),
        ("plate.####.exr", 0, "plate.0000.exr"),
        ("plate.####.exr", -5, "plate.-0005.exr"),
        ("plate.####.exr", 12345, "plate.12345.exr"),
        ("plate.####.exr", -12345, "plate.-12345.exr"),
        ("plate.#.exr", 7, "plate.7.exr"),
        ("plate.#.exr", -7, "plate.-7.exr"),
        ("plate.%03d.exr", 42, "plate.042.exr"),
        ("plate.$F6.exr", 1001, "plate.001001.exr"),
    ],
)
def test_path_and_frame_of(text: str, frame: int, name: str) -> None:
    pattern = parse_pattern(f"/shots/{text}")
    assert pattern.path(frame) == Path("/shots") / name
    assert pattern.frame_of(Path("/shots") / name) == frame
    assert pattern.frame_of(name) == frame


@pytest.mark.parametrize(
    "name",
    [
        "plate.42.exr",  # fewer digits than the padding
        "plate.00042.exr",  # longer than needed: not how the frame is written
        "plate.-0000.exr",
        "plate.-5.exr",
        "plate.1001.jpg",
        "other.1001.exr",
        "plate..exr",
        "plate.-.exr",
        "plate.10a1.exr",
        "plate.+1001.exr",
        "plate.١٠٠١.exr",  # Arabic-Indic digits
        "plate.exr",
    ],
)
def test_frame_of_rejects(name: str) -> None:
    assert parse_pattern("plate.####.exr").frame_of(name) is None


def test_frame_of_unpadded_rejects_leading_zero() -> None:
    pattern = parse_pattern("plate.#.exr")
    assert pattern.frame_of("plate.007.exr") is None
    assert pattern.frame_of("plate.0.exr") == 0


def test_frame_of_prefix_and_suffix_do_not_overlap() -> None:
    assert parse_pattern("a#a").frame_of("a") is None
    assert parse_pattern("a#a").frame_of("a1a") == 1


# --- scan ----------------------------------------------------------------------------------------------


def _touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_bytes(b"")


def test_scan_finds_frames_sorted(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "plate.1003.exr",
        "plate.1001.exr",
        "plate.1002.exr",
        "plate.-0002.exr",
        "plate.10000.exr",  # more digits than the padding: part of the sequence
        "plate.999.exr",  # fewer digits: not part of it
        "plate.01004.exr",
        "plate.1005.exr.tmp",
        ".plate.1006.exr",
        "plate.1007.jpg",
        "other.1008.exr",
        "plate.####.exr",
    )
    (tmp_path / "plate.1009.exr").mkdir()
    assert parse_pattern(tmp_path / "plate.####.exr").scan() == [-2, 1001, 1002, 1003, 10000]
    assert parse_pattern(tmp_path / "plate.%04d.exr").scan() == [-2, 1001, 1002, 1003, 10000]


def test_scan_unpadded(tmp_path: Path) -> None:
    _touch(tmp_path, "f9.png", "f10.png", "f011.png", "f-1.png")
    assert parse_pattern(tmp_path / "f$F.png").scan() == [-1, 9, 10]


def test_scan_follows_symlinks(tmp_path: Path) -> None:
    _touch(tmp_path, "src.exr")
    (tmp_path / "plate.0001.exr").symlink_to(tmp_path / "src.exr")
    (tmp_path / "plate.0002.exr").symlink_to(tmp_path / "missing.exr")
    assert parse_pattern(tmp_path / "plate.####.exr").scan() == [1]


def test_scan_empty_folder(tmp_path: Path) -> None:
    assert parse_pattern(tmp_path / "plate.####.exr").scan() == []


def test_scan_missing_folder(tmp_path: Path) -> None:
    pattern = parse_pattern(tmp_path / "nope" / "plate.####.exr")
    with pytest.raises(SequenceError) as excinfo:
        pattern.scan()
    message = _message(excinfo)
    assert str(pattern) in message
    assert "does not exist" in message


def test_scan_folder_is_a_file(tmp_path: Path) -> None:
    _touch(tmp_path, "file")
    with pytest.raises(SequenceError) as excinfo:
        parse_pattern(tmp_path / "file" / "plate.####.exr").scan()
    assert "is not a folder" in _message(excinfo)


# --- pattern properties ------------------------------------------------------------------------------

_NAME_PART = st.text(alphabet="abcXYZ019._-", max_size=8)
_PATTERNS = st.builds(
    SequencePattern,
    directory=st.sampled_from([Path("."), Path("/shots/sh010"), Path("rel/plates")]),
    prefix=_NAME_PART,
    suffix=_NAME_PART,
    padding=st.integers(min_value=1, max_value=10),
    style=st.sampled_from(STYLES),
)


@given(pattern=_PATTERNS, frame=st.integers(min_value=-(10**14), max_value=10**14))
def test_frame_of_inverts_path(pattern: SequencePattern, frame: int) -> None:
    assert pattern.frame_of(pattern.path(frame)) == frame
    for style in STYLES:
        assert pattern.with_style(style).frame_of(pattern.path(frame)) == frame  # type: ignore[arg-type]


@given(pattern=_PATTERNS, frame=st.integers(min_value=0, max_value=10**5))
def test_frame_of_beyond_padding(pattern: SequencePattern, frame: int) -> None:
    big = frame + 10**pattern.padding
    assert len(pattern.path(big).name) > len(pattern.prefix + pattern.suffix) + pattern.padding
    assert pattern.frame_of(pattern.path(big)) == big
    assert pattern.frame_of(pattern.path(-big)) == -big


@given(pattern=_PATTERNS)
def test_parse_of_str_round_trips(pattern: SequencePattern) -> None:
    assert parse_pattern(str(pattern)) == pattern
    for style in STYLES:
        assert parse_pattern(str(pattern.with_style(style))) == pattern.with_style(style)  # type: ignore[arg-type]
    assert parse_pattern(pattern.nuke_string()) == pattern.with_style("hash")


@given(
    prefix=st.text(alphabet="ab#%$dF{}0123._", max_size=6),
    suffix=st.text(alphabet="ab#%$dF{}0123._", max_size=6),
    padding=st.integers(min_value=1, max_value=5),
    style=st.sampled_from(STYLES),
)
def test_any_accepted_pattern_round_trips(prefix: str, suffix: str, padding: int, style: str) -> None:
    try:
        pattern = SequencePattern(Path("/p"), prefix, suffix, padding, style)  # type: ignore[arg-type]
    except SequenceError as error:
        assert "\n" not in str(error)
        return
    for other in STYLES:
        restyled = pattern.with_style(other)  # type: ignore[arg-type]
        assert parse_pattern(str(restyled)) == restyled
    assert pattern.frame_of(pattern.path(-3)) == -3


# --- frame sets ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "frames"),
    [
        ("1001", [1001]),
        ("1001-1005", [1001, 1002, 1003, 1004, 1005]),
        ("1001-1001", [1001]),
        ("1001-1010x2", [1001, 1003, 1005, 1007, 1009]),
        ("1001-1010x20", [1001]),
        ("1001-1003,1020,1030-1040x5", [1001, 1002, 1003, 1020, 1030, 1035, 1040]),
        (" 1001-1002 , 1005 ,1003 ", [1001, 1002, 1003, 1005]),
        ("-10--7", [-10, -9, -8, -7]),
        ("-2-2", [-2, -1, 0, 1, 2]),
        ("-5--1x2", [-5, -3, -1]),
        ("-3", [-3]),
        ("5,1,3,1,1-3", [1, 2, 3, 5]),
        ("0", [0]),
    ],
)
def test_parse_frame_set(text: str, frames: list[int]) -> None:
    assert parse_frame_set(text) == frames


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "frame set '' is empty"),
        ("  ", "frame set '  ' is empty"),
        ("1001,,1003", "frame set '1001,,1003': empty item between commas"),
        ("1001,", "frame set '1001,': empty item between commas"),
        ("1100-1001", "frame set '1100-1001': '1100-1001' runs backwards; write 1001-1100"),
        ("-1--10", "'-1--10' runs backwards; write -10--1"),
        ("1001-1100x0", "frame set '1001-1100x0': step in '1001-1100x0' must be 1 or more"),
        ("1001-1100x-2", "step in '1001-1100x-2' must be 1 or more"),
        ("abc", "frame set 'abc': cannot read 'abc'"),
        ("1001x2", "cannot read '1001x2'"),
        ("1001-", "cannot read '1001-'"),
        ("1001 - 1100", "cannot read '1001 - 1100'"),
        ("1001-1100x", "cannot read '1001-1100x'"),
        ("1.5", "cannot read '1.5'"),
        ("+5", "cannot read '+5'"),
        ("١٠٠١", "cannot read"),
        ("1001\nabc", "frame set '1001\\nabc': cannot read '1001\\nabc'"),
        ("0-100000000000", f"more than {MAX_FRAME_SET_SIZE} frames"),
        ("1" * 5000, "too long a number"),
    ],
)
def test_parse_frame_set_errors(text: str, fragment: str) -> None:
    with pytest.raises(SequenceError) as excinfo:
        parse_frame_set(text)
    message = _message(excinfo)
    assert fragment in message


@pytest.mark.parametrize(
    ("frames", "text"),
    [
        ([1001, 1002, 1003, 1005, 1007], "1001-1003,1005-1007x2"),
        ([], ""),
        ([1001], "1001"),
        ([1001, 1002], "1001-1002"),
        ([3, 1, 2, 2, 1], "1-3"),
        ([1, 5, 6, 9], "1,5-6,9"),
        ([1, 3, 4, 5], "1,3-5"),
        ([1, 3, 5, 7, 8], "1-5x2,7-8"),
        (list(range(1001, 1101, 4)), "1001-1097x4"),
        (list(range(-10, 0)), "-10--1"),
        ([-3, -1, 1, 3], "-3-3x2"),
        ([1, 3, 7, 9, 11], "1-3x2,7-11x2"),
    ],
)
def test_format_frame_set(frames: list[int], text: str) -> None:
    assert format_frame_set(frames) == text


@given(st.lists(st.integers()))
def test_frame_set_round_trip_any_ints(frames: list[int]) -> None:
    text = format_frame_set(frames)
    if frames:
        assert parse_frame_set(text) == sorted(set(frames))
    else:
        assert text == ""


@given(st.lists(st.integers(min_value=-50, max_value=50), min_size=1))
def test_frame_set_round_trip_dense(frames: list[int]) -> None:
    assert parse_frame_set(format_frame_set(frames)) == sorted(set(frames))


@given(
    st.lists(
        st.tuples(st.integers(-2000, 2000), st.integers(0, 300), st.integers(1, 7)),
        min_size=1,
        max_size=6,
    )
)
def test_parse_frame_set_matches_ranges(items: list[tuple[int, int, int]]) -> None:
    text = ", ".join(f"{first}-{first + length}x{step}" for first, length, step in items)
    expected = sorted({f for first, length, step in items for f in range(first, first + length + 1, step)})
    assert parse_frame_set(text) == expected
    assert parse_frame_set(format_frame_set(expected)) == expected


# --- FrameRange, frame_range_of, find_missing -------------------------------------------------------


def test_frame_range() -> None:
    frames = FrameRange(1001, 1100)
    assert len(frames) == 100
    assert list(frames)[:2] == [1001, 1002]
    assert list(frames)[-1] == 1100
    assert 1001 in frames
    assert 1100 in frames
    assert 1000 not in frames
    assert 1101 not in frames
    assert "1001" not in frames
    assert str(frames) == "1001-1100"
    assert parse_frame_set(str(frames)) == list(frames)
    assert str(FrameRange(-10, -1)) == "-10--1"
    assert len(FrameRange(5, 5)) == 1
    assert FrameRange(1, 2) == FrameRange(1, 2)
    assert len({FrameRange(1, 2), FrameRange(1, 2)}) == 1


def test_frame_range_backwards() -> None:
    with pytest.raises(SequenceError) as excinfo:
        FrameRange(1100, 1001)
    assert "1100-1001 runs backwards" in _message(excinfo)


def test_frame_range_of() -> None:
    assert frame_range_of([1005, 1001, 1003]) == FrameRange(1001, 1005)
    assert frame_range_of(iter([-3])) == FrameRange(-3, -3)
    with pytest.raises(SequenceError) as excinfo:
        frame_range_of([])
    assert "no frames" in _message(excinfo)


def test_find_missing() -> None:
    assert find_missing([1001, 1002, 1005, 1007]) == [1003, 1004, 1006]
    assert find_missing([1007, 1001, 1001]) == [1002, 1003, 1004, 1005, 1006]
    assert find_missing([1, 2, 3]) == []
    assert find_missing([]) == []
    assert find_missing([-2, 2]) == [-1, 0, 1]


@given(st.lists(st.integers(-300, 300), min_size=1))
def test_find_missing_complements(frames: list[int]) -> None:
    missing = find_missing(frames)
    assert sorted(set(frames) | set(missing)) == list(frame_range_of(frames))
    assert not set(frames) & set(missing)
