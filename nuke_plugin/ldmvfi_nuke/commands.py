# SPDX-License-Identifier: MIT
"""Settings -> the runner's command lines (``ldmvfi retime`` and ``ldmvfi farm bundle``).

Command lines are lists handed to ``subprocess`` without a shell; knob text is never evaluated.
The runner is started as ``<python> -m ldmvfi_core.cli ...`` with the Python of the environment
where ``ldmvfi_core`` is installed (the node's Python knob, else ``$LDMVFI_PYTHON``, else
``python3``), so Nuke's own Python never imports torch.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping

from .settings import ALL_GPUS, Settings, SettingsError

DEFAULT_PYTHON = "python3"
CLI_MODULE = "ldmvfi_core.cli"


def python_command(knob_text: str, env: Mapping[str, str]) -> list[str]:
    """The runner's interpreter as argv: knob text, else ``$LDMVFI_PYTHON``, else ``python3``.

    The text is split like a shell would split words (no expansion, no evaluation), so a
    wrapper works too: ``rez env ldmvfi -- python`` or ``/opt/envs/ldmvfi/bin/python``.
    """
    text = knob_text.strip() or env.get("LDMVFI_PYTHON", "").strip() or DEFAULT_PYTHON
    try:
        argv = shlex.split(text, posix=sys.platform != "win32")
    except ValueError as err:
        raise SettingsError(f"python: cannot split {text!r} into words ({err})") from None
    if not argv:
        raise SettingsError("python: empty command")
    return argv


def retime_options(settings: Settings, frame_map_path: str | None, *, farm: bool = False) -> list[str]:
    """Options shared by ``retime`` and ``farm bundle``, after INPUT OUTPUT."""
    s = settings
    opts = ["--frames", f"{s.input_first}-{s.input_last}"]
    if s.method == "factor":
        opts += ["--factor", str(s.factor)]
    elif s.method == "speed":
        opts += ["--speed", repr(s.speed)]
    else:
        if not frame_map_path:
            raise SettingsError("frame curve: no frame-map file was written")
        opts += ["--frame-map", frame_map_path]
    opts += ["--depth", str(s.depth), "--method", s.engine]
    if s.checkpoint:
        opts += ["--model", s.checkpoint]
    if s.device == ALL_GPUS:
        # Here: one worker per GPU. On the farm each task has one GPU, and the farm spreads the chunks.
        opts += ["--device", "cuda"] if farm else ["--devices", "all"]
    else:
        opts += ["--device", s.device]
    opts += ["--precision", s.precision, "--steps", str(s.steps), "--eta", repr(s.eta), "--seed", str(s.seed),
             "--batch", str(s.batch), "--ensemble", str(s.ensemble)]
    if s.prealign:
        opts.append("--prealign")
    if s.transfer == "ocio":
        # The OCIO conversion lands in the model's display range itself: no transfer curve after it.
        opts += ["--transfer", "none", "--ocio-from", s.ocio_from, "--ocio-to", s.ocio_to]
        if s.ocio_config:
            opts += ["--ocio-config", s.ocio_config]
    else:
        opts += ["--transfer", s.transfer]
    opts += ["--channels", s.channels, "--other-channels", s.other_channels]
    if not s.detect_cuts:
        opts.append("--no-cut-detection")
    # Outputs are keyed by settings and input, so frames already in the folder are ours:
    # keeping them resumes a cancelled run and picks up frames a farm job wrote.
    opts.append("--skip-existing")
    return opts


def retime_argv(python: list[str], input_pattern: str, output_pattern: str, settings: Settings,
                frame_map_path: str | None = None) -> list[str]:
    """``<python> -m ldmvfi_core.cli retime INPUT OUTPUT ... --progress json``."""
    return [*python, "-m", CLI_MODULE, "retime", input_pattern, output_pattern,
            *retime_options(settings, frame_map_path), "--progress", "json"]


def farm_bundle_argv(python: list[str], input_pattern: str, output_pattern: str, settings: Settings,
                     bundle_dir: str, frame_map_path: str | None = None) -> list[str]:
    """``<python> -m ldmvfi_core.cli farm bundle INPUT OUTPUT <retime options> --bundle-dir DIR``."""
    return [*python, "-m", CLI_MODULE, "farm", "bundle", input_pattern, output_pattern,
            *retime_options(settings, frame_map_path, farm=True), "--bundle-dir", bundle_dir]


def runner_env(base: Mapping[str, str]) -> dict[str, str]:
    """The runner's environment: Nuke's, minus what points Python at Nuke's own interpreter.

    Nuke sets PYTHONHOME/PYTHONPATH for its embedded Python; another interpreter that inherits
    them may import Nuke's standard library and fail. ``$LDMVFI_PYTHONPATH``, if set, becomes the
    runner's PYTHONPATH (e.g. a source checkout of ldmvfi_core).
    """
    env = {k: v for k, v in base.items() if k not in ("PYTHONHOME", "PYTHONPATH")}
    if base.get("LDMVFI_PYTHONPATH"):
        env["PYTHONPATH"] = base["LDMVFI_PYTHONPATH"]
    env["PYTHONUNBUFFERED"] = "1"  # progress lines arrive as they are printed
    return env
