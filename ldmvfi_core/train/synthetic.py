# SPDX-License-Identifier: MIT
"""Synthetic training triplets: continuous motion rendered over still photographs.

A triplet is three frames of one continuous motion sampled at t = 0, 0.5 and 1 (frame0, the true
middle frame1, frame2), so the middle frame is exact, with no motion blur or timing doubt.

* The **camera** views a background still through a moving, rotating, zooming window
  (``CameraMotion``): output pixel p (x, y; pixel centres on integers, c the output centre) samples
  the still at ``centre + t * pan + scale(t) * R(angle + t * spin) @ (p - c)``, with
  ``scale(t) = scale / zoom ** t`` (``zoom`` > 1 magnifies over time).
* One to three **layers** (``LayerMotion``) are shapes cut from other stills (a random star-shaped
  blob or a box, hard or soft edged), composited in order over the background, each with its own
  motion in frame coordinates, so the model sees occlusion and disocclusion.

Everything is numpy, and OpenCV for Lanczos (it runs in data-loader workers on the GPU machine),
with edge clamping, and deterministic: ``sample_motion`` draws every parameter from the given
``numpy.random.Generator`` and ``render_synthetic`` is a pure function of its arguments.

Resampling (``resample``): ``"bilinear"`` (numpy; the shipped model's data) blurs a sample by how
far it falls between pixels, so the three frames of one pan come out blurred by different amounts
(a grating at 0.3 cycles/px keeps 59% of its contrast half-way between pixels, 100% on them):
the model is taught to guess how soft the middle frame should be. ``"lanczos"`` (OpenCV's
8x8 Lanczos) keeps it within 2% at every offset, so the frames show one scene equally sharp, at
no extra cost (``tools/resample_probe.py``: 37 against 41 ms a 256-px triplet on a CPU core).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

Size = tuple[int, int]  # (height, width)
Resample = Literal["bilinear", "lanczos"]
RESAMPLE_CHOICES: tuple[Resample, ...] = ("bilinear", "lanczos")
TIMES = (0.0, 0.5, 1.0)  # frame0, frame1 (the target), frame2
REFERENCE_MOTION = 40.0  # px of motion between frame0 and frame2 at REFERENCE_SIZE
REFERENCE_SIZE = 256


@dataclass(frozen=True)
class CameraMotion:
    """The window onto the background still at time t (see the module docstring).

    Attributes:
        centre: still coordinates (x, y) seen at the output centre at t = 0.
        pan: still pixels the window centre moves from t = 0 to t = 1.
        angle: window rotation at t = 0, radians.
        spin: rotation added from t = 0 to t = 1, radians.
        scale: still pixels per output pixel at t = 0.
        zoom: magnification from t = 0 to t = 1 (> 1 zooms in).
    """

    centre: tuple[float, float]
    pan: tuple[float, float] = (0.0, 0.0)
    angle: float = 0.0
    spin: float = 0.0
    scale: float = 1.0
    zoom: float = 1.0

    def to_still(self, t: float, x: np.ndarray, y: np.ndarray, size: Size) -> tuple[np.ndarray, np.ndarray]:
        """Still coordinates sampled by output pixels (x, y) at time t."""
        cx, cy = (size[1] - 1) / 2.0, (size[0] - 1) / 2.0
        s = self.scale / self.zoom**t
        a = self.angle + t * self.spin
        ca, sa = math.cos(a) * s, math.sin(a) * s
        dx, dy = x - cx, y - cy
        return (self.centre[0] + t * self.pan[0] + ca * dx - sa * dy,
                self.centre[1] + t * self.pan[1] + sa * dx + ca * dy)

    def to_output(self, t: float, sx: np.ndarray, sy: np.ndarray, size: Size) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of ``to_still``: where still point (sx, sy) appears in the output at time t."""
        cx, cy = (size[1] - 1) / 2.0, (size[0] - 1) / 2.0
        s = self.scale / self.zoom**t
        a = self.angle + t * self.spin
        ca, sa = math.cos(a) / s, math.sin(a) / s
        dx, dy = sx - self.centre[0] - t * self.pan[0], sy - self.centre[1] - t * self.pan[1]
        return cx + ca * dx + sa * dy, cy - sa * dx + ca * dy


