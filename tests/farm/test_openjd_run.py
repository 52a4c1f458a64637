# SPDX-License-Identifier: MIT
"""A generated job bundle run with `openjd run`, in chunks, on the tiny model (CPU).

* the chunked job writes the same pixels as one `ldmvfi retime` of the whole range;
* each task writes only its own chunk's frames;
* a task killed after its first frame, rerun, keeps that frame (not rewritten) and finishes the
  chunk; the temp file a killed writer leaves never counts as a frame.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ldmvfi_core.farm.bundle import OPENJD_PARAMETERS_FILE, TEMPLATE_FILE
from ldmvfi_core.farm.cli import main_farm
from ldmvfi_core.farm.validate import validate_outputs

from .conftest import TINY_MODEL, read_attribute, read_pixels, run_openjd, write_plate

OUTPUT_FRAMES = [1, 2, 3, 4, 5]  # source 1-3 at factor 2: copies at 1, 3, 5; in-betweens at 2, 4
# The retime settings of both the reference and the farm job.
RETIME = ["--factor", "2", "--model", str(TINY_MODEL), "--steps", "2", "--device", "cpu", "--seed", "5",
          "--no-cut-detection"]


@pytest.fixture(scope="module")
def shot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shot")
    write_plate(folder / "plate")
    return folder


@pytest.fixture(scope="module")
def reference(shot: Path, ldmvfi_command: list[str], run_env: dict[str, str]) -> Path:
    """One uninterrupted `ldmvfi retime` of the whole range, in a subprocess like the farm tasks."""
    out = shot / "reference" / "ref.####.exr"
    subprocess.run([*ldmvfi_command, "retime", str(shot / "plate" / "plate.####.exr"), str(out), *RETIME,
                    "--progress", "none"], env=run_env, check=True, timeout=300)
    return out.parent


def _bundle(shot: Path, name: str, ldmvfi_command: list[str]) -> Path:
    bundle = shot / f"{name}-bundle"
    status = main_farm(["bundle", "--bundle-dir", str(bundle), "--chunk-size", "2", "--no-gpu",
                        "--ldmvfi-command", " ".join(ldmvfi_command), str(shot / "plate" / "plate.####.exr"),
                        str(shot / name / "out.####.exr"), *RETIME])
    assert status == 0
    return bundle


def _tasks(log: str) -> dict[str, list[dict]]:
    """JSON progress events of each Render task in an `openjd run` log, by chunk."""
    tasks: dict[str, list[dict]] = {}
    current = None
    for line in log.splitlines():
        chunk = re.search(r"Frame\(CHUNK\[INT\]\) = (\S+)", line)
        if chunk:
            current = tasks.setdefault(chunk.group(1), [])
        elif current is not None and '{"event"' in line:
            current.append(json.loads(line[line.index('{"event"'):]))
    return tasks


def _assert_same_pixels(path: Path, reference: Path) -> None:
    got, want = read_pixels(path), read_pixels(reference)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.array_equal(got, want), f"{path.name}: max difference {np.abs(got - want).max()}"


def test_chunked_job_matches_one_retime(openjd: str, shot: Path, reference: Path, ldmvfi_command: list[str],
                                        run_env: dict[str, str]) -> None:
    bundle = _bundle(shot, "farm", ldmvfi_command)
    result = run_openjd(openjd, ["run", str(bundle / TEMPLATE_FILE), "-p",
                                 f"file://{bundle / OPENJD_PARAMETERS_FILE}",
                                 "--step", "Validate", "--run-dependencies"], run_env, shot)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "ok: all 5 frames" in log  # the Validate step ran after the chunks

    tasks = _tasks(log)
    assert list(tasks) == ["1-2", "3-4", "5-5"]
    for chunk, events in tasks.items():  # each task writes its own chunk's frames and nothing else
        first, last = (int(x) for x in chunk.split("-"))
        written = [e["frame"] for e in events if e["event"] == "frame"]
        assert written == list(range(first, last + 1)), (chunk, events)

    for frame in OUTPUT_FRAMES:
        _assert_same_pixels(shot / "farm" / f"out.{frame:04d}.exr", reference / f"ref.{frame:04d}.exr")
    for frame in (2, 4):  # really synthesised by the model, with 2 steps
        assert read_attribute(shot / "farm" / f"out.{frame:04d}.exr", "ldmvfi:steps") == 2
    assert sorted(p.name for p in (shot / "farm").iterdir()) == [f"out.{f:04d}.exr" for f in OUTPUT_FRAMES]


def test_killed_task_rerun_keeps_finished_frames(openjd: str, shot: Path, reference: Path,
                                                 ldmvfi_command: list[str], run_env: dict[str, str]) -> None:
    bundle = _bundle(shot, "killed", ldmvfi_command)
    out = shot / "killed"
    # Chunk 1-2 as a task runs it, killed (SIGKILL: no clean-up) once its first frame is written.
    task = subprocess.Popen(
        [*ldmvfi_command, "retime", str(shot / "plate" / "plate.####.exr"), str(out / "out.####.exr"), *RETIME,
         "--frames", "1-3", "--output-frames", "1-2", "--skip-existing", "--progress", "json"],
        env=run_env, stdout=subprocess.PIPE, text=True)
    try:
        assert task.stdout is not None
        for line in task.stdout:
            if json.loads(line)["event"] == "frame":
                break
    finally:
        task.kill()
        task.wait(timeout=60)
    first, second = out / "out.0001.exr", out / "out.0002.exr"
    assert first.is_file()
    if second.exists():  # frame 2 is written in the background and may have landed before the kill:
        _assert_same_pixels(second, reference / "ref.0002.exr")  # then whole, never half a frame
        second.unlink()  # and the retry below must render it again
    # A writer killed mid-frame leaves a temp file under another name, never a partial frame.
    stale = out / ".out.0002.exr.tmp99999.exr"
    stale.write_bytes(b"half a frame")
    old = 1_000_000_000_000_000_000  # 2001, in ns: a rewrite would change it
    os.utime(first, ns=(old, old))
    before = first.stat()

    # The farm retries the task: the job template's own Render command for chunk 1-2.
    result = run_openjd(openjd, ["run", str(bundle / TEMPLATE_FILE), "-p", f"file://{bundle / OPENJD_PARAMETERS_FILE}",
                                 "--step", "Render", "--task-param", "Frame=1-2"], run_env, shot)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    events = _tasks(log)["1-2"]
    assert [(e["event"], e["frame"]) for e in events if e["event"] in ("frame", "skip")] == [("skip", 1), ("frame", 2)]

    after = first.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, old, before.st_size)
    for frame in (1, 2):
        _assert_same_pixels(out / f"out.{frame:04d}.exr", reference / f"ref.{frame:04d}.exr")
    report = validate_outputs(str(out / "out.####.exr"), [1, 2], clean_temp=True)
    # the stale file, and the kill's own temp file when it came mid-write of frame 2 (background)
    assert report.ok and stale in report.removed_temp_files
    assert all(p.name.startswith(".out.0002.exr.tmp") for p in report.removed_temp_files)
    assert not list(out.glob(".*tmp*"))


def test_paths_with_shell_characters_stay_data(openjd: str, shot: Path, ldmvfi_command: list[str],
                                               run_env: dict[str, str]) -> None:
    """Quotes, spaces, `$(...)` and globs in a path reach `ldmvfi retime` as they are and run nothing."""
    trap = shot / "PWNED"  # any shell evaluating the name would create this file
    folder = shot / "it's a \"test\" $(touch $PWNED) `touch $PWNED` ;touch $PWNED; *"
    bundle = shot / "odd-bundle"
    assert main_farm(["bundle", "--bundle-dir", str(bundle), "--no-gpu", "--method", "nearest",
                      "--ldmvfi-command", " ".join(ldmvfi_command), str(shot / "plate" / "plate.####.exr"),
                      str(folder / "o.####.exr"), "--speed", "0.5"]) == 0
    result = run_openjd(openjd, ["run", str(bundle / TEMPLATE_FILE), "-p", f"file://{bundle / OPENJD_PARAMETERS_FILE}",
                                 "--step", "Validate", "--run-dependencies"], {**run_env, "PWNED": str(trap)}, shot)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert sorted(p.name for p in folder.iterdir()) == [f"o.{f:04d}.exr" for f in OUTPUT_FRAMES]
    assert not trap.exists()
