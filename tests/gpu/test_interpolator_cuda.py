# SPDX-License-Identifier: MIT
"""What ``Interpolator`` sets up on a GPU (skipped without one).

Run on the GPU machine: ``python -m pytest -m gpu tests/gpu -q``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.speed import decode_over_padding
from ldmvfi_core.interpolate import Interpolator
from ldmvfi_core.model.fused_heads import PaddedSynthesisHeads, unfuse_heads
from tests.conftest import TINY

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_half_precision_pads_the_heads_and_keeps_the_frame() -> None:
    """In bf16 the synthesis heads run padded to multiples of 8 channels (session 8's default);
    the frame must match the ten separate heads within bf16 rounding, and float32 keeps them."""
    rng = np.random.default_rng(4)
    a, b = rng.random((64, 96, 3), dtype=np.float32), rng.random((64, 96, 3), dtype=np.float32)
    interp = Interpolator.load(TINY / "weights.safetensors", device="cuda", dtype=torch.bfloat16)
    decoder = interp.model.first_stage_model.decoder
    assert isinstance(decoder.fused_heads, PaddedSynthesisHeads)
    assert decoder.fused_heads.tail is not None  # the narrow heads' last layers as one (session 12)
    assert decoder.fused_heads.fused_relu_dtype == torch.bfloat16  # cuDNN's fused conv+ReLU (session 16)
    padded = interp.interpolate(a, b, steps=2, eta=1.0, seed=3)
    unfuse_heads(decoder)
    separate = interp.interpolate(a, b, steps=2, eta=1.0, seed=3)
    assert np.abs(padded - separate).max() < 0.02  # a few bf16 steps of a [0, 1] frame
    assert np.abs(padded - separate).mean() < 2e-3
    full = Interpolator.load(TINY / "weights.safetensors", device="cuda", dtype=torch.float32)
    assert full.model.first_stage_model.decoder.fused_heads is None


def test_skipping_the_padding_keeps_the_frame_on_the_gpu() -> None:
    """The decoder's last layers skip the padding (``valid``): in bf16 on cuDNN the picture must
    match a decode over the whole padded frame within bf16 rounding."""
    rng = np.random.default_rng(6)
    a, b = rng.random((200, 300, 3), dtype=np.float32), rng.random((200, 300, 3), dtype=np.float32)
    interp = Interpolator.load(TINY / "weights.safetensors", device="cuda", dtype=torch.bfloat16)
    cropped = interp.interpolate(a, b, steps=2, eta=1.0, seed=3)
    decode_over_padding(interp)
    whole = interp.interpolate(a, b, steps=2, eta=1.0, seed=3)
    assert np.abs(cropped - whole).max() < 0.02 and np.abs(cropped - whole).mean() < 2e-3


def test_a_batch_decoded_one_frame_at_a_time_matches_one_decode_on_the_gpu() -> None:
    """``decode_batch`` 1 (the default) against one decode of the whole batch, bf16 with CUDA graphs:
    the same frames within bf16 rounding."""
    rng = np.random.default_rng(7)
    a, b = rng.random((4, 64, 96, 3), dtype=np.float32), rng.random((4, 64, 96, 3), dtype=np.float32)
    frames = {n: Interpolator.load(TINY / "weights.safetensors", device="cuda", dtype=torch.bfloat16,
                                   cuda_graphs=True, decode_batch=n).interpolate(a, b, steps=2, seed=[1, 2, 3, 4])
              for n in (1, 4)}
    assert frames[1].shape == frames[4].shape == (4, 64, 96, 3)
    assert np.abs(frames[1] - frames[4]).max() < 0.02 and np.abs(frames[1] - frames[4]).mean() < 2e-3


@pytest.mark.parametrize("fused_relu", [False, True])
def test_the_block_diagonal_tail_keeps_the_heads_on_the_gpu(fused_relu: bool) -> None:
    """``pad_heads(block_tail=True)`` (the five 8 -> 8 last layers as one 40 -> 40 convolution),
    with or without cuDNN's fused conv+ReLU (session 15), gives the separate heads' outputs in
    bf16 with cuDNN's kernels, within bf16 rounding."""
    from ldmvfi_core.config import AutoencoderConfig, LDMVFIConfig
    from ldmvfi_core.model.fused_heads import HEAD_FIELDS, pad_heads
    from ldmvfi_core.model.ldmvfi import LatentDiffusionVFI

    torch.manual_seed(0)
    cfg = LDMVFIConfig.tiny()
    ae = AutoencoderConfig(**{**cfg.autoencoder.__dict__, "kernel_size": 5})
    model = LatentDiffusionVFI(LDMVFIConfig(autoencoder=ae, unet=cfg.unet)).eval()
    decoder = model.first_stage_model.decoder.to("cuda", torch.bfloat16).to(memory_format=torch.channels_last)
    with torch.no_grad():
        for p in decoder.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        feature = torch.randn(1, decoder.conv_out.out_channels, 72, 136, device="cuda", dtype=torch.bfloat16)
        feature = feature.to(memory_format=torch.channels_last)
        expected = {field: getattr(decoder, attr)(feature).float() for field, attr in HEAD_FIELDS}
        out = pad_heads(decoder, block_tail=True, fused_relu_dtype=torch.bfloat16 if fused_relu else None)(feature)
    for field, value in expected.items():
        scale = float(value.abs().max())
        assert scale > 1e-3, field
        assert float((out[field].float() - value).abs().max()) < 0.02 * scale + 0.02, field
        if fused_relu:  # what the warp computes in, NCHW: no casts or transposes inside its op
            assert out[field].dtype == torch.float32 and out[field].is_contiguous(), field


def test_a_graphed_decode_matches_the_decode_and_follows_its_inputs() -> None:
    """``Interpolator.decode_graphs`` (experimental, session 12) replays the decode as a CUDA
    graph: the same frame as the plain decode, for a second pair too (the graph's input buffers
    are refilled, not stale)."""
    rng = np.random.default_rng(7)
    pairs = [tuple(rng.random((64, 96, 3), dtype=np.float32) for _ in range(2)) for _ in range(2)]
    interp = Interpolator.load(TINY / "weights.safetensors", device="cuda", dtype=torch.bfloat16, cuda_graphs=True)
    with torch.inference_mode():
        for a, b in pairs:
            f0, f1 = interp.prepare(a), interp.prepare(b)
            z = interp.sample_prepared(f0, f1, steps=2, eta=0.0, seed=1)
            interp.decode_graphs = False
            plain = interp.decode_prepared(z, f0, f1)
            interp.decode_graphs = True
            graphed = interp.decode_prepared(z, f0, f1)
            assert float((graphed - plain).abs().max()) < 1e-2
            assert float(plain.abs().max()) > 0.1  # a real frame, not an empty buffer
    assert len(interp._decode_graphs) == 1  # one frame size: one graph, replayed


def test_sampling_on_its_own_stream_overlaps_and_keeps_the_frames() -> None:
    """``start_sampling`` runs on a stream of its own (session 14): a shot whose next in-between
    samples while the previous one decodes gives bit-identical frames to one stream, bf16 with CUDA
    graphs, and the ensemble's views too."""
    rng = np.random.default_rng(8)
    shot = [rng.random((72, 120, 3), dtype=np.float32) for _ in range(4)]
    for ensemble in (1, 2):
        interp = Interpolator.load(TINY / "weights.safetensors", device="cuda", dtype=torch.bfloat16,
                                   cuda_graphs=True, ensemble=ensemble)
        with torch.inference_mode():
            prepared = [interp.prepare(frame) for frame in shot]
            interp.overlap_sampling = False
            serial = [interp.interpolate_prepared(prepared[k], prepared[k + 1], steps=4, seed=k).cpu()
                      for k in range(3)]
            interp.overlap_sampling = True
            queued = [interp.start_sampling(prepared[0], prepared[1], steps=4, seed=0)]
            assert queued[0].ready is not None  # it really went to the other stream
            overlapped = []
            for k in range(3):
                if k < 2:  # the next one queued before this one decodes
                    queued.append(interp.start_sampling(prepared[k + 1], prepared[k + 2], steps=4, seed=k + 1))
                overlapped.append(interp.finish_decoding(queued[k], prepared[k], prepared[k + 1]).cpu())
        for a, b in zip(serial, overlapped, strict=True):
            assert torch.equal(a, b)


def test_an_upload_does_not_wait_and_does_not_read_the_host_buffer_later() -> None:
    """``ops.upload``: the host may reuse its buffer as soon as ``upload`` returns (the copy goes
    through a pinned staging buffer of its own), and the values arrive whole, even while the GPU is
    still busy with earlier work."""
    from ldmvfi_core.ops.upload import upload

    busy = torch.randn(4096, 4096, device="cuda")
    for _ in range(20):  # keep the stream busy, so the copy is queued behind real work
        busy = busy @ busy / 64.0
    host = torch.arange(1080 * 1920 * 4, dtype=torch.float32).reshape(1080, 1920, 4)
    expected = host.clone()
    on_gpu = upload(host, torch.device("cuda"))
    host.zero_()
    assert on_gpu.is_cuda and torch.equal(on_gpu.cpu(), expected)


def test_a_download_returns_before_the_gpu_is_done_and_lands_whole() -> None:
    """``ops.upload.Download``: queuing the copy does not wait for the kernels before it (the
    thread goes on queuing work), and ``result()`` gives the values those kernels made, even for a
    non-contiguous view and after the device tensor is dropped."""
    from ldmvfi_core.ops.upload import Download

    busy = torch.randn(4096, 4096, device="cuda")
    for _ in range(40):  # some tens of ms of queued work on this stream, ahead of the values and the copy
        busy = busy @ busy
    made = torch.arange(1080 * 1920 * 4, dtype=torch.float32, device="cuda").reshape(4, 1080, 1920)
    download = Download(made.permute(1, 2, 0))
    assert not download.done()  # the matmuls are still running: the constructor did not wait
    del made
    expected = torch.arange(1080 * 1920 * 4, dtype=torch.float32).reshape(4, 1080, 1920).permute(1, 2, 0)
    assert torch.equal(download.result(), expected) and download.done()


def test_queuing_an_in_between_never_waits_for_the_gpu() -> None:
    """Along a shot the thread that feeds the GPU must not block on it: preparing a source frame,
    queuing the sampling and the decode, and queuing the download make no synchronising call once
    warm (session 18: building the DDIM tables read a GPU buffer back at every in-between, which
    held the thread until the GPU had drained)."""
    from ldmvfi_core.ops.upload import Download

    rng = np.random.default_rng(9)
    shot = [rng.random((72, 120, 3), dtype=np.float32) for _ in range(3)]
    interp = Interpolator.load(TINY / "weights.safetensors", device="cuda", dtype=torch.bfloat16, cuda_graphs=True)

    def in_between(a: np.ndarray, b: np.ndarray) -> Download:
        f0, f1 = interp.prepare(a), interp.prepare(b)
        return Download(interp.finish_decoding(interp.start_sampling(f0, f1, steps=4, seed=1), f0, f1))

    with torch.inference_mode():
        warm = in_between(shot[0], shot[1]).result()  # captures the graphs, builds the tables
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            queued = in_between(shot[0], shot[1])
            later = in_between(shot[1], shot[2])
        finally:
            torch.cuda.set_sync_debug_mode("default")
        assert torch.equal(queued.result(), warm) and not torch.equal(later.result(), warm)
