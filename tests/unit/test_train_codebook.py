# SPDX-License-Identifier: MIT
"""Dead-code restart of the VQ codebook (train/codebook.py)."""

from __future__ import annotations

import torch

from ldmvfi_core.train.codebook import CodebookReviver


def _latents(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(seed)) * 5.0 + 2.0


def test_first_restart_moves_every_unused_code_onto_batch_latents() -> None:
    codebook = torch.full((64, 3), 1e-4)
    reviver = CodebookReviver(64, every=10, seed=0, noise=0.01)
    reviver.observe(torch.tensor([5, 5, 7]))
    z = _latents()
    moved = reviver.restart(1, z, codebook)
    assert moved == 62
    assert torch.equal(codebook[5], torch.full((3,), 1e-4)) and torch.equal(codebook[7], torch.full((3,), 1e-4))
    pool = z.permute(0, 2, 3, 1).reshape(-1, 3)
    spread = pool.std(dim=0)
    others = torch.cat([codebook[:5], codebook[6:7], codebook[8:]])
    nearest = torch.cdist(others, pool).min(dim=1).values
    # each moved code sits on a batch latent, up to 1% of the latent spread (4 sigma)
    assert (nearest < 0.04 * spread.norm() * 4).all()
    assert reviver.counts is not None and int(reviver.counts.sum()) == 0  # the window starts again


def test_restart_only_when_due_and_only_unused_codes() -> None:
    codebook = torch.randn(16, 3)
    before = codebook.clone()
    reviver = CodebookReviver(16, every=4, seed=0)
    reviver.observe(torch.arange(16))
    assert reviver.restart(2, _latents(), codebook) == 0  # not due
    assert reviver.restart(4, _latents(), codebook) == 0  # due, but every code was used
    assert torch.equal(codebook, before)
    reviver.observe(torch.arange(8))
    assert reviver.restart(8, _latents(), codebook) == 8
    assert torch.equal(codebook[:8], before[:8]) and not torch.equal(codebook[8:], before[8:])


def test_restart_is_deterministic_and_off_when_every_is_zero() -> None:
    books = []
    for _ in range(2):
        codebook = torch.zeros(32, 3)
        reviver = CodebookReviver(32, every=5, seed=7)
        reviver.observe(torch.tensor([0]))
        reviver.restart(5, _latents(1), codebook)
        books.append(codebook)
    assert torch.equal(books[0], books[1])
    off = CodebookReviver(32, every=0, seed=7)
    off.observe(torch.tensor([0]))
    codebook = torch.zeros(32, 3)
    assert off.restart(1, _latents(), codebook) == 0 and not codebook.any()


def test_moved_codes_lose_their_adam_moments() -> None:
    codebook = torch.nn.Parameter(torch.randn(8, 3))
    opt = torch.optim.Adam([codebook], lr=1e-2)
    codebook.sum().backward()
    opt.step()
    reviver = CodebookReviver(8, every=1, seed=0)
    reviver.observe(torch.tensor([0, 1]))
    reviver.restart(1, _latents(), codebook, opt)
    state = opt.state[codebook]
    assert state["exp_avg"][2:].abs().sum() == 0 and state["exp_avg_sq"][2:].abs().sum() == 0
    assert state["exp_avg"][:2].abs().sum() > 0


def test_usage_counts_round_trip() -> None:
    reviver = CodebookReviver(10, every=3, seed=0)
    reviver.observe(torch.tensor([1, 1, 4]))
    other = CodebookReviver(10, every=3, seed=0)
    other.load_state_dict(reviver.state_dict(), torch.device("cpu"))
    assert other.counts is not None and other.counts.tolist() == [0, 2, 0, 0, 1, 0, 0, 0, 0, 0]
