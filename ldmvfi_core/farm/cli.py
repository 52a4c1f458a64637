# SPDX-License-Identifier: MIT
"""``ldmvfi farm``: ``bundle`` (write a job bundle), ``validate`` (check outputs), ``template`` (print one).

``ldmvfi farm bundle`` takes every ``ldmvfi retime`` option: its parser *is* the retime parser
(from :func:`ldmvfi_core.cli.build_parser`) with the farm options added, so the two never drift.
A few retime options change meaning on the farm:

* ``--output-frames``: submit only these output frames (default: every frame the timing gives);
* ``--skip-existing``: keep output frames already on disk (without it, existing outputs are an
  error: the farm job always resumes, so it would silently keep them);
* ``--dry-run``: print the job and write nothing;
* ``--device``: defaults to ``cuda`` (``cpu`` with ``--no-gpu``);
* ``--devices``: refused: a task renders its chunk on one device and the farm spreads the chunks
  over its workers (``--chunk-size`` sets how many frames a task takes);
* ``--progress``: not used (farm tasks always report JSON progress).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

EXIT_USER_ERROR = 2
_USAGE = """\
usage: ldmvfi farm {bundle,validate,template} ...

Render-farm jobs (Open Job Description / Deadline Cloud) for `ldmvfi retime`.

commands:
  bundle    write a job bundle
            ldmvfi farm bundle --bundle-dir DIR [--chunk-size N] [--no-gpu] INPUT OUTPUT [retime options]
  validate  check that every output frame exists and reads
            ldmvfi farm validate OUTPUT_PATTERN --frames SET [--clean-temp] [--quarantine]
  template  print the job template (GPU, or CPU with --no-gpu)
            ldmvfi farm template [--no-gpu] [-o FILE]

`ldmvfi farm COMMAND --help` tells more.
"""


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            return action.choices[name]  # type: ignore[no-any-return]
    raise RuntimeError(f"ldmvfi has no '{name}' command")


def _action(parser: argparse.ArgumentParser, dest: str) -> argparse.Action:
    for action in parser._actions:
        if action.dest == dest:
            return action
    raise RuntimeError(f"ldmvfi retime has no option for {dest}")


def bundle_parser() -> argparse.ArgumentParser:
    """``ldmvfi retime``'s own parser plus the farm options."""
    from ldmvfi_core import cli
    from ldmvfi_core.farm.bundle import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE

    parser = _subparser(cli.build_parser(), "retime")
    parser.prog = "ldmvfi farm bundle"
    parser.description = (
        "Write a Deadline Cloud / Open Job Description job bundle that runs `ldmvfi retime` on a render "
        "farm, one task per chunk of output frames, then checks every output frame. Takes every "
        "`ldmvfi retime` option. Submit with `deadline bundle submit DIR`, or run it here with "
        "`openjd run DIR/template.yaml -p file://DIR/openjd_parameters.json --step Validate --run-dependencies`.")
    farm = parser.add_argument_group("farm")
    farm.add_argument("--bundle-dir", required=True, help="folder to write the job bundle into (created)")
    farm.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
                      help=f"output frames per task, 1-{MAX_CHUNK_SIZE}; each task loads the model once "
                           f"(default {DEFAULT_CHUNK_SIZE})")
    farm.add_argument("--no-gpu", action="store_true",
                      help="no GPU host requirement (CPU workers; --device cpu)")
    farm.add_argument("--ldmvfi-command", default="ldmvfi",
                      help="how workers start LDMVFI, split on white space, e.g. "
                           "'/opt/venv/bin/python -m ldmvfi_core.cli' (default: ldmvfi)")
    farm.add_argument("--job-name", help="job name in the farm monitor (default: LDMVFI retime OUTPUT-NAME)")

    parser.set_defaults(device=None)
    _action(parser, "device").help = "cpu, cuda, cuda:1, ... (default: cuda; cpu with --no-gpu)"
    _action(parser, "output_frames").help = "submit only these output frames (default: all the timing gives)"
    _action(parser, "skip_existing").help = (
        "keep output frames already on disk (without it, existing outputs are an error)")
    _action(parser, "dry_run").help = "print the job and write nothing"
    _action(parser, "progress").help = argparse.SUPPRESS
    _action(parser, "devices").help = "not for farm jobs: each task uses one device (see --chunk-size)"
    return parser


def _cmd_bundle(argv: Sequence[str]) -> int:
    import dataclasses

    from ldmvfi_core import cli
    from ldmvfi_core.farm.bundle import FarmSettings, plan_job, write_bundle

    args = bundle_parser().parse_args(list(argv))
    if args.devices:
        raise ValueError("--devices is for one machine; a farm task renders its chunk on one device and the "
                         "farm spreads chunks over its workers (use --device and --chunk-size)")
    settings = FarmSettings(chunk_size=args.chunk_size, gpu=not args.no_gpu,
                            ldmvfi_command=args.ldmvfi_command, job_name=args.job_name)
    device = args.device or ("cpu" if args.no_gpu else "cuda")
    options = dataclasses.replace(cli._retime_options(args), device=device)
    job = plan_job(options, settings)

    chunks = job.chunks
    print(f"job: {job.parameters['JobName']}")
    print(f"input: {job.parameters['InputPattern']} frames {job.parameters['SourceFrames']}")
    print(f"output: {job.parameters['OutputPattern']} frames {job.parameters['OutputFrames']}")
    print(f"tasks: {len(chunks)} of up to {job.chunk_size} frames; "
          f"{'GPU' if settings.gpu else 'CPU'} workers, device {device}")
    if args.dry_run:
        for name, value in job.parameters.items():
            print(f"  {name} = {value}")
        return 0
    folder = write_bundle(job, args.bundle_dir)
    print(f"wrote {folder}")
    print(f"submit: deadline bundle submit {folder}")
    return 0


def _cmd_validate(argv: Sequence[str]) -> int:
    from ldmvfi_core.farm.validate import main_validate

    return main_validate(list(argv))


def _cmd_template(argv: Sequence[str]) -> int:
    from pathlib import Path

    from ldmvfi_core.farm.template import template_text

    p = argparse.ArgumentParser(prog="ldmvfi farm template",
                                description="Print the retime job template (the GPU one, or the CPU one).")
    p.add_argument("--no-gpu", action="store_true", help="the CPU variant (no GPU host requirement)")
    p.add_argument("-o", "--output", help="write it to this file instead")
    args = p.parse_args(list(argv))
    text = template_text(gpu=not args.no_gpu)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


_COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "bundle": _cmd_bundle,
    "validate": _cmd_validate,
    "template": _cmd_template,
}


def main_farm(argv: list[str] | None = None) -> int:
    """``ldmvfi farm ...``; ``argv`` are the arguments after ``farm``. Returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        (sys.stdout if argv else sys.stderr).write(_USAGE)
        return 0 if argv else EXIT_USER_ERROR
    command, rest = argv[0], argv[1:]
    if command not in _COMMANDS:
        print(f"ldmvfi farm: unknown command '{command}' (choose from {', '.join(_COMMANDS)})", file=sys.stderr)
        return EXIT_USER_ERROR
    from ldmvfi_core.io.images import ImageError

    try:
        return _COMMANDS[command](rest)
    except SystemExit as stop:  # argparse: --help (0) or a usage error (2)
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        return EXIT_USER_ERROR
    except (ImageError, ValueError, FileNotFoundError) as err:
        print(f"ldmvfi farm {command}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
