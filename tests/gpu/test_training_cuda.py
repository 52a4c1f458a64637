# SPDX-License-Identifier: MIT
"""GPU checks of session 7's training and decoder changes (skipped without a GPU).

Run on the GPU machine: ``python -m pytest -m gpu tests/gpu -q``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ldmvfi_core.config import LDMVFIConfig
from ldmvfi_core.model.fused_heads import HEAD_FIELDS, pad_heads, unfuse_heads
from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI
from ldmvfi_core.train.configs import model_config
from ldmvfi_core.train.loop import TrainOptions, build_task, setup_runtime
from tests.unit.test_train_loop import MICRO

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _gradients(config: str, channels_last: bool) -> dict[str, torch.Tensor]:
    opts = TrainOptions(stage=1, out="unused", config=config, batch_size=2, crop=64, lr=1e-3, device="cuda",
                        precision="fp32", perceptual="off", channels_last=channels_last)
    task = build_task(opts, model_config(config), setup_runtime("cuda", "fp32"), fresh=True)
    frames = torch.rand(2, 3, 3, 64, 64, generator=torch.Generator().manual_seed(1)).cuda() * 2 - 1
    task.train_step(frames, 0)
    return {n: p.grad.double().cpu() for n, p in task.ae.named_parameters() if p.grad is not None}


def test_channels_last_training_step_matches_nchw_on_the_gpu(tmp_path: Path) -> None:
    """cuDNN picks other (NHWC) kernels for a channels-last model; in float32 without TF32 the
    gradients must still agree to summation order."""
    config = tmp_path / "micro.json"
    config.write_text(json.dumps(MICRO.to_official()))
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        nhwc, nchw = _gradients(str(config), True), _gradients(str(config), False)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    total = torch.cat([g.flatten() for g in nchw.values()]).norm()
    assert torch.cat([(nhwc[k] - nchw[k]).flatten() for k in nchw]).norm() <= 1e-3 * total


@pytest.mark.parametrize("fuse_first", [False, True])
def test_padded_heads_match_the_heads_on_the_gpu_in_bf16(fuse_first: bool) -> None:
    torch.manual_seed(0)
    decoder = LatentDiffusionVFI(LDMVFIConfig.tiny()).eval().first_stage_model.decoder.cuda()
    decoder.to(memory_format=torch.channels_last)
    feature = torch.randn(1, decoder.conv_out.out_channels, 96, 160, device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        expected = {field: getattr(decoder, attr)(feature).float() for field, attr in HEAD_FIELDS}
        padded = {k: v.float() for k, v in pad_heads(decoder, fuse_first=fuse_first)(feature).items()}
    unfuse_heads(decoder)
    for field, value in expected.items():
        scale = float(value.abs().max())
        assert float((padded[field] - value).abs().max()) <= 0.02 * scale + 1e-3, field  # bf16 rounding


def test_a_view_consistency_step_runs_and_the_log_names_the_peak_memory(tmp_path: Path) -> None:
    """Session 10's term on the GPU (bf16 autocast, channels-last): the doubled batch trains, and
    every log row says this process's peak memory (what a larger batch could still add)."""
    from ldmvfi_core.train.configs import Stage1Loss
    from ldmvfi_core.train.loop import LOG_NAME, run_training
    from tests.unit.test_train_loop import FixedTriplets

    config = tmp_path / "micro.json"
    config.write_text(json.dumps(MICRO.to_official()))
    opts = TrainOptions(stage=1, out=str(tmp_path / "run"), config=str(config), batch_size=2, crop=64, lr=1e-3,
                        steps=2, device="cuda", precision="bf16", num_workers=0, log_every=1, perceptual="off",
                        channels_last=True, loss=Stage1Loss(view_consistency_weight=0.5))
    run_training(opts, FixedTriplets(4, size=64))
    rows = [json.loads(line) for line in (tmp_path / "run" / LOG_NAME).read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert len(steps) == 2 and all(r["view_consistency"] > 0 and r["peak_gib"] > 0 for r in steps)
