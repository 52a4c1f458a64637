# SPDX-License-Identifier: MIT
"""tools/park_caches.sh and tools/eval_arms.sh, run in a scratch tree as the device would run them."""

from __future__ import annotations

import shutil
import subprocess
import sys
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
    (tmp_path / "tools" / "ae_probe.py").write_text("import sys\nprint('scored', sys.argv[2])\n")
    for run, steps in (("runs/a", (23579, 25044)), ("runs/b", (23579,))):
        folder = tmp_path / run / "checkpoints"
        folder.mkdir(parents=True)
        for step in steps:
            (folder / f"step_{step:08d}.pt").write_bytes(b"")
    result = _run(tmp_path, "eval_arms.sh", "runs/a", "runs/b")
    assert "scored runs/a/checkpoints/step_00025044.pt" in result.stdout
    assert "runs/b: did not train" in result.stdout and "scored runs/b" not in result.stdout
    assert result.returncode == 1
