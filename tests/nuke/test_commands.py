# SPDX-License-Identifier: MIT
"""Settings -> command lines; the real ``ldmvfi`` parser accepts every one of them."""

from __future__ import annotations

import pytest
from ldmvfi_nuke.commands import farm_bundle_argv, python_command, retime_argv, runner_env
from ldmvfi_nuke.settings import DEFAULTS, K, SettingsError, settings_from_values

from ldmvfi_core.cli import build_parser


def settings(**changes: object):
    values = dict(DEFAULTS)
    values.update({K.INPUT_FIRST: 1001, K.INPUT_LAST: 1010})
    values.update(changes)
    frame_map = [(1001 + i, 1001 + i / 2) for i in range(19)] if changes.get("method") == "frame curve" else []
    return settings_from_values(values, frame_map=frame_map, working_space="work", ocio_config="/studio/config.ocio")


def parse(argv: list[str]):
    assert argv[:3] == ["python3", "-m", "ldmvfi_core.cli"]
    return build_parser().parse_args(argv[3:])


def test_factor_command_line() -> None:
    argv = retime_argv(["python3"], "/c/in/src.####.exr", "/c/k/ldmvfi.####.exr", settings(factor=4))
    assert argv == [
        "python3", "-m", "ldmvfi_core.cli", "retime", "/c/in/src.####.exr", "/c/k/ldmvfi.####.exr",
        "--frames", "1001-1010", "--factor", "4", "--depth", "3", "--method", "ldmvfi",
        "--device", "cuda", "--precision", "float32", "--steps", "0", "--eta", "1.0", "--seed", "0", "--batch", "1",
        "--ensemble", "1",
        "--transfer", "hdr", "--channels", "all", "--other-channels", "warp", "--skip-existing",
        "--progress", "json",
    ]
    args = parse(argv)
    assert (args.factor, args.speed, args.frame_map, args.frames) == (4, None, None, "1001-1010")
    assert args.skip_existing and args.progress == "json" and args.model is None
    assert not args.prealign  # off by default: the flag is not on the command line


@pytest.mark.parametrize("speed", [0.4, 2.0, -0.5, -3.0])
def test_speed_command_line(speed: float) -> None:
    args = parse(retime_argv(["python3"], "i.####.exr", "o.####.exr", settings(method="speed", speed=speed)))
    assert args.speed == speed and args.factor is None


def test_frame_curve_command_line_needs_the_map_file() -> None:
    s = settings(method="frame curve")
    with pytest.raises(SettingsError, match="frame-map"):
        retime_argv(["python3"], "i.####.exr", "o.####.exr", s)
    args = parse(retime_argv(["python3"], "i.####.exr", "o.####.exr", s, "/c/k/frame_map.txt"))
    assert args.frame_map == "/c/k/frame_map.txt" and args.factor is None and args.speed is None


def test_model_colour_and_channel_options() -> None:
    s = settings(checkpoint="/models/ldmvfi.safetensors", steps=50, eta=0.0, seed=12, device="cuda:1",
                 precision="bfloat16", engine="blend", depth=5, detect_cuts=False, channels="rgba",
                 other_channels="nearest", transfer="ocio", ocio_to="disp", ensemble="4", prealign=True)
    args = parse(retime_argv(["python3"], "i.####.exr", "o.####.exr", s))
    assert (args.model, args.steps, args.eta, args.seed) == ("/models/ldmvfi.safetensors", 50, 0.0, 12)
    assert args.ensemble == 4 and args.prealign
    assert (args.device, args.precision, args.method, args.depth) == ("cuda:1", "bfloat16", "blend", 5)
    assert args.no_cut_detection and (args.channels, args.other_channels) == ("rgba", "nearest")
    assert (args.transfer, args.ocio_from, args.ocio_to, args.ocio_config) == (
        "none", "work", "disp", "/studio/config.ocio")


@pytest.mark.parametrize("transfer", ["hdr", "srgb", "none"])
def test_plain_transfers(transfer: str) -> None:
    args = parse(retime_argv(["python3"], "i.####.exr", "o.####.exr", settings(transfer=transfer)))
    assert args.transfer == transfer and args.ocio_from is None


