# SPDX-License-Identifier: MIT
"""Training data: cut-safe video triplets, exact synthetic middles, aligned augmentation, cache, dataset."""

from __future__ import annotations

import json
import math
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ldmvfi_core.train.augment import augment, centre_crop
from ldmvfi_core.train.data import TripletDataset, item_rng, to_tensor
from ldmvfi_core.train.synthetic import (
    CameraMotion,
    LayerMotion,
    Resample,
    SyntheticMotion,
    _camera_corner_motion,
    render_synthetic,
    sample_motion,
    sample_still,
    synthetic_triplet,
)
from ldmvfi_core.train.triplet_cache import SyntheticRecipe, TripletCache, TripletCacheWriter
from ldmvfi_core.train.video import clip_cuts, read_video_frames, shots, video_triplets
from tests.textures import value_noise

CUT = 6  # the test clip's hard cut: frames 0-5 are one shot, 6-11 another
FRAMES, WIDTH, HEIGHT = 12, 96, 64


def _clip_frames() -> list[np.ndarray]:
    """Two shots: a white square moving over a blue texture, then a black one over a red texture."""
    rng = np.random.default_rng(7)
    shot_a = value_noise(rng, HEIGHT, WIDTH) * [0.3, 0.4, 0.9]
    shot_b = value_noise(rng, HEIGHT, WIDTH) * [0.9, 0.5, 0.2] + [0.1, 0.0, 0.0]
    frames = []
    for k in range(FRAMES):
        image = (shot_a if k < CUT else shot_b).copy()
        x = 8 + 5 * k
        image[20:36, x : x + 16] = 1.0 if k < CUT else 0.0
        frames.append(np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    av = pytest.importorskip("av")
    path = tmp_path_factory.mktemp("video") / "two_shots.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv444p"
        for image in _clip_frames():
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _straddles(triplet: tuple[int, int, int], cut: int) -> bool:
    return triplet[0] < cut <= triplet[2]


# --- video -------------------------------------------------------------------------------------


def test_read_video_frames_decodes_rgb_and_downscales(clip: Path) -> None:
    frames = list(read_video_frames(clip))
    assert len(frames) == FRAMES
    assert all(f.shape == (HEIGHT, WIDTH, 3) and f.dtype == np.uint8 for f in frames)
    # ffv1 4:4:4 is near-lossless through YUV: the frames are the ones we wrote, to a few codes.
    expected = _clip_frames()
    assert max(np.abs(f.astype(int) - e).max() for f, e in zip(frames, expected, strict=True)) <= 4
    small = list(read_video_frames(clip, max_side=48))
    assert small[0].shape == (32, 48, 3)
    assert next(read_video_frames(clip, max_side=500)).shape == (HEIGHT, WIDTH, 3)  # never upscaled


@pytest.mark.parametrize("gap", [1, 2])
def test_known_cut_is_never_straddled(clip: Path, gap: int) -> None:
    triplets = video_triplets(clip, gap=gap, cuts=(CUT,), auto_cuts=False)
    assert triplets, "a 12-frame clip with two 6-frame shots has triplets"
    assert not any(_straddles(t, CUT) for t in triplets)
    expected = [(i, i + gap, i + 2 * gap) for i in range(FRAMES - 2 * gap) if not _straddles((i, 0, i + 2 * gap), CUT)]
    assert triplets == expected


def test_cut_is_detected_automatically(clip: Path) -> None:
    assert clip_cuts(clip, cuts=(), auto_cuts=True) == (FRAMES, [CUT])
    for gap in (1, 2):
        auto = video_triplets(clip, gap=gap, cuts=(), auto_cuts=True)
        assert auto == video_triplets(clip, gap=gap, cuts=(CUT,), auto_cuts=False)
        assert not any(_straddles(t, CUT) for t in auto)
    # Without any cut information the same clip would give straddling triplets.
    assert any(_straddles(t, CUT) for t in video_triplets(clip, cuts=(), auto_cuts=False))


def test_stride_and_shots() -> None:
    assert shots(10, [0, 4, 4, 12]) == [(0, 4), (4, 10)]
    from ldmvfi_core.train.video import triplets_in_shots

    assert triplets_in_shots([(0, 7)], stride=2) == [(0, 1, 2), (2, 3, 4), (4, 5, 6)]
    with pytest.raises(ValueError, match="stride"):
        triplets_in_shots([(0, 7)], stride=0)


# --- synthetic ---------------------------------------------------------------------------------


def _still(seed: int, height: int = 96, width: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_even_integer_pan_middle_is_the_still_shifted_by_half() -> None:
    still = _still(1)
    # Output 32x32 has its centre at 15.5, so centre 47.5 puts output pixel (0, 0) on still (32, 32).
    motion = SyntheticMotion(CameraMotion(centre=(47.5, 47.5), pan=(8.0, -6.0)))
    frames = render_synthetic(still, motion, (32, 32))
    np.testing.assert_array_equal(frames[0], still[32:64, 32:64])
    np.testing.assert_array_equal(frames[1], still[29:61, 36:68])  # half the pan: (+4, -3)
    np.testing.assert_array_equal(frames[2], still[26:58, 40:72])


def test_middle_frame_is_the_motion_at_half_time() -> None:
    """Frame1 equals frame0 of the same motion re-started at t = 0.5 (camera spin/zoom, moving layers)."""
    still, source = _still(2, 160, 160), _still(3, 120, 120)
    camera = CameraMotion(centre=(80.0, 78.0), pan=(9.0, 5.0), angle=0.1, spin=0.08, scale=1.1, zoom=1.07)
    layer = LayerMotion(source=0, position=(20.0, 30.0), velocity=(14.0, -6.0), angle=0.3, spin=-0.2,
                        texture_centre=(60.0, 60.0), texture_scale=0.9, radius=12.0, aspect=1.3,
                        harmonics=((0.2, 1.0),), softness=3.0)
    frames = render_synthetic(still, SyntheticMotion(camera, (layer,)), (48, 64), [source])
    half_camera = CameraMotion(centre=(84.5, 80.5), angle=0.14, scale=1.1 / 1.07**0.5)
    half_layer = LayerMotion(source=0, position=(27.0, 27.0), angle=0.2, texture_centre=(60.0, 60.0),
                             texture_scale=0.9, radius=12.0, aspect=1.3, harmonics=((0.2, 1.0),), softness=3.0)
    still_frame = render_synthetic(still, SyntheticMotion(half_camera, (half_layer,)), (48, 64), [source])[0]
    assert np.abs(frames[1].astype(int) - still_frame).max() <= 1  # float rounding only
    assert not np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[1], frames[2])


def test_layers_occlude_the_background() -> None:
    still, source = np.zeros((200, 200, 3), np.uint8), np.full((100, 100, 3), 255, np.uint8)
    layer = LayerMotion(source=0, position=(20.0, 32.0), velocity=(24.0, 0.0), texture_centre=(50.0, 50.0),
                        shape="box", radius=8.0, softness=0.5)
    frames = render_synthetic(still, SyntheticMotion(CameraMotion((100.0, 100.0)), (layer,)), (64, 64), [source])
    assert frames[0, 32, 20].tolist() == [255] * 3 and frames[0, 32, 44].tolist() == [0] * 3
    assert frames[1, 32, 32].tolist() == [255] * 3  # the middle is half-way: x = 20 + 24 / 2
    assert frames[2, 32, 44].tolist() == [255] * 3 and frames[2, 32, 20].tolist() == [0] * 3  # disoccluded


@pytest.mark.parametrize("resample", ["bilinear", "lanczos"])
def test_whole_pixel_samples_are_the_pixels_exactly(resample: Resample) -> None:
    pytest.importorskip("cv2")
    still = _still(6, 64, 64)
    motion = SyntheticMotion(CameraMotion(centre=(31.5, 31.5), pan=(6.0, -4.0)))
    frames = render_synthetic(still, motion, (32, 32), resample=resample)
    np.testing.assert_array_equal(frames[0], still[16:48, 16:48])
    np.testing.assert_array_equal(frames[1], still[14:46, 19:51])


def _grating_contrast(resample: Resample, frequency: float, offset: float) -> float:
    """Contrast kept by sampling a cosine grating ``offset`` px between its pixels (1: all of it)."""
    x = np.arange(200, dtype=np.float64)
    image = (128.0 + 100.0 * np.cos(2 * np.pi * frequency * x))[None, :, None].repeat(3, axis=0).repeat(3, axis=2)
    at = np.arange(40, 160, dtype=np.float64) + offset
    samples = sample_still(image, at, np.ones_like(at), resample)[:, 0] - 128.0
    truth = 100.0 * np.cos(2 * np.pi * frequency * at)
    return float((samples * truth).sum() / (truth * truth).sum())


def test_lanczos_keeps_fine_detail_equally_sharp_at_every_sub_pixel_offset() -> None:
    """Why ``resample="lanczos"`` exists: bilinear sampling blurs by the offset, cos(pi f) at half a pixel."""
    pytest.importorskip("cv2")
    offsets = np.linspace(0.0, 1.0, 9)[:-1]
    lanczos = [_grating_contrast("lanczos", 0.3, o) for o in offsets]
    bilinear = [_grating_contrast("bilinear", 0.3, o) for o in offsets]
    assert min(lanczos) > 0.97 and max(lanczos) < 1.03
    assert bilinear[0] == pytest.approx(1.0, abs=1e-6)
    assert bilinear[4] == pytest.approx(math.cos(math.pi * 0.3), abs=0.01)  # 0.59 half-way


def test_lanczos_renders_a_half_pixel_pan_as_the_scene_moved_half_a_pixel() -> None:
    pytest.importorskip("cv2")
    y, x = np.mgrid[0:96, 0:96].astype(np.float64)

    def scene(x: np.ndarray, y: np.ndarray) -> np.ndarray:  # band-limited: every term under 0.25 cycles/px
        value = 128 + 50 * np.cos(2 * np.pi * 0.23 * x + 0.4) * np.cos(2 * np.pi * 0.11 * y) + 40 * np.sin(
            2 * np.pi * 0.19 * (x + y))
        return np.repeat(value[..., None], 3, axis=2)

    still = np.clip(np.rint(scene(x, y)), 0, 255).astype(np.uint8)
    motion = SyntheticMotion(CameraMotion(centre=(47.5, 47.5), pan=(1.0, 0.0)))  # frame1: still moved 0.5 px
    oy, ox = np.mgrid[0:32, 0:32].astype(np.float64)
    truth = scene(ox + 32.5, oy + 32.0)
    lanczos = render_synthetic(still, motion, (32, 32), resample="lanczos")[1]
    bilinear = render_synthetic(still, motion, (32, 32))[1]
    assert np.abs(lanczos - truth).max() <= 2.5  # the still's own rounding, and the kernel's 1-2%
    assert np.abs(bilinear - truth).max() > 10  # what lanczos fixes


def test_an_unknown_resampler_is_named() -> None:
    with pytest.raises(ValueError, match="unknown resample 'cubic': choose one of bilinear, lanczos"):
        render_synthetic(_still(7), SyntheticMotion(CameraMotion((48.0, 48.0))), (16, 16), resample="cubic")  # type: ignore[arg-type]


def test_synthetic_triplet_is_deterministic_and_bounded() -> None:
    still, other = _still(4, 400, 400), _still(5, 300, 300)
    a = synthetic_triplet(still, np.random.default_rng(11), (64, 80), sources=[other])
    b = synthetic_triplet(still, np.random.default_rng(11), (64, 80), sources=[other])
    c = synthetic_triplet(still, np.random.default_rng(12), (64, 80), sources=[other])
    assert a.shape == (3, 64, 80, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    for seed in range(40):
        motion = sample_motion(np.random.default_rng(seed), (256, 256), (700, 900, 3), [(500, 500, 3)],
                               max_motion=40.0)
        assert 1 <= len(motion.layers) <= 3
        assert _camera_corner_motion(motion.camera, (256, 256)) <= 40.0 * 1.002
        for layer in motion.layers:
            assert math.hypot(*layer.velocity) <= 40.0 + 1e-9
        restored = SyntheticMotion.from_dict(json.loads(json.dumps(motion.to_dict())))
        assert restored == motion


# --- augmentation ------------------------------------------------------------------------------


def _coded_triplet(height: int = 40, width: int = 44) -> np.ndarray:
    """Channels 0/1 encode the pixel position, channel 2 the frame (0, 100, 200)."""
    y, x = np.mgrid[0:height, 0:width]
    frames = [np.stack([x * 5, y * 6, np.full_like(x, 100 * k)], axis=-1) for k in range(3)]
    return np.stack(frames).astype(np.uint8)


def test_augment_keeps_frames_aligned() -> None:
    triplet = _coded_triplet()
    variants = []
    for image in (triplet[0, ..., :2], triplet[0, ..., :2].transpose(1, 0, 2)):
        variants += [image, image[::-1], image[:, ::-1], image[::-1, ::-1]]
    for seed in range(24):
        out = augment(triplet, np.random.default_rng(seed), size=(32, 32), colour=False)
        assert out.shape == (3, 32, 32, 3) and out.flags.c_contiguous
        np.testing.assert_array_equal(out[0, ..., :2], out[1, ..., :2])
        np.testing.assert_array_equal(out[2, ..., :2], out[1, ..., :2])
        assert (out[1, ..., 2] == 100).all()  # the middle frame stays in the middle
        assert {int(out[0, 0, 0, 2]), int(out[2, 0, 0, 2])} == {0, 200}
        found = any(
            np.array_equal(v[top : top + 32, left : left + 32], out[0, ..., :2])
            for v in variants for top in range(v.shape[0] - 31) for left in range(v.shape[1] - 31)
        )
        assert found, "the crop is a window of a flipped/transposed input"


def test_time_reversal_swaps_first_and_last() -> None:
    triplet = _coded_triplet()
    seen = set()
    for seed in range(16):
        out = augment(triplet, np.random.default_rng(seed), size=(40, 44), flips=False, transpose=False,
                      colour=False)
        if np.array_equal(out, triplet):
            seen.add("forward")
        else:
            np.testing.assert_array_equal(out, triplet[::-1])
            seen.add("reversed")
    assert seen == {"forward", "reversed"}


def test_colour_jitter_is_the_same_for_all_frames_and_keeps_grey() -> None:
    frame = (np.clip(value_noise(np.random.default_rng(3), 40, 40), 0, 1) * 255).astype(np.uint8)
    frame[:4, :4] = 128  # a grey patch
    triplet = np.stack([frame, frame, frame])
    changed = False
    for seed in range(8):
        out = augment(triplet, np.random.default_rng(seed), size=(40, 40), flips=False, transpose=False)
        np.testing.assert_array_equal(out[0], out[1])
        np.testing.assert_array_equal(out[2], out[1])
        changed |= not np.array_equal(out[1], frame)
        grey = out[1, :4, :4].astype(int)
        assert np.abs(grey - grey[..., :1]).max() <= 1
    assert changed


def test_augment_is_deterministic_and_checks_size() -> None:
    triplet = _coded_triplet()
    a = augment(triplet, np.random.default_rng(5), size=(24, 24))
    np.testing.assert_array_equal(a, augment(triplet, np.random.default_rng(5), size=(24, 24)))
    with pytest.raises(ValueError, match="smaller than the crop"):
        augment(triplet, np.random.default_rng(0), size=(48, 48))
    np.testing.assert_array_equal(centre_crop(triplet, (20, 20)), triplet[:, 10:30, 12:32])


# --- cache -------------------------------------------------------------------------------------


def _smooth_triplet(seed: int, height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frames = [value_noise(rng, height, width, cell=8) for _ in range(3)]
    return (np.stack(frames) * 255.0 + 0.5).astype(np.uint8)


def _write_cache(path: Path, codec: str) -> tuple[list[np.ndarray], list[dict]]:
    # 4:4:4: this random-colour texture has far more chroma detail than video, which 4:2:0 would blur.
    writer = TripletCacheWriter(codec=codec, quality=95, subsampling="4:4:4")
    triplets = [_smooth_triplet(k, 40 + 8 * k, 48) for k in range(3)]
    sources = [{"clip": "test.mkv", "frames": [k, k + 1, k + 2], "licence": "CC0-1.0"} for k in range(3)]
    for triplet, source in zip(triplets, sources, strict=True):
        writer.add_triplet(triplet, source)
    # Shared frames: a second triplet of already stored images.
    writer.add_frames([2, 1, 0], {"clip": "test.mkv", "frames": [2, 1, 0], "licence": "CC0-1.0"})
    writer.write(path, {"size": [40, 48]})
    return [*triplets, triplets[0][::-1]], [*sources, {"clip": "test.mkv", "frames": [2, 1, 0], "licence": "CC0-1.0"}]


@pytest.mark.parametrize(("codec", "tolerance"), [("raw", 0), ("png", 0), ("jpeg", 12)])
def test_cache_round_trip(tmp_path: Path, codec: str, tolerance: int) -> None:
    if codec != "raw":
        pytest.importorskip("PIL")
    triplets, sources = _write_cache(tmp_path / "cache", codec)
    cache = TripletCache(tmp_path / "cache")
    assert len(cache) == 4
    for k, expected in enumerate(triplets):
        got = cache[k]
        assert got.shape == expected.shape and got.dtype == np.uint8
        error = np.abs(got.astype(int) - expected)
        assert error.max() <= tolerance
        if codec == "jpeg":
            assert error.mean() < 1.5
    sidecar = json.loads((tmp_path / "cache" / "triplets.json").read_text())
    assert sidecar["codec"] == codec and sidecar["size"] == [40, 48]
    assert [item["source"] for item in sidecar["items"]] == sources
    assert sidecar["counts"] == {"items": 4, "images": 9, "stills": 0, "image_bytes": cache.nbytes}
    assert TripletCache(tmp_path / "cache" / "triplets.npz").meta == sidecar


def test_jpeg_cache_reads_with_opencv_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("PIL")
    pytest.importorskip("cv2")
    _write_cache(tmp_path / "cache", "jpeg")
    with_pillow = TripletCache(tmp_path / "cache")[1]
    monkeypatch.setitem(sys.modules, "PIL", None)  # as on the GPU machine without Pillow
    with_opencv = TripletCache(tmp_path / "cache")[1]
    assert np.abs(with_pillow.astype(int) - with_opencv).max() <= 2


def _synthetic_cache(path: Path) -> tuple[list[np.ndarray], SyntheticRecipe]:
    stills = [_still(20, 200, 240), _still(21, 120, 100), _still(22, 90, 90)]
    writer = TripletCacheWriter(codec="raw")
    for k, still in enumerate(stills):
        writer.add_still(still, {"name": f"still{k}.png", "licence": "CC0-1.0"})
    writer.add_triplet(_smooth_triplet(0, 72, 80), {"clip": "a.mkv", "frames": [0, 1, 2]})
    camera = CameraMotion(centre=(120.0, 100.0), pan=(6.0, 2.0), spin=0.05)
    layer = LayerMotion(source=1, position=(30.0, 20.0), velocity=(10.0, 4.0), texture_centre=(40.0, 40.0),
                        radius=10.0)
    recipe = SyntheticRecipe(background=0, level=0, sources=((1, 0), (2, 0)),
                             motion=SyntheticMotion(camera, (layer,)), size=(64, 64))
    writer.add_synthetic(recipe, {"kind": "synthetic", "licence": "CC0-1.0"})
    writer.write(path)
    return stills, recipe


def test_cache_renders_synthetic_recipes(tmp_path: Path) -> None:
    stills, recipe = _synthetic_cache(tmp_path / "cache")
    cache = TripletCache(tmp_path / "cache")
    assert [cache.kind(i) for i in range(len(cache))] == ["frames", "synthetic"]
    expected = render_synthetic(stills[0], recipe.motion, (64, 64), [stills[1], stills[2]])
    np.testing.assert_array_equal(cache[1], expected)
    assert cache.recipe(1) == recipe
    assert [s["name"] for s in cache.stills] == ["still0.png", "still1.png", "still2.png"]
    fresh = cache.synthesize(np.random.default_rng(3), (48, 48))
    np.testing.assert_array_equal(fresh, cache.synthesize(np.random.default_rng(3), (48, 48)))
    assert fresh.shape == (3, 48, 48, 3)


def test_a_crop_larger_than_some_items_is_refused_at_once_naming_them(tmp_path: Path) -> None:
    """Checked when the dataset opens, from the cache's shapes, not when a worker reaches the item."""
    _synthetic_cache(tmp_path / "cache")
    cache = TripletCache(tmp_path / "cache")
    assert [cache.item_size(i) for i in range(len(cache))] == [(72, 80), (64, 64)]
    assert len(TripletDataset(tmp_path / "cache", size=(72, 80))) == 2  # fresh synthetic items: any size
    with pytest.raises(ValueError, match=r"smaller than the crop 76x76: 1 of a\.mkv \(80x72\); use a smaller --crop"):
        TripletDataset(tmp_path / "cache", size=(76, 76))
    # without fresh synthetic items (validation) the stored recipe's size counts too
    with pytest.raises(ValueError, match=r"crop 68x68: 1 of synthetic \(64x64\);"):
        TripletDataset(tmp_path / "cache", size=(68, 68), train=False)
    assert len(TripletDataset(tmp_path / "cache", size=(64, 64), train=False)) == 2


def test_cache_and_dataset_render_synthetic_items_with_the_chosen_resampler(tmp_path: Path) -> None:
    pytest.importorskip("cv2")
    stills, recipe = _synthetic_cache(tmp_path / "cache")
    expected = render_synthetic(stills[0], recipe.motion, (64, 64), [stills[1], stills[2]], resample="lanczos")
    np.testing.assert_array_equal(TripletCache(tmp_path / "cache", resample="lanczos")[1], expected)
    assert not np.array_equal(TripletCache(tmp_path / "cache")[1], expected)  # bilinear stays the default
    bilinear = TripletDataset(tmp_path / "cache", size=(48, 48), seed=5)
    lanczos = TripletDataset(tmp_path / "cache", size=(48, 48), seed=5, resample="lanczos")
    a, b = pickle.loads(pickle.dumps(lanczos))[1], bilinear[1]  # a worker's copy keeps the choice
    assert not torch.equal(a, b)
    # The same draw (motion, crop, jitter), only sampled differently: far closer than another draw.
    lanczos.set_epoch(1)
    assert (a - b).abs().mean() < 0.5 * (a - lanczos[1]).abs().mean()


# --- dataset -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fresh", [True, False])
def test_dataset_is_deterministic_per_seed_epoch_index(tmp_path: Path, fresh: bool) -> None:
    _synthetic_cache(tmp_path / "cache")
    ds = TripletDataset(tmp_path / "cache", size=(48, 48), seed=5, fresh_synthetic=fresh)
    again = TripletDataset(tmp_path / "cache", size=(48, 48), seed=5, fresh_synthetic=fresh)
    assert len(ds) == 2
    for index in range(len(ds)):
        x = ds[index]
        assert x.shape == (3, 3, 48, 48) and x.dtype == torch.float32
        assert x.min() >= -1.0 and x.max() <= 1.0
        torch.testing.assert_close(x, again[index], rtol=0, atol=0)
        torch.testing.assert_close(x, pickle.loads(pickle.dumps(ds))[index], rtol=0, atol=0)
    first = [ds[i] for i in range(len(ds))]
    ds.set_epoch(1)
    assert all(not torch.equal(a, ds[i]) for i, a in enumerate(first))
    ds.set_epoch(0)
    assert all(torch.equal(a, ds[i]) for i, a in enumerate(first))
    other_seed = TripletDataset(tmp_path / "cache", size=(48, 48), seed=6, fresh_synthetic=fresh)
    assert not torch.equal(first[1], other_seed[1])


def test_dataset_without_augmentation_is_a_centre_crop(tmp_path: Path) -> None:
    _synthetic_cache(tmp_path / "cache")
    ds = TripletDataset(tmp_path / "cache", size=(48, 48), train=False)
    cache = TripletCache(tmp_path / "cache")
    for index in range(len(ds)):
        torch.testing.assert_close(ds[index], to_tensor(centre_crop(cache[index], (48, 48))), rtol=0, atol=0)
    assert to_tensor(np.full((3, 2, 2, 3), 255, np.uint8)).eq(1.0).all()
    assert to_tensor(np.zeros((3, 2, 2, 3), np.uint8)).eq(-1.0).all()


def test_dataset_in_worker_processes_matches(tmp_path: Path) -> None:
    _synthetic_cache(tmp_path / "cache")
    ds = TripletDataset(tmp_path / "cache", size=(48, 48), seed=1)
    ds.set_epoch(3)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    (batch,) = list(loader)
    torch.testing.assert_close(batch, torch.stack([ds[0], ds[1]]), rtol=0, atol=0)
    with pytest.raises(ValueError, match=">= 0"):
        item_rng(0, -1, 0)


def test_mattes_are_black_bars_shared_by_the_three_frames_and_change_nothing_else() -> None:
    triplet = (_smooth_triplet(7, 60, 60) // 2 + 64).astype(np.uint8)  # no pixel is black to begin with
    kinds = set()
    for seed in range(40):
        plain = augment(triplet, np.random.default_rng(seed), size=(48, 48))
        matted = augment(triplet, np.random.default_rng(seed), size=(48, 48), mattes=1.0)
        black = (matted == 0).all(axis=(0, 3))  # (H, W): black in every frame and channel
        rows, cols = black.all(axis=1), black.all(axis=0)
        assert black.any() and (black == (rows[:, None] | cols[None, :])).all()  # whole rows or columns
        lines = rows if rows.any() else cols
        kinds.add("letterbox" if rows.any() else "pillarbox")
        edges = np.flatnonzero(~lines)
        band_a, band_b = edges[0], len(lines) - 1 - edges[-1]
        assert lines[:band_a].all() and lines[edges[-1] + 1 :].all()  # bars touch the frame's edges
        assert max(band_a, band_b) >= 4 and max(band_a, band_b) <= 48 // 6
        np.testing.assert_array_equal(matted[:, ~black], plain[:, ~black])  # the same crop, flips, colour
    assert kinds == {"letterbox", "pillarbox"}


def test_dataset_mattes_share(tmp_path: Path) -> None:
    from ldmvfi_core.train.command import build_parser, options_from_args

    _write_cache(tmp_path / "cache", "png")
    with pytest.raises(ValueError, match=r"mattes 1\.5"):
        TripletDataset(tmp_path / "cache", size=(32, 32), mattes=1.5)
    matted = TripletDataset(tmp_path / "cache", size=(32, 32), mattes=1.0)
    assert all((matted.triplet(i) == 0).all(axis=(0, 3)).any() for i in range(len(matted)))
    args = build_parser().parse_args(["--stage", "1", "--out", "x", "--mattes", "0.1"])
    assert options_from_args(args).mattes == 0.1
