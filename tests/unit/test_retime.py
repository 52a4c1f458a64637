# SPDX-License-Identifier: MIT
"""``ldmvfi retime`` end to end on small generated plates (and the bundled sample)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from ldmvfi_core.cli import main
from ldmvfi_core.io.exr import read_exr
from ldmvfi_core.io.images import ImageError
from ldmvfi_core.io.sequence import SequenceError
from ldmvfi_core.retime import runner as runner_module
from ldmvfi_core.retime.plan import Hold
from ldmvfi_core.retime.progress import JsonProgress
from ldmvfi_core.retime.runner import RetimeOptions, run_retime
from tests.conftest import TINY

WEIGHTS = str(TINY / "weights.safetensors")
SAMPLE = Path(__file__).resolve().parents[2] / "ldmvfi_core" / "samples" / "bbb"
W, H = 48, 40  # display window; frames may store less (data window)


def _texture(seed: int, shift: int = 0) -> np.ndarray:
    """A smooth random texture (scene-linear, with an HDR hot spot), shifted right by ``shift`` px."""
    rng = np.random.default_rng(seed)
    base = rng.random((H // 4 + 2, W // 4 + 6, 3)).astype(np.float32)
    big = np.kron(base, np.ones((4, 4, 1), np.float32))
    img = np.roll(big, shift, axis=1)[:H, :W]
    img[5:8, 5:8] = 40.0  # values far above 1.0
    img[:4] = img[36:] = 0.0  # letterbox bars, stored as zeros or not stored at all
    return img


def write_plate_frame(path: Path, rgb: np.ndarray, *, data_rows: tuple[int, int] | None = None,
                      depth: float = 12.0, nan: bool = False, size: tuple[int, int] = (W, H)) -> None:
    """RGBA half + depth.Z float, display window (0,0)-(W-1,H-1), optional smaller data window."""
    w, h = size
    y0, y1 = data_rows if data_rows else (0, h - 1)
    rows = y1 - y0 + 1
    spec = oiio.ImageSpec(w, rows, 5, "half")
    spec.channelnames = ("R", "G", "B", "A", "depth.Z")
    spec.channelformats = (oiio.TypeHalf,) * 4 + (oiio.TypeFloat,)
    spec.y = y0
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = 0, 0, w, h
    spec.attribute("compression", "piz")
    spec.attribute("framesPerSecond", oiio.TypeDesc("rational"), (25, 1))
    spec.attribute("owner", "plate dept")
    spec.attribute("ldmvfi:testInt", 7)
    pixels = np.zeros((rows, w, 5), np.float32)
    pixels[..., :3] = rgb[y0:y1 + 1, :w]
    pixels[..., 3] = 1.0
    pixels[..., 4] = depth
    if nan:
        pixels[2, 3, 1] = np.nan
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec)
    assert out.write_image(pixels)
    out.close()


@pytest.fixture
def plate(tmp_path: Path) -> Path:
    """Frames 1001-1004: a pan of 3 px per frame; even frames store only rows 4-35."""
    folder = tmp_path / "plate"
    folder.mkdir()
    for i, frame in enumerate(range(1001, 1005)):
        rows = (4, 35) if frame % 2 == 0 else None
        write_plate_frame(folder / f"plate.{frame}.exr", _texture(1, 3 * i), data_rows=rows, depth=10.0 + i)
    return folder / "plate.####.exr"


def _options(plate: Path, out: Path, **kw: object) -> RetimeOptions:
    base: dict[str, object] = dict(input=str(plate), output=str(out / "rt.####.exr"), model=WEIGHTS,
                                   steps=2, factor=2)
    base.update(kw)
    return RetimeOptions(**base)  # type: ignore[arg-type]


def _pixels(path: Path) -> np.ndarray:
    return read_exr(path).pixels


def test_model_retime_keeps_channels_windows_formats_and_metadata(plate: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_retime(_options(plate, out, frames="1001-1002"))
    assert result.written == [1001, 1002, 1003]
    mid = read_exr(out / "rt.1002.exr")
    src = read_exr(plate.parent / "plate.1001.exr")
    assert mid.channel_names == src.channel_names == ("R", "G", "B", "A", "depth.Z")
    assert mid.channel_formats == ("half", "half", "half", "half", "float")
    assert mid.display_window == src.display_window
    assert mid.data_window == src.data_window.union(read_exr(plate.parent / "plate.1002.exr").data_window)
    assert mid.compression == "piz"
    attrs = {name: value for name, _, value in mid.attributes}
    assert attrs["Copyright"] == "plate dept"  # OIIO reads EXR "owner" as Copyright
    assert attrs["ldmvfi:testInt"] == 7
    assert attrs["ldmvfi:sourceFrames"] == "1001,1002" and attrs["ldmvfi:sourceTime"] == 1001.5
    assert attrs["ldmvfi:seed"] == 0 and attrs["ldmvfi:steps"] == 2
    assert np.isfinite(mid.pixels).all()
    # exact source frames are copied, byte for byte
    assert (out / "rt.1001.exr").read_bytes() == (plate.parent / "plate.1001.exr").read_bytes()
    assert (out / "rt.1003.exr").read_bytes() == (plate.parent / "plate.1002.exr").read_bytes()


def test_any_chunking_renders_bit_identical_frames(plate: Path, tmp_path: Path) -> None:
    whole, chunked = tmp_path / "whole", tmp_path / "chunked"
    opts = dict(frames="1001-1003", factor=4, depth=2, eta=1.0)
    run_retime(_options(plate, whole, **opts))
    run_retime(_options(plate, chunked, output_frames="1006-1009", **opts))
    run_retime(_options(plate, chunked, output_frames="1001-1005", **opts))
    for frame in range(1001, 1010):
        a, b = whole / f"rt.{frame}.exr", chunked / f"rt.{frame}.exr"
        assert np.array_equal(_pixels(a), _pixels(b)), frame


def test_interrupted_run_resumes_without_redoing_frames(plate: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    reference, out = tmp_path / "ref", tmp_path / "out"
    opts = dict(frames="1001-1002", factor=4, depth=2)
    run_retime(_options(plate, reference, **opts))

    real_render = runner_module._render_planned
    calls = {"n": 0}

    def dying_render(*args: object, **kw: object) -> object:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # the farm killed the task mid-frame
        return real_render(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(runner_module, "_render_planned", dying_render)
    with pytest.raises(KeyboardInterrupt):
        run_retime(_options(plate, out, **opts))
    monkeypatch.setattr(runner_module, "_render_planned", real_render)
    # the three frames rendered before the interrupt were still written (in the background)
    done_before = {p.name: p.stat().st_mtime_ns for p in out.glob("rt.*.exr")}
    assert len(done_before) == 3 and not list(out.glob(".*tmp*"))

    result = run_retime(_options(plate, out, skip_existing=True, **opts))
    assert result.skipped == [1001, 1002, 1003] and result.written == [1004, 1005]
    for name, mtime in done_before.items():
        assert (out / name).stat().st_mtime_ns == mtime
    for frame in range(1001, 1006):
        assert np.array_equal(_pixels(out / f"rt.{frame}.exr"), _pixels(reference / f"rt.{frame}.exr"))


def test_blend_and_nearest_fallbacks_need_no_model(plate: Path, tmp_path: Path) -> None:
    out = tmp_path / "blend"
    run_retime(_options(plate, out, frames="1001-1002", method="blend", model=None))
    a, b = read_exr(plate.parent / "plate.1001.exr"), read_exr(plate.parent / "plate.1002.exr")
    mid = read_exr(out / "rt.1002.exr")
    from ldmvfi_core.io.exr import place

    expected = 0.5 * place(a, mid.data_window) + 0.5 * place(b, mid.data_window)
    np.testing.assert_allclose(mid.pixels, expected, rtol=1e-3, atol=1e-3)  # half precision on disk
    assert mid.pixels[..., :3].max() > 30.0  # the HDR hot spot survives
    near = tmp_path / "near"
    result = run_retime(_options(plate, near, frames="1001-1002", method="nearest", model=None, factor=4))
    assert [type(f.action) for f in result.plan.frames][1:4] == [Hold, Hold, Hold]
    assert (near / "rt.1002.exr").read_bytes() == (plate.parent / "plate.1001.exr").read_bytes()


def test_channel_selection_and_nearest_other_channels(plate: Path, tmp_path: Path) -> None:
    out = tmp_path / "rgba"
    run_retime(_options(plate, out, frames="1001-1002", channels="rgba"))
    assert read_exr(out / "rt.1002.exr").channel_names == ("R", "G", "B", "A")
    assert read_exr(out / "rt.1001.exr").channel_names == ("R", "G", "B", "A")
    near = tmp_path / "near"
    run_retime(_options(plate, near, frames="1001-1002", other_channels="nearest"))
    mid = read_exr(near / "rt.1002.exr")
    assert np.all(mid.pixels[..., 4] == 10.0)  # depth.Z of frame 1001, not warped


def test_scene_cut_is_held_and_reported(tmp_path: Path) -> None:
    folder = tmp_path / "cut"
    folder.mkdir()
    write_plate_frame(folder / "shot.0001.exr", _texture(1))
    write_plate_frame(folder / "shot.0002.exr", _texture(99) * 0.2)
    result = run_retime(_options(folder / "shot.####.exr", tmp_path / "out", frames="1-2"))
    assert result.cuts == [1]
    assert isinstance(result.plan.frames[1].action, Hold)
    assert any("scene cut between 1 and 2" in w for w in result.warnings)


def test_errors_are_one_line_and_name_the_problem(plate: Path, tmp_path: Path) -> None:
    folder = plate.parent
    with pytest.raises(SequenceError, match=r"missing source frame\(s\) 1005"):
        run_retime(_options(plate, tmp_path / "o1", frames="1001-1005"))
    os.remove(folder / "plate.1003.exr")
    with pytest.raises(SequenceError, match=r"plate\.1003\.exr"):
        run_retime(_options(plate, tmp_path / "o2"))

    odd = tmp_path / "odd"
    odd.mkdir()
    write_plate_frame(odd / "o.1.exr", _texture(1))
    write_plate_frame(odd / "o.2.exr", _texture(2)[:, :40].copy(), size=(40, H))
    with pytest.raises(ImageError, match=r"o\.2\.exr"):
        run_retime(_options(odd / "o.#.exr", tmp_path / "o3", frames="1-2", method="blend"))

    nan = tmp_path / "nan"
    nan.mkdir()
    write_plate_frame(nan / "n.1.exr", _texture(1))
    write_plate_frame(nan / "n.2.exr", _texture(1, 3), nan=True)
    with pytest.raises(ImageError, match=r"n\.2\.exr: NaN/Inf pixels \(G: 1\)"):
        run_retime(_options(nan / "n.#.exr", tmp_path / "o4", method="blend"))
    fixed = run_retime(_options(nan / "n.#.exr", tmp_path / "o5", method="blend", nonfinite="zero"))
    assert any("replaced NaN/Inf" in w for w in fixed.warnings)

    corrupt = tmp_path / "corrupt"
    shutil.copytree(folder, corrupt)
    data = (corrupt / "plate.1002.exr").read_bytes()
    (corrupt / "plate.1002.exr").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"plate\.1002\.exr"):
        run_retime(_options(corrupt / "plate.####.exr", tmp_path / "o6", frames="1001-1002", method="blend"))

    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    with pytest.raises((ImageError, OSError)):
        run_retime(_options(plate, blocker / "sub", frames="1001-1002", method="blend"))


def test_dry_run_prints_the_plan_and_writes_nothing(plate: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dry"
    code = main(["retime", str(plate), str(out / "x.####.exr"), "--frames", "1001-1002", "--factor", "4",
                 "--depth", "2", "--dry-run", "--method", "blend"])
    text = capsys.readouterr().out
    assert code == 0 and not out.exists()
    assert "1002: source time 1001.25 -> interpolate 1001-1002 at t=1/4" in text
    assert "1001: source time 1001 -> copy source 1001" in text
    assert f"input: {plate} frames 1001-1002" in text


def test_cli_json_progress_is_one_object_per_line(plate: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["retime", str(plate), str(tmp_path / "j" / "x.####.exr"), "--frames", "1001-1002",
                 "--method", "blend", "--progress", "json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert [e["event"] for e in lines] == ["start", "frame", "frame", "frame", "done"]
    assert [e["frame"] for e in lines if e["event"] == "frame"] == [1001, 1002, 1003]
    assert lines[-2]["done"] == lines[-2]["total"] == 3


def test_cli_error_is_one_line_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["retime", str(tmp_path / "none.####.exr"), str(tmp_path / "o.####.exr"), "--method", "blend"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "none.####.exr" in err


def test_bundled_sample_retimes_with_the_tiny_model(tmp_path: Path) -> None:
    progress_lines: list[str] = []

    class Capture:
        def write(self, text: str) -> None:
            progress_lines.append(text)

        def flush(self) -> None:
            pass

    result = run_retime(
        RetimeOptions(input=str(SAMPLE / "bbb.####.exr"), output=str(tmp_path / "bbb.####.exr"),
                      frames="1001-1002", factor=2, model=WEIGHTS, steps=2),
        JsonProgress(Capture()),  # type: ignore[arg-type]
    )
    assert result.written == [1001, 1002, 1003]
    mid = read_exr(tmp_path / "bbb.1002.exr")
    assert mid.pixels.shape == (180, 320, 4) and np.isfinite(mid.pixels).all()
    assert json.loads(progress_lines[-1])["event"] == "done"


def test_cut_detection_reads_each_inner_frame_once(plate: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = runner_module.SourcePlate.model_tensor

    def counting(self, frame, window, device):  # type: ignore[no-untyped-def]
        calls.append(frame)
        return original(self, frame, window, device)

    monkeypatch.setattr(runner_module.SourcePlate, "model_tensor", counting)
    result = run_retime(_options(plate, tmp_path / "out", method="blend", dry_run=True))
    assert result.cuts == []
    assert sorted(calls) == [1001, 1002, 1003, 1004]  # three pairs, four frames, no frame twice


def test_batch_groups_depend_only_on_the_whole_plan() -> None:
    from fractions import Fraction

    from ldmvfi_core.retime.plan import Node, batch_groups

    sources = [1001, 1002, 1003, 1004, 1005]
    half = [Node(a, a + 1, Fraction(1, 2)) for a in sources[:-1]]
    quarter = [Node(a, a + 1, Fraction(1, 4)) for a in sources[:-1]]
    groups = batch_groups([*half, *quarter], sources, 3)
    assert groups[half[0]] == groups[half[2]] == tuple(half[:3])  # pairs 0-2 share a block
    assert groups[half[3]] == (half[3],)  # pair 3 starts the next block
    assert groups[quarter[1]] == tuple(quarter[:3])  # another fraction: another group
    assert batch_groups(half, sources, 1)[half[1]] == (half[1],)
    with pytest.raises(ValueError, match="at least 1"):
        batch_groups(half, sources, 0)


def test_batched_retime_is_bit_identical_in_any_chunking_and_close_to_unbatched(plate: Path, tmp_path: Path) -> None:
    whole, chunked, single = tmp_path / "whole", tmp_path / "chunked", tmp_path / "single"
    opts = dict(factor=4, depth=2, eta=1.0)
    result = run_retime(_options(plate, whole, batch=2, **opts))
    assert len(result.written) == 13
    # chunk edges inside batch groups: 1003 needs pair 1001-1002 only, 1008 starts in the middle
    run_retime(_options(plate, chunked, batch=2, output_frames="1008-1013", **opts))
    run_retime(_options(plate, chunked, batch=2, output_frames="1003", **opts))
    run_retime(_options(plate, chunked, batch=2, output_frames="1001-1002,1004-1007", **opts))
    run_retime(_options(plate, single, **opts))
    for frame in range(1001, 1014):
        a, b = _pixels(whole / f"rt.{frame}.exr"), _pixels(chunked / f"rt.{frame}.exr")
        assert np.array_equal(a, b), frame
        # one in-between per call computes the same function (float summation order aside)
        np.testing.assert_allclose(a, _pixels(single / f"rt.{frame}.exr"), atol=2e-3, rtol=0)
    attrs = {name: value for name, _, value in read_exr(whole / "rt.1002.exr").attributes}
    assert attrs["ldmvfi:batch"] == 2
    with pytest.raises(ValueError, match="--batch must be at least 1"):
        run_retime(_options(plate, tmp_path / "bad", batch=0))


def test_steps_zero_uses_the_models_own_and_names_it(plate: Path, tmp_path: Path) -> None:
    """A weights file that recommends 4 steps renders with 4 when no steps are given (0), the
    same pixels as an explicit 4, and the frames say 4; a negative count is refused."""
    from tests.conftest import tiny_recommending

    model = tiny_recommending(4, tmp_path)
    own = run_retime(_options(plate, tmp_path / "own", frames="1001-1002", model=str(model), steps=0))
    explicit = run_retime(_options(plate, tmp_path / "explicit", frames="1001-1002", model=str(model), steps=4))
    other = run_retime(_options(plate, tmp_path / "other", frames="1001-1002", model=str(model), steps=2))
    assert own.written == explicit.written == other.written == [1001, 1002, 1003]
    mid = read_exr(tmp_path / "own" / "rt.1002.exr")
    assert {name: value for name, _, value in mid.attributes}["ldmvfi:steps"] == 4
    assert np.array_equal(mid.pixels, _pixels(tmp_path / "explicit" / "rt.1002.exr"))
    assert not np.array_equal(mid.pixels, _pixels(tmp_path / "other" / "rt.1002.exr"))
    with pytest.raises(ValueError, match="--steps must be 0"):
        run_retime(_options(plate, tmp_path / "neg", steps=-1))


def test_an_ensemble_retime_renders_the_views_mean_names_it_and_batches_alike(plate: Path, tmp_path: Path) -> None:
    """``--ensemble 4``: every in-between is the mean of four views (so it differs from the model
    alone while held source frames do not), the frames say 4, and batching the calls (the views'
    mirrored encodings cached and stacked) computes the same pixels."""
    opts = dict(frames="1001-1003", steps=2)
    run_retime(_options(plate, tmp_path / "one", **opts))
    run_retime(_options(plate, tmp_path / "ens", ensemble=4, **opts))
    run_retime(_options(plate, tmp_path / "ens_b2", ensemble=4, batch=2, **opts))
    for frame in (1001, 1003, 1005):  # the source frames, held
        held = _pixels(tmp_path / "one" / f"rt.{frame}.exr")
        assert np.array_equal(held, _pixels(tmp_path / "ens" / f"rt.{frame}.exr"))
    for frame in (1002, 1004):
        ens = _pixels(tmp_path / "ens" / f"rt.{frame}.exr")
        assert np.abs(ens[..., :3] - _pixels(tmp_path / "one" / f"rt.{frame}.exr")[..., :3]).max() > 1e-3
        np.testing.assert_allclose(ens, _pixels(tmp_path / "ens_b2" / f"rt.{frame}.exr"), atol=2e-3, rtol=0)
    attrs = {name: value for name, _, value in read_exr(tmp_path / "ens" / "rt.1002.exr").attributes}
    assert attrs["ldmvfi:ensemble"] == 4
    with pytest.raises(ValueError, match="--ensemble must be one of"):
        run_retime(_options(plate, tmp_path / "bad", ensemble=3))
    with pytest.raises(SystemExit):
        main(["retime", str(plate), str(tmp_path / "cli" / "rt.####.exr"), "--ensemble", "3"])
