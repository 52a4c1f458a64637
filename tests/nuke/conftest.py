# SPDX-License-Identifier: MIT
"""Fixtures for the Nuke plug-in tests: the fake ``nuke`` module, the plug-in as Nuke loads it.

``tests/nuke`` (fake_nuke, gizmo) and ``nuke_plugin`` (the ``ldmvfi_nuke`` package, as NUKE_PATH
makes it importable inside Nuke) go on ``sys.path``.
"""

from __future__ import annotations

import json
import runpy
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PLUGIN_DIR = ROOT / "nuke_plugin"
for _path in (HERE, PLUGIN_DIR):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import fake_nuke  # noqa: E402

FAKE_RUNNER = HERE / "fake_runner.py"


@pytest.fixture(autouse=True)
def nuke(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ModuleType]:
    """A fresh fake Nuke for every test, with its own cache folder and no studio environment."""
    fake_nuke.reset()
    monkeypatch.setitem(sys.modules, "nuke", fake_nuke)
    monkeypatch.setenv("LDMVFI_CACHE", str(tmp_path / "cache"))
    for name in ("LDMVFI_PYTHON", "LDMVFI_PYTHONPATH", "LDMVFI_SHORTCUT", "OCIO"):
        monkeypatch.delenv(name, raising=False)
    yield fake_nuke
    bake = sys.modules.get("ldmvfi_nuke.bake")
    if bake is not None:  # never leave a runner behind
        for job in list(bake._RUNNING.values()):
            if job.task is not None:
                job.task.cancelled = True
        try:
            fake_nuke.process_events(lambda: not bake._RUNNING, timeout=20)
        finally:
            bake._RUNNING.clear()


@pytest.fixture
def plugin(nuke: ModuleType) -> ModuleType:
    """The plug-in as Nuke starts it: init.py then menu.py run as scripts."""
    import ldmvfi_nuke.startup

    ldmvfi_nuke.startup._installed = False
    runpy.run_path(str(PLUGIN_DIR / "init.py"))
    runpy.run_path(str(PLUGIN_DIR / "menu.py"))
    return nuke


class Runner:
    """The fake runner: the command the node's python knob gets, and what it was asked to do."""

    def __init__(self, log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log = log
        self.monkeypatch = monkeypatch
        self.python = shlex.join([sys.executable, str(FAKE_RUNNER)])
        monkeypatch.setenv("FAKE_LDMVFI_LOG", str(log))
        self.mode("ok")

    def mode(self, mode: str) -> None:
        self.monkeypatch.setenv("FAKE_LDMVFI_MODE", mode)

    def calls(self) -> list[list[str]]:
        if not self.log.is_file():
            return []
        return [json.loads(line)["argv"] for line in self.log.read_text().splitlines()]

    def pids(self) -> list[int]:
        if not self.log.is_file():
            return []
        return [json.loads(line)["pid"] for line in self.log.read_text().splitlines()]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runner:
    return Runner(tmp_path / "runner_calls.jsonl", monkeypatch)


@pytest.fixture
def make_node(plugin: ModuleType, runner: Runner):
    """make_node(first, last, **knobs): a plate and an LDMVFI node under it, using the fake runner."""

    def make(first: int = 1001, last: int = 1005, **knobs: object):
        plate = fake_nuke.Source("Plate1", first, last)
        fake_nuke.state.selected = plate
        node = fake_nuke.createNode("LDMVFI")
        fake_nuke.state.selected = None
        node["runner_python"].setValue(runner.python)
        for name, value in knobs.items():
            node[name].setValue(value)
        return node

    return make