def test_farm_bundle_command_line() -> None:
    argv = farm_bundle_argv(["python3"], "i.####.exr", "o.####.exr", settings(), "/c/k/farm_bundle")
    assert argv[:6] == ["python3", "-m", "ldmvfi_core.cli", "farm", "bundle", "i.####.exr"]
    assert argv[-2:] == ["--bundle-dir", "/c/k/farm_bundle"]
    retime = retime_argv(["python3"], "i.####.exr", "o.####.exr", settings())
    assert argv[7:-2] == retime[6:-2]  # the same retime options, without --progress


def test_python_command() -> None:
    assert python_command("", {}) == ["python3"]
    assert python_command("", {"LDMVFI_PYTHON": "/envs/ldmvfi/bin/python"}) == ["/envs/ldmvfi/bin/python"]
    assert python_command("  /opt/py/bin/python ", {"LDMVFI_PYTHON": "x"}) == ["/opt/py/bin/python"]
    # Split into words, never evaluated: a wrapper works, shell syntax is just text.
    assert python_command("rez env ldmvfi -- python", {}) == ["rez", "env", "ldmvfi", "--", "python"]
    assert python_command("'/path with space/python'", {}) == ["/path with space/python"]
    assert python_command("python; rm -rf /", {}) == ["python;", "rm", "-rf", "/"]
    with pytest.raises(SettingsError):
        python_command("'unclosed", {})


def test_runner_env_drops_nukes_python_settings() -> None:
    env = runner_env({"PYTHONHOME": "/nuke", "PYTHONPATH": "/nuke/lib", "PATH": "/bin", "OCIO": "/c.ocio"})
    assert env == {"PATH": "/bin", "OCIO": "/c.ocio", "PYTHONUNBUFFERED": "1"}
    env = runner_env({"PYTHONPATH": "/nuke/lib", "LDMVFI_PYTHONPATH": "/src/ldmvfi"})
    assert env["PYTHONPATH"] == "/src/ldmvfi"


def test_the_farm_bundle_parser_accepts_the_command_line() -> None:
    farm_cli = pytest.importorskip("ldmvfi_core.farm.cli")
    s = settings(method="frame curve", transfer="ocio", ocio_to="disp", checkpoint="/m.safetensors", prealign=True)
    argv = farm_bundle_argv(["python3"], "/c/i/src.####.exr", "/c/k/ldmvfi.####.exr", s, "/c/k/farm_bundle",
                            "/c/k/frame_map.txt")
    args = farm_cli.bundle_parser().parse_args(argv[5:])
    assert (args.input, args.output, args.bundle_dir) == (
        "/c/i/src.####.exr", "/c/k/ldmvfi.####.exr", "/c/k/farm_bundle")
    assert (args.frame_map, args.ocio_to, args.model, args.skip_existing) == (
        "/c/k/frame_map.txt", "disp", "/m.safetensors", True)
    assert args.prealign


@pytest.mark.parametrize("on", [False, True], ids=["off", "on"])
def test_prealign_is_passed_only_when_on(on: bool) -> None:
    """``--prealign`` is a flag: on adds it (once) to retime and farm bundle alike, off leaves it out."""
    s = settings(prealign=on)
    local = retime_argv(["python3"], "i.####.exr", "o.####.exr", s)
    farm = farm_bundle_argv(["python3"], "i.####.exr", "o.####.exr", s, "/c/job")
    assert local.count("--prealign") == farm.count("--prealign") == int(on)
    assert parse(local).prealign is on
    off = retime_argv(["python3"], "i.####.exr", "o.####.exr", settings(prealign=False))
    assert [w for w in local if w != "--prealign"] == off  # nothing else changes


def test_all_gpus_runs_one_worker_per_gpu_here_and_one_gpu_per_farm_task() -> None:
    s = settings(device="all GPUs")
    local = parse(retime_argv(["python3"], "/c/in/src.####.exr", "/c/k/o.####.exr", s))
    assert local.devices == "all" and local.device == "cpu"  # --device is not passed: --devices decides
    farm_argv = farm_bundle_argv(["python3"], "/c/in/src.####.exr", "/c/k/o.####.exr", s, "/c/job")
    assert "--devices" not in farm_argv and farm_argv[farm_argv.index("--device") + 1] == "cuda"


def test_the_ensemble_pulldown_offers_exactly_the_runners_sizes() -> None:
    """The Nuke side cannot import ldmvfi_core (stdlib only), so its copy of the sizes is checked here."""
    from ldmvfi_nuke.settings import ENSEMBLES

    from ldmvfi_core.ensemble import ENSEMBLE_SIZES

    assert tuple(str(n) for n in ENSEMBLE_SIZES) == ENSEMBLES
