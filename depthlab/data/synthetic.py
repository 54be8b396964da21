"""Procedural stereo scenes: random textured rooms with boxes and spheres, ray cast from two cameras.

Geometry (all in metres). The camera frame is OpenCV's: x right, y down, z forward. A pixel with
integer coordinates (u, v) looks along the ray d = ((u - cx) / fx, (v - cy) / fy, 1), so the ray
parameter t at a hit *is* the z-depth of the hit in the camera frame. The right camera sits
``baseline_m`` along the left camera's +x axis with the same orientation (a rectified pair), so a
point at depth z seen at column u in the left image is seen at column u - fx * b / z in the right.

Textures are functions of the 3D surface point (sums of oriented sinusoids and a 3D checker,
with Lambertian shading from a fixed directional light), hence view independent: apart from
occlusions both views see the same colour for the same point and stereo matching works.

Every sample is a pure function of (seed, split, index): train, val and test draw from disjoint
random streams.

Depth Hints: with ``hints_root`` every sample also carries ``hint``/``hint_right`` read from
``<hints_root>/<split>/image_0{2,3}/<index:06d>.npy`` (KITTI's camera names: 02 left, 03 right;
written by ``depthlab hints precompute``); with ``hints_on_the_fly`` they are computed from the
rendered pair instead (``depthlab.hints.compute_stereo_hints``, the published 12-setting grid at the
image's own size: the same arrays precompute writes).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

import numpy as np
import torch

from depthlab.data.batch import DepthSample
from depthlab.data.keys import STEREO_FRAME, check_frame_ids, frame_keys, frame_suffix, temporal_ids, view_keys
from depthlab.data.loading import Split, SplitDataModule
from depthlab.data.pipeline import SampleDataset, to_tensors
from depthlab.data.stereo_hints import StereoHintsMixin, read_hints
from depthlab.errors import ConfigError

if TYPE_CHECKING:
    from depthlab.data.transforms import DepthAugment

_SPLIT_ID = {"train": 0, "val": 1, "test": 2}
_N_WAVES = 4  # sinusoids per surface texture


@dataclass(frozen=True)
class SceneConfig:
    """What the generator draws. Depths in metres, angles in degrees."""

    height: int = 96
    width: int = 128
    hfov_deg: float = 70.0
    baseline_m: float = 0.25
    min_depth: float = 0.5
    max_depth: float = 10.0
    max_boxes: int = 4
    max_spheres: int = 3
    gt_density: float = 1.0  # fraction of valid pixels kept (LiDAR-like sparse ground truth when < 1)
    supersample: int = 1  # colour of a pixel: the mean of supersample x supersample rays over its area

    def __post_init__(self) -> None:
        if self.height < 8 or self.width < 8:
            raise ValueError(f"data: height and width must be >= 8, got {self.height}x{self.width}")
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError(f"data: need 0 < min_depth < max_depth, got {self.min_depth}, {self.max_depth}")
        if not 0 < self.gt_density <= 1:
            raise ValueError(f"data.gt_density must be in (0, 1], got {self.gt_density}")
        if not 10 <= self.hfov_deg <= 150:
            raise ValueError(f"data.hfov_deg must be in [10, 150], got {self.hfov_deg}")
        if isinstance(self.supersample, bool) or not isinstance(self.supersample, int) or \
                not 1 <= self.supersample <= 8:
            raise ConfigError(f"data.supersample: expected an integer from 1 to 8 (rays per pixel side), "
                              f"got {self.supersample!r}")

    @property
    def intrinsics(self) -> tuple[float, float, float, float]:
        """fx, fy, cx, cy in pixels (square pixels, principal point at the image centre)."""
        fx = 0.5 * self.width / math.tan(math.radians(self.hfov_deg) / 2)
        return fx, fx, (self.width - 1) / 2, (self.height - 1) / 2


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return r_yaw @ r_pitch @ r_roll


@dataclass
class Scene:
    """One random room. Surfaces 0-5 are the room's walls, then boxes, then spheres."""

    room_lo: np.ndarray  # (3,)
    room_hi: np.ndarray  # (3,)
    boxes: np.ndarray  # (nb, 2, 3) lo, hi
    spheres: np.ndarray  # (ns, 4) centre xyz, radius
    rotation: np.ndarray  # (3, 3) camera-to-world
    base_color: np.ndarray  # (K, 3)
    wave_vec: np.ndarray  # (K, W, 3) spatial frequencies, rad/m
    wave_phase: np.ndarray  # (K, W)
    checker_m: np.ndarray  # (K,) checker cell size
    checker_amp: np.ndarray  # (K,)
    light: np.ndarray  # (3,) unit direction towards the light