@dataclass(frozen=True)
class LayerMotion:
    """A foreground layer: a textured shape moving in output (frame) coordinates.

    At time t the shape's centre is ``position + t * velocity``, its angle ``angle + t * spin`` and
    its size factor ``grow ** t``. Output pixel p maps to layer coordinates
    ``u = R(-angle(t)) (p - centre(t)) / grow ** t``; the alpha is the shape evaluated at u, the
    colour is sampled from foreground still ``source`` at ``texture_centre + texture_scale * u``.

    Attributes:
        source: index into the foreground stills given to ``render_synthetic``.
        shape: ``"blob"`` (star-shaped outline: an ellipse with ``harmonics``) or ``"box"``.
        radius: x half-size of the shape, px; the y half-size is ``radius * aspect``.
        harmonics: (amplitude, phase) of the outline's cos(k a + phase) terms, k = 2, 3, ...
        softness: width of the alpha ramp across the edge, px (about 1 = a hard, antialiased edge).
    """

    source: int
    position: tuple[float, float]
    velocity: tuple[float, float] = (0.0, 0.0)
    angle: float = 0.0
    spin: float = 0.0
    grow: float = 1.0
    texture_centre: tuple[float, float] = (0.0, 0.0)
    texture_scale: float = 1.0
    shape: str = "blob"
    radius: float = 40.0
    aspect: float = 1.0
    harmonics: tuple[tuple[float, float], ...] = ()
    softness: float = 1.0

    def extent(self) -> float:
        """Radius (layer px, before ``grow``) of a circle holding the whole shape and its edge ramp."""
        ry = self.radius * self.aspect
        if self.shape == "box":
            reach = math.hypot(self.radius, ry)
        else:
            reach = max(self.radius, ry) * (1.0 + sum(abs(a) for a, _ in self.harmonics))
        return reach + self.softness

    def alpha(self, ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
        """Coverage in [0, 1] at layer coordinates (ux, uy)."""
        ry = self.radius * self.aspect
        if self.shape == "box":
            inside = np.minimum(self.radius - np.abs(ux), ry - np.abs(uy))
        else:
            # Distance-like field: outline radius along the ray minus the (ellipse-normalised) radius.
            vx, vy = ux / self.radius, uy / ry
            r = np.hypot(vx, vy)
            a = np.arctan2(vy, vx)
            outline = np.ones_like(r)
            for k, (amplitude, phase) in enumerate(self.harmonics, start=2):
                outline += amplitude * np.cos(k * a + phase)
            inside = (outline - r) * min(self.radius, ry)
        return np.clip(inside / max(self.softness, 1e-3) + 0.5, 0.0, 1.0)


@dataclass(frozen=True)
class SyntheticMotion:
    """Camera motion over the background plus the foreground layers, bottom to top."""

    camera: CameraMotion
    layers: tuple[LayerMotion, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (``from_dict`` reverses it)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SyntheticMotion:
        """Rebuild from ``to_dict`` output (lists accepted for tuples, as JSON gives them)."""
        cam = dict(data["camera"])
        cam["centre"], cam["pan"] = tuple(cam["centre"]), tuple(cam["pan"])
        layers = []
        for item in data.get("layers", ()):
            layer = dict(item)
            for key in ("position", "velocity", "texture_centre"):
                layer[key] = tuple(layer[key])
            layer["harmonics"] = tuple(tuple(h) for h in layer.get("harmonics", ()))
            layers.append(LayerMotion(**layer))
        return cls(camera=CameraMotion(**cam), layers=tuple(layers))


def as_rgb(image: np.ndarray) -> np.ndarray:
    """H x W (grey), H x W x 1, 3 or 4 uint8 -> H x W x 3 uint8."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"still must be uint8, got {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"still must be H x W x 1/3/4, got shape {image.shape}")
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def sample_bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` (H x W x C) at float coordinates, edges clamped; float32 (..., C).

    Whole-pixel coordinates return the pixel exactly (weights 0 and 1).
    """
    h, w = image.shape[:2]
    x = np.clip(x, 0.0, w - 1.0)
    y = np.clip(y, 0.0, h - 1.0)
    x0, y0 = np.floor(x).astype(np.intp), np.floor(y).astype(np.intp)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx = (x - x0).astype(np.float32)[..., None]
    fy = (y - y0).astype(np.float32)[..., None]
    top = image[y0, x0].astype(np.float32) * (1.0 - fx) + image[y0, x1].astype(np.float32) * fx
    bottom = image[y1, x0].astype(np.float32) * (1.0 - fx) + image[y1, x1].astype(np.float32) * fx
    return top * (1.0 - fy) + bottom * fy


def sample_lanczos(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Lanczos (8x8, OpenCV) samples of ``image`` (H x W x C) at float coordinates, edges clamped;
    float32 (..., C), not clipped (ringing may overshoot the input's range).

    Whole-pixel coordinates return the pixel exactly, as ``sample_bilinear`` does.
    """
    try:
        import cv2
    except ImportError as error:  # an optional dependency: only this resampler needs it
        raise ImportError("the lanczos resampler needs OpenCV: pip install 'ldmvfi[train]'") from error
    h, w = image.shape[:2]
    x = np.clip(x, 0.0, w - 1.0)
    y = np.clip(y, 0.0, h - 1.0)
    # Only the region the samples reach (plus the kernel's reach) is converted: stills are large.
    x0, y0 = max(0, int(x.min()) - 4), max(0, int(y.min()) - 4)
    x1, y1 = min(w, int(x.max()) + 5), min(h, int(y.max()) + 5)
    region = np.ascontiguousarray(image[y0:y1, x0:x1], dtype=np.float32)
    # Coordinates relative to the region stay small, so float32 keeps them to ~1e-4 px. OpenCV
    # wants 2-D maps (each side under 32,768).
    grid = x.shape if x.ndim == 2 else (1, x.size)
    map_x = (x - x0).astype(np.float32).reshape(grid)
    map_y = (y - y0).astype(np.float32).reshape(grid)
    out = cv2.remap(region, map_x, map_y, cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(*x.shape, image.shape[2])


def check_resample(resample: str) -> Resample:
    """``resample`` if it names a resampler; otherwise a ValueError that lists them."""
    for choice in RESAMPLE_CHOICES:
        if resample == choice:
            return choice
    raise ValueError(f"unknown resample {resample!r}: choose one of {', '.join(RESAMPLE_CHOICES)}")


def sample_still(image: np.ndarray, x: np.ndarray, y: np.ndarray, resample: Resample = "bilinear") -> np.ndarray:
    """Samples of ``image`` at float coordinates with the named resampler (see the module docstring)."""
    if check_resample(resample) == "lanczos":
        return sample_lanczos(image, x, y)
    return sample_bilinear(image, x, y)


def _camera_corner_motion(camera: CameraMotion, size: Size) -> float:
    """Largest displacement (output px) of a frame corner's content from t = 0 to t = 1."""
    h, w = size
    x = np.array([0.0, w - 1.0, 0.0, w - 1.0, (w - 1) / 2.0])
    y = np.array([0.0, 0.0, h - 1.0, h - 1.0, (h - 1) / 2.0])
    sx, sy = camera.to_still(0.0, x, y, size)
    x1, y1 = camera.to_output(1.0, sx, sy, size)
    return float(np.hypot(x1 - x, y1 - y).max())


def _camera_fits(camera: CameraMotion, size: Size, still_shape: tuple[int, ...]) -> tuple[bool, np.ndarray]:
    """Whether every sample lies inside the still; also the allowed range of ``centre``."""
    h, w = size
    x = np.array([0.0, w - 1.0, 0.0, w - 1.0])
    y = np.array([0.0, 0.0, h - 1.0, h - 1.0])
    at_origin = CameraMotion((0.0, 0.0), camera.pan, camera.angle, camera.spin, camera.scale, camera.zoom)
    lo, hi = np.full(2, -np.inf), np.full(2, np.inf)
    for t in TIMES:
        sx, sy = at_origin.to_still(t, x, y, size)
        lo = np.maximum(lo, [-sx.min(), -sy.min()])
        hi = np.minimum(hi, [still_shape[1] - 1.0 - sx.max(), still_shape[0] - 1.0 - sy.max()])
    return bool(np.all(lo <= hi)), np.stack([lo, hi])


def _sample_camera(rng: np.random.Generator, size: Size, still_shape: tuple[int, ...],
                   max_motion: float) -> CameraMotion:
    h, w = size
    corner = math.hypot(w / 2.0, h / 2.0)
    scale = math.exp(rng.uniform(math.log(0.7), math.log(1.4)))
    angle = rng.uniform(-0.25, 0.25) if rng.random() < 0.5 else 0.0
    pan, spin, log_zoom = np.zeros(2), 0.0, 0.0
    if rng.random() >= 0.2:  # a fifth of the triplets: locked-off camera, only the layers move
        direction = rng.uniform(0.0, 2.0 * math.pi)
        pan = rng.uniform(0.0, max_motion) * np.array([math.cos(direction), math.sin(direction)])
        if rng.random() < 0.4:
            spin = rng.uniform(-0.3, 0.3) * max_motion / corner
        if rng.random() < 0.4:
            log_zoom = rng.uniform(-0.3, 0.3) * max_motion / corner
    while True:
        camera = CameraMotion((0.0, 0.0), (float(pan[0] * scale), float(pan[1] * scale)), angle, spin, scale,
                              math.exp(log_zoom))
        moved = _camera_corner_motion(camera, size)
        if moved > max_motion * 1.001:  # pan, spin and zoom add up: shrink them together
            k = max_motion / moved
            pan, spin, log_zoom = pan * k, spin * k, log_zoom * k
            continue
        fits, bounds = _camera_fits(camera, size, still_shape)
        if fits or scale < 0.25:
            break
        scale *= 0.85  # the still is too small for this window: magnify it a little
    if fits:
        centre = rng.uniform(bounds[0], bounds[1])
    else:  # a tiny still: look at its middle; edge clamping fills the rest
        centre = np.array([(still_shape[1] - 1) / 2.0, (still_shape[0] - 1) / 2.0])
    return CameraMotion((float(centre[0]), float(centre[1])), camera.pan, angle, spin, scale, camera.zoom)


def _sample_layer(rng: np.random.Generator, size: Size, source: int, source_shape: tuple[int, ...],
                  max_motion: float) -> LayerMotion:
    h, w = size
    shape = "blob" if rng.random() < 0.7 else "box"
    radius = rng.uniform(0.08, 0.3) * min(h, w)
    aspect = math.exp(rng.uniform(math.log(0.6), math.log(1.6)))
    harmonics: tuple[tuple[float, float], ...] = ()
    if shape == "blob":
        n = int(rng.integers(0, 5))
        amplitudes = rng.dirichlet(np.ones(n + 1))[:n] * rng.uniform(0.0, 0.45) if n else np.zeros(0)
        harmonics = tuple((float(a), float(rng.uniform(0, 2 * math.pi))) for a in amplitudes)
    softness = 1.0 if rng.random() < 0.5 else float(rng.uniform(2.0, 12.0))
    reach = radius * max(1.0, aspect)
    direction = rng.uniform(0.0, 2.0 * math.pi)
    velocity = rng.uniform(0.0, max_motion) * np.array([math.cos(direction), math.sin(direction)])
    spin = rng.uniform(-0.3, 0.3) * max_motion / reach if rng.random() < 0.5 else 0.0
    log_grow = rng.uniform(-0.2, 0.2) * max_motion / reach if rng.random() < 0.4 else 0.0
    # Largest displacement of an outline point: translation + rotation + growth at the rim.
    moved = float(np.hypot(*velocity)) + reach * (abs(spin) + abs(math.expm1(log_grow)))
    if moved > max_motion:
        k = max_motion / moved
        velocity, spin, log_grow = velocity * k, spin * k, log_grow * k
    texture_scale = math.exp(rng.uniform(math.log(0.7), math.log(1.4)))
    # Texture centre: keep the layer's footprint inside the source where the source is big enough.
    margin = reach * 1.3 * texture_scale
    centre = []
    for extent in (source_shape[1], source_shape[0]):
        lo, hi = margin, extent - 1.0 - margin
        centre.append(float(rng.uniform(lo, hi)) if lo < hi else (extent - 1) / 2.0)
    position = (float(rng.uniform(-0.1 * w, 1.1 * w)), float(rng.uniform(-0.1 * h, 1.1 * h)))
    return LayerMotion(
        source=source, position=position, velocity=(float(velocity[0]), float(velocity[1])),
        angle=float(rng.uniform(-math.pi, math.pi)), spin=float(spin), grow=math.exp(log_grow),
        texture_centre=(centre[0], centre[1]), texture_scale=texture_scale, shape=shape,
        radius=float(radius), aspect=aspect, harmonics=harmonics, softness=softness)


def default_max_motion(size: Size) -> float:
    """~40 px between frame0 and frame2 at 256 px, scaled with the smaller side."""
    return REFERENCE_MOTION * min(size) / REFERENCE_SIZE


def sample_motion(rng: np.random.Generator, size: Size, still_shape: tuple[int, ...],
                  source_shapes: Sequence[tuple[int, ...]], *, max_motion: float | None = None,
                  n_layers: int | None = None) -> SyntheticMotion:
    """Draw a random camera motion and 1-3 layers (``n_layers`` to fix it; 0 allowed).

    Args:
        rng: the only source of randomness.
        size: output (height, width).
        still_shape: shape of the background still (the window stays inside it where possible).
        source_shapes: shapes of the foreground stills the layers take their texture from.
        max_motion: largest displacement from frame0 to frame2, output px, for the camera and,
            relative to the frame, for each layer (default ``default_max_motion(size)``).
    """
    limit = default_max_motion(size) if max_motion is None else float(max_motion)
    camera = _sample_camera(rng, size, still_shape, limit)
    count = int(rng.integers(1, 4)) if n_layers is None else n_layers
    if count and not source_shapes:
        raise ValueError("layers need at least one foreground still")
    layers = []
    for _ in range(count):
        source = int(rng.integers(len(source_shapes)))
        layers.append(_sample_layer(rng, size, source, source_shapes[source], limit))
    return SyntheticMotion(camera=camera, layers=tuple(layers))


def _render_layer(frame: np.ndarray, layer: LayerMotion, source: np.ndarray, t: float,
                  resample: Resample = "bilinear") -> None:
    """Composite ``layer`` at time t over ``frame`` (float32 H x W x 3), in place, inside its bounding box."""
    h, w = frame.shape[:2]
    grow = layer.grow**t
    px, py = layer.position[0] + t * layer.velocity[0], layer.position[1] + t * layer.velocity[1]
    reach = layer.extent() * grow + 1.0
    x0, x1 = max(0, math.floor(px - reach)), min(w, math.ceil(px + reach) + 1)
    y0, y1 = max(0, math.floor(py - reach)), min(h, math.ceil(py + reach) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    y, x = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    a = layer.angle + t * layer.spin
    ca, sa = math.cos(a) / grow, math.sin(a) / grow
    dx, dy = x - px, y - py
    ux, uy = ca * dx + sa * dy, -sa * dx + ca * dy
    alpha = layer.alpha(ux, uy).astype(np.float32)[..., None]
    colour = sample_still(source, layer.texture_centre[0] + layer.texture_scale * ux,
                          layer.texture_centre[1] + layer.texture_scale * uy, resample)
    region = frame[y0:y1, x0:x1]
    region += alpha * (colour - region)


def render_synthetic(still: np.ndarray, motion: SyntheticMotion, size: Size = (256, 256),
                     sources: Sequence[np.ndarray] = (), *, resample: Resample = "bilinear") -> np.ndarray:
    """Render frames at t = 0, 0.5, 1 of ``motion``: (3, H, W, 3) uint8.

    Args:
        still: background still, uint8 H x W (x 1, 3 or 4).
        motion: camera and layers (``LayerMotion.source`` indexes ``sources``).
        size: output (height, width).
        sources: foreground stills.
        resample: how the stills are sampled (module docstring).
    """
    check_resample(resample)  # before any work, not at the first sample
    still = as_rgb(still)
    sources = [as_rgb(s) for s in sources]
    for layer in motion.layers:
        if not 0 <= layer.source < len(sources):
            raise ValueError(f"layer source {layer.source} out of range: {len(sources)} foreground stills")
    h, w = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty((3, h, w, 3), np.uint8)
    for k, t in enumerate(TIMES):
        frame = sample_still(still, *motion.camera.to_still(t, x, y, size), resample)
        for layer in motion.layers:
            _render_layer(frame, layer, sources[layer.source], t, resample)
        out[k] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return out


def synthetic_triplet(still: np.ndarray, rng: np.random.Generator, size: Size = (256, 256), *,
                      sources: Sequence[np.ndarray] | None = None, max_motion: float | None = None,
                      n_layers: int | None = None, resample: Resample = "bilinear") -> np.ndarray:
    """A random synthetic triplet over ``still``: (3, H, W, 3) uint8, frame1 exactly at t = 0.5.

    Layers take their texture from ``sources`` (other stills); without them, from other parts of
    ``still``. Deterministic given ``rng``'s state.
    """
    pool = [as_rgb(s) for s in sources] if sources else [as_rgb(still)]
    motion = sample_motion(rng, size, still.shape, [s.shape for s in pool], max_motion=max_motion,
                           n_layers=n_layers)
    return render_synthetic(still, motion, size, pool, resample=resample)
