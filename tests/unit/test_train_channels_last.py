# SPDX-License-Identifier: MIT
"""``ldmvfi train --channels-last``: the networks are stored NHWC and train as they do NCHW.

NHWC convolutions sum in another order, so the comparison is to float32 rounding, not bitwise:
gradients of one step agree closely, loss curves over three steps to 1e-5. (Weights after Adam
steps are not compared: Adam's first updates are about lr * sign(gradient), so a weight whose
gradient is ~0 moves by a full step either way.)
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from ldmvfi_core.train.checkpoint import latest_checkpoint, load_checkpoint
from ldmvfi_core.train.command import build_parser, options_from_args
from ldmvfi_core.train.configs import model_config
from ldmvfi_core.train.layout import to_channels_last
from ldmvfi_core.train.loop import build_task, run_training, setup_runtime
from tests.unit.test_train_loop import FixedTriplets, _opts
from tests.unit.test_train_loop import micro_config as micro_config

SIZE = 64


def _train(stage: int, out: Path, config: str, **kw: object) -> tuple[dict[str, object], list[dict[str, float]]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_training(_opts(stage, out, config, steps=3, perceptual="off", crop=SIZE, **kw), FixedTriplets(4, SIZE))
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return load_checkpoint(latest_checkpoint(out)), log  # type: ignore[arg-type]


def _losses(log: list[dict[str, float]]) -> list[float]:
    return [float(r["loss"]) for r in log if "loss" in r]


def _one_step_gradients(config: str, stage: int, channels_last: bool, **kw: object) -> dict[str, torch.Tensor]:
    opts = _opts(stage, Path("unused"), config, perceptual="off", channels_last=channels_last, **kw)
    task = build_task(opts, model_config(config), setup_runtime("cpu", "fp32"), fresh=True)
    frames = torch.rand(2, 3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)) * 2 - 1
    torch.manual_seed(2)  # stage 2 draws its timesteps and noise
    task.train_step(frames, 0)
    net = task.ae if stage == 1 else task.unet
    return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


def _gradients_agree(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Close as a whole (float32 sums in another order: measured 7e-5 of the norm on the micro
    config) and tensor by tensor, so one wrongly laid-out layer cannot hide in the total."""
    assert set(a) == set(b) and len(a) > 10
    total = torch.cat([b[k].flatten() for k in b]).norm()
    assert torch.cat([(a[k] - b[k]).flatten() for k in b]).norm() <= 1e-3 * total
    for k in b:
        if b[k].norm() > 1e-4 * total:  # a bias in front of a GroupNorm has a gradient of ~0
            assert (a[k] - b[k]).norm() <= 5e-2 * b[k].norm(), k


def test_to_channels_last_stores_conv_weights_nhwc() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Linear(4, 4))
    to_channels_last(net, None)
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not net[0].weight.is_contiguous()  # really moved: 8x3x3x3 is not both layouts at once
    assert net[1].weight.is_contiguous()  # 2-D tensors are left alone


def test_stage1_task_stores_its_networks_nhwc(micro_config: str) -> None:
    opts = _opts(1, Path("unused"), micro_config, perceptual="off", channels_last=True)
    task = build_task(opts, model_config(micro_config), setup_runtime("cpu", "fp32"), fresh=True)
    for module in (task.ae.encoder, task.ae.decoder, task.disc):
        convs = [m for m in module.modules() if isinstance(m, nn.Conv2d) and m.out_channels > 1]
        assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)


def test_stage1_channels_last_trains_as_nchw(tmp_path: Path, micro_config: str) -> None:
    nchw, log_nchw = _train(1, tmp_path / "nchw", micro_config)
    nhwc, log_nhwc = _train(1, tmp_path / "nhwc", micro_config, channels_last=True)
    losses_nchw, losses_nhwc = _losses(log_nchw), _losses(log_nhwc)
    assert len(losses_nchw) == 3 and torch.allclose(torch.tensor(losses_nhwc), torch.tensor(losses_nchw),
                                                    atol=1e-5, rtol=0)
    assert nhwc["step"] == nchw["step"]
    _gradients_agree(_one_step_gradients(micro_config, 1, True), _one_step_gradients(micro_config, 1, False))


def test_stage2_channels_last_trains_as_nchw(tmp_path: Path, micro_config: str) -> None:
    _train(1, tmp_path / "stage1", micro_config)
    init = str(latest_checkpoint(tmp_path / "stage1"))
    _, log_nchw = _train(2, tmp_path / "nchw", micro_config, init_from=init)
    _, log_nhwc = _train(2, tmp_path / "nhwc", micro_config, init_from=init, channels_last=True)
    assert torch.allclose(torch.tensor(_losses(log_nhwc)), torch.tensor(_losses(log_nchw)), atol=1e-5, rtol=0)
    _gradients_agree(_one_step_gradients(micro_config, 2, True, init_from=init),
                     _one_step_gradients(micro_config, 2, False, init_from=init))


def test_channels_last_flag() -> None:
    parse = build_parser().parse_args
    assert options_from_args(parse(["--stage", "1", "--out", "x"])).channels_last is False
    assert options_from_args(parse(["--stage", "1", "--out", "x", "--channels-last"])).channels_last is True
