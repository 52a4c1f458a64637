# SPDX-License-Identifier: MIT
"""tools/build_training_set.py's HDRI stills: the licence gate and the scene-linear encoding."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.conftest import load_tool

CC0_NOTE = "All HDRIs are licenses as CC0.\n\nThese were created by Greg Zaal (HDRI Haven https://hdrihaven.com).\n"


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    return load_tool("build_training_set")


def _world_folder(stills_dir: Path, tool: ModuleType, note: str | None) -> Path:
    folder = stills_dir / "pkgs" / tool.HDRI_PACKAGE / tool.HDRI_DIR
    folder.mkdir(parents=True)
    if note is not None:
        (folder / "license.txt").write_text(note)
    return folder


def test_hdr_curve_key_values_become_8_bit(tool: ModuleType) -> None:
    # colour.py's table: hdr(0.18) = 0.3691, hdr(1) = 0.8, hdr(65504) = 1; negatives clip to black
    linear = np.array([[[0.18, 1.0, 65504.0], [0.0, -1.0, 1e9]]], np.float32)
    assert tool.display_from_scene_linear(linear).tolist() == [[[94, 204, 255], [0, 0, 255]]]


def test_hdris_are_listed_only_beside_the_cc0_note(tool: ModuleType, tmp_path: Path) -> None:
    folder = _world_folder(tmp_path, tool, CC0_NOTE)
    for name in ("night.exr", "city.exr", "readme.txt"):
        (folder / name).write_bytes(b"")
    stills = tool.hdri_stills(tmp_path)
    assert [s["name"] for s in stills] == ["city.exr", "night.exr"]
    assert {s["licence"] for s in stills} == {"CC0-1.0"}
    assert "Greg Zaal" in stills[0]["credit"] and "GPL-2+" in stills[0]["licence_note"]


@pytest.mark.parametrize("note", [
    "These HDRIs are CC-BY-NC.\n",
    "All HDRIs were licensed as CC0 until 2024; now CC-BY-NC.\n",  # still says CC0, but not only that
    CC0_NOTE + "Except night.exr: all rights reserved.\n",
])
def test_any_other_licence_note_stops_the_build(tool: ModuleType, tmp_path: Path, note: str) -> None:
    _world_folder(tmp_path, tool, note)
    with pytest.raises(SystemExit, match=re.escape("license.txt: its wording changed")):
        tool.hdri_stills(tmp_path)


def test_asking_for_hdris_that_are_not_there_stops_the_build(tool: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=re.escape("license.txt: missing")):
        tool.hdri_stills(tmp_path)  # package not unpacked
    _world_folder(tmp_path, tool, CC0_NOTE)
    with pytest.raises(SystemExit, match=re.escape("no .exr files")):
        tool.hdri_stills(tmp_path)


def test_hdris_are_opt_in(tool: ModuleType, tmp_path: Path) -> None:
    folder = _world_folder(tmp_path, tool, CC0_NOTE)
    (folder / "city.exr").write_bytes(b"")
    assert tool.list_stills(tmp_path, allow_sharealike=False) == []
    assert [s["name"] for s in tool.list_stills(tmp_path, allow_sharealike=False, hdris=True)] == ["city.exr"]


def test_an_exr_still_is_read_encoded_and_downscaled(tool: ModuleType, tmp_path: Path) -> None:
    pytest.importorskip("OpenImageIO")
    from ldmvfi_core.io.images import write_image

    path = tmp_path / "grey.exr"
    write_image(path, np.full((64, 128, 3), 0.18, np.float32))  # half float holds 0.18 as 0.17993
    still = tool.load_still(str(path), max_short_side=32)
    assert still.shape == (32, 64, 3) and still.dtype == np.uint8
    assert np.all(still == 94)


def test_fetched_clips_are_opt_in(tool: ModuleType) -> None:
    # the default --clips (clips not fetched) is the shipped model's data; new footage is asked for
    assert {c.name for c in tool.CLIPS if not c.fetched} == {"bigbuckbunny.mp4", "bikes.mp4", "vtest.avi"}
    assert {c.name for c in tool.CLIPS if c.fetched} == {"cityCC0.mpg", "cockatoo.mp4"}


def test_a_clip_from_a_debian_package_arrives_whole(tool: ModuleType, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tool.ClipSpec("clip.mp4", "CC0-1.0", "", (1,), deb=("some-package", "usr/share/clip.mp4"))

    def unpack(folder: Path, packages: list[str]) -> None:  # stands in for apt-get download + dpkg -x
        member = folder / "pkgs" / packages[0] / "usr/share/clip.mp4"
        member.parent.mkdir(parents=True)
        member.write_bytes(b"frames")

    monkeypatch.setattr(tool, "fetch_packages", unpack)
    target = tool.fetch_clip(spec, tmp_path)
    assert target == tmp_path / "clip.mp4" and target.read_bytes() == b"frames"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["clip.mp4", "pkgs"]  # no temporary file left
    assert tool.fetch_clip(spec, tmp_path) == target  # a second run uses the kept file


def test_a_debian_package_without_the_clip_stops_the_build(tool: ModuleType, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tool.ClipSpec("clip.mp4", "CC0-1.0", "", (1,), deb=("some-package", "usr/share/clip.mp4"))
    monkeypatch.setattr(tool, "fetch_packages", lambda folder, packages: None)
    with pytest.raises(SystemExit, match=re.escape("some-package: no usr/share/clip.mp4")):
        tool.fetch_clip(spec, tmp_path)
    assert not (tmp_path / "clip.mp4").exists()


def test_a_fetched_clip_must_be_the_file_whose_licence_was_checked(tool: ModuleType, tmp_path: Path) -> None:
    kept = tmp_path / "clip.mp4"
    kept.write_bytes(b"frames")
    good = hashlib.sha256(b"frames").hexdigest()
    spec = tool.ClipSpec("clip.mp4", "CC0-1.0", "", (1,), deb=("some-package", "clip.mp4"), sha256=good)
    assert tool.fetch_clip(spec, tmp_path) == kept
    kept.write_bytes(b"other frames")  # a later package version under the same name
    with pytest.raises(SystemExit, match=re.escape(f"{kept}: sha256 ")):
        tool.fetch_clip(spec, tmp_path)


def test_every_fetched_clip_is_pinned(tool: ModuleType) -> None:
    assert all(len(c.sha256 or "") == 64 for c in tool.CLIPS if c.fetched)
