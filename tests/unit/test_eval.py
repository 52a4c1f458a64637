# SPDX-License-Identifier: MIT
"""``ldmvfi eval``: metrics against hand-computed and independent values, baselines, folder runs, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ldmvfi_core.eval.baselines import flow_baseline, frame_average
from ldmvfi_core.eval.metrics import psnr, ssim
from ldmvfi_core.eval.run import evaluate_folder, main_eval
from ldmvfi_core.eval.sheet import STRIP_HEIGHT, SheetRow, contact_sheet
from ldmvfi_core.io.images import write_image

RNG = np.random.default_rng(7)


def _noise(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _texture(h: int, w: int, dx: float) -> np.ndarray:
    """A smooth analytic RGB texture (sum of sinusoids, wavelengths 14-40 px) moved right by dx."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    x = x - dx
    out = np.empty((h, w, 3))
    for c, (a, b, p) in enumerate([(1 / 17, 1 / 23, 0.3), (1 / 29, 1 / 14, 1.1), (1 / 40, 1 / 19, 2.0)]):
        out[..., c] = (128 + 50 * np.sin(2 * np.pi * (a * x + b * y) + p)
                       + 40 * np.cos(2 * np.pi * (b * x - a * y) + 2 * p))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _write_triplet(folder: Path, frames: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        write_image(folder / f"frame{i}.png", frame.astype(np.float32) / 255.0)


def _make_sets(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """2 sets x 2 triplets of different sizes (not multiples of 8); returns key -> frames."""
    made = {}
    for set_name, (h, w) in (("setA", (37, 45)), ("setB", (29, 51))):
        for seq in ("s1", "s2"):
            frames = (_noise(h, w), _noise(h, w), _noise(h, w))
            _write_triplet(root / set_name / seq, frames)
            made[f"{set_name}/{seq}"] = frames
    return made


# -- metrics -------------------------------------------------------------------------------------

def test_psnr_hand_computed() -> None:
    gt = np.zeros((2, 2, 3), np.uint8)
    pred = gt.copy()
    pred[0, 0, 0] = 255  # one value of twelve off by the peak: MSE = 255^2 / 12
    assert psnr(pred, gt) == pytest.approx(10 * math.log10(12), abs=1e-6)
    assert psnr(gt + 5, gt) == pytest.approx(-10 * math.log10(25 / 255**2 + 1e-8), abs=1e-9)
    assert psnr(gt, gt) == pytest.approx(80.0)  # the 1e-8 floor


def test_ssim_matches_scikit_image() -> None:
    metrics = pytest.importorskip("skimage.metrics")
    a = _noise(37, 53)
    b = np.clip(a.astype(int) + RNG.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    smooth0, smooth1 = _texture(40, 64, 0.0), _texture(40, 64, 3.0)
    for x, y in ((a, b), (smooth0, smooth1), (a, _noise(37, 53))):
        expected = metrics.structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
                                                 use_sample_covariance=False, data_range=255, channel_axis=-1)
        assert ssim(x, y) == pytest.approx(expected, abs=1e-10)


def test_ssim_analytic_cases() -> None:
    img = _texture(30, 40, 0.0)
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    # Flat images: no variance, so SSIM is the luminance term (2ab + C1) / (a^2 + b^2 + C1).
    a, b, c1 = 100.0, 110.0, (0.01 * 255) ** 2
    flat_a, flat_b = np.full((20, 20, 3), a, np.uint8), np.full((20, 20, 3), b, np.uint8)
    assert ssim(flat_a, flat_b) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-12)
    assert ssim(img, _texture(30, 40, 5.0)) < 0.9


def test_metrics_refuse_mismatched_images() -> None:
    with pytest.raises(ValueError, match="differ"):
        psnr(_noise(12, 12), _noise(12, 13))
    with pytest.raises(ValueError, match="window"):
        ssim(_noise(8, 30), _noise(8, 30))


# -- baselines -----------------------------------------------------------------------------------

def test_frame_average_is_exact_round_half_up() -> None:
    f0 = np.array([[[0, 1, 3], [255, 254, 10]]], np.uint8)
    f2 = np.array([[[255, 2, 4], [255, 255, 11]]], np.uint8)
    expected = np.floor((f0.astype(float) + f2) / 2 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(frame_average(f0, f2), expected)
    np.testing.assert_array_equal(frame_average(f0, f2), [[[128, 2, 4], [255, 255, 11]]])


def test_flow_baseline_recovers_a_pan() -> None:
    pytest.importorskip("cv2")
    f0, truth, f2 = _texture(72, 96, 0.0), _texture(72, 96, 2.0), _texture(72, 96, 4.0)
    flow, average = psnr(flow_baseline(f0, f2), truth), psnr(frame_average(f0, f2), truth)
    # A 4-px pan of 14-40 px waves: averaging ghosts (~29 dB), flow warps it into place (~41 dB).
    assert flow > average + 8.0, (flow, average)
    assert ssim(flow_baseline(f0, f2), truth) > 0.95


def test_flow_baseline_of_a_still_frame_is_the_frame() -> None:
    pytest.importorskip("cv2")
    still = _texture(40, 56, 0.0)
    diff = np.abs(flow_baseline(still, still).astype(int) - still)
    assert diff.max() <= 1  # zero flow up to DIS's sub-pixel noise


# -- folder evaluation ---------------------------------------------------------------------------

def test_evaluate_folder_gives_per_set_means(tmp_path: Path) -> None:
    made = _make_sets(tmp_path)
    results = evaluate_folder(tmp_path, {"average": frame_average, "first": lambda a, b: a},
                              keep={"setB/s2"})
    assert [(t.set_name, t.name, t.method) for t in results.triplets] == [
        (s, q, m) for s in ("setA", "setB") for q in ("s1", "s2") for m in ("average", "first")]
    for set_name in ("setA", "setB"):
        for method, fn in (("average", frame_average), ("first", lambda a, b: a)):
            frames = [made[f"{set_name}/{q}"] for q in ("s1", "s2")]
            score = results.set_score(set_name, method)
            assert score.n == 2
            assert score.psnr == pytest.approx(np.mean([psnr(fn(f0, f2), f1) for f0, f1, f2 in frames]))
            assert score.ssim == pytest.approx(np.mean([ssim(fn(f0, f2), f1) for f0, f1, f2 in frames]))
    kept = results.predictions["setB/s2"]
    np.testing.assert_array_equal(kept["truth"], made["setB/s2"][1])
    np.testing.assert_array_equal(kept["first"], made["setB/s2"][0])
    assert set(results.predictions) == {"setB/s2"}


def test_float_predictions_are_rounded_to_8_bit(tmp_path: Path) -> None:
    made = _make_sets(tmp_path)
    as_float = evaluate_folder(tmp_path, {"m": lambda a, b: a.astype(np.float32) / 255.0}, limit=1)
    as_u8 = evaluate_folder(tmp_path, {"m": lambda a, b: a}, limit=1)
    assert [t.psnr for t in as_float.triplets] == [t.psnr for t in as_u8.triplets]
    assert [t.name for t in as_u8.triplets] == ["s1", "s1"] and len(made) == 4


def test_cli_baselines_print_the_table_and_write_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("cv2")
    _make_sets(tmp_path / "data")
    out = tmp_path / "scores.json"
    code = main_eval([str(tmp_path / "data"), "--no-model", "--methods", "average,flow", "--json", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0
    assert "| set | method | PSNR | SSIM | n |" in stdout
    assert "| setA | average |" in stdout and "| setB | flow |" in stdout
    data = json.loads(out.read_text())
    assert [(s["set_name"], s["method"], s["n"]) for s in data["sets"]] == [
        ("setA", "average", 2), ("setA", "flow", 2), ("setB", "average", 2), ("setB", "flow", 2)]
    assert len(data["triplets"]) == 8 and data["settings"]["limit"] is None
    assert not list(tmp_path.glob(".*tmp*")), "temporary file left behind"


def test_cli_writes_a_contact_sheet(tmp_path: Path) -> None:
    image_mod = pytest.importorskip("PIL.Image")
    _make_sets(tmp_path / "data")
    sheet = tmp_path / "sheet.png"
    assert main_eval([str(tmp_path / "data"), "--no-model", "--methods", "average", "--sheet", str(sheet),
                      "--quiet"]) == 0
    with image_mod.open(sheet) as im:
        # 4 columns (frame0, frame2, average, truth) of 240 px; rows 45 and 51 px wide images.
        heights = [round(37 * 240 / 45)] * 2 + [round(29 * 240 / 51)] * 2
        assert im.size == (4 * 240, sum(2 * STRIP_HEIGHT + h for h in heights))


def test_cli_creates_the_folders_of_its_outputs(tmp_path: Path) -> None:
    # An eval of the shipped model takes a quarter of an hour on a CPU: a missing output folder
    # must not make it fail at the end (it did, in session 8).
    pytest.importorskip("PIL.Image")
    _make_sets(tmp_path / "data")
    scores, sheet = tmp_path / "new" / "deeper" / "scores.json", tmp_path / "other" / "sheet.png"
    assert main_eval([str(tmp_path / "data"), "--no-model", "--methods", "average", "--json", str(scores),
                      "--sheet", str(sheet), "--quiet"]) == 0
    assert json.loads(scores.read_text())["sets"][0]["method"] == "average"
    assert sheet.stat().st_size > 0


def test_output_in_place_of_a_folder_is_a_one_line_error(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _make_sets(tmp_path / "data")
    (tmp_path / "taken").write_text("a file where the output folder should be")
    code = main_eval([str(tmp_path / "data"), "--no-model", "--methods", "average", "--json",
                      str(tmp_path / "taken" / "scores.json"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("ldmvfi eval: error:") and "taken" in err and "\n" not in err


def test_contact_sheet_geometry(tmp_path: Path) -> None:
    image_mod = pytest.importorskip("PIL.Image")
    frame = _noise(30, 40)
    rows = [SheetRow(f"set/{i}", {c: frame for c in ("frame0", "frame2", "ours", "average", "flow", "truth")},
                     {"ours": "31.00 dB"}) for i in range(2)]
    rows[1] = SheetRow("set/1", {"frame0": frame, "truth": frame})  # missing columns stay grey
    out = tmp_path / "grid.png"
    size = contact_sheet(rows, out, columns=["frame0", "frame2", "ours", "average", "flow", "truth"],
                         column_width=64)
    assert size == (6 * 64, 2 * (2 * STRIP_HEIGHT + 48))
    with image_mod.open(out) as im:
        assert im.size == size and im.mode == "RGB"
        pixels = np.asarray(im)
    cell = pixels[2 * STRIP_HEIGHT : 2 * STRIP_HEIGHT + 48, :64]
    assert abs(cell.astype(float).mean() - frame.astype(float).mean()) < 10  # the image, downscaled
    assert not list(tmp_path.glob(".*tmp*"))


# -- errors --------------------------------------------------------------------------------------

def test_missing_truth_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _make_sets(tmp_path)
    (tmp_path / "setB" / "s1" / "frame1.png").unlink()
    code = main_eval([str(tmp_path), "--no-model", "--methods", "average"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert "setB/s1/frame1.png: no such file" in captured.err and captured.err.count("\n") == 1


def test_sizes_differ_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_triplet(tmp_path / "set" / "a", (_noise(20, 24), _noise(20, 24), _noise(20, 26)))
    code = main_eval([str(tmp_path), "--no-model", "--methods", "average", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "a/frame2.png: 26x20 differs" in err and err.count("\n") == 1


def test_bad_method_and_no_triplets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main_eval([str(tmp_path), "--no-model"]) == 2
    assert "no triplets" in capsys.readouterr().err
    _make_sets(tmp_path)
    assert main_eval([str(tmp_path), "--no-model", "--methods", "ours"]) == 2
    assert "--no-model" in capsys.readouterr().err
    assert main_eval([str(tmp_path), "--methods", "average,magic"]) == 2
    assert "magic" in capsys.readouterr().err


def test_cli_ours_loads_the_model_once(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from ldmvfi_core.interpolate import Interpolator
    from tests.conftest import TINY

    loads = []
    real_load = Interpolator.load.__func__  # type: ignore[attr-defined]

    def counting_load(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
        loads.append(args)
        return real_load(cls, *args, **kwargs)

    monkeypatch.setattr(Interpolator, "load", classmethod(counting_load))
    _make_sets(tmp_path / "data")
    out = tmp_path / "scores.json"
    code = main_eval([str(tmp_path / "data"), "--model", str(TINY / "weights.safetensors"), "--methods",
                      "ours,average", "--steps", "2", "--json", str(out), "--quiet"])
    assert code == 0 and len(loads) == 1
    assert "| setB | ours |" in capsys.readouterr().out
    data = json.loads(out.read_text())
    ours = [t for t in data["triplets"] if t["method"] == "ours"]
    assert len(ours) == 4 and all(math.isfinite(t["psnr"]) and 0 < t["ssim"] <= 1 for t in ours)
    assert data["settings"]["steps"] == 2 and data["settings"]["prealign"] is False


def test_scores_name_the_models_own_step_count(tmp_path: Path) -> None:
    """Without --steps the model's own count runs, and the JSON records that number, not 0."""
    from tests.conftest import tiny_recommending

    model = tiny_recommending(2, tmp_path)
    _make_sets(tmp_path / "data")
    out = tmp_path / "scores.json"
    assert main_eval([str(tmp_path / "data"), "--model", str(model), "--methods", "ours",
                      "--limit", "1", "--json", str(out), "--quiet"]) == 0
    assert json.loads(out.read_text())["settings"]["steps"] == 2