def sample_scene(cfg: SceneConfig, rng: np.random.Generator) -> Scene:
    """Draw a room around the camera (at the world origin) and objects in front of it."""
    far = rng.uniform(0.55, 0.9) * cfg.max_depth
    room_lo = np.array([-rng.uniform(1.5, 4.0), -rng.uniform(1.2, 2.0), -rng.uniform(0.5, 2.0)])
    room_hi = np.array([rng.uniform(1.5, 4.0), rng.uniform(1.0, 1.6), far])
    floor_y = room_hi[1]
    near = max(cfg.min_depth + 0.6, 1.0)
    boxes = []
    for _ in range(rng.integers(1, cfg.max_boxes + 1)):
        size = rng.uniform([0.3, 0.3, 0.3], [1.2, 1.5, 1.2])
        cx = rng.uniform(room_lo[0] + size[0] / 2, room_hi[0] - size[0] / 2)
        cz = rng.uniform(near + size[2] / 2, far - size[2] / 2 - 0.1)
        lo = np.array([cx - size[0] / 2, floor_y - size[1], cz - size[2] / 2])
        boxes.append(np.stack([lo, lo + size]))
    spheres = []
    for _ in range(rng.integers(0, cfg.max_spheres + 1)):
        r = rng.uniform(0.2, 0.6)
        centre = [rng.uniform(room_lo[0] + r, room_hi[0] - r), rng.uniform(-0.5, floor_y - r), rng.uniform(near + r, far - r - 0.1)]
        spheres.append([*centre, r])
    n_surfaces = 6 + len(boxes) + len(spheres)
    directions = rng.normal(size=(n_surfaces, _N_WAVES, 3))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    light = np.array([rng.uniform(-0.5, 0.5), -1.0, rng.uniform(-0.8, -0.2)])
    return Scene(
        room_lo=room_lo,
        room_hi=room_hi,
        boxes=np.array(boxes, dtype=np.float64).reshape(-1, 2, 3),
        spheres=np.array(spheres, dtype=np.float64).reshape(-1, 4),
        rotation=_rotation(rng.uniform(-0.35, 0.35), rng.uniform(-0.2, 0.15), rng.uniform(-0.05, 0.05)),
        base_color=rng.uniform(0.15, 0.95, size=(n_surfaces, 3)),
        wave_vec=directions * rng.uniform(2.0, 25.0, size=(n_surfaces, _N_WAVES, 1)),
        wave_phase=rng.uniform(0, 2 * np.pi, size=(n_surfaces, _N_WAVES)),
        checker_m=rng.uniform(0.1, 0.6, size=n_surfaces),
        checker_amp=rng.uniform(0.0, 0.35, size=n_surfaces),
        light=light / np.linalg.norm(light),
    )


def _safe_inv(d: np.ndarray) -> np.ndarray:
    return 1.0 / np.where(np.abs(d) < 1e-12, 1e-12, d)


def _argmin3(c: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(min, first index of the min) over three equal-shape arrays: ``np.min``/``np.argmin`` along
    an axis of length 3, computed column by column (numpy's reductions over a short last axis are
    several times slower than three element-wise passes; the values are the same)."""
    low = np.minimum(np.minimum(c[0], c[1]), c[2])
    return low, np.where(c[0] == low, 0, np.where(c[1] == low, 1, 2))


def _intersect(scene: Scene, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit of each ray ``origin + t * dirs`` (dirs (N, 3), world frame).

    Returns t (N,), surface id (N,) and normal (N, 3). Per axis on contiguous columns, and each
    object's hits written in place: the same arithmetic, element by element, as a slab test on the
    (N, 3) arrays (``tests/data/test_synthetic.py`` holds the renders to that).
    """
    n = dirs.shape[0]
    inv = np.ascontiguousarray(_safe_inv(dirs).T)  # (3, N): one contiguous column per axis
    d = np.ascontiguousarray(dirs.T)
    # Room: the camera is inside the box, so each ray leaves through the nearest exit face.
    t_exit = [np.where(d[k] > 0, (scene.room_hi[k] - origin[k]) * inv[k], (scene.room_lo[k] - origin[k]) * inv[k])
              for k in range(3)]
    t_best, axis = _argmin3(t_exit)
    rows = np.arange(n)
    positive = d[axis, rows] > 0
    surface = axis * 2 + positive  # 0..5: -x, +x, -y (ceiling), +y (floor), -z, +z walls
    normal = np.zeros((n, 3))
    normal[rows, axis] = np.where(positive, -1.0, 1.0)

    sid = 6
    for lo, hi in scene.boxes:  # slab test
        t1 = [(lo[k] - origin[k]) * inv[k] for k in range(3)]
        t2 = [(hi[k] - origin[k]) * inv[k] for k in range(3)]
        t_near = [np.minimum(a, b) for a, b in zip(t1, t2)]
        t_enter = np.maximum(np.maximum(t_near[0], t_near[1]), t_near[2])
        t_leave = _argmin3([np.maximum(a, b) for a, b in zip(t1, t2)])[0]
        hit = np.nonzero((t_enter <= t_leave) & (t_enter > 1e-6) & (t_enter < t_best))[0]
        if hit.size:
            enter = t_near[0][hit], t_near[1][hit], t_near[2][hit]
            enter_axis = np.where(enter[0] == t_enter[hit], 0, np.where(enter[1] == t_enter[hit], 1, 2))  # argmax
            t_best[hit] = t_enter[hit]
            surface[hit] = sid
            normal[hit] = 0.0
            normal[hit, enter_axis] = -np.sign(d[enter_axis, hit])
        sid += 1
    a = np.einsum("ij,ij->i", dirs, dirs)
    for cx, cy, cz, r in scene.spheres:
        oc = origin - np.array([cx, cy, cz])
        b = 2.0 * dirs @ oc
        c = oc @ oc - r * r
        disc = b * b - 4 * a * c
        t = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2 * a)
        hit = np.nonzero((disc >= 0) & (t > 1e-6) & (t < t_best))[0]
        if hit.size:
            t_best[hit] = t[hit]
            surface[hit] = sid
            p = origin + t[hit, None] * dirs[hit]
            normal[hit] = (p - np.array([cx, cy, cz])) / r
        sid += 1
    return t_best, surface, normal


