# SPDX-License-Identifier: MIT
"""The SSIM training term: it is the eval's SSIM, it is float32 under autocast, it can be descended,
and the stage-1 loss carries it when asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ldmvfi_core.eval.metrics import ssim
from ldmvfi_core.train.command import build_parser, options_from_args
from ldmvfi_core.train.ssim_loss import ssim_loss
from tests.unit.test_train_loop import logged_stage1_term
from tests.unit.test_train_loop import micro_config as micro_config


def _as_model_units(image_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image_u8.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]


def _pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:40, 0:56]
    base = (127 + 100 * np.sin(xx / 5.0)[..., None] * np.cos(yy / 7.0)[..., None] * np.ones(3)).astype(np.uint8)
    noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    return noisy, base


def test_one_minus_the_term_is_the_eval_ssim() -> None:
    pred, truth = _pair()
    term = float(ssim_loss(_as_model_units(pred), _as_model_units(truth)))
    assert abs((1.0 - term) - ssim(pred, truth)) < 2e-5
    assert float(ssim_loss(_as_model_units(truth), _as_model_units(truth))) < 1e-6


def test_the_term_stays_float32_under_bfloat16_autocast() -> None:
    pred, truth = (_as_model_units(x) for x in _pair())
    plain = ssim_loss(pred, truth)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = ssim_loss(pred.bfloat16(), truth)
    assert under.dtype == torch.float32
    assert abs(float(under) - float(plain)) < 5e-3  # only the bfloat16 input rounding differs


def test_gradient_steps_raise_the_ssim() -> None:
    pred, truth = (_as_model_units(x) for x in _pair())
    x = pred.clone().requires_grad_(True)
    before = float(ssim_loss(pred, truth))
    for _ in range(20):
        loss = ssim_loss(x, truth)
        (grad,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x -= 20.0 * grad
    assert float(ssim_loss(x.detach(), truth)) < 0.5 * before


def test_stage1_logs_the_term_and_its_flag(tmp_path: Path, micro_config: str) -> None:
    from ldmvfi_core.train.configs import Stage1Loss

    values = logged_stage1_term(tmp_path, micro_config, Stage1Loss(ssim_weight=0.2), "ssim_loss")
    assert len(values) == 2 and all(0 < v < 2 for v in values)
    args = build_parser().parse_args(["--stage", "1", "--out", "x", "--ssim-weight", "0.2"])
    assert options_from_args(args).loss.ssim_weight == 0.2
