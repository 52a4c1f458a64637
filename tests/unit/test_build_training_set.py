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


def _panning_clip(path: Path, frames: int = 20, size: int = 64) -> None:
    """A lossless clip of a smooth random texture panning 2 px a frame: no cuts, no still frames."""
    import av

    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (size // 8, (size + 2 * frames) // 8 + 1, 3)).astype(np.uint8)
    wide = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = size, size, "bgr0"
        for i in range(frames):
            frame = np.ascontiguousarray(wide[:, 2 * i : 2 * i + size])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def test_gap_scale_multiplies_every_gap_and_the_storage_window(tool: ModuleType, tmp_path: Path) -> None:
    clip = tmp_path / "pan.mkv"
    _panning_clip(clip)
    spec = tool.ClipSpec("pan.mkv", "CC0-1.0", "test", (1, 2))
    _, kept, info = tool.clip_candidates(clip, spec, 64)
    assert info["frames"] == 20 and info["cuts"] == []
    assert sorted({b - a for a, b, _ in kept}) == [1, 2] and len(kept) == (20 - 2) + (20 - 4)
    _, kept2, _ = tool.clip_candidates(clip, spec, 64, gap_scale=2)
    assert sorted({b - a for a, b, _ in kept2}) == [2, 4] and len(kept2) == (20 - 4) + (20 - 8)
    assert all(c - b == b - a for a, b, c in kept2)
    # A window twice as long holds as many whole triplets per stored frame at twice the gaps.
    def whole_per_frame(triplets: list, window: list[int]) -> float:
        held = set(window)
        return sum(all(i in held for i in t) for t in triplets) / len(window)

    first = tool.budget_windows(kept, 20, 8)[0]
    first2 = tool.budget_windows(kept2, 20, 16)[0]
    assert (first, first2) == (list(range(8)), list(range(16)))
    assert whole_per_frame(kept, first) == whole_per_frame(kept2, first2) == 10 / 8
