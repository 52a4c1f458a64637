# SPDX-License-Identifier: MIT
"""``ldmvfi doctor`` reports every check on this (CPU) machine."""

from __future__ import annotations

import pytest

from ldmvfi_core.cli import main
from ldmvfi_core.doctor import CHECKS, Check, run_doctor


def test_doctor_lists_every_check_and_the_cpu_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for name in ("python", "torch", "cuda", "dsepconv", "openimageio", "ocio", "pyav", "model"):
        assert f" {name}" in out
    assert "torch path on the CPU" in out
    assert "no CUDA device" in out and "fix:" in out


def test_a_missing_essential_piece_fails(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from ldmvfi_core import doctor

    broken = (lambda: Check("openimageio", False, "not installed", "pip install 'ldmvfi[exr]'", essential=True),)
    monkeypatch.setattr(doctor, "CHECKS", broken)
    assert run_doctor() == 1
    assert "fix: pip install 'ldmvfi[exr]'" in capsys.readouterr().out
    assert len(CHECKS) >= 8
