"""Readers for the published on-disk formats, and the errors they raise.

Every read names what it reads and *why*: the split-list line (``list.txt:12``) that pointed to the
file. A bad file raises :class:`DataError` whose message carries both, so a user can fix the list or
the tree without a debugger. ``depthlab data check`` collects the :class:`Problem` s of every sample.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from depthlab.errors import ConfigError, DataError, Problem  # noqa: F401  (DataError, Problem: re-exported)

# Problem kinds, as counted by ``depthlab data check``.
MISSING, UNREADABLE, DTYPE, SIZE, CALIBRATION, FOCAL, LIST, NO_DEPTH = (
    "missing file", "unreadable file", "wrong dtype", "wrong size", "bad calibration", "focal mismatch",
    "bad list line", "no valid depth",
)


@dataclass(frozen=True)
class ListEntry:
    """One line of a split list: paths relative to a data root, ``None`` where the list says None."""

    rgb: str
    depth: str | None
    focal_px: float
    source: str  # "path/to/list.txt:LINENO", 1-based


def read_split_list(path: str | os.PathLike, bad_lines: list[Problem] | None = None) -> list[ListEntry]:
    """Parse a BTS-style split list: ``rgb_path depth_path focal`` per line (KITTI or NYU).

    Blank lines are ignored; a depth path ``None`` (KITTI frames without annotated depth) is kept as
    ``None``. Leading ``/`` (the NYU training list has them) are stripped: paths are relative to a root.
    Malformed lines raise one :class:`DataError` naming them all, or, when ``bad_lines`` is given,
    are appended to it and skipped (``depthlab data check`` goes on to check the other lines).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"split list {path} does not exist")
    entries, problems = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        source = f"{path}:{lineno}"
        if len(fields) != 3:
            problems.append(Problem(LIST, str(path), f"expected 'rgb_path depth_path focal', got {line!r}", source))
            continue
        try:
            focal = float(fields[2])
        except ValueError:
            problems.append(Problem(LIST, str(path), f"focal {fields[2]!r} is not a number", source))
            continue
        depth = None if fields[1] == "None" else fields[1].lstrip("/")
        entries.append(ListEntry(fields[0].lstrip("/"), depth, focal, source))
    if problems and bad_lines is None:
        raise DataError(problems)
    if bad_lines is not None:
        bad_lines.extend(problems)
    return entries


MONODEPTH2_SIDES = {"l": "image_02", "r": "image_03"}


def is_monodepth2_list(path: str | os.PathLike) -> bool:
    """Whether a split list is in Monodepth2's format (``<date>/<drive>_sync <frame index> <l|r>``,
    ``nianticlabs/monodepth2`` splits/): its first non-blank line ends in ``l`` or ``r`` after an
    integer. Decided per file, so one malformed line is reported in its own file's format."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"split list {path} does not exist")
    with path.open() as file:
        for line in file:
            fields = line.split()
            if fields:
                return len(fields) == 3 and fields[2] in MONODEPTH2_SIDES and fields[1].isdigit()
    return False


def read_monodepth2_list(path: str | os.PathLike, image_ext: str = ".png",
                         bad_lines: list[Problem] | None = None) -> list[ListEntry]:
    """Parse a Monodepth2 KITTI raw split list: ``<date>/<date>_drive_<id>_sync <frame> <l|r>``.

    Each line becomes the :class:`ListEntry` a BTS list would have: the image
    ``<date>/<drive>/image_0{2|3}/data/<frame:010d><image_ext>``, the annotated depth
    ``<drive>/proj_depth/groundtruth/image_0{2|3}/<frame:010d>.png`` and no focal (NaN: the
    calibration has it). Odometry lists (``<sequence> <frame> <l|r>``) need the odometry tree and
    are refused. Malformed lines are reported as :func:`read_split_list` does.
    """
    path = Path(path)
    entries, problems = [], []
    expected = "expected '<date>/<date>_drive_<id>_sync <frame index> <l|r>' (Monodepth2's KITTI raw format)"
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        source = f"{path}:{lineno}"
        folder = PurePosixPath(fields[0]) if fields else None
        if len(fields) != 3 or not fields[1].isdigit() or fields[2] not in MONODEPTH2_SIDES:
            problems.append(Problem(LIST, str(path), f"{expected}, got {line.strip()!r}", source))
            continue
        if len(folder.parts) != 2:
            what = "an odometry sequence (KITTI odometry tree: not read by data.kitti)" if fields[0].isdigit() else \
                "not <date>/<drive>_sync"
            problems.append(Problem(LIST, str(path), f"{fields[0]!r} is {what}; {expected}", source))
            continue
        camera, frame = MONODEPTH2_SIDES[fields[2]], f"{int(fields[1]):010d}"
        drive = folder.parts[1]
        entries.append(ListEntry(f"{folder.as_posix()}/{camera}/data/{frame}{image_ext}",
                                 f"{drive}/proj_depth/groundtruth/{camera}/{frame}.png", float("nan"), source))
    if problems and bad_lines is None:
        raise DataError(problems)
    if bad_lines is not None:
        bad_lines.extend(problems)
    return entries


def _check_exists(path: Path, source: str) -> None:
    if not path.is_file():
        raise DataError(Problem(MISSING, str(path), "no such file", source))


_JPEG_MAGIC = b"\xff\xd8\xff"


def read_rgb(path: Path, source: str) -> np.ndarray:
    """An 8-bit colour image (PNG/JPG) as (H, W, 3) uint8 RGB (EXIF orientation applied): the file's
    bytes through :func:`decode_rgb`."""
    _check_exists(path, source)
    return decode_rgb(path.read_bytes(), str(path), source)


def decode_rgb(data: bytes, name: str, source: str) -> np.ndarray:
    """An encoded 8-bit colour image (the bytes of a PNG/JPG file, named ``name`` in errors) as
    (H, W, 3) uint8 RGB, EXIF orientation applied. A file read from disk and the same bytes read from a
    pack (``depthlab data pack``) decode here alike.

    JPEGs are decoded by Pillow, which refuses a truncated file ("image file is truncated"): OpenCV
    decodes one silently, filling the missing part grey. Both use libjpeg-turbo's default decoding,
    so the pixels are OpenCV's. Other formats are OpenCV's (it refuses truncated PNGs itself).
    """
    if data[:3] == _JPEG_MAGIC:
        from PIL import Image, ImageOps  # torchvision's dependency

        try:
            with Image.open(io.BytesIO(data)) as im:
                return np.array(ImageOps.exif_transpose(im).convert("RGB"))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise DataError(Problem(UNREADABLE, name, f"not a decodable image ({exc})", source)) from None
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise DataError(Problem(UNREADABLE, name, "not a decodable image", source))
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_depth_png(path: Path, scale: float, source: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A 16-bit depth PNG as (H, W) float32 metres: ``value * scale``, 0 stays 0 (no measurement).

    ``scale`` is 1/256 for KITTI's annotated depth (devkit readme) and 1/1000 for NYU's millimetre
    PNGs (BTS extraction). ``shape``, when given, is the (H, W) the map must have (its image's).
    """
    _check_exists(path, source)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DataError(Problem(UNREADABLE, str(path), "not a decodable PNG", source))
    if raw.dtype != np.uint16 or raw.ndim != 2:
        found = f"{raw.dtype} with {raw.shape[2]} channels" if raw.ndim == 3 else str(raw.dtype)
        raise DataError(Problem(DTYPE, str(path), f"depth PNG must be single-channel uint16, got {found}", source))
    if shape is not None and raw.shape != tuple(shape):
        raise DataError(Problem(SIZE, str(path), f"depth is {raw.shape[0]}x{raw.shape[1]}, its image "
                                f"{shape[0]}x{shape[1]}", source))
    return raw.astype(np.float32) * np.float32(scale)


