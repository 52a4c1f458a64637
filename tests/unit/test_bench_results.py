# SPDX-License-Identifier: MIT
"""bench/speed.py --results: its table goes into RESULTS.md in a section a rerun replaces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.results_md import markdown_table, update_section
from bench.speed import results_table
from tests.conftest import TINY

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_a_rerun_replaces_its_own_section_and_nothing_else(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\nhand-written notes\n")
    update_section(results, "speed a", "first")
    update_section(results, "speed b", "other")
    update_section(results, "speed a", "second")
    text = results.read_text()
    assert text.startswith("# Results\n\nhand-written notes\n")
    assert "first" not in text and text.count("second") == 1 and text.count("other") == 1
    assert text.index("second") < text.index("other")  # replaced in place, not moved to the end
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_bad_labels_and_broken_sections_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="label"):
        update_section(tmp_path / "R.md", "a --> b", "x")
    broken = tmp_path / "broken.md"
    broken.write_text("<!-- bench: s -->\nno end marker\n")
    with pytest.raises(ValueError, match="no end marker"):
        update_section(broken, "s", "x")
    assert broken.read_text() == "<!-- bench: s -->\nno end marker\n"


def test_the_table_carries_every_measured_row() -> None:
    """From a real H100 run's JSON (session 6): each (size, steps) row with its figures."""
    result = json.loads((BENCH / "speed_released_bf16_compiled_1080p_h100_s6.json").read_text())
    result.update(date="2026-11-26", command="python3 bench/speed.py ...")
    table = results_table(result)
    assert "NVIDIA H100" in table and "compile all" in table
    lines = [line for line in table.splitlines() if line.startswith("| 1920x1080 (1280x2048)")]
    assert len(lines) == len(result["rows"]) == 2
    for line, row in zip(lines, result["rows"], strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == str(row["steps"]) and cells[6] == str(row["end_to_end_ms"])
        assert cells[-1] == str(row["per_frame_ms_batch8"])


@pytest.mark.parametrize(("raw", "waiting"), [("speed_x1_s9_crop.json", ""), ("speed_h100_s18_call3.json", "60.1")])
def test_the_table_carries_the_per_frame_figures_along_a_shot(raw: str, waiting: str) -> None:
    """From session 9's and session 18's H100 runs (`--sequence 8`): the along-a-shot figure, then
    the same with each download awaited at once (session 18 on; empty before), are the last columns."""
    result = json.loads((BENCH / "raw" / raw).read_text())
    table = results_table(result)
    header, _, row = table.splitlines()[-3:]
    assert header.rstrip(" |").endswith("per frame along a shot, ms | the same, each download awaited at once, ms")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[-2] == str(result["rows"][0]["per_frame_ms_sequence"]) and cells[-1] == waiting


def test_markdown_table_shape() -> None:
    assert markdown_table(["a", "b"], [[1, None]]) == "| a | b |\n|---|---|\n| 1 |  |"


def test_a_shot_is_rendered_as_retime_batches_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--sequence 4 --sequence-batch 3`: every source encoded once, calls of 3 pairs, the last
    padded, and (as the retimer) the next call's sampling queued before this one decodes."""
    import numpy as np

    import bench.speed as speed
    from ldmvfi_core.interpolate import Interpolator

    interp = Interpolator.load(TINY / "weights.safetensors")
    prepared, calls = [], []
    prepare, start, finish = interp.prepare, interp.start_sampling, interp.finish_decoding
    monkeypatch.setattr(interp, "prepare", lambda frame: prepared.append(frame) or prepare(frame))

    def spy_start(f0, f1, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(("start", list(kwargs["seed"])))
        return start(f0, f1, **kwargs)

    def spy_finish(sampled, f0, f1):  # type: ignore[no-untyped-def]
        calls.append(("finish", len(calls)))
        return finish(sampled, f0, f1)

    monkeypatch.setattr(interp, "start_sampling", spy_start)
    monkeypatch.setattr(interp, "finish_decoding", spy_finish)
    monkeypatch.setattr(speed, "median_ms", lambda fn, repeats, warmup=1: (fn(), 8.0)[1])
    frame = np.random.default_rng(0).random((20, 30, 3), dtype=np.float32)
    assert speed.sequence_per_frame_ms(interp, frame, steps=2, length=4, batch=3) == 2.0
    assert len(prepared) == 5
    assert calls == [("start", [1, 2, 3]), ("start", [4, 4, 4]), ("finish", 2), ("finish", 3)]


def test_a_cpu_dry_run_of_speed_py_fills_every_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole script on the tiny model (wall-clock times): the flags of the next GPU call are wired."""
    import bench.speed as speed

    tiny = TINY / "config.json"
    out = tmp_path / "speed.json"
    monkeypatch.setattr("sys.argv", ["speed.py", "--device", "cpu", "--config", str(tiny), "--sizes", "64x48",
                                     "--steps", "2", "--repeats", "1", "--batches", "2", "--sequence", "3",
                                     "--sequence-batch", "2", "--decode-batch", "2", "--heads", "padded-first",
                                     "--ensemble", "2", "--out", str(out)])
    speed.main()
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert result["card"] == "CPU (dry run)" and result["decode_batch"] == 2 and result["heads"] == "padded-first"
    assert row["padded"] == "256x256" and row["sequence_batch"] == 2 and row["peak_gib"] is None
    assert result["ensemble"] == 2
    for key in ("encode2_ms", "unet_step_ms", "sampler_ms", "decode_ms", "end_to_end_ms", "per_frame_ms_batch2",
                "per_frame_ms_sequence"):
        assert row[key] > 0, key
    assert "per frame along a shot, 2 per call, ms" in results_table(result)
