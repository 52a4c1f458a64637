# SPDX-License-Identifier: MIT
"""Padding rules: the official one (NOTES.md §2 table) and our minimal one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from ldmvfi_core.ops.padding import minimal_padding, reference_padding, reflect_indices

# (h, w) -> padded size, from the official table (NOTES.md §2.1)
OFFICIAL = {
    (256, 256): (256, 256),
    (256, 448): (256, 512),
    (136, 200): (256, 256),
    (300, 280): (512, 512),
    (260, 256): (512, 256),
    (720, 1280): (1024, 1536),
    (1080, 1920): (1536, 2048),
    (2160, 3840): (2560, 4096),
}


@pytest.mark.parametrize(("size", "padded"), OFFICIAL.items())
def test_reference_rule_matches_official_table(size: tuple[int, int], padded: tuple[int, int]) -> None:
    assert reference_padding(*size).padded_size == padded


@pytest.mark.parametrize("size", [(72, 100), (100, 180), (300, 200), (128, 256), (256, 128)])
def test_reference_rule_refuses_sizes_the_official_code_crashes_on(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="minimal"):
        reference_padding(*size)


@given(size=st.integers(2, 300), pad=st.integers(0, 299))
def test_reflect_indices_equal_torch_reflect_when_torch_can(size: int, pad: int) -> None:
    if pad >= size:
        pad = size - 1
    x = torch.arange(size, dtype=torch.float32)[None, None, :]
    expected = F.pad(x, (0, pad), mode="reflect")[0, 0]
    assert torch.equal(x[0, 0][reflect_indices(size, pad)], expected)


def test_reflect_indices_bounce_for_large_pads_and_repeat_single_pixels() -> None:
    assert reflect_indices(3, 7).tolist() == [0, 1, 2, 1, 0, 1, 2, 1, 0, 1]
    assert reflect_indices(1, 4).tolist() == [0, 0, 0, 0, 0]


@given(h=st.integers(1, 700), w=st.integers(1, 700))
def test_minimal_padding_is_the_next_multiple_and_round_trips(h: int, w: int) -> None:
    p = minimal_padding(h, w, 256)
    ph, pw = p.padded_size
    assert ph % 256 == 0 and pw % 256 == 0
    assert ph - h < 256 and pw - w < 256
    x = torch.rand(1, 2, h, w)
    padded = p.pad(x)
    assert padded.shape[-2:] == (ph, pw)
    assert torch.equal(p.crop(padded), x)


def test_padding_keeps_no_state_between_sizes() -> None:
    a = minimal_padding(200, 300, 256)
    b = minimal_padding(256, 256, 256)
    assert (b.bottom, b.right) == (0, 0)
    assert (a.bottom, a.right) == (56, 212)
