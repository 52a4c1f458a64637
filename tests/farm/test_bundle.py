# SPDX-License-Identifier: MIT
"""`ldmvfi farm bundle`: the files Deadline Cloud reads, frames computed exactly like the runner."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from ldmvfi_core.cli import _retime_options, build_parser
from ldmvfi_core.farm.bundle import (
    ASSET_REFERENCES_FILE,
    OPENJD_PARAMETERS_FILE,
    PARAMETER_VALUES_FILE,
    TEMPLATE_FILE,
    FarmSettings,
    job_parameters,
    read_parameter_values,
)
from ldmvfi_core.farm.cli import bundle_parser, main_farm
from ldmvfi_core.farm.frames import contiguous_chunks, openjd_range, parse_frames
from ldmvfi_core.farm.template import template_document, template_text
from ldmvfi_core.retime.runner import RetimeOptions, run_retime
from ldmvfi_core.retime.sources import ColourSettings

from .conftest import TINY_MODEL, run_openjd, write_plate


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_plate(tmp_path_factory.mktemp("plate"), frames=(1, 2, 3, 4, 5))


def _bundle(argv: list[str]) -> int:
    return main_farm(["bundle", *argv])


def _runner_output_frames(argv: list[str]) -> list[int]:
    """The output frames `ldmvfi retime ARGV` plans (dry run, through the retime command's own parser)."""
    args = build_parser().parse_args(["retime", *argv, "--dry-run"])
    return [f.output_frame for f in run_retime(_retime_options(args)).plan.frames]


def test_bundle_writes_what_deadline_cloud_reads(plate: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "curve.txt").write_text("1 1\n9 5\n")
    status = _bundle(["--bundle-dir", "job", "--chunk-size", "4", plate, "out/shot.####.exr",
                      "--frame-map", "curve.txt", "--model", str(TINY_MODEL), "--steps", "7", "--seed", "3"])
    assert status == 0
    job = tmp_path / "job"
    assert sorted(p.name for p in job.iterdir()) == sorted(
        [TEMPLATE_FILE, PARAMETER_VALUES_FILE, ASSET_REFERENCES_FILE, OPENJD_PARAMETERS_FILE])
    assert (job / TEMPLATE_FILE).read_text() == template_text(gpu=True)

    raw = yaml.safe_load((job / PARAMETER_VALUES_FILE).read_text())
    assert set(raw) == {"parameterValues"} and all(set(v) == {"name", "value"} for v in raw["parameterValues"])
    values = read_parameter_values(job)
    defined = {p["name"] for p in template_document()["parameterDefinitions"]}
    assert set(values) == defined  # every parameter given, none unknown
    assert json.loads((job / OPENJD_PARAMETERS_FILE).read_text()) == values
    plate_dir = Path(plate).parent
    assert values["InputPattern"] == plate
    assert values["OutputPattern"] == str(tmp_path / "out" / "shot.####.exr")
    assert values["FrameMap"] == str(tmp_path / "curve.txt")
    assert values["Model"] == str(TINY_MODEL)
    assert (values["Timing"], values["SourceFrames"], values["OutputFrames"]) == ("frame-map", "1-5", "1-9")
    assert (values["ChunkSize"], values["Steps"], values["Seed"], values["Device"]) == (4, 7, 3, "cuda")

    assets = yaml.safe_load((job / ASSET_REFERENCES_FILE).read_text())["assetReferences"]
    assert assets["inputs"]["filenames"] == [
        *(str(plate_dir / f"plate.{f:04d}.exr") for f in range(1, 6)), str(TINY_MODEL), str(tmp_path / "curve.txt")]
    assert assets["outputs"]["directories"] == [str(tmp_path / "out")]
    for path in [*assets["inputs"]["filenames"], *assets["outputs"]["directories"]]:
        assert Path(path).is_absolute()


@pytest.mark.parametrize("timing", [
    ["--factor", "3"],
    ["--speed", "0.4"],
    ["--speed", "-1.5"],
    ["--frames", "1-5x2"],
    ["--frames", "2-4", "--factor", "4", "--output-frames", "3-6,9"],
    ["--frame-map", "MAP"],
], ids=["factor", "speed", "backwards", "stepped-sources", "subset", "frame-map"])
def test_output_frames_are_the_runners(plate: str, tmp_path: Path, timing: list[str]) -> None:
    curve = tmp_path / "curve.json"
    curve.write_text(json.dumps({"1001": 1.0, "1004": 2.0, "1010": 5.0}))
    timing = [str(curve) if t == "MAP" else t for t in timing]
    out = str(tmp_path / "out" / "o.####.exr")
    assert _bundle(["--bundle-dir", str(tmp_path / "job"), plate, out, *timing]) == 0
    values = read_parameter_values(tmp_path / "job")
    assert parse_frames(str(values["OutputFrames"])) == _runner_output_frames([plate, out, *timing])


def test_output_frames_outside_the_timing_are_refused(plate: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    status = _bundle(["--bundle-dir", str(tmp_path / "job"), plate, str(tmp_path / "o.####.exr"),
                      "--output-frames", "8-12"])
    assert status == 2
    assert "--output-frames 10-12: not output frames" in capsys.readouterr().err
    assert not (tmp_path / "job").exists()


def test_existing_outputs_need_skip_existing(plate: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "o.0004.exr").write_bytes(b"old render")
    argv = ["--bundle-dir", str(tmp_path / "job"), plate, str(out / "o.####.exr")]
    assert _bundle(argv) == 2
    err = capsys.readouterr().err
    assert "1 of the 9 output frames already exist (4;" in err and "--skip-existing" in err
    assert _bundle([*argv, "--skip-existing"]) == 0


def test_no_gpu_selects_the_cpu_template(plate: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "o.####.exr")
    assert _bundle(["--bundle-dir", str(tmp_path / "cpu"), "--no-gpu", plate, out]) == 0
    assert (tmp_path / "cpu" / TEMPLATE_FILE).read_text() == template_text(gpu=False)
    assert read_parameter_values(tmp_path / "cpu")["Device"] == "cpu"
    assert _bundle(["--bundle-dir", str(tmp_path / "bad"), "--no-gpu", "--device", "cuda", plate, out]) == 2
    assert "use --device cpu" in capsys.readouterr().err


def test_dry_run_writes_nothing(plate: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _bundle(["--bundle-dir", str(tmp_path / "job"), "--chunk-size", "4", "--dry-run", plate,
                    str(tmp_path / "o.####.exr")]) == 0
    out = capsys.readouterr().out
    assert "tasks: 3 of up to 4 frames" in out and "OutputFrames = 1-9" in out
    assert not (tmp_path / "job").exists()


def test_bad_requests_are_one_line_errors(plate: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "o.####.exr")
    job = ["--bundle-dir", str(tmp_path / "job")]
    assert _bundle([*job, "--chunk-size", "151", plate, out]) == 2
    assert _bundle([*job, str(tmp_path / "none.####.exr"), out]) == 2
    assert _bundle([*job, plate, out, "--frames", "1-9"]) == 2
    assert _bundle([*job, plate, out, "--ocio-from", "ACEScg"]) == 2
    assert _bundle([*job, plate, out, "--depth", "17"]) == 2
    assert _bundle([*job, plate, out, "--steps", "-1"]) == 2
    assert _bundle([*job, plate, out, "--devices", "all"]) == 2  # a farm task uses one device
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 7 and all(line.startswith("ldmvfi farm bundle: error: ") for line in err)
    assert main_farm(["nope"]) == 2 and main_farm([]) == 2 and main_farm(["--help"]) == 0


def test_prealign_reaches_the_bundle_as_off_or_on(plate: str, tmp_path: Path) -> None:
    """``--prealign`` becomes the template's PreAlign switch ("on"); without it, "off"."""
    assert _bundle(["--bundle-dir", str(tmp_path / "off"), plate, str(tmp_path / "o.####.exr")]) == 0
    assert _bundle(["--bundle-dir", str(tmp_path / "on"), plate, str(tmp_path / "p.####.exr"), "--prealign"]) == 0
    assert read_parameter_values(tmp_path / "off")["PreAlign"] == "off"
    assert read_parameter_values(tmp_path / "on")["PreAlign"] == "on"
    allowed = next(p for p in template_document()["parameterDefinitions"] if p["name"] == "PreAlign")
    assert "on" in allowed["allowedValues"]


def test_float_values_are_written_exactly(plate: str, tmp_path: Path) -> None:
    assert _bundle(["--bundle-dir", str(tmp_path / "job"), plate, str(tmp_path / "o.####.exr"),
                    "--speed", "0.1", "--eta", "0.30000000000000004"]) == 0
    values = read_parameter_values(tmp_path / "job")
    assert (values["Speed"], values["Eta"]) == ("0.1", "0.30000000000000004")
    assert float(str(values["Eta"])) == 0.1 + 0.2


def test_bundle_takes_every_retime_option() -> None:
    retime = next(a for a in build_parser()._actions if a.dest == "command").choices["retime"]  # type: ignore[attr-defined]
    bundle = bundle_parser()
    retime_options = {s for a in retime._actions for s in a.option_strings}
    bundle_options = {s for a in bundle._actions for s in a.option_strings}
    assert retime_options <= bundle_options
    assert {"--bundle-dir", "--chunk-size", "--no-gpu", "--ldmvfi-command"} <= bundle_options


# A value other than the default for every RetimeOptions field: a new field fails here until the
# job template forwards it (or it is listed as decided when the bundle is written).
_CHANGED = {
    "input": "/other/p.####.exr", "output": "/other/o.####.exr", "frames": "1-9", "factor": 3, "speed": 0.5,
    "frame_map": "/m.txt", "depth": 4, "method": "blend", "model": "/w.safetensors", "weights": "live",
    "device": "cuda:1", "precision": "bfloat16", "padding": "reference", "steps": 20, "eta": 0.0, "seed": 9,
    "colour": ColourSettings(transfer="srgb", ocio_from="a", ocio_to="b", ocio_config="/c.ocio"),
    "channels": "rgb", "other_channels": "nearest", "detect_cuts": False, "nonfinite": "zero",
    "compile": True, "batch": 3, "ensemble": 4, "prealign": True,
}
_DECIDED_AT_BUNDLE_TIME = {"output_frames", "skip_existing", "dry_run"}


def test_every_retime_option_reaches_the_job() -> None:
    base = RetimeOptions(input="/p/p.####.exr", output="/o/o.####.exr", frames="1-5")
    fields = {f.name for f in dataclasses.fields(RetimeOptions)}
    assert fields == set(_CHANGED) | _DECIDED_AT_BUNDLE_TIME
    params = job_parameters(base, FarmSettings(), [1, 2], [1, 2, 3])
    for name, value in _CHANGED.items():
        changed = job_parameters(dataclasses.replace(base, **{name: value}), FarmSettings(), [1, 2], [1, 2, 3])
        if name == "frames":  # the bundle writes the resolved source frames
            continue
        assert changed != params, f"{name} does not reach the job parameters"
    colour = job_parameters(dataclasses.replace(base, colour=_CHANGED["colour"]), FarmSettings(), [1], [1])
    ocio = (colour["Transfer"], colour["OcioFrom"], colour["OcioTo"], colour["OcioConfig"])
    assert ocio == ("srgb", "a", "b", "/c.ocio")


@pytest.mark.parametrize("gpu", [True, False], ids=["gpu", "cpu"])
def test_bundle_passes_openjd(openjd: str, run_env: dict[str, str], plate: str, tmp_path: Path, gpu: bool) -> None:
    job = tmp_path / "job"
    assert _bundle(["--bundle-dir", str(job), *([] if gpu else ["--no-gpu"]), plate, str(tmp_path / "o.####.exr"),
                    "--speed", "0.7", "--ocio-from", "lin", "--ocio-to", "srgb"]) == 0
    check = run_openjd(openjd, ["check", str(job / TEMPLATE_FILE)], run_env, tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    # The values fit the template's parameter definitions (types, allowed values, limits).
    summary = run_openjd(openjd, ["summary", str(job / TEMPLATE_FILE), "-p", f"file://{job / OPENJD_PARAMETERS_FILE}"],
                         run_env, tmp_path)
    assert summary.returncode == 0, summary.stdout + summary.stderr
    assert "Speed (FLOAT): 0.7" in summary.stdout


def test_frame_spellings_and_chunks() -> None:
    assert openjd_range([1, 2, 3, 5, 7, 9, 20]) == "1-3,5-9:2,20"
    assert parse_frames("1-3,5-9:2,20") == parse_frames("1-3,5-9x2,20") == [1, 2, 3, 5, 7, 9, 20]
    assert openjd_range([-3, -2, -1, 4]) == "-3--1,4"
    assert contiguous_chunks(range(1, 6), 2) == [(1, 2), (3, 4), (5, 5)]
    assert contiguous_chunks([1, 2, 3, 7, 8, 10], 2) == [(1, 2), (3, 3), (7, 8), (10, 10)]
    assert contiguous_chunks([5], 10) == [(5, 5)]