def _shade(scene: Scene, points: np.ndarray, surface: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """View-independent colour of each surface point: texture(p) x Lambert(n . l). Returns (N, 3).

    The sums over the 4 waves and the 3 coordinates are written out term by term, in the order
    numpy's reductions add them (the same values; several times faster than reducing a short last
    axis). The phases keep ``np.einsum``, whose own order of the 3 products a written-out sum
    would not match to the last bit.
    """
    phase = np.einsum("nwk,nk->nw", scene.wave_vec[surface], points) + scene.wave_phase[surface]
    sines = np.sin(phase)
    waves = 0.5 + 0.5 * (sum((sines[:, w] for w in range(1, _N_WAVES)), sines[:, 0]) / _N_WAVES)  # [0, 1]
    p = [np.ascontiguousarray(points[:, k]) for k in range(3)]
    cell_m = scene.checker_m[surface]
    cells = np.floor(p[0] / cell_m) + np.floor(p[1] / cell_m) + np.floor(p[2] / cell_m)
    checker = np.where(cells % 2 == 0, 1.0, -1.0) * scene.checker_amp[surface]
    albedo = scene.base_color[surface] * np.clip(0.45 + 0.55 * waves + 0.5 * checker, 0.05, 1.2)[:, None]
    lambert = 0.35 + 0.65 * np.clip(normal @ scene.light, 0.0, 1.0)
    return np.clip(albedo * lambert[:, None], 0.0, 1.0)


@functools.lru_cache(maxsize=8)
def _camera_rays(cfg: SceneConfig) -> np.ndarray:
    """(H * W, 3) ray of each pixel in the camera frame, z = 1 (the same for every sample of a
    configuration: computed once; read-only)."""
    fx, fy, cx, cy = cfg.intrinsics
    v, u = np.mgrid[0 : cfg.height, 0 : cfg.width].astype(np.float64)
    rays = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], axis=-1).reshape(-1, 3)
    rays.flags.writeable = False
    return rays


@functools.lru_cache(maxsize=8)
def _subpixel_rays(cfg: SceneConfig) -> np.ndarray:
    """(H * S * W * S, 3) rays through an S x S grid of points spread evenly over each pixel's
    area (S = ``cfg.supersample``; pixel (u, v) covers [u - 1/2, u + 1/2] x [v - 1/2, v + 1/2]),
    ordered (v, j, u, i) so that a reshape to (H, S, W, S) groups each pixel's rays."""
    fx, fy, cx, cy = cfg.intrinsics
    n = cfg.supersample
    offsets = (np.arange(n) + 0.5) / n - 0.5
    v = (np.arange(cfg.height)[:, None] + offsets[None, :]).reshape(-1)
    u = (np.arange(cfg.width)[:, None] + offsets[None, :]).reshape(-1)
    v, u = np.meshgrid(v, u, indexing="ij")
    rays = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], axis=-1).reshape(-1, 3)
    rays.flags.writeable = False
    return rays


