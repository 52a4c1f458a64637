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


def test_several_gpus_point_to_devices_all(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from ldmvfi_core.doctor import check_cuda

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"Card {i}")
    check = check_cuda()
    assert check.ok and "cuda:0 Card 0, cuda:1 Card 1" in check.detail and "--devices all" in check.detail
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert "--devices" not in check_cuda().detail
