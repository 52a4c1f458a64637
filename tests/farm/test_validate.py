# SPDX-License-Identifier: MIT
"""`ldmvfi farm validate`: every expected frame exists and reads; temp files never count."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ldmvfi_core.farm.cli import main_farm
from ldmvfi_core.farm.validate import main_validate, temp_files, validate_outputs
from ldmvfi_core.io.sequence import parse_pattern

from .conftest import write_plate


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    """Frames 1-5 of a valid sequence ``tmp_path/out/plate.####.exr``."""
    write_plate(tmp_path / "out", frames=(1, 2, 3, 4, 5))
    return tmp_path / "out"


def test_complete_sequence_passes(outputs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pattern = str(outputs / "plate.####.exr")
    assert main_farm(["validate", pattern, "--frames", "1-5"]) == 0
    assert "ok: all 5 frames" in capsys.readouterr().out
    # Open Job Description's step spelling (what the job passes) and ours.
    assert main_validate([pattern, "--frames", "1-5:2"]) == 0
    assert main_validate([pattern, "--frames", "1-5x2"]) == 0


def test_missing_and_corrupt_frames_are_listed(outputs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (outputs / "plate.0002.exr").unlink()
    (outputs / "plate.0003.exr").unlink()
    truncated = outputs / "plate.0004.exr"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    (outputs / "plate.0005.exr").write_bytes(b"not an image")
    pattern = str(outputs / "plate.####.exr")
    assert main_farm(["validate", pattern, "--frames", "1-6"]) == 1
    err = capsys.readouterr().err
    assert f"missing 3 of 6 frames: 2-3,6 (first: {outputs / 'plate.0002.exr'})" in err
    assert "unreadable 2 of 6 frames: 4-5" in err
    assert str(outputs / "plate.0004.exr") in err and str(outputs / "plate.0005.exr") in err


def test_quarantine_sets_unreadable_frames_aside(outputs: Path) -> None:
    (outputs / "plate.0003.exr").write_bytes(b"half a frame")
    report = validate_outputs(str(outputs / "plate.####.exr"), [1, 2, 3], quarantine=True)
    assert not report.ok and list(report.unreadable) == [3]
    assert not (outputs / "plate.0003.exr").exists()
    assert (outputs / ".plate.0003.exr.invalid").read_bytes() == b"half a frame"
    # A rerun with --skip-existing now re-creates frame 3 instead of keeping the bad file.
    assert parse_pattern(str(outputs / "plate.####.exr")).scan() == [1, 2, 4, 5]


def test_temp_files_never_count_and_clean_temp_removes_them(outputs: Path) -> None:
    # What a task killed while writing leaves: a temp name beside the frames, the frame itself absent.
    (outputs / "plate.0002.exr").rename(outputs / ".plate.0002.exr.tmp4242.exr")
    shutil.copyfile(outputs / "plate.0001.exr", outputs / ".plate.0001.exr.tmp77.exr")
    (outputs / ".other.0001.exr.tmp5.exr").write_bytes(b"someone else's")
    pattern = str(outputs / "plate.####.exr")
    assert parse_pattern(pattern).scan() == [1, 3, 4, 5]

    report = validate_outputs(pattern, range(1, 6))
    assert report.missing == [2]
    assert [p.name for p in report.temp_files] == [".plate.0001.exr.tmp77.exr", ".plate.0002.exr.tmp4242.exr"]
    assert (outputs / ".plate.0002.exr.tmp4242.exr").exists()

    report = validate_outputs(pattern, range(1, 6), clean_temp=True)
    assert len(report.removed_temp_files) == 2
    assert temp_files(parse_pattern(pattern), range(1, 6)) == []
    assert (outputs / ".other.0001.exr.tmp5.exr").exists()  # not a temp of ours


def test_bad_request_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main_validate([str(tmp_path / "plate.exr"), "--frames", "1"]) == 2
    assert main_validate([str(tmp_path / "plate.####.exr"), "--frames", "5-1"]) == 2
    assert "error:" in capsys.readouterr().err
