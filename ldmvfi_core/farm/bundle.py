# SPDX-License-Identifier: MIT
"""``ldmvfi farm bundle``: ``ldmvfi retime`` options -> a Deadline Cloud / Open Job Description job bundle.

A job bundle is a folder Deadline Cloud submits as it is (``deadline bundle submit DIR``):

* ``template.yaml``: the job template (GPU or CPU variant, see :mod:`ldmvfi_core.farm.template`);
* ``parameter_values.yaml``: every job parameter, ``parameterValues: [{name, value}, ...]``;
* ``asset_references.yaml``: the input files (source frames, model, frame map, OCIO config) and the
  output folder, for Deadline Cloud job attachments;
* ``openjd_parameters.json``: the same values as a plain mapping, for
  ``openjd run DIR/template.yaml -p file://DIR/openjd_parameters.json`` on this machine.

The output frames come from the runner's own timing (``resolve_frames`` / ``resolve_time_map``), so the
farm renders exactly the frames ``ldmvfi retime`` would. Every path written is absolute.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml  # type: ignore[import-untyped,unused-ignore]

from ldmvfi_core.farm.frames import contiguous_chunks, openjd_range, parse_frames
from ldmvfi_core.farm.template import template_text
from ldmvfi_core.interpolate import check_steps
from ldmvfi_core.io.sequence import SequenceError, format_frame_set, parse_pattern
from ldmvfi_core.retime.plan import plan_retime
from ldmvfi_core.retime.runner import RetimeOptions, resolve_frames, resolve_time_map

DEFAULT_CHUNK_SIZE = 10
MAX_CHUNK_SIZE = 150  # Deadline Cloud's limit for chunks.defaultTaskCount
MAX_JOB_NAME = 128

TEMPLATE_FILE = "template.yaml"
PARAMETER_VALUES_FILE = "parameter_values.yaml"
ASSET_REFERENCES_FILE = "asset_references.yaml"
OPENJD_PARAMETERS_FILE = "openjd_parameters.json"


@dataclass(frozen=True)
class FarmSettings:
    """How the job runs on the farm (everything else is :class:`RetimeOptions`)."""

    chunk_size: int = DEFAULT_CHUNK_SIZE
    gpu: bool = True  # the Render step requires a GPU host (amount.worker.gpu >= 1)
    ldmvfi_command: str = "ldmvfi"  # how workers start LDMVFI, split on white space
    job_name: str | None = None


@dataclass(frozen=True)
class FarmJob:
    """A job ready to write as a bundle."""

    template: str
    parameters: dict[str, str | int]
    source_frames: list[int]
    output_frames: list[int]
    chunk_size: int
    input_files: list[str] = field(default_factory=list)
    output_directories: list[str] = field(default_factory=list)

    @property
    def chunks(self) -> list[tuple[int, int]]:
        """The (first, last) output frames of each Render task, as CONTIGUOUS chunking forms them."""
        return contiguous_chunks(self.output_frames, self.chunk_size)


def _absolute(path: str | None) -> str | None:
    return None if path is None else os.path.abspath(os.path.expanduser(path))


def absolute_options(options: RetimeOptions) -> RetimeOptions:
    """The options with every path absolute (farm workers run elsewhere, in another folder)."""
    colour = dataclasses.replace(options.colour, ocio_config=_absolute(options.colour.ocio_config))
    return dataclasses.replace(
        options, input=str(_absolute(options.input)), output=str(_absolute(options.output)),
        model=_absolute(options.model), frame_map=_absolute(options.frame_map), colour=colour,
    )


def _check_settings(options: RetimeOptions, settings: FarmSettings) -> None:
    if not 1 <= settings.chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"--chunk-size must be 1-{MAX_CHUNK_SIZE} (Deadline Cloud's limit), "
                         f"got {settings.chunk_size}")
    if not settings.ldmvfi_command.split():
        raise ValueError("--ldmvfi-command is empty")
    if not settings.gpu and options.device.startswith("cuda"):
        raise ValueError(f"--no-gpu sends the job to hosts without a GPU, but --device is {options.device}; "
                         "use --device cpu")
    check_steps(options.steps)
    if (options.colour.ocio_from is None) != (options.colour.ocio_to is None):
        raise ValueError("--ocio-from and --ocio-to go together")


def _timing(options: RetimeOptions) -> dict[str, str | int]:
    if options.speed is not None:
        timing = "speed"
    elif options.frame_map is not None:
        timing = "frame-map"
    else:
        timing = "factor"
    return {
        "Timing": timing,
        "Factor": options.factor if options.factor is not None else 2,
        # FLOAT parameters are written as Python's repr, so the worker parses the very same double.
        "Speed": repr(float(options.speed)) if options.speed is not None else "1.0",
        "FrameMap": options.frame_map or "",
    }


def job_parameters(options: RetimeOptions, settings: FarmSettings, source_frames: list[int],
                   output_frames: list[int]) -> dict[str, str | int]:
    """Template parameter values for ``options`` (absolute paths expected)."""
    name = settings.job_name or f"LDMVFI retime {Path(options.output).name}"
    colour = options.colour
    return {
        "JobName": name[:MAX_JOB_NAME],
        "LdmvfiCommand": settings.ldmvfi_command,
        "ChunkSize": settings.chunk_size,
        "InputPattern": options.input,
        "OutputPattern": options.output,
        "SourceFrames": format_frame_set(source_frames),
        "OutputFrames": openjd_range(output_frames),
        **_timing(options),
        "Depth": options.depth,
        "Method": options.method,
        "Model": options.model or "",
        "Weights": options.weights,
        "Device": options.device,
        "Precision": options.precision,
        "Padding": options.padding,
        "Steps": options.steps,
        "Eta": repr(float(options.eta)),
        "Seed": options.seed,
        "Transfer": colour.transfer,
        "OcioFrom": colour.ocio_from or "",
        "OcioTo": colour.ocio_to or "",
        "OcioConfig": colour.ocio_config or "",
        "Channels": options.channels,
        "OtherChannels": options.other_channels,
        "CutDetection": "on" if options.detect_cuts else "off",
        "NonFinite": options.nonfinite,
        "Compile": "on" if options.compile else "off",
        "Batch": options.batch,
        "Ensemble": options.ensemble,
        "PreAlign": "on" if options.prealign else "off",
    }


def _select_output_frames(options: RetimeOptions, timed: list[int]) -> list[int]:
    if not options.output_frames:
        return timed
    wanted = parse_frames(options.output_frames)
    unknown = sorted(set(wanted) - set(timed))
    if unknown:
        raise SequenceError(f"--output-frames {format_frame_set(unknown)}: not output frames of this timing "
                            f"(it gives {format_frame_set(timed)})")
    return wanted


def plan_job(options: RetimeOptions, settings: FarmSettings) -> FarmJob:
    """Check the request the way ``ldmvfi retime`` would and compute the job (nothing is written)."""
    options = absolute_options(options)
    _check_settings(options, settings)
    # The source frames seen now are pinned (SourceFrames): the farm renders what was submitted.
    plate, source_frames = resolve_frames(options)
    out_pattern = parse_pattern(options.output)
    time_map = resolve_time_map(options, source_frames[0], source_frames[-1])
    # The runner's own plan (scene cuts change what a frame shows, never which frames there are).
    plan = plan_retime(time_map, source_frames, depth=options.depth, method=options.method)
    timed = [f.output_frame for f in plan.frames]
    output_frames = _select_output_frames(options, timed)

    existing = [f for f in output_frames if out_pattern.path(f).exists()]
    if existing and not options.skip_existing:
        raise ValueError(
            f"{out_pattern}: {len(existing)} of the {len(output_frames)} output frames already exist "
            f"({format_frame_set(existing)}; first: {out_pattern.path(existing[0])}). The farm job keeps "
            "finished frames, so pass --skip-existing to keep these, or remove them or pick another output")

    inputs = [str(plate.pattern.path(f)) for f in source_frames]
    inputs += [p for p in (options.model, options.frame_map, options.colour.ocio_config) if p]
    return FarmJob(
        template=template_text(settings.gpu),
        parameters=job_parameters(options, settings, source_frames, output_frames),
        source_frames=source_frames,
        output_frames=output_frames,
        chunk_size=settings.chunk_size,
        input_files=inputs,
        output_directories=[str(out_pattern.directory)],
    )


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_bundle(job: FarmJob, bundle_dir: str | os.PathLike[str]) -> Path:
    """Write the job bundle files into ``bundle_dir`` (created; files of the same names replaced)."""
    folder = Path(os.path.abspath(bundle_dir))
    folder.mkdir(parents=True, exist_ok=True)
    values = [{"name": name, "value": value} for name, value in job.parameters.items()]
    assets = {
        "assetReferences": {
            "inputs": {"filenames": job.input_files, "directories": []},
            "outputs": {"directories": job.output_directories},
            "referencedPaths": [],
        }
    }
    _write_text(folder / TEMPLATE_FILE, job.template)
    _write_text(folder / PARAMETER_VALUES_FILE, yaml.safe_dump({"parameterValues": values}, sort_keys=False))
    _write_text(folder / ASSET_REFERENCES_FILE, yaml.safe_dump(assets, sort_keys=False))
    _write_text(folder / OPENJD_PARAMETERS_FILE, json.dumps(job.parameters, indent=1) + "\n")
    return folder


def read_parameter_values(bundle_dir: str | os.PathLike[str]) -> dict[str, object]:
    """``parameter_values.yaml`` of a bundle as a name -> value mapping."""
    document = yaml.safe_load((Path(bundle_dir) / PARAMETER_VALUES_FILE).read_text(encoding="utf-8"))
    return {item["name"]: item["value"] for item in document["parameterValues"]}
