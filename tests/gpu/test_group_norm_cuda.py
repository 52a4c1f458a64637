# SPDX-License-Identifier: MIT
"""The autoencoder's GroupNorm on GPUs in inference (statistics per channel, combined per group,
for channels-last or compiled maps; session 17) against ``nn.GroupNorm``: bf16 maps under
autocast, eager and compiled."""

from __future__ import annotations

import pytest
import torch

from ldmvfi_core.model.ae_blocks import ChannelStatsGroupNorm

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("compiled", [False, True])
def test_channel_stats_group_norm_is_group_norm_on_the_gpu(compiled: bool) -> None:
    torch.manual_seed(0)
    norm = ChannelStatsGroupNorm(32, 64, eps=1e-6).cuda()
    reference = torch.nn.GroupNorm(32, 64, eps=1e-6).cuda()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
        reference.load_state_dict(norm.state_dict())
    x = (torch.randn(1, 64, 96, 160, device="cuda") * 3 + torch.randn(1, 64, 1, 1, device="cuda") * 10)
    x = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    run = torch.compile(norm, dynamic=False) if compiled else norm
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        got, expected = run(x), reference(x)
    assert got.dtype == expected.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
    nchw = x.contiguous()  # the uncompiled autoencoder's layout keeps F.group_norm
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        torch.testing.assert_close(norm(nchw), reference(nchw), rtol=0, atol=0)
    x.requires_grad_(True)  # training keeps F.group_norm (and its backward)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        norm(x).sum().backward()
    assert x.grad is not None
