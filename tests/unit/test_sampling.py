# SPDX-License-Identifier: MIT
"""Noise schedule, DDIM tables and the DDIM sampler against the official tiny goldens (NOTES §9)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from ldmvfi_core.config import LDMVFIConfig, ScheduleConfig
from ldmvfi_core.model.unet import UNet
from ldmvfi_core.sampling import DDIMStep, DDIMTables, ddim_tables, linear_alphas_cumprod, sample_ddim
from tests.conftest import ema_key

Golden = Callable[[str], dict[str, torch.Tensor]]


@pytest.fixture(scope="module")
def alphas_cumprod() -> torch.Tensor:
    return linear_alphas_cumprod(ScheduleConfig())


@pytest.fixture(scope="module")
def ema_unet(tiny_weights: dict[str, torch.Tensor]) -> UNet:
    unet = UNet(LDMVFIConfig.tiny().unet).eval()
    unet.load_state_dict({k: tiny_weights[ema_key(k)] for k in unet.state_dict()}, strict=True)
    return unet


def _f32(v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float32)


# ---------------------------------------------------------------------------------------------------
# schedule


def test_schedule_check_values(alphas_cumprod: torch.Tensor) -> None:
    ac = alphas_cumprod
    assert ac.dtype == torch.float32 and ac.shape == (1000,)
    assert ac[0].item() == float.fromhex("0x1.ff3b64p-1")
    assert torch.equal(ac[0], _f32(0.9984999895))
    assert torch.equal(ac[1], _f32(0.9969944358))
    assert torch.equal(ac[500], _f32(0.1149220020))
    assert torch.equal(ac[999], _f32(1.42303979e-4))


def test_schedule_equals_checkpoint_buffer(
    alphas_cumprod: torch.Tensor, tiny_weights: dict[str, torch.Tensor]
) -> None:
    assert torch.equal(alphas_cumprod, tiny_weights["alphas_cumprod"])
    assert torch.equal(linear_alphas_cumprod(LDMVFIConfig.tiny().schedule), tiny_weights["alphas_cumprod"])


# ---------------------------------------------------------------------------------------------------
# DDIM tables


@pytest.mark.parametrize("steps", [5, 20])
def test_ddim_tables_match_golden(golden: Golden, alphas_cumprod: torch.Tensor, steps: int) -> None:
    g = golden("ddim")
    tables = ddim_tables(alphas_cumprod, steps, 0.0)
    assert len(tables) == steps
    for name in ("timesteps", "alphas", "alphas_prev", "sqrt_one_minus_alphas"):
        ours, ref = getattr(tables, name), g[f"ddim{steps}.{name}"]
        assert ours.dtype == ref.dtype, name
        assert torch.equal(ours, ref), name
    assert torch.equal(tables.sigmas, torch.zeros(steps))


def test_ddim_timesteps_rule(alphas_cumprod: torch.Tensor) -> None:
    assert ddim_tables(alphas_cumprod, 5, 0.0).timesteps.tolist() == [1, 201, 401, 601, 801]
    t200 = ddim_tables(alphas_cumprod, 200, 0.0).timesteps
    assert len(t200) == 200 and t200[:3].tolist() == [1, 6, 11] and t200[-1].item() == 996
    t30 = ddim_tables(alphas_cumprod, 30, 0.0)
    assert len(t30) == 31  # 1000 // 30 = 33 -> arange(0, 1000, 33) has 31 entries
    assert t30.timesteps[-1].item() == 991
    assert t30.alphas_prev[0].item() == alphas_cumprod[0].item()


@pytest.mark.parametrize("steps", [300, 1000, 0, 1001])
def test_ddim_bad_step_counts(alphas_cumprod: torch.Tensor, steps: int) -> None:
    with pytest.raises(ValueError, match="DDIM steps"):
        ddim_tables(alphas_cumprod, steps, 0.0)


def test_ddim_sigmas(alphas_cumprod: torch.Tensor) -> None:
    tables = ddim_tables(alphas_cumprod, 50, 1.0)
    rows = zip(tables.alphas.tolist(), tables.alphas_prev.tolist(), tables.sigmas.tolist(), strict=True)
    for a, ap, s in rows:
        one_minus_a = float(_f32(1.0 - a))  # upstream forms 1 - a in float32
        ref = math.sqrt((1.0 - ap) / one_minus_a * (1.0 - a / ap))
        assert s == float(_f32(ref))
    half = ddim_tables(alphas_cumprod, 50, 0.5)
    torch.testing.assert_close(half.sigmas, tables.sigmas * 0.5, atol=0, rtol=2e-7)


def test_sqrt_one_minus_alphas_correctly_rounded(alphas_cumprod: torch.Tensor) -> None:
    tables = ddim_tables(alphas_cumprod, 200, 0.0)
    one_minus = 1.0 - tables.alphas  # float32 subtraction
    ref = one_minus.double().sqrt().float()
    assert torch.equal(tables.sqrt_one_minus_alphas, ref)


# ---------------------------------------------------------------------------------------------------
# DDIM sampler


@pytest.mark.parametrize("steps", [5, 20])
def test_ddim_trajectory_matches_golden(
    golden: Golden, alphas_cumprod: torch.Tensor, ema_unet: UNet, steps: int
) -> None:
    g, cond = golden("ddim"), golden("encode")["encode.cond"]
    tables = ddim_tables(alphas_cumprod, steps, 0.0)
    seen: list[DDIMStep] = []
    with torch.inference_mode():
        z = sample_ddim(lambda x, t: ema_unet(x, t, cond), g["ddim.x_T"], tables, callback=seen.append)

    assert [s.index for s in seen] == list(range(steps))
    assert all(s.total == steps for s in seen)
    assert [s.t for s in seen] == tables.timesteps.flip(0).tolist()
    x_traj = torch.cat([g["ddim.x_T"], *(s.x for s in seen)])
    pred_x0 = torch.cat([s.pred_x0 for s in seen])
    torch.testing.assert_close(x_traj, g[f"ddim{steps}.x_traj"], atol=5e-4, rtol=0)
    torch.testing.assert_close(pred_x0, g[f"ddim{steps}.pred_x0_traj"], atol=5e-4, rtol=0)
    torch.testing.assert_close(z, g[f"ddim{steps}.z_final"], atol=5e-4, rtol=0)
    assert torch.equal(z, seen[-1].x)


def _toy_denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    assert t.dtype == torch.int64 and t.shape == (x.shape[0],)
    return 0.5 * x + 1e-3 * t.to(x.dtype)[:, None, None, None]


def test_ddim_eta0_needs_no_rng(alphas_cumprod: torch.Tensor) -> None:
    tables = ddim_tables(alphas_cumprod, 10, 0.0)
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    state = torch.get_rng_state()
    a = sample_ddim(_toy_denoise, x_T, tables)
    b = sample_ddim(_toy_denoise, x_T, tables, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state)


def test_ddim_eta_positive_is_seeded(alphas_cumprod: torch.Tensor) -> None:
    tables = ddim_tables(alphas_cumprod, 10, 1.0)
    assert (tables.sigmas > 0).all()
    x_T = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    state = torch.get_rng_state()

    def run(seed: int | None) -> torch.Tensor:
        gen = None if seed is None else torch.Generator().manual_seed(seed)
        return sample_ddim(_toy_denoise, x_T, tables, generator=gen)

    a, b, c = run(123), run(123), run(124)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    run(None)  # unseeded: a private generator, still not the global one
    assert torch.equal(torch.get_rng_state(), state)


def test_ddim_step_formula(alphas_cumprod: torch.Tensor) -> None:
    """One eta=0 step written out in float64 agrees with the sampler."""
    tables = DDIMTables(
        timesteps=torch.tensor([401]),
        alphas=alphas_cumprod[401:402],
        alphas_prev=alphas_cumprod[:1],
        sqrt_one_minus_alphas=(1.0 - alphas_cumprod[401:402]).double().sqrt().float(),
        sigmas=torch.zeros(1),
    )
    x = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    out = sample_ddim(_toy_denoise, x, tables)
    a, ap = alphas_cumprod[401].double(), alphas_cumprod[0].double()
    xd = x.double()
    e = 0.5 * xd + 0.401
    ref = ap.sqrt() * (xd - (1 - a).sqrt() * e) / a.sqrt() + (1 - ap).sqrt() * e
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-6)


def test_noise_drawn_up_front_equals_noise_drawn_per_step(alphas_cumprod: torch.Tensor) -> None:
    """The sampler draws all step noise at once; the values must be what per-step draws from the same
    per-item generators give (a chunked retime relies on each frame's noise depending on its seed only)."""
    tables = ddim_tables(alphas_cumprod, 6, 1.0)
    x_T = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    gens = [torch.Generator().manual_seed(s) for s in (11, 12)]
    out = sample_ddim(_toy_denoise, x_T, tables, generator=gens)

    ref_gens = [torch.Generator().manual_seed(s) for s in (11, 12)]
    x = x_T.clone()
    for i in reversed(range(len(tables.timesteps))):
        t = int(tables.timesteps[i])
        a, ap, sig = tables.alphas[i], tables.alphas_prev[i], tables.sigmas[i]
        eps = _toy_denoise(x, torch.full((2,), t))
        pred = (x - tables.sqrt_one_minus_alphas[i] * eps) / a.sqrt()
        x = ap.sqrt() * pred + (1 - ap - sig**2).sqrt() * eps
        x = x + sig * torch.stack([torch.randn(x.shape[1:], generator=g) for g in ref_gens])
    torch.testing.assert_close(out, x, atol=2e-6, rtol=1e-6)


def test_every_step_sees_an_inference_tensor_under_inference_mode(alphas_cumprod: torch.Tensor) -> None:
    """x_T made outside inference mode is cloned into one, so the denoiser (a compiled U-Net in
    practice) sees one kind of input at every step and compiles each latent shape once."""
    kinds: list[bool] = []

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        kinds.append(x.is_inference())
        return torch.zeros_like(x)

    x_T = torch.randn(1, 3, 4, 4)  # an ordinary tensor, as callers pass it
    with torch.inference_mode():
        sample_ddim(denoise, x_T, ddim_tables(alphas_cumprod, 4, 0.0))
    assert kinds == [True] * 4
    assert not x_T.is_inference()


def test_sample_latent_takes_a_denoiser_without_a_truth_value() -> None:
    """A compiled module refuses bool(); the sampler must test ``is None``, not truthiness."""
    from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI

    class NoTruth:
        def __init__(self) -> None:
            self.calls = 0

        def __bool__(self) -> bool:
            raise TypeError("no truth value")

        def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return torch.zeros_like(x)

    model = LatentDiffusionVFI(LDMVFIConfig.tiny()).eval()
    frame = torch.zeros(1, 3, 256, 256)
    with torch.inference_mode():
        e0, e1 = model.encode(frame), model.encode(frame)
        denoiser = NoTruth()
        model.sample_latent(e0, e1, torch.zeros_like(e0.latent), model.ddim_tables(4, 0.0), denoiser=denoiser)
    assert denoiser.calls == 4


def test_the_model_keeps_its_tables_and_follows_a_reload(alphas_cumprod: torch.Tensor) -> None:
    """``LatentDiffusionVFI.ddim_tables`` builds each (steps, eta) once (reading a GPU buffer back
    waits for the GPU), equal to ``ddim_tables`` of the buffer, and a state dict with another
    schedule loaded in place gives that schedule's tables."""
    from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI

    model = LatentDiffusionVFI(LDMVFIConfig.tiny())
    first = model.ddim_tables(10, 1.0)
    assert model.ddim_tables(10, 1.0) is first and model.ddim_tables(5, 0.0) is not first
    assert torch.equal(first.sigmas, ddim_tables(alphas_cumprod, 10, 1.0).sigmas)
    state = model.state_dict()
    state["alphas_cumprod"] = alphas_cumprod.sqrt()  # another (still decreasing) schedule
    model.load_state_dict(state)
    reloaded = model.ddim_tables(10, 1.0)
    assert torch.equal(reloaded.alphas, ddim_tables(alphas_cumprod.sqrt(), 10, 1.0).alphas)
    assert not torch.equal(reloaded.alphas, first.alphas)


def test_the_tables_follow_a_cast_and_a_reload_of_inference_tensors(alphas_cumprod: torch.Tensor) -> None:
    """A model built under inference mode (whose buffers count no versions) still gets its tables
    and sees a reloaded schedule; a cast makes a new buffer, so new tables."""
    from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI

    with torch.inference_mode():
        model = LatentDiffusionVFI(LDMVFIConfig.tiny())
        first = model.ddim_tables(10, 1.0)
        assert model.ddim_tables(10, 1.0) is first
        state = model.state_dict()
        state["alphas_cumprod"] = alphas_cumprod.sqrt()
        model.load_state_dict(state)
        assert torch.equal(model.ddim_tables(10, 1.0).alphas, ddim_tables(alphas_cumprod.sqrt(), 10, 1.0).alphas)
    plain = LatentDiffusionVFI(LDMVFIConfig.tiny())
    before = plain.ddim_tables(10, 1.0)
    plain.double()
    assert plain.ddim_tables(10, 1.0) is not before
