"""KITTI raw sequences with the Eigen split, in the layout the public code uses.

On disk (KITTI raw and depth-completion downloads, unchanged)::

    <raw_root>/<date>/calib_cam_to_cam.txt, calib_velo_to_cam.txt
    <raw_root>/<date>/<date>_drive_<id>_sync/image_0{2,3}/data/<frame:010d>.png
    <raw_root>/<date>/<date>_drive_<id>_sync/velodyne_points/data/<frame:010d>.bin
    <gt_root>/[train|val/]<date>_drive_<id>_sync/proj_depth/groundtruth/image_0{2,3}/<frame:010d>.png

Split lists (BTS ``eigen_{train,test}_files_with_gt.txt``): ``rgb_path gt_path focal`` with ``None``
where the frame has no annotated depth. The annotated maps are uint16 PNGs, depth = value / 256 m,
0 = no measurement (devkit readme); the data sets' ``train/`` and ``val/`` folders may be kept or
merged. Focal length and baseline come from ``calib_cam_to_cam.txt`` (``P_rect_02``, ``P_rect_03``),
never from the list (``depthlab data check`` reports where the two disagree).

Monodepth2's lists (``<date>/<drive>_sync <frame index> <l|r>``, shipped in
``data/splits/monodepth2/``: eigen_zhou, eigen_full, eigen, eigen_benchmark) are read as well; the
format is recognised per file. ``image_ext: .jpg`` reads Monodepth2's JPEG copy of the raw tree (the
list's ``.png`` names are read as ``.jpg``).

Video frames (``frame_ids``, ``depthlab.data.keys``): frame k of a line is the file k frames after it
in the same drive and camera folder (``<frame + k:010d>``); with ``"s"`` (or ``stereo``) the other
camera's frames come too. A neighbour that is not on disk (the first and last frames of a drive
have none on one side) is an error naming the list line and the file: lists for video training
(Monodepth2's eigen_zhou) leave those frames out. In a stereo module, a Monodepth2 ``r`` line
(target: image_03) is loaded mirrored: the mirrored right camera is the left camera of the mirrored
pair (what ``HorizontalFlip`` makes of an ``l`` line), so the right view stays on the right.

Ground truth: ``annotated`` (default; frames listed with ``None`` are skipped and counted, which
leaves 652 of the 697 Eigen test frames, the ``eigen_benchmark`` set) or ``velodyne`` (the raw scan
projected into the image as for the original 697-frame Eigen test split), or ``none`` for training
(self-supervision from raw KITTI only: samples carry no ``depth``). A Monodepth2 line whose annotated
map does not exist is skipped and counted as BTS's ``None`` lines are.

KB crop (352x1216 at the bottom centre; Uhrig et al., BTS): training samples are cut to it
(``kb_crop``). Evaluation samples stay full frames by default (``eval_kb_crop: false``): the ``kitti``
evaluation protocol with ``kb_crop: true`` runs the network on the KB window and pastes the
prediction back into the full frame before the Garg/Eigen crop, as BTS does; full frames differ in
size between dates (375x1242, 370x1224, 374x1238, 370x1226, 376x1241), so they are evaluated one
at a time. With ``eval_kb_crop: true`` the ground truth is cut as well (batchable); every sample
carries ``crop_offset`` (top, left) and ``full_size`` (H, W), with which DepthModule places the
Garg/Eigen crops (all inside the KB window) in full-frame coordinates.

Depth Hints (``hints_root``): each sample also carries ``hint`` (and ``hint_right`` for stereo) read
from ``<hints_root>/<date>/<date>_drive_<id>_sync/image_0{2,3}/<frame:010d>.npy`` (float32 (1, H, W)
metres at the full frame's size, written by ``depthlab hints precompute``), loaded before the KB crop
and the augmentation, so both cut and move it exactly as ``depth``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np

from depthlab.data.base import DepthFileDataset, FileDataModule, Split, require_dir, resolve_path
from depthlab.data.keys import (
    STEREO_FRAME, check_frame_ids, frame_suffix, sample_views, temporal_ids, view_keys,
)
from depthlab.data.readers import (
    CALIBRATION, DTYPE, FOCAL, LIST, MISSING, SIZE, DataError, ListEntry, Problem,
    StereoCalibration, is_monodepth2_list, kitti_stereo_calibration, read_depth_png, read_kitti_calib,
    read_monodepth2_list, read_rgb, read_split_list,
)
from depthlab.data.stereo_hints import StereoHintsMixin, read_hints
from depthlab.data.transforms import DepthAugment
from depthlab.depth_ops import KB_CROP, kb_crop_box
from depthlab.errors import ConfigError

DEPTH_PNG_SCALE = 1 / 256  # devkit readme of the depth benchmarks
GroundTruth = Literal["annotated", "velodyne", "none"]
_OTHER_CAMERA = {"image_02": "image_03", "image_03": "image_02"}
IMAGE_EXTS = (".png", ".jpg")


def check_image_ext(image_ext: str) -> str:
    """``image_ext`` if it is one of :data:`IMAGE_EXTS`, else a one-line ConfigError naming ``data.image_ext``."""
    if image_ext not in IMAGE_EXTS:
        raise ConfigError(f"data.image_ext: expected one of {', '.join(IMAGE_EXTS)}, got {image_ext!r}")
    return image_ext
#: Where a frame's hint lives under hints_root: the raw layout without ``data/`` (the published depth-hints layout).
HINT_LAYOUT = "<date>/<date>_drive_<id>_sync/image_0{2,3}/<frame:010d>.npy"
HINTS_DATA = {"dataset": "kitti"}  # what a KITTI hints folder's manifest.json records as its data


def velodyne_to_depth(points: np.ndarray, velo_to_cam: np.ndarray, rect: np.ndarray, p_rect: np.ndarray,
                      shape: tuple[int, int]) -> np.ndarray:
    """Project a Velodyne scan into a rectified camera image: (H, W) float32 depth, 0 = no point.

    ``points`` (N, 4) x, y, z, reflectance in the scanner frame; ``velo_to_cam`` (4, 4) scanner to
    camera 0; ``rect`` (4, 4) camera 0 to rectified (R_rect_00); ``p_rect`` (3, 4) P_rect_0X.
    Conventions of the published ground truth (Eigen et al. 2014 via monodepth2
    ``kitti_utils.generate_depth_map``): points behind the scanner (x < 0) are dropped, the pixel is
    ``round(u) - 1, round(v) - 1``, the depth is the third projected coordinate, and where several
    points land on one pixel the nearest one wins.
    """
    height, width = shape
    front = points[points[:, 0] >= 0]
    homogeneous = np.concatenate([front[:, :3], np.ones((len(front), 1))], axis=1).astype(np.float64)
    uvz = homogeneous @ (p_rect @ rect @ velo_to_cam).T
    z = uvz[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.round(uvz[:, 0] / z) - 1
        v = np.round(uvz[:, 1] / z) - 1
    keep = (z > 0) & (u >= 0) & (v >= 0) & (u < width) & (v < height)
    flat = v[keep].astype(np.int64) * width + u[keep].astype(np.int64)
    z = z[keep]
    order = np.lexsort((z, flat))  # by pixel, nearest first
    first = np.unique(flat[order], return_index=True)[1]
    depth = np.zeros(height * width, dtype=np.float32)
    depth[flat[order][first]] = z[order][first]
    return depth.reshape(height, width)


def hint_relpath(date: str, drive: str, camera: str, frame: str) -> str:
    """The hint of ``<date>/<drive>/<camera>/data/<frame>.png``, relative to hints_root (:data:`HINT_LAYOUT`)."""
    return f"{date}/{drive}/{camera}/{frame}.npy"


@dataclass(frozen=True)
class KITTIHintJob:
    """One frame's stereo pair (image_02 left, image_03 right) for ``depthlab hints precompute``;
    plain strings, so it pickles into worker processes."""

    raw_root: str
    date: str
    drive: str  # <date>_drive_<id>_sync
    frame: str  # 10 digits
    source: str  # the split-list line that named the frame
    image_ext: str = ".png"

    @property
    def outputs(self) -> tuple[str, str]:
        """The left and right view's hint files, relative to hints_root."""
        return tuple(hint_relpath(self.date, self.drive, camera, self.frame) for camera in ("image_02", "image_03"))

    def read(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        """The full-frame pair (never KB-cropped: hints are cropped with their sample) and its
        calibration: (left, right uint8 (H, W, 3), fx pixels, baseline_m metres)."""
        raw = Path(self.raw_root)
        drive = raw / self.date / self.drive
        problems: list[Problem] = []
        images = []
        for camera in ("image_02", "image_03"):
            try:
                images.append(read_rgb(drive / camera / "data" / f"{self.frame}{self.image_ext}", self.source))
            except DataError as exc:
                problems.extend(exc.problems)
        calib_path = raw / self.date / "calib_cam_to_cam.txt"
        try:
            calib = kitti_stereo_calibration(read_kitti_calib(calib_path, self.source), "02", calib_path, self.source)
        except DataError as exc:
            problems.extend(exc.problems)
        if not problems and images[0].shape != images[1].shape:
            problems.append(Problem(SIZE, str(drive / "image_03" / "data" / f"{self.frame}{self.image_ext}"),
                                    f"right image is {images[1].shape[:2]}, left {images[0].shape[:2]}", self.source))
        if problems:
            raise DataError(problems)
        return images[0], images[1], calib.intrinsics[0], calib.baseline_m


class KITTIDataset(DepthFileDataset):
    """One split list over a KITTI raw tree and the annotated depth maps (or the Velodyne scans).

    Args:
        list_path: BTS-style Eigen list or a Monodepth2 list.
        raw_root: KITTI raw root (holds the ``<date>`` folders).
        gt_root: annotated depth root (``gt_source: annotated``).
        gt_source: ``annotated``, ``velodyne`` or ``none`` (no depth in the samples).
        kb_crop: cut every frame to the 352x1216 KB crop.
        stereo: also load the other camera's image (and its depth map) as ``image_right``/``depth_right``.
        hints_root: also load each view's Depth Hints (``hint``, ``hint_right``) from there.
        image_ext: the raw images' suffix, ``.png`` or ``.jpg`` (Monodepth2's JPEG copy).
        frame_ids: the frames of a sample (``depthlab.data.keys``; ``"s"`` implies ``stereo``).
    """

    def __init__(self, list_path: str | os.PathLike, raw_root: str | os.PathLike, gt_root: str | os.PathLike | None,
                 gt_source: GroundTruth = "annotated", kb_crop: bool = True, stereo: bool = False,
                 augment: DepthAugment | None = None, hints_root: str | os.PathLike | None = None,
                 strict: bool = True, image_ext: str = ".png", frame_ids: tuple[int | str, ...] = (0,)) -> None:
        super().__init__(augment)
        if gt_source not in ("annotated", "velodyne", "none"):
            raise ConfigError(f"KITTI gt_source must be annotated, velodyne or none, got {gt_source!r}")
        self.image_ext, self.frame_ids = check_image_ext(image_ext), check_frame_ids(list(frame_ids))
        stereo = stereo or STEREO_FRAME in self.frame_ids
        if gt_source == "annotated" and gt_root is None:
            raise ConfigError("data.gt_root is not set: point it at the annotated depth maps (data_depth_annotated)")
        self.list_path, self.raw_root = Path(list_path), Path(raw_root)
        self.gt_root = None if gt_root is None else Path(gt_root)
        self.gt_source, self.kb_crop, self.stereo = gt_source, kb_crop, stereo
        self.hints_root = None if hints_root is None else Path(hints_root)
        self.monodepth2 = is_monodepth2_list(self.list_path)
        if self.monodepth2:
            entries = read_monodepth2_list(self.list_path, image_ext, self.list_problems)
        else:
            entries = read_split_list(self.list_path, self.list_problems)
            if image_ext != ".png":
                entries = [replace(e, rgb=PurePosixPath(e.rgb).with_suffix(image_ext).as_posix()) for e in entries]
        if strict:
            self.raise_list_problems()
        if gt_source == "annotated":
            self.entries = [e for e in entries if e.depth is not None]
            if self.monodepth2:  # frames without an annotated map (first and last 5 of a drive)
                self.entries = [e for e in self.entries if self._annotated_path(e, self._parts(e)[2]).is_file()]
        else:
            self.entries = entries
        self.skipped = len(entries) - len(self.entries)  # lines whose ground truth is None
        self._calib: dict[tuple[str, str], Any] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def hint_jobs(self) -> list[KITTIHintJob]:
        """One :class:`KITTIHintJob` per list entry (both cameras of its frame, whichever the entry
        names); every malformed line and image path of the list is reported at once."""
        jobs, problems = [], list(self.list_problems)
        for e in self.entries:
            try:
                date, drive, _, frame = self._parts(e)
            except DataError as exc:
                problems.extend(exc.problems)
                continue
            jobs.append(KITTIHintJob(str(self.raw_root), date, drive, frame, e.source, self.image_ext))
        if problems:
            raise DataError(problems)
        return jobs

    def source(self, index: int) -> str:
        return self.entries[index].source

    # -- paths ---------------------------------------------------------------------------------------
    @staticmethod
    def _parts(e: ListEntry) -> tuple[str, str, str, str]:
        """(date, drive, camera folder, frame) of a list entry's image path."""
        parts = PurePosixPath(e.rgb).parts
        camera = next((p for p in parts if p in _OTHER_CAMERA), None)
        if len(parts) < 5 or camera is None:
            raise DataError(Problem(LIST, e.rgb, "expected <date>/<drive>_sync/image_0X/data/<frame>.png", e.source))
        return parts[0], parts[1], camera, PurePosixPath(e.rgb).stem

    def depth_file(self, index: int, view: str = "") -> str:
        e = self.entries[index]
        date, drive, camera, frame = self._parts(e)
        camera = _OTHER_CAMERA[camera] if view else camera
        if self.gt_source == "annotated":
            return str(self._annotated_path(e, camera))
        if self.gt_source == "none":
            return ""
        return str(self.raw_root / date / drive / "velodyne_points" / "data" / f"{frame}.bin")

    def _annotated_path(self, e: ListEntry, camera: str) -> Path:
        rel = PurePosixPath(e.depth).as_posix().replace("/image_02/", f"/{camera}/")
        candidates = [self.gt_root / rel, self.gt_root / "train" / rel, self.gt_root / "val" / rel]
        return next((c for c in candidates if c.is_file()), candidates[0])

    # -- calibration ---------------------------------------------------------------------------------
    def _calibration(self, date: str, camera: str, source: str) -> StereoCalibration:
        key = ("cam", date + camera)
        if key not in self._calib:
            path = self.raw_root / date / "calib_cam_to_cam.txt"
            self._calib[key] = kitti_stereo_calibration(read_kitti_calib(path, source), camera[-2:], path, source)
        return self._calib[key]

    def _velodyne_projection(self, date: str, camera: str, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = ("velo", date + camera)
        if key not in self._calib:
            cam_path = self.raw_root / date / "calib_cam_to_cam.txt"
            velo_path = self.raw_root / date / "calib_velo_to_cam.txt"
            cam, velo = read_kitti_calib(cam_path, source), read_kitti_calib(velo_path, source)
            need = [(velo_path, velo, "R", 9), (velo_path, velo, "T", 3), (cam_path, cam, "R_rect_00", 9),
                    (cam_path, cam, f"P_rect_{camera[-2:]}", 12)]
            for path, values, name, size in need:
                if name not in values or values[name].size != size:
                    raise DataError(Problem(CALIBRATION, str(path), f"{name} missing or not {size} numbers", source))
            velo_to_cam = np.eye(4)
            velo_to_cam[:3, :3], velo_to_cam[:3, 3] = velo["R"].reshape(3, 3), velo["T"]
            rect = np.eye(4)
            rect[:3, :3] = cam["R_rect_00"].reshape(3, 3)
            self._calib[key] = (velo_to_cam, rect, cam[f"P_rect_{camera[-2:]}"].reshape(3, 4))
        return self._calib[key]

    # -- reading -------------------------------------------------------------------------------------
    def _depth(self, e: ListEntry, date: str, drive: str, camera: str, frame: str,
               shape: tuple[int, int] | None) -> np.ndarray | None:
        """The depth map of ``camera``; ``shape`` is its image's (None when the image is unreadable:
        the file is still checked, so that every problem of a sample is reported at once)."""
        if self.gt_source == "annotated":
            return read_depth_png(self._annotated_path(e, camera), DEPTH_PNG_SCALE, e.source, shape=shape)
        path = self.raw_root / date / drive / "velodyne_points" / "data" / f"{frame}.bin"
        if not path.is_file():
            raise DataError(Problem(MISSING, str(path), "no such file", e.source))
        raw = np.fromfile(path, dtype=np.float32)
        if raw.size % 4:
            raise DataError(Problem(DTYPE, str(path), "not float32 (x, y, z, reflectance) records", e.source))
        projection = self._velodyne_projection(date, camera, e.source)
        return None if shape is None else velodyne_to_depth(raw.reshape(-1, 4), *projection, shape)

    def load(self, index: int) -> dict[str, Any]:
        e = self.entries[index]
        date, drive, camera, frame = self._parts(e)
        problems: list[Problem] = []

        def attempt(read, *args):  # collect every problem of the sample, not only the first
            try:
                return read(*args)
            except DataError as exc:
                problems.extend(exc.problems)
                return None

        image = attempt(read_rgb, self.raw_root / e.rgb, e.source)
        calib = attempt(self._calibration, date, camera, e.source)
        shape = None if image is None else image.shape[:2]
        if self.kb_crop and shape is not None and (shape[0] < KB_CROP[0] or shape[1] < KB_CROP[1]):
            problems.append(Problem(SIZE, str(self.raw_root / e.rgb), f"image is {shape[0]}x{shape[1]}, smaller than "
                                    f"the {KB_CROP[0]}x{KB_CROP[1]} KB crop", e.source))
        with_depth = self.gt_source != "none"
        sample: dict[str, Any] = {"image": image}
        # The files of maps nobody reads (SampleDataset.wants: e.g. the right view under a supervised
        # objective) are not read.
        if with_depth and self.wants("depth"):
            sample["depth"] = attempt(self._depth, e, date, drive, camera, frame, shape)
        # A Monodepth2 `r` line of a stereo module is loaded mirrored (module docstring).
        mirrored = self.stereo and self.monodepth2 and camera == "image_03"
        other = _OTHER_CAMERA[camera]
        if self.stereo:
            if camera != "image_02" and not mirrored:
                problems.append(Problem(LIST, e.rgb, "stereo samples need the left camera (image_02)", e.source))
            right_path = self.raw_root / e.rgb.replace(f"/{camera}/", f"/{other}/")
            if self.wants("image_right"):
                sample["image_right"] = attempt(read_rgb, right_path, e.source)
                right = sample["image_right"]
                if right is not None and shape is not None and right.shape[:2] != shape:
                    problems.append(Problem(SIZE, str(right_path), f"right image is {right.shape[0]}x"
                                            f"{right.shape[1]}, left {shape[0]}x{shape[1]}", e.source))
                    shape = None  # the right depth map is still read, against no image size
            if with_depth and self.wants("depth_right"):
                sample["depth_right"] = attempt(self._depth, e, date, drive, other, frame, shape)
        for k in temporal_ids(self.frame_ids):
            for view, cam in (("", camera), ("_right", other)) if self.stereo else (("", camera),):
                key = f"image{view}{frame_suffix(k)}"
                if self.wants(key):
                    sample[key] = attempt(self._neighbour, e, date, drive, cam, frame, k, shape)
        if self.hints_root is not None:
            files = {"hint": hint_relpath(date, drive, camera, frame)}
            if self.stereo:
                files["hint_right"] = hint_relpath(date, drive, _OTHER_CAMERA[camera], frame)
            files = {key: path for key, path in files.items() if self.wants(key)}
            sample.update(attempt(read_hints, self.hints_root, files, None if image is None else image.shape[:2],
                                  e.source) or {})
        if problems:
            raise DataError(problems)

        height, width = shape
        top, left = 0, 0
        if self.kb_crop:
            top, left = kb_crop_box(height, width)
            window = (slice(top, top + KB_CROP[0]), slice(left, left + KB_CROP[1]))
            for key, _, _ in list(sample_views(sample)):
                sample[key] = np.ascontiguousarray(sample[key][window])
        fx, fy, cx, cy = calib.intrinsics
        sample["intrinsics"] = np.array([fx, fy, cx - left, cy - top])
        if mirrored:
            for key, _, _ in list(sample_views(sample)):
                sample[key] = np.ascontiguousarray(sample[key][:, ::-1])
            sample["intrinsics"][2] = sample["image"].shape[1] - 1 - sample["intrinsics"][2]
        sample["baseline_m"] = calib.baseline_m
        sample["crop_offset"] = np.array([top, left])
        sample["full_size"] = np.array([height, width])
        return sample

    def source_files(self, index: int) -> dict[str, Path]:
        """The image (and annotated depth) files of sample ``index`` as ``load`` reads them; none with
        the KB crop or for a mirrored Monodepth2 ``r`` line (``load`` then cuts or flips the pixels)."""
        e = self.entries[index]
        date, drive, camera, frame = self._parts(e)
        if self.kb_crop or (self.stereo and self.monodepth2 and camera == "image_03"):
            return {}
        views = (("", camera), ("_right", _OTHER_CAMERA[camera])) if self.stereo else (("", camera),)
        files = {f"image{view}": self.raw_root / e.rgb.replace(f"/{camera}/", f"/{cam}/") for view, cam in views}
        if self.gt_source == "annotated":
            files.update({f"depth{view}": self._annotated_path(e, cam) for view, cam in views})
        for k in temporal_ids(self.frame_ids):
            for view, cam in views:
                files[f"image{view}{frame_suffix(k)}"] = (self.raw_root / date / drive / cam / "data" /
                                                          f"{int(frame) + k:010d}{self.image_ext}")
        return files

    def _neighbour(self, e: ListEntry, date: str, drive: str, camera: str, frame: str, k: int,
                   shape: tuple[int, int] | None) -> np.ndarray:
        """Frame ``frame + k`` of ``camera`` in the same drive (``data.frame_ids``)."""
        path = self.raw_root / date / drive / camera / "data" / f"{int(frame) + k:010d}{self.image_ext}"
        if int(frame) + k < 0 or not path.is_file():
            raise DataError(Problem(MISSING, str(path), f"no frame {k:+d} of frame {int(frame)} (data.frame_ids): "
                                    "leave frames without neighbours out of the list", e.source))
        image = read_rgb(path, e.source)
        if shape is not None and image.shape[:2] != tuple(shape):
            raise DataError(Problem(SIZE, str(path), f"frame {k:+d} is {image.shape[0]}x{image.shape[1]}, its "
                                    f"target {shape[0]}x{shape[1]}", e.source))
        return image

    def audit(self, index: int) -> list[Problem]:
        """The list's focal length against the calibration's (they should agree to the digit)."""
        e = self.entries[index]
        if math.isnan(e.focal_px):  # Monodepth2's lists give none
            return []
        try:
            date, _, camera, _ = self._parts(e)
            fx = self._calibration(date, camera, e.source).intrinsics[0]
        except DataError:
            return []  # already reported by load()
        if abs(fx - e.focal_px) > 1e-3:
            path = self.raw_root / date / "calib_cam_to_cam.txt"
            return [Problem(FOCAL, str(path), f"P_rect fx = {fx:.4f}, the list says {e.focal_px}", e.source)]
        return []


class KITTIDataModule(StereoHintsMixin, FileDataModule):
    """KITTI Eigen split: raw images + annotated (or Velodyne) depth, KB crop, optional stereo.

    Validation uses ``val_list`` (by default the Eigen test list, as BTS and AdaBins do: "val"
    numbers of a run are test numbers).

    Args:
        raw_root: KITTI raw root (the folder with ``2011_09_26/`` ...).
        gt_root: annotated depth root (``data_depth_annotated``, with or without ``train/``/``val/``).
        train_list, val_list, test_list: split lists (``data/splits/`` ships the BTS Eigen lists).
        train_gt_source, eval_gt_source: ``annotated`` or ``velodyne`` (the original 697-frame protocol);
            ``train_gt_source: none``: training samples without ground truth (self-supervision from
            raw KITTI alone; the module then provides no ``depth``), validation keeps its own.
        kb_crop: cut training samples to the 352x1216 KB crop.
        eval_kb_crop: cut val/test samples too (default: full frames, for the ``kitti`` protocol's
            own KB crop and paste-back); without it eval_batch_size must be 1 (frame sizes differ).
        stereo: also load the right camera (``image_right``, ``depth_right``).
        hints_root: Depth Hints folder (``depthlab hints precompute`` fills it; layout
            :data:`HINT_LAYOUT`): every sample then carries ``hint`` (and ``hint_right`` with
            ``stereo``), in every split. None (default): no hints.
        image_ext: ``.png`` (default) or ``.jpg`` (Monodepth2's JPEG copy of the raw tree).
        frame_ids: the frames of each sample (``depthlab.data.keys``): ``[0]`` (default), Monodepth2's
            ``[0, -1, 1]`` (M) or ``[0, -1, 1, s]`` (MS; ``s`` implies ``stereo``); the neighbours
            ``image_f{k:+d}`` are frames k of the same drive and camera, in every split.
        batch_size, eval_batch_size, num_workers: DataLoader settings.
        train_transforms, eval_transforms: augmentation lists (see :mod:`depthlab.data.transforms`).
    """

    def __init__(
        self,
        raw_root: str | None = None,
        gt_root: str | None = None,
        train_list: str = "data/splits/eigen_train_files_with_gt.txt",
        val_list: str = "data/splits/eigen_test_files_with_gt.txt",
        test_list: str = "data/splits/eigen_test_files_with_gt.txt",
        train_gt_source: GroundTruth = "annotated",
        eval_gt_source: GroundTruth = "annotated",
        kb_crop: bool = True,
        eval_kb_crop: bool = False,
        stereo: bool = False,
        hints_root: str | None = None,
        image_ext: str = ".png",
        frame_ids: list[int | str] | None = None,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 4,
        train_transforms: list[dict[str, Any]] | None = None,
        eval_transforms: list[dict[str, Any]] | None = None,
    ) -> None:
        if not eval_kb_crop:
            if eval_batch_size not in (None, 1):
                raise ConfigError(f"data.eval_batch_size: {eval_batch_size} needs data.eval_kb_crop: true; full KITTI "
                                  "frames differ in size between recording dates, so they are evaluated one at a time")
            eval_batch_size = 1
        super().__init__(batch_size, eval_batch_size, num_workers, train_transforms, eval_transforms)
        for key, value in (("train_gt_source", train_gt_source), ("eval_gt_source", eval_gt_source)):
            allowed = ("annotated", "velodyne", "none") if key == "train_gt_source" else ("annotated", "velodyne")
            if value not in allowed:
                raise ConfigError(f"data.{key} must be {', '.join(allowed[:-1])} or {allowed[-1]}, got {value!r}")
        self.frame_ids = check_frame_ids([0] if frame_ids is None else frame_ids)
        self.image_ext = check_image_ext(image_ext)
        stereo = stereo or STEREO_FRAME in self.frame_ids
        self.raw_root, self.gt_root = raw_root, gt_root
        self.lists = {"train": train_list, "val": val_list, "test": test_list}
        self.gt_sources = {"train": train_gt_source, "val": eval_gt_source, "test": eval_gt_source}
        self.kb_crops = {"train": kb_crop, "val": eval_kb_crop, "test": eval_kb_crop}
        self.stereo = stereo
        self.hints_root = hints_root

    @property
    def provides(self) -> frozenset[str]:
        names = ["image"] + ["depth"] * (self.gt_sources["train"] != "none") + ["hint"] * (self.hints_root is not None)
        loaded = view_keys(names, stereo=self.stereo, frame_ids=self.frame_ids)
        return loaded | {"intrinsics", "baseline_m", "crop_offset", "full_size", "index"}

    def check_splits(self) -> list[Split]:
        same = resolve_path(self.lists["val"]) == resolve_path(self.lists["test"])
        return ["train", "test"] if same else ["train", "val", "test"]

    def build(self, split: Split, augment: DepthAugment | None, strict: bool = True) -> KITTIDataset:
        raw = require_dir(self.raw_root, "data.raw_root")
        source = self.gt_sources[split]
        gt = require_dir(self.gt_root, "data.gt_root") if source == "annotated" else None
        return KITTIDataset(resolve_path(self.lists[split]), raw, gt, source, self.kb_crops[split], self.stereo,
                            augment, self.hints_folder(), strict, self.image_ext, self.frame_ids)

    # -- Depth Hints (depthlab hints precompute) ---------------------------------------------------------
    hint_layout = HINT_LAYOUT
    hints_data = HINTS_DATA

    def hint_jobs(self, split: Split) -> list[KITTIHintJob]:
        """The stereo pairs of ``split`` whose hints the samples read (see :class:`KITTIHintJob`)."""
        raw = require_dir(self.raw_root, "data.raw_root")
        source = self.gt_sources[split]
        gt = require_dir(self.gt_root, "data.gt_root") if source == "annotated" else None
        # Without hints_root: the pairs are listed before their hints exist.
        return KITTIDataset(resolve_path(self.lists[split]), raw, gt, source, strict=False,
                            image_ext=self.image_ext).hint_jobs()
