# SPDX-License-Identifier: MIT
"""The shipped job templates: valid Open Job Description, GPU / CPU variants in step, every value used."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from ldmvfi_core.cli import build_parser
from ldmvfi_core.farm.cli import main_farm
from ldmvfi_core.farm.template import GPU_AMOUNT, cpu_variant, gpu_template_text, template_text, templates_root

from .conftest import ROOT, run_openjd

GPU_FILE = ROOT / "farm" / "retime_exr" / "template.yaml"
CPU_FILE = ROOT / "farm" / "retime_exr_cpu" / "template.yaml"


def _steps(document: dict) -> dict[str, dict]:
    return {step["name"]: step for step in document["steps"]}


def _amounts(step: dict) -> list[str]:
    return [a["name"] for a in step.get("hostRequirements", {}).get("amounts", [])]


def _default(document: dict, name: str) -> object:
    return next(p.get("default") for p in document["parameterDefinitions"] if p["name"] == name)


@pytest.mark.parametrize("path", [GPU_FILE, CPU_FILE], ids=["gpu", "cpu"])
def test_openjd_check_passes(openjd: str, run_env: dict[str, str], path: Path, tmp_path: Path) -> None:
    result = run_openjd(openjd, ["check", str(path)], run_env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passes validation" in result.stdout


def test_shipped_cpu_template_is_generated_from_the_gpu_one() -> None:
    # Regenerate with: ldmvfi farm template --no-gpu -o farm/retime_exr_cpu/template.yaml
    assert CPU_FILE.read_text() == cpu_variant(GPU_FILE.read_text())
    assert template_text(gpu=False) == CPU_FILE.read_text()
    assert template_text(gpu=True) == GPU_FILE.read_text()


def test_gpu_requirement_only_on_the_gpu_render_step() -> None:
    gpu = _steps(yaml.safe_load(GPU_FILE.read_text()))
    cpu = _steps(yaml.safe_load(CPU_FILE.read_text()))
    assert _amounts(gpu["Render"]) == [GPU_AMOUNT]
    assert next(a for a in gpu["Render"]["hostRequirements"]["amounts"])["min"] == 1
    assert _amounts(gpu["Validate"]) == []  # checking files needs no GPU
    assert _amounts(cpu["Render"]) == [] and _amounts(cpu["Validate"]) == []
    # Everything else is the same job.
    for name in ("Render", "Validate"):
        assert gpu[name]["script"] == cpu[name]["script"]
        assert gpu[name].get("parameterSpace") == cpu[name].get("parameterSpace")
    assert _default(yaml.safe_load(GPU_FILE.read_text()), "Device") == "cuda"
    assert _default(yaml.safe_load(CPU_FILE.read_text()), "Device") == "cpu"


def test_render_step_is_chunked_over_output_frames() -> None:
    document = yaml.safe_load(GPU_FILE.read_text())
    assert document["specificationVersion"] == "jobtemplate-2023-09"
    assert "TASK_CHUNKING" in document["extensions"]
    steps = _steps(document)
    (frame,) = steps["Render"]["parameterSpace"]["taskParameterDefinitions"]
    assert frame == {"name": "Frame", "type": "CHUNK[INT]", "range": "{{Param.OutputFrames}}",
                     "chunks": {"defaultTaskCount": "{{Param.ChunkSize}}", "rangeConstraint": "CONTIGUOUS"}}
    assert steps["Validate"]["dependencies"] == [{"dependsOn": "Render"}]
    script = steps["Render"]["script"]["embeddedFiles"][0]["data"]
    for flag in ("--output-frames=${value[chunk]}", "--skip-existing", "--progress=json"):
        assert flag in script


def test_values_are_arguments_never_script_text() -> None:
    """No job or task value is pasted into a script (where quotes or $(...) in it would run)."""
    for document in (yaml.safe_load(GPU_FILE.read_text()), yaml.safe_load(CPU_FILE.read_text())):
        for step in document["steps"]:
            script = step["script"]
            for embedded in script["embeddedFiles"]:
                assert "{{" not in embedded["data"], f"{step['name']}: format string inside a script"
            assert script["actions"]["onRun"]["command"] == "bash"
            assert all(isinstance(a, str) for a in script["actions"]["onRun"]["args"])


def test_every_parameter_reaches_a_task_and_every_script_key_is_given() -> None:
    document = yaml.safe_load(GPU_FILE.read_text())
    defined = {p["name"] for p in document["parameterDefinitions"]}
    text = GPU_FILE.read_text()
    used = set(re.findall(r"\{\{Param\.(\w+)\}\}", text))
    assert used == defined
    render = _steps(document)["Render"]["script"]
    given = {arg.split("=", 1)[0] for arg in render["actions"]["onRun"]["args"][1:]}
    read = set(re.findall(r"\$\{value\[(\w+)\]\}", render["embeddedFiles"][0]["data"]))
    assert read == given


def test_templates_are_found_from_the_package() -> None:
    root = templates_root()
    assert root.joinpath("retime_exr", "template.yaml").read_text() == gpu_template_text()


def test_template_command_prints_and_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main_farm(["template"]) == 0
    assert capsys.readouterr().out == GPU_FILE.read_text()
    target = tmp_path / "cpu.yaml"
    assert main_farm(["template", "--no-gpu", "-o", str(target)]) == 0
    assert target.read_text() == CPU_FILE.read_text()


def _parameter(document: dict, name: str) -> dict:
    return next(p for p in document["parameterDefinitions"] if p["name"] == name)


@pytest.mark.parametrize("path", [GPU_FILE, CPU_FILE], ids=["gpu", "cpu"])
def test_prealign_is_an_off_on_switch_off_by_default(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    prealign = _parameter(document, "PreAlign")
    assert (prealign["type"], prealign["allowedValues"], prealign["default"]) == ("STRING", ["off", "on"], "off")
    render = _steps(document)["Render"]["script"]
    assert "prealign={{Param.PreAlign}}" in render["actions"]["onRun"]["args"]
    assert 'if [[ "${value[prealign]}" == on ]]; then args+=(--prealign); fi' in render["embeddedFiles"][0]["data"]


_ECHO_RUNNER = "import json, sys\nprint(json.dumps(sys.argv[1:]), flush=True)\n"


@pytest.mark.parametrize("path", [GPU_FILE, CPU_FILE], ids=["gpu", "cpu"])
@pytest.mark.parametrize("prealign", ["off", "on"])
def test_render_task_forwards_prealign_only_when_on(openjd: str, run_env: dict[str, str], tmp_path: Path,
                                                    path: Path, prealign: str) -> None:
    """`openjd run` of the Render step, with a stand-in runner that prints the command line it gets:
    PreAlign=on adds --prealign (and `ldmvfi retime` parses it), off leaves it out."""
    echo = tmp_path / "echo_runner.py"
    echo.write_text(_ECHO_RUNNER)
    command = f"{sys.executable} {echo}"
    if len(command.split()) != 2:
        pytest.skip("LdmvfiCommand is split on white space; this Python's path has a space")
    params = {"LdmvfiCommand": command, "InputPattern": str(tmp_path / "p.####.exr"),
              "OutputPattern": str(tmp_path / "o.####.exr"), "SourceFrames": "1-3", "OutputFrames": "1-5",
              "Ensemble": "4", "PreAlign": prealign}
    args = ["run", str(path), *(a for k, v in params.items() for a in ("-p", f"{k}={v}")),
            "--step", "Render", "--task-param", "Frame=1-2"]
    result = run_openjd(openjd, args, run_env, tmp_path)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    (line,) = [line for line in log.splitlines() if '["retime"' in line]
    argv = json.loads(line[line.index('["retime"'):])
    assert argv.count("--prealign") == (prealign == "on")
    retime = build_parser().parse_args(argv)
    assert retime.prealign is (prealign == "on")
    assert (retime.ensemble, retime.output_frames) == (4, "1-2")  # the neighbours still arrive
    assert (retime.input, retime.output) == (params["InputPattern"], params["OutputPattern"])