def render_view(scene: Scene, cfg: SceneConfig, offset_x_m: float = 0.0,
                camera: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render the camera displaced by ``offset_x_m`` along its own x axis; ``camera`` (4, 4), if
    given, places it first: the camera-to-target-camera motion of a video frame (see
    :func:`frame_camera`), so the rendered camera is ``camera`` then the x offset.

    The depth is the ray through the pixel's centre; with ``cfg.supersample`` S > 1 the colour is
    the mean of S x S rays spread over the pixel's area (a box filter, as a sensor integrates its
    pixel): textures finer than the pixel grid then average out instead of aliasing into patterns
    that change with the viewpoint, which video photometric losses would read as motion.

    Returns RGB (H, W, 3) float32 in [0, 1] and z-depth (H, W) float32 in metres.
    """
    if camera is None:
        rotation = scene.rotation
        origin = scene.rotation @ np.array([offset_x_m, 0.0, 0.0])
    else:  # world <- target camera <- this camera
        rotation = scene.rotation @ camera[:3, :3]
        origin = scene.rotation @ (camera[:3, :3] @ np.array([offset_x_m, 0.0, 0.0]) + camera[:3, 3])
    dirs = _camera_rays(cfg) @ rotation.T
    t, surface, normal = _intersect(scene, origin, dirs)
    if cfg.supersample == 1:
        points = origin + t[:, None] * dirs
        rgb = _shade(scene, points, surface, normal)
    else:
        n = cfg.supersample
        sub = _subpixel_rays(cfg) @ rotation.T
        t_sub, surface_sub, normal_sub = _intersect(scene, origin, sub)
        rgb = _shade(scene, origin + t_sub[:, None] * sub, surface_sub, normal_sub)
        rgb = rgb.reshape(cfg.height, n, cfg.width, n, 3).mean(axis=(1, 3))
    return (
        rgb.reshape(cfg.height, cfg.width, 3).astype(np.float32),
        t.reshape(cfg.height, cfg.width).astype(np.float32),  # t is the z-depth: dirs_cam has z = 1
    )


#: The keys of every synthetic sample (with hints configured, also :data:`HINT_KEYS`).
SAMPLE_KEYS = view_keys(["image", "depth"], stereo=True) | {"intrinsics", "baseline_m", "index"}
HINT_KEYS = view_keys(["hint"], stereo=True)
#: Where sample ``index`` of ``split`` has its hints under hints_root (camera 02 left, 03 right, as KITTI).
HINT_LAYOUT = "<split>/image_0{2,3}/<index:06d>.npy"


#: The trajectory of a sample's video: speed (metres per frame) and turn (degrees per frame) ranges.
SPEED_M = (0.1, 0.2)
TURN_DEG = (0.5, 2.0)
MAX_FRAME_OFFSET = 2  # the room's back wall is >= 0.5 m behind the target camera: 2 x 0.2 m stays inside
#: How far behind the target camera a frame may sit: the room's back wall is >= 0.5 m behind it.
MAX_BACKWARD_M = 0.45


def frames_back(speed_high_m: float) -> int:
    """How many frames before the target a video of at most ``speed_high_m`` metres a frame may
    reach: the largest k <= :data:`MAX_FRAME_OFFSET` with k frames inside :data:`MAX_BACKWARD_M`."""
    return max(k for k in range(MAX_FRAME_OFFSET + 1) if k * speed_high_m <= MAX_BACKWARD_M + 1e-9)
#: The largest heading offset (degrees): at 0.45 m a frame the camera moves at most 0.32 m sideways,
#: and the room's side walls are >= 1.5 m from it.
MAX_HEADING_DEG = 45.0


def sample_trajectory(seed: int, split: Split, index: int, speed_m: tuple[float, float] = SPEED_M,
                      heading_deg: float = 0.0) -> tuple[float, float, float]:
    """(speed in metres per frame, yaw in radians per frame, heading in radians) of the
    (seed, split, index)-th video: forward at U(speed_m) (default :data:`SPEED_M`), turning by
    U(TURN_DEG) to either side, travelling at U(-heading_deg, heading_deg) from the optical axis,
    from the sample's own random stream (the scene and its target frame are the same with or
    without video frames; the same draw gives the same turn at any speed range, and a heading
    range of 0 gives the videos of before the option)."""
    rng = np.random.default_rng([seed, _SPLIT_ID[split], index, 13])
    speed = rng.uniform(*speed_m)
    yaw = math.radians(rng.uniform(*TURN_DEG)) * (1 if rng.random() < 0.5 else -1)
    heading = math.radians(rng.uniform(-heading_deg, heading_deg)) if heading_deg else 0.0
    return float(speed), float(yaw), heading


def frame_camera(speed: float, yaw: float, k: int, heading: float = 0.0) -> np.ndarray:
    """Frame k's camera in the target camera's frame, (4, 4) float64 (camera -> target camera): a
    steady turn about the camera's y axis (down; positive yaw turns right, towards +x) while
    travelling, so frame k has turned by ``k yaw`` and sits on the chord of the arc,
    ``k speed (sin(k yaw / 2 + heading), 0, cos(k yaw / 2 + heading))``: with ``heading`` the
    direction of travel is turned from the optical axis (a camera looking ahead at an angle), so
    the focus of expansion, the point whose depth the motion cannot tell, leaves the image centre."""
    angle = k * yaw
    c, s = math.cos(angle), math.sin(angle)
    camera = np.eye(4)
    camera[:3, :3] = [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]
    camera[:3, 3] = k * speed * np.array([math.sin(angle / 2 + heading), 0.0, math.cos(angle / 2 + heading)])
    return camera


def render_arrays(cfg: SceneConfig, seed: int, split: Split, index: int,
                  frame_ids: Sequence[int | str] = (0,), wants: Callable[[str], bool] | None = None,
                  speed_m: tuple[float, float] = SPEED_M, heading_deg: float = 0.0) -> dict[str, Any]:
    """The (seed, split, index)-th stereo sample as NumPy arrays, what a data set's ``load`` returns
    (images (H, W, 3) float32 in [0, 1], depth (H, W) float32 metres, 0 where invalid). Both views
    have ground truth, with the same range and density rules.

    Temporal ``frame_ids`` (non-zero k, ``depthlab.data.keys``) add frame k of the sample's video
    (:func:`sample_trajectory`, :func:`frame_camera`): ``image_f{k:+d}`` and ``pose_f{k:+d}``
    (target camera -> frame k's camera); with ``"s"`` among them the right camera's frames
    ``image_right_f{k:+d}`` too, and without it no right view at all (a monocular video sample).
    ``frame_ids`` of ``[0]`` or ``[0, "s"]`` give exactly the stereo sample of old.

    ``wants(key)``: whether a right camera's map is read (``SampleDataset.wants``; None: all are).
    The right view (``image_right``, ``depth_right``) and each right-camera frame
    (``image_right_f{k:+d}``) nobody wants is not ray cast, about half the work of a stereo sample;
    what is rendered is the same (the right view draws from the random stream after the left)."""
    rng = np.random.default_rng([seed, _SPLIT_ID[split], index])
    scene = sample_scene(cfg, rng)
    temporal = temporal_ids(frame_ids)
    stereo = not temporal or STEREO_FRAME in frame_ids  # a monocular video renders no right view at all
    wants = wants or (lambda key: True)
    views = {"": render_view(scene, cfg, 0.0)}
    if stereo and (wants("image_right") or wants("depth_right")):
        views["_right"] = render_view(scene, cfg, cfg.baseline_m)
    sample: dict[str, Any] = {}
    for view, (rgb, depth) in views.items():  # left first: its draws are those of the mono generator
        valid = (depth > cfg.min_depth) & (depth < cfg.max_depth)
        if cfg.gt_density < 1.0:
            valid &= rng.random(depth.shape) < cfg.gt_density
        sample[f"image{view}"] = rgb
        sample[f"depth{view}"] = np.where(valid, depth, 0.0).astype(np.float32)
    sample["intrinsics"] = np.array(cfg.intrinsics, dtype=np.float32)
    if stereo:
        sample["baseline_m"] = np.float32(cfg.baseline_m)
    sample["index"] = index
    if temporal:
        speed, yaw, heading = sample_trajectory(seed, split, index, speed_m, heading_deg)
        for k in temporal:
            camera = frame_camera(speed, yaw, k, heading)
            suffix = frame_suffix(k)
            sample["image" + suffix] = render_view(scene, cfg, 0.0, camera)[0]
            if stereo and wants("image_right" + suffix):
                sample["image_right" + suffix] = render_view(scene, cfg, cfg.baseline_m, camera)[0]
            sample["pose" + suffix] = np.linalg.inv(camera).astype(np.float32)
    return sample


def render_sample(cfg: SceneConfig, seed: int, split: Split, index: int) -> DepthSample:
    """The (seed, split, index)-th stereo sample as tensors (see :class:`DepthSample`; keys
    :data:`SAMPLE_KEYS`): :func:`render_arrays` through :func:`~depthlab.data.pipeline.to_tensors`."""
    return to_tensors(render_arrays(cfg, seed, split, index))


def scene_scale(scale_range: tuple[float, float], seed: int, split: Split, index: int) -> float:
    """The global scale of the (seed, split, index)-th scene: log-uniform in ``scale_range``, from
    its own random stream (the scene itself is the same with or without scaling)."""
    low, high = scale_range
    u = np.random.default_rng([seed, _SPLIT_ID[split], index, 7]).random()
    return float(np.exp(np.log(low) + u * (np.log(high) - np.log(low))))


def augment_seed(seed: int, split: Split, index: int) -> int:
    """The seed of the (seed, split, index)-th sample's augmentation draw: its own random stream, so
    an augmented sample is still a pure function of (seed, split, index), in any worker, at any epoch."""
    return int(np.random.SeedSequence([seed, _SPLIT_ID[split], index, 11]).generate_state(1)[0])


def hint_relpaths(split: Split, index: int) -> tuple[str, str]:
    """The left and right hint files of a sample, relative to hints_root (:data:`HINT_LAYOUT`)."""
    return tuple(f"{split}/{camera}/{index:06d}.npy" for camera in ("image_02", "image_03"))


def hints_data(cfg: SceneConfig, seed: int) -> dict:
    """What identifies the images of a synthetic hints folder (its manifest's ``data``): the
    scene generator's settings and the seed."""
    scene = asdict(cfg)
    if cfg.supersample == 1:  # the images of before the option: hints written then stay valid
        del scene["supersample"]
    return {"dataset": "synthetic", "seed": seed, "scene": scene}


def _uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """An image in [0, 1], (3, H, W) tensor or (H, W, 3) array -> (H, W, 3) uint8, what stereo matching takes."""
    if isinstance(image, torch.Tensor):
        image = image.permute(1, 2, 0).numpy()
    return np.clip(np.rint(image * np.float32(255)), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class SyntheticHintJob:
    """One synthetic stereo pair for ``depthlab hints precompute`` (picklable: rendered in the worker)."""

    cfg: SceneConfig
    seed: int
    split: Split
    index: int

    @property
    def source(self) -> str:
        return f"synthetic {self.split} sample {self.index} (seed {self.seed})"

    @property
    def outputs(self) -> tuple[str, str]:
        return hint_relpaths(self.split, self.index)

    def read(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(left, right uint8 (H, W, 3), fx pixels, baseline_m metres) of the rendered pair."""
        sample = render_arrays(self.cfg, self.seed, self.split, self.index)
        return _uint8(sample["image"]), _uint8(sample["image_right"]), self.cfg.intrinsics[0], self.cfg.baseline_m


class SyntheticStereoDataset(SampleDataset):
    """``length`` procedural stereo samples of one split, rendered on access (``load``), then through
    the sample pipeline (``augment``, ``to_tensors``) as every data set's.

    ``hints``: None, a hints folder (:class:`~pathlib.Path`, layout :data:`HINT_LAYOUT`) or
    ``"on_the_fly"`` (computed from the rendered pair). ``augment``: drawn per sample
    (:func:`augment_seed`), so every sample stays a pure function of (seed, split, index).
    """

    def __init__(self, cfg: SceneConfig, split: Split, length: int, seed: int = 0,
                 hints: Path | str | None = None, scale_range: tuple[float, float] | None = None,
                 cache: bool = False, augment: DepthAugment | None = None,
                 frame_ids: Sequence[int | str] = (0,), speed_m: tuple[float, float] = SPEED_M,
                 heading_deg: float = 0.0) -> None:
        if split not in _SPLIT_ID:
            raise ValueError(f"split must be one of {list(_SPLIT_ID)}, got {split!r}")
        if isinstance(hints, str) and hints != "on_the_fly":
            raise ValueError(f"hints must be None, a folder (Path) or 'on_the_fly', got {hints!r}")
        super().__init__(augment)
        self.cfg, self.split, self.length, self.seed, self.hints = cfg, split, length, seed, hints
        self.scale_range = scale_range
        self.frame_ids, self.speed_m, self.heading_deg = tuple(frame_ids), speed_m, heading_deg
        self._cache: dict[int, dict[str, Any]] | None = {} if cache else None
        self._cached_for: frozenset[str] | None = None  # the ``required`` the cached samples were rendered for

    def __len__(self) -> int:
        return self.length

    def source(self, index: int) -> str:
        return SyntheticHintJob(self.cfg, self.seed, self.split, index).source

    def augment_seed(self, index: int) -> int:
        return augment_seed(self.seed, self.split, index)

    def load(self, index: int) -> dict[str, Any]:
        if self._cache is not None and self._cached_for != self.required:  # rendered for other readers
            self._cache.clear()
            self._cached_for = self.required
        if self._cache is not None and index in self._cache:
            return dict(self._cache[index])
        sample = render_arrays(self.cfg, self.seed, self.split, index, frame_ids=self.frame_ids,
                               wants=self._renders, speed_m=self.speed_m, heading_deg=self.heading_deg)
        if self.scale_range is not None:
            s = scene_scale(self.scale_range, self.seed, self.split, index)
            for key in ("depth", "depth_right", "baseline_m"):
                if key in sample:
                    sample[key] = sample[key] * np.float32(s)
            for k in temporal_ids(self.frame_ids):  # the camera's motion scales with the world
                pose = sample["pose" + frame_suffix(k)].copy()
                pose[:3, 3] *= np.float32(s)
                sample["pose" + frame_suffix(k)] = pose
        if self.hints is not None:
            sample.update(self._hints(sample, index))
        if self._cache is not None:
            self._cache[index] = sample
            return dict(sample)
        return sample

    def _renders(self, key: str) -> bool:
        """Whether ``render_arrays`` must ray cast map ``key``: it is wanted, or it is the right
        image that on-the-fly hints are matched from."""
        return self.wants(key) or (key == "image_right" and self.hints == "on_the_fly" and self._wants_hints())

    def _wants_hints(self) -> bool:
        return self.wants("hint") or self.wants("hint_right")

    def _hints(self, sample: dict[str, Any], index: int) -> dict[str, np.ndarray]:
        if not self._wants_hints():
            return {}
        if self.hints == "on_the_fly":  # imported here: stereo matching pulls in OpenCV
            from depthlab.hints.fusion import compute_stereo_hints

            views = compute_stereo_hints(_uint8(sample["image"]), _uint8(sample["image_right"]),
                                         self.cfg.intrinsics[0], self.cfg.baseline_m)
            return {"hint": views.depth, "hint_right": views.depth_right}
        files = {key: path for key, path in zip(("hint", "hint_right"), hint_relpaths(self.split, index))
                 if self.wants(key)}
        return read_hints(self.hints, files, (self.cfg.height, self.cfg.width), self.source(index))


class SyntheticDataModule(StereoHintsMixin, SplitDataModule):
    """Procedural stereo rooms for training and testing without any download.

    Args:
        height, width: image size in pixels.
        train_size, val_size, test_size: number of samples per split (rendered on the fly).
        batch_size, num_workers: DataLoader settings.
        seed: scene seed; each (seed, split, index) is one fixed scene.
        hfov_deg, baseline_m: camera: horizontal field of view and stereo baseline.
        min_depth, max_depth: scene depth range in metres (ground truth outside it is invalid).
        gt_density: fraction of valid ground-truth pixels kept (sparse, LiDAR-like when < 1).
        supersample: anti-aliasing: each pixel's colour is the mean of supersample x supersample
            rays over its area (the depth stays the ray through its centre); 1 (default) casts one
            ray per pixel, whose textures alias where they are finer than the pixels. Render cost
            grows with supersample^2 (about 6x at 2). Video photometric training needs it (see
            ``configs/synthetic_mono.yaml``): aliased textures change with the viewpoint.
        hints_root: Depth Hints folder (``depthlab hints precompute`` fills it; layout
            :data:`HINT_LAYOUT`): every sample then carries ``hint`` and ``hint_right``.
        hints_on_the_fly: compute those hints from each rendered pair instead (about 20 ms per
            96x128 pair on one core; no folder). At most one of the two.
        scale_range: ``[low, high]``: every scene is scaled by its own factor s, drawn log-uniformly
            from the range (a function of seed, split and index): depth and baseline are multiplied
            by s and the images stay the same, as for a world scaled with its textures. The
            monocular scale ambiguity made explicit (valid pixels are those of the unscaled scene,
            so ground truth spans ``[s * min_depth, s * max_depth]``). Not with hints.
        cache: keep every rendered sample in memory (about 0.3 MB a stereo sample at 96x128), so each
            is rendered once: for small training sets run for many epochs. Each DataLoader worker
            fills its own copy with the samples it renders and keeps it for the whole run (the
            workers are persistent). ``eval``: the validation and test splits only, which every
            validation renders again otherwise (the main job: 64 scenes after each of its 6 epochs).
        frame_ids: the frames of each sample (``depthlab.data.keys``; default ``[0]``: today's
            stereo sample). Temporal ids k (|k| <= 2) add frame k of a short video of the scene:
            the camera drives forward 0.1-0.2 m a frame turning 0.5-2 degrees a frame (drawn per
            sample), ``image_f{k:+d}`` and the ground-truth ``pose_f{k:+d}`` (target camera ->
            frame k's camera). With temporal ids the right view (and the right camera's frames)
            come only with ``"s"``: ``[0, -1, 1]`` is a monocular video, ``[0, -1, 1, s]`` MS.
        trajectory_speed_m: ``[low, high]`` metres a frame of those videos (default ``[0.1, 0.2]``;
            the turn is drawn the same at any range). Faster gives more parallax per frame; the
            frame furthest back must stay inside the room (``max |k| x high <= 0.45``).
        trajectory_heading_deg: the direction of travel is turned from the optical axis by
            U(-h, h) degrees per video (default 0: straight ahead; at most 45). Under pure forward
            motion the image centre is the focus of expansion, where no depth changes the flow:
            on these rooms that is always the far wall, which a video-trained network then never
            learns; an offset heading moves that point around (tried on
            ``configs/synthetic_mono.yaml`` at 25 degrees: it did not help, see the README).
        train_transforms, eval_transforms: augmentation lists, as for the file data modules (see
            :mod:`depthlab.data.transforms`; e.g. ``{name: HorizontalFlip}`` mirrors a pair and
            swaps its views). Each sample's draw is its own (:func:`augment_seed`): a sample is the
            same at every epoch, a pure function of (seed, split, index); more variety comes from
            more scenes (``train_size``).
    """

    hint_layout = HINT_LAYOUT

    def __init__(
        self,
        height: int = 96,
        width: int = 128,
        train_size: int = 2000,
        val_size: int = 64,
        test_size: int = 64,
        batch_size: int = 8,
        num_workers: int = 1,
        seed: int = 0,
        hfov_deg: float = 70.0,
        baseline_m: float = 0.25,
        min_depth: float = 0.5,
        max_depth: float = 10.0,
        gt_density: float = 1.0,
        supersample: int = 1,
        hints_root: str | None = None,
        hints_on_the_fly: bool = False,
        scale_range: tuple[float, float] | None = None,
        cache: bool | Literal["eval"] = False,
        frame_ids: list[int | str] | None = None,
        trajectory_speed_m: tuple[float, float] = SPEED_M,
        trajectory_heading_deg: float = 0.0,
        train_transforms: list[dict[str, Any]] | None = None,
        eval_transforms: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self.frame_ids = check_frame_ids([0] if frame_ids is None else frame_ids)
        far = [k for k in temporal_ids(self.frame_ids) if abs(k) > MAX_FRAME_OFFSET]
        if far:
            raise ConfigError(f"data.frame_ids: procedural videos reach {MAX_FRAME_OFFSET} frames from the target "
                              f"(the camera would leave the room), got {far[0]}")
        if len(trajectory_speed_m) != 2 or not 0 < trajectory_speed_m[0] <= trajectory_speed_m[1]:
            raise ConfigError("data.trajectory_speed_m: expected [low, high] metres a frame with 0 < low <= high, "
                              f"got {list(trajectory_speed_m)}")
        back = max([-k for k in temporal_ids(self.frame_ids) if k < 0], default=0)
        if back > frames_back(trajectory_speed_m[1]):
            raise ConfigError(f"data.trajectory_speed_m: frame {-back} would sit {back * trajectory_speed_m[1]:g} m "
                              f"behind the target camera, past the room's back wall (at most {MAX_BACKWARD_M} m): "
                              f"lower the speed or the frame offset")
        self.trajectory_speed_m = (float(trajectory_speed_m[0]), float(trajectory_speed_m[1]))
        if isinstance(trajectory_heading_deg, bool) or not isinstance(trajectory_heading_deg, (int, float)) or \
                not 0 <= trajectory_heading_deg <= MAX_HEADING_DEG:
            raise ConfigError(f"data.trajectory_heading_deg: expected degrees from 0 to {MAX_HEADING_DEG:g}, "
                              f"got {trajectory_heading_deg!r}")
        self.trajectory_heading_deg = float(trajectory_heading_deg)
        if (hints_root is not None or hints_on_the_fly) and temporal_ids(self.frame_ids) and \
                STEREO_FRAME not in self.frame_ids:
            # the hints are of the target's stereo pair (the same scene and target frame with or without
            # video frames: Monodepth2's MS with Depth Hints), so they need the stereo view
            raise ConfigError("data.frame_ids: Depth Hints are of stereo pairs: add 's' to the frame ids "
                              f"(e.g. [0, -1, 1, s]) or drop the hints, got {list(self.frame_ids)}")
        if scale_range is not None:
            if len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1]:
                raise ConfigError(f"data.scale_range: expected [low, high] with 0 < low <= high, got {list(scale_range)}")
            if hints_root is not None or hints_on_the_fly:
                raise ConfigError("data.scale_range: not with Depth Hints (the hints would keep the unscaled baseline)")
        self.scale_range = None if scale_range is None else (float(scale_range[0]), float(scale_range[1]))
        if cache not in (True, False, "eval"):
            raise ConfigError(f"data.cache: expected true, false or eval (the validation and test splits only), "
                              f"got {cache!r}")
        self.cache = cache
        if hints_root is not None and hints_on_the_fly:
            raise ConfigError("data: hints_root and hints_on_the_fly exclude each other (read hints or compute them)")
        self.hints_root, self.hints_on_the_fly = hints_root, hints_on_the_fly
        self.batch_size = self.eval_batch_size = batch_size
        self.num_workers, self.seed = num_workers, seed
        self.scene = SceneConfig(height, width, hfov_deg, baseline_m, min_depth, max_depth, gt_density=gt_density,
                                 supersample=supersample)
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        self.train_augment = self.eval_augment = None
        if train_transforms or eval_transforms:  # built now, so that a wrong transform fails at start-up
            from depthlab.data.transforms import DepthAugment  # albumentations: only when augmenting

            self.train_augment = DepthAugment.from_config(train_transforms, "data.train_transforms")
            self.eval_augment = DepthAugment.from_config(eval_transforms, "data.eval_transforms")

    @property
    def provides(self) -> frozenset[str]:
        with_hints = self.hints_root is not None or self.hints_on_the_fly
        if temporal_ids(self.frame_ids):
            stereo = STEREO_FRAME in self.frame_ids
            return (view_keys(["image", "depth"], stereo=stereo, frame_ids=self.frame_ids, poses=True)
                    | {"intrinsics", "index"} | ({"baseline_m"} if stereo else set())
                    | (HINT_KEYS if with_hints else frozenset()))
        return SAMPLE_KEYS | HINT_KEYS if with_hints else SAMPLE_KEYS

    def dataset(self, split: Split) -> SyntheticStereoDataset:
        hints: Path | str | None = "on_the_fly" if self.hints_on_the_fly else self.hints_folder()
        augment = self.train_augment if split == "train" else self.eval_augment
        return SyntheticStereoDataset(self.scene, split, self.sizes[split], self.seed, hints,
                                      scale_range=self.scale_range,
                                      cache=self.cache is True or (self.cache == "eval" and split != "train"),
                                      augment=augment, frame_ids=self.frame_ids, speed_m=self.trajectory_speed_m,
                                      heading_deg=self.trajectory_heading_deg)

    # -- Depth Hints (depthlab hints precompute) ---------------------------------------------------------
    @property
    def hints_data(self) -> dict:
        return hints_data(self.scene, self.seed)

    def hint_jobs(self, split: Split) -> list[SyntheticHintJob]:
        """One job per sample of ``split``."""
        return [SyntheticHintJob(self.scene, self.seed, split, index) for index in range(self.sizes[split])]
