# SPDX-License-Identifier: MIT
"""The moving average of weights (train/ema.py), and stage 1's average of the autoencoder (--ae-ema)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from ldmvfi_core.eval.baselines import frame_average
from ldmvfi_core.eval.metrics import psnr
from ldmvfi_core.eval.run import find_triplets, load_triplet
from ldmvfi_core.model.checkpoint import AE_PREFIX
from ldmvfi_core.train.checkpoint import list_checkpoints, load_checkpoint
from ldmvfi_core.train.command import build_parser, main_train, options_from_args
from ldmvfi_core.train.ema import EMA, holds_shadow
from ldmvfi_core.train.loop import run_training
from ldmvfi_core.train.reopen import reopen_latent
from tests.conftest import load_tool
from tests.unit.test_train_loop import FixedTriplets, _opts, _tensors_equal, micro_config  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore:stage 2 starts from an untrained autoencoder:RuntimeWarning")


def _stage1(out: Path, config: str, steps: int, **kw: object) -> dict:
    return run_training(_opts(1, out, config, steps=steps, perceptual="off", ckpt_every=1, **kw), FixedTriplets(4))


def test_the_average_round_trips_under_a_prefix_and_names_what_is_missing() -> None:
    net = nn.Linear(3, 2)
    ema = EMA(net, 0.9)
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)  # update n = 1 decays by min(0.9, (1 + n) / (10 + n)) = 2/11 (LitEma's warm-up)
    assert torch.allclose(ema.shadow["weight"], net.weight - 2 / 11)
    saved = ema.state_dict("layer.")
    assert set(saved["shadow"]) == {"layer.weight", "layer.bias"} and holds_shadow(saved, "layer.")
    assert not holds_shadow(saved, "other.") and not holds_shadow(None, "layer.")
    again = EMA(nn.Linear(3, 2), 0.5)
    again.load_state_dict(saved, "layer.")
    assert again.decay == 0.9 and again.num_updates == 1
    assert torch.equal(again.shadow["weight"], ema.shadow["weight"])
    with pytest.raises(KeyError, match=r"lacks other\.bias \(and 1 more\)"):
        again.load_state_dict(saved, "other.")


def test_stage1_average_starts_at_the_resumed_weights_and_leaves_training_alone(
        tmp_path: Path, micro_config: str) -> None:  # noqa: F811
    plain = tmp_path / "plain"
    _stage1(plain, micro_config, steps=3)
    states = {step: load_checkpoint(path) for step, path in list_checkpoints(plain)}
    assert states[3]["ema"] is None  # off unless asked for
    averaged = tmp_path / "averaged"
    (averaged / "checkpoints").mkdir(parents=True)
    shutil.copy(list_checkpoints(plain)[0][1], averaged / "checkpoints")  # step 1, without an average
    _stage1(averaged, micro_config, steps=3, resume="auto", ae_ema=0.5)
    final = load_checkpoint(list_checkpoints(averaged)[-1][1])
    _tensors_equal(final["model"], states[3]["model"], "model")  # the average never feeds back
    # LitEma's warm-up: decay min(0.5, (1 + n) / (10 + n)) at updates n = 1 and 2
    live = {step: states[step]["model"] for step in (1, 2, 3)}
    for name, got in final["ema"]["shadow"].items():
        want = torch.lerp(live[1][name].float(), live[2][name].float(), 1 - 2 / 11)
        want = torch.lerp(want, live[3][name].float(), 1 - 3 / 12)
        assert torch.allclose(got, want, atol=1e-6, rtol=1e-5), name
    assert final["ema"]["decay"] == 0.5 and final["ema"]["num_updates"] == 2
    assert set(final["ema"]["shadow"]) == _trained_autoencoder_names()


def _trained_autoencoder_names() -> set[str]:
    from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI
    from ldmvfi_core.train.stage1 import freeze_unused
    from tests.unit.test_train_loop import MICRO

    ae = LatentDiffusionVFI(MICRO).first_stage_model
    freeze_unused(ae)
    return {AE_PREFIX + name for name, p in ae.named_parameters() if p.requires_grad}


def test_a_resumed_slice_keeps_averaging_bitwise_unless_told_not_to(tmp_path: Path, micro_config: str) -> None:  # noqa: F811
    straight = tmp_path / "straight"
    _stage1(straight, micro_config, steps=4, ae_ema=0.9)
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copy(list_checkpoints(straight)[1][1], resumed / "checkpoints")  # step 2
    _stage1(resumed, micro_config, steps=4, resume="auto")  # no --ae-ema: the checkpoint's
    a, b = (load_checkpoint(list_checkpoints(run)[-1][1]) for run in (straight, resumed))
    _tensors_equal(a["ema"], b["ema"], "ema")
    _tensors_equal(a["model"], b["model"], "model")
    off = tmp_path / "off"
    (off / "checkpoints").mkdir(parents=True)
    shutil.copy(list_checkpoints(straight)[1][1], off / "checkpoints")
    _stage1(off, micro_config, steps=3, resume="auto", ae_ema=0.0)
    assert load_checkpoint(list_checkpoints(off)[-1][1])["ema"] is None


def test_export_stage2_and_the_probe_take_the_average(tmp_path: Path, micro_config: str) -> None:  # noqa: F811
    from ldmvfi_core.interpolate import load_model

    run = tmp_path / "s1"
    result = _stage1(run, micro_config, steps=2, ae_ema=0.9, export=str(tmp_path / "s1.safetensors"))
    state = load_checkpoint(result["checkpoint"])
    shadow = state["ema"]["shadow"]
    exported = load_model(result["export"]).state_dict()
    assert all(torch.equal(exported[k], v) for k, v in shadow.items())
    assert any(not torch.equal(state["model"][k], v) for k, v in shadow.items())  # not the last iterate
    # stage 2 starts from the average
    s2 = run_training(_opts(2, tmp_path / "s2", micro_config, steps=1, init_from=result["checkpoint"]),
                      FixedTriplets(2))
    s2_model = load_checkpoint(s2["checkpoint"])["model"]
    assert all(torch.equal(s2_model[k], v) for k, v in shadow.items())
    # the probe scores the average by default, both on request, and a run without one as it is
    probe = load_tool("ae_probe")
    assert [label for label, _ in probe._weight_sets(state, "export")] == ["ema"]
    assert [label for label, _ in probe._weight_sets(state, "both")] == ["live", "ema"]
    ema_weights = dict(probe._weight_sets(state, "export"))["ema"]
    assert all(torch.equal(ema_weights[k], v) for k, v in shadow.items())
    assert [label for label, _ in probe._weight_sets({**state, "ema": None}, "both")] == ["live"]
    # --latent neighbour_mean decodes that latent alone (half a CPU run), to the same scores
    triplet = str(Path(__file__).resolve().parents[1] / "fixtures" / "eval_triplet")
    (both,) = probe._decode_scores(state, ema_weights, triplet, "cpu").values()
    (alone,) = probe._decode_scores(state, ema_weights, triplet, "cpu", "neighbour_mean").values()
    assert set(alone) == {"average_psnr", "average_ssim", "neighbour_mean_latent_psnr", "neighbour_mean_latent_ssim"}
    assert {k: both[k] for k in alone} == alone and "true_latent_psnr" in both
    f0, truth, f2 = load_triplet(find_triplets(triplet)[0])
    assert alone["average_psnr"] == [psnr(frame_average(f0, f2), truth)]  # the baseline as ldmvfi eval rounds it
    # re-opening the latent path drops the average, which still holds the old one
    assert reopen_latent(state)["ema"] is None


def test_the_command_line_reaches_the_average_and_refuses_what_cannot_be(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parse = build_parser().parse_args
    assert options_from_args(parse(["--stage", "1", "--out", "x", "--ae-ema", "0.998"])).ae_ema == 0.998
    assert options_from_args(parse(["--stage", "1", "--out", "x"])).ae_ema is None
    for argv, why in ((["--stage", "2", "--ae-ema", "0.99"], "stage 2 averages its U-Net (--ema-decay)"),
                      (["--stage", "1", "--ae-ema", "1"], "--ae-ema 1: a decay in [0, 1)")):
        assert main_train([*argv, "--out", str(tmp_path / "run"), "--steps", "0", "--device", "cpu",
                           "--precision", "fp32", "--config", "tiny"]) == 2
        assert why in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
