# SPDX-License-Identifier: MIT
"""tools/park_caches.sh, eval_arms.sh and ab_slice.sh, run in a scratch tree as the device would run them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run(tree: Path, script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(TOOLS / script), *args], cwd=tree, capture_output=True, text=True,
                          env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", **(env or {})}, check=False)


def test_parked_caches_come_back_whole_on_the_next_call(tmp_path: Path) -> None:
    cache = tmp_path / ".carry" / "train_cache_x"
    cache.mkdir(parents=True)
    (cache / "triplets.npz").write_bytes(b"items")
    assert _run(tmp_path, "park_caches.sh", "train_cache_x").returncode == 0
    shutil.rmtree(tmp_path / ".carry")  # the next call carries other things
    assert _run(tmp_path, "park_caches.sh", "--restore", "train_cache_x").returncode == 0
    assert (tmp_path / ".carry" / "train_cache_x" / "triplets.npz").read_bytes() == b"items"


def test_restoring_a_cache_never_parked_names_it(tmp_path: Path) -> None:
    result = _run(tmp_path, "park_caches.sh", "--restore", "train_cache_y")
    assert result.returncode == 1 and "no runs/keep/train_cache_y" in result.stdout


def test_an_arm_that_did_not_train_is_reported_not_scored(tmp_path: Path) -> None:
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "ae_probe.py").write_text(
        "import json, sys\nprint(json.dumps({'probe': 'eval', 'scored': sys.argv[2], 'args': sys.argv[3:]}))\n")
    for run, steps in (("runs/a", (24000, 25044)), ("runs/b", (24000,))):
        folder = tmp_path / run / "checkpoints"
        folder.mkdir(parents=True)
        for step in steps:
            (folder / f"step_{step:08d}.pt").write_bytes(b"")
    result = _run(tmp_path, "eval_arms.sh", "runs/a", "runs/b")
    assert '"scored": "runs/a/checkpoints/step_00025044.pt"' in result.stdout
    assert '"--weights", "both"' in result.stdout  # the average too, where the run kept one
    assert "runs/b: did not train" in result.stdout and '"scored": "runs/b' not in result.stdout
    assert result.returncode == 1


def test_a_probe_that_fails_shows_its_error_and_fails_the_call(tmp_path: Path) -> None:
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "ae_probe.py").write_text("raise SystemExit('ae_probe: no such eval folder')\n")
    folder = tmp_path / "runs" / "a" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "step_00025044.pt").write_bytes(b"")
    result = _run(tmp_path, "eval_arms.sh", "runs/a")
    assert "ae_probe: no such eval folder" in result.stdout and result.returncode == 1


def test_arms_are_scored_side_by_side_one_a_gpu_and_printed_in_order(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\nprintf 'GPU 0: fake\\nGPU 1: fake\\n'\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "ae_probe.py").write_text(
        "import json, os, sys, time\n"
        "time.sleep(0.3 if sys.argv[2].startswith('runs/a') else 0)\n"  # the first finishes last
        "print(json.dumps({'probe': 'eval', 'scored': sys.argv[2], 'gpu': os.environ['CUDA_VISIBLE_DEVICES']}))\n")
    for run in ("runs/a", "runs/b", "runs/c"):
        for step in (24000, 24500):
            _checkpoint(tmp_path, run, step)
    env = {"PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin"}
    result = _run(tmp_path, "eval_arms.sh", "runs/a", "runs/b", "runs/c", env=env)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert [line.split('"scored": "')[1].split('"')[0] for line in lines] == [
        f"runs/{r}/checkpoints/step_00024500.pt" for r in "abc"]
    assert ['"gpu": "0"' in lines[0], '"gpu": "1"' in lines[1], '"gpu": "0"' in lines[2]] == [True] * 3
    assert result.returncode == 0
    # AT=STEP scores that step's checkpoint of each run, and names a run without one
    _checkpoint(tmp_path, "runs/d", 24500)
    result = _run(tmp_path, "eval_arms.sh", "runs/a", "runs/d", env={**env, "AT": "24000"})
    assert "runs/a/checkpoints/step_00024000.pt" in result.stdout
    assert "runs/d: no checkpoint of step 24000" in result.stdout and result.returncode == 1


def test_each_set_is_scored_in_turn_and_a_failing_one_fails_the_call(tmp_path: Path) -> None:
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "ae_probe.py").write_text(
        "import json, sys\n"
        "if sys.argv[3] == 'missing': raise SystemExit('ae_probe: missing: no such folder')\n"
        "print(json.dumps({'probe': 'eval', 'set': sys.argv[3]}))\n")
    _checkpoint(tmp_path, "runs/a", 24500)
    result = _run(tmp_path, "eval_arms.sh", "runs/a", env={"SETS": ".carry/val .carry/eval"})
    assert [line for line in result.stdout.splitlines() if line.startswith("{")] == [
        '{"probe": "eval", "set": ".carry/val"}', '{"probe": "eval", "set": ".carry/eval"}']
    assert result.returncode == 0
    result = _run(tmp_path, "eval_arms.sh", "runs/a", env={"SETS": "missing .carry/eval"})
    assert '{"probe": "eval", "set": ".carry/eval"}' in result.stdout  # the sets after it still ran
    assert "ae_probe: missing: no such folder" in result.stdout and "eval_arms: failed on missing" in result.stdout
    assert result.returncode == 1


def _fake_machine(tree: Path, gpus: int) -> Path:
    """A scratch tree with a fake `nvidia-smi` and a fake `tools/train_slice.sh` that logs its calls."""
    bin_dir = tree / "bin"
    bin_dir.mkdir()
    listing = "".join(f"GPU {i}: fake\\n" for i in range(gpus))
    (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\nprintf '{listing}'\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    (tree / "tools").mkdir()
    (tree / "tools" / "train_slice.sh").write_text(
        'echo "$RUN gpus=$CUDA_VISIBLE_DEVICES args=$*" >> calls.txt\n')
    return bin_dir


def _checkpoint(tree: Path, run: str, step: int) -> Path:
    folder = tree / run / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:08d}.pt"
    path.write_bytes(b"weights")
    return path


def test_a_run_folder_left_on_the_machine_is_continued_by_every_arm(tmp_path: Path) -> None:
    bin_dir = _fake_machine(tmp_path, gpus=2)
    source = _checkpoint(tmp_path, "runs/s20b", 24969)
    result = _run(tmp_path, "ab_slice.sh", env={
        "PATH": f"{bin_dir}:/usr/bin:/bin", "OUT": str(tmp_path / "out"), "CKPT": "runs/s20b",
        "RUN_A": "runs/e", "RUN_B": "runs/f", "A": "--lr 1e-4", "B": "--lr 2e-5"})
    assert result.returncode == 0, result.stdout + result.stderr
    for run in ("runs/e", "runs/f"):
        assert (tmp_path / run / "checkpoints" / source.name).read_bytes() == b"weights"
    assert source.read_bytes() == b"weights"  # the source run is copied, not moved
    calls = sorted((tmp_path / "calls.txt").read_text().splitlines())
    assert calls[0].startswith("runs/e gpus=0 ") and calls[0].endswith("--lr 1e-4")
    assert calls[1].startswith("runs/f gpus=1 ") and calls[1].endswith("--lr 2e-5")


def test_a_checkpoint_that_is_an_arms_own_run_folder_is_refused_not_deleted(tmp_path: Path) -> None:
    bin_dir = _fake_machine(tmp_path, gpus=2)
    source = _checkpoint(tmp_path, "runs/s20b", 24969)
    result = _run(tmp_path, "ab_slice.sh", env={
        "PATH": f"{bin_dir}:/usr/bin:/bin", "CKPT": "runs/s20b", "RUN_A": "runs/e", "RUN_B": "runs/s20b"})
    assert result.returncode == 1 and "name another RUN_B" in result.stdout
    assert source.read_bytes() == b"weights"
    assert not (tmp_path / "calls.txt").exists()


def test_each_arms_progress_reaches_out_while_it_trains_and_is_cleared_after(tmp_path: Path) -> None:
    """A call that runs past its limit returns only $OUT: the arms' last lines must be there already."""
    bin_dir = _fake_machine(tmp_path, gpus=2)
    (tmp_path / "tools" / "train_slice.sh").write_text('echo "$RUN at step 24100"\nsleep 2\n')
    _checkpoint(tmp_path, "runs/s20b", 24969)
    out = tmp_path / "out"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "OUT": str(out), "CKPT": "runs/s20b", "RUN_A": "runs/e",
           "RUN_B": "runs/f", "PROGRESS_EVERY": "0.2"}
    arms = subprocess.Popen(["bash", str(TOOLS / "ab_slice.sh")], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    progress = out / "arms_progress.txt"
    seen = ""
    for _ in range(150):  # up to 15 s; the arms sleep 2 s
        if arms.poll() is not None:
            break
        seen = progress.read_text() if progress.exists() else seen
        if "runs/f at step 24100" in seen:
            break
        time.sleep(0.1)
    output = arms.communicate(timeout=30)[0]
    assert "== arm A (runs/e)" in seen and "runs/e at step 24100" in seen, seen + output
    assert "== arm B (runs/f)" in seen and "runs/f at step 24100" in seen
    assert arms.returncode == 0, output
    assert not progress.exists() and not list(out.glob("arms_progress*"))  # the packed parts need the 8 files


def test_scores_reach_out_as_each_set_ends_and_are_cleared_after(tmp_path: Path) -> None:
    """A call that runs past its limit returns only $OUT: the runs scored so far must be there."""
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "ae_probe.py").write_text(
        "import json, sys, time\n"
        "time.sleep(1.5 if sys.argv[2].startswith('runs/b') else 0)\n"  # one GPU: a is scored, then b
        "print(json.dumps({'probe': 'eval', 'set': sys.argv[3]}))\n")
    _checkpoint(tmp_path, "runs/a", 24500)
    _checkpoint(tmp_path, "runs/b", 24500)
    out = tmp_path / "out"
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "OUT": str(out)}
    scoring = subprocess.Popen(["bash", str(TOOLS / "eval_arms.sh"), "runs/a", "runs/b"], cwd=tmp_path, env=env,
                               text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    partial = out / "eval_scores_partial.jsonl"
    seen = ""
    for _ in range(100):  # up to 10 s; b's probe sleeps 1.5 s
        seen = partial.read_text() if partial.exists() else seen
        if seen or scoring.poll() is not None:
            break
        time.sleep(0.1)
    running = scoring.poll() is None
    output = scoring.communicate(timeout=30)[0]
    assert running and seen == ('{"checkpoint": "runs/a/checkpoints/step_00024500.pt", '
                                '"probe": "eval", "set": ".carry/eval"}\n'), seen + output
    assert output.count('"probe"') == 2 and scoring.returncode == 0
    assert not partial.exists()  # stdout, teed into $OUT by the caller, has them all