def read_hint(path: Path, shape: tuple[int, int] | None, source: str) -> np.ndarray:
    """A Depth Hints file: float32 ``.npy`` of shape (1, H, W) in metres (0 = no hint), as (H, W).

    ``shape`` is its image's full-frame (H, W) (None when the image is unreadable: the file is still
    checked); hints are stored at that size, never resized here.
    """
    if not path.is_file():
        raise DataError(Problem(MISSING, str(path), "no such hint file (depthlab hints precompute writes it)", source))
    try:
        hint = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(Problem(UNREADABLE, str(path), f"not a .npy array ({exc})", source)) from None
    if hint.dtype != np.float32:
        raise DataError(Problem(DTYPE, str(path), f"hint must be float32, got {hint.dtype}", source))
    if hint.ndim != 3 or hint.shape[0] != 1 or (shape is not None and hint.shape[1:] != tuple(shape)):
        expected = "(1, H, W)" if shape is None else str((1, *shape))
        raise DataError(Problem(SIZE, str(path), f"hint is {hint.shape}, its image needs {expected}", source))
    return hint[0]


def read_kitti_calib(path: Path, source: str) -> dict[str, np.ndarray]:
    """A KITTI calibration text file (``KEY: v1 v2 ...`` lines) as ``{key: float64 array}``.

    Non-numeric values (``calib_time: 09-Jan-2012 13:57:47``) are skipped.
    """
    _check_exists(path, source)
    values: dict[str, np.ndarray] = {}
    for line in path.read_text(errors="replace").splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        try:
            values[key.strip()] = np.array([float(v) for v in rest.split()], dtype=np.float64)
        except ValueError:
            continue
    return values


@dataclass(frozen=True)
class StereoCalibration:
    """Rectified intrinsics of one camera and the stereo baseline of the 02/03 pair."""

    intrinsics: tuple[float, float, float, float]  # fx, fy, cx, cy in pixels
    baseline_m: float


def kitti_stereo_calibration(calib: dict[str, np.ndarray], camera: str, path: Path, source: str) -> StereoCalibration:
    """Intrinsics of camera ``"02"`` or ``"03"`` from ``P_rect_0X``, baseline from P_rect_02 and P_rect_03.

    ``P_rect_0X[0, 3] = -fx * t_x`` where t_x is the camera's x position relative to the reference
    camera 0 (KITTI raw devkit), so baseline = t_x(03) - t_x(02), about 0.54 m.
    """
    rect = {}
    for cam in ("02", "03"):
        p = calib.get(f"P_rect_{cam}")
        if p is None or p.size != 12:
            raise DataError(Problem(CALIBRATION, str(path), f"P_rect_{cam} missing or not 12 numbers", source))
        rect[cam] = p.reshape(3, 4)
    p = rect[camera]
    if p[0, 0] <= 0 or rect["03"][0, 0] <= 0:
        raise DataError(Problem(CALIBRATION, str(path), "non-positive focal length in P_rect", source))
    x02 = rect["02"][0, 3] / -rect["02"][0, 0]
    x03 = rect["03"][0, 3] / -rect["03"][0, 0]
    return StereoCalibration((p[0, 0], p[1, 1], p[0, 2], p[1, 2]), float(x03 - x02))
