"""Users' own images for ``depthlab predict``: a folder, one image file, or a text list of image paths.

    depthlab predict --config configs/synthetic.yaml --ckpt_path last.ckpt \\
        --data depthlab.data.ImageFolderDataModule --data.path photos/ [--data.size [192,256]]

No ground truth is needed or read. Each sample (collated into a batch with a leading B axis) has:

- ``image`` (3, h, w) float32 RGB in [0, 1] at the network's input size: ``size`` when set, else
  the file's own size rounded to the nearest multiple of ``multiple_of`` (32: the deepest feature
  map of the usual encoders has stride 32);
- ``original_size`` (2,) int64: the file's (H, W), to which the prediction is resized back;
- ``name``: str, the file's path relative to the folder (a list: to the deepest folder holding all
  listed files), with its suffix; it names the output files (``sub/a.jpg`` -> ``sub/a.png``,
  ``sub/a_color.png``, see :class:`depthlab.callbacks.DepthPredictionWriter`);
- ``index`` () int64: position in the sorted file list.

Images of different input sizes never share a batch: with ``batch_size`` > 1 and no fixed
``size``, batches are grouped by input size (:class:`SizeGroupedBatchSampler`, which reads each
file's header once at start-up). A file that cannot be decoded stops the run with one error line
naming it (the predictions written before it stay on disk).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import lightning as L
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, IterableDataset, Sampler, SequentialSampler

from depthlab.data.pipeline import SampleDataset
from depthlab.data.readers import MISSING, UNREADABLE, DataError, Problem, read_rgb
from depthlab.errors import ConfigError

# What a folder scan picks up (case-insensitive); a list file may name any format OpenCV decodes.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# EXIF orientations that swap width and height (rotations by 90 or 270 degrees); OpenCV's imread
# applies the orientation, so the header's size must be swapped the same way.
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)


def _is_hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def list_images(path: str | os.PathLike, recursive: bool = True) -> tuple[list[Path], list[str], list[str]]:
    """The images ``path`` designates: ``(files, names, sources)``, sorted by name (a list: in its order).

    ``path`` is a folder (its ``.png``/``.jpg``/``.jpeg`` files, in subfolders too when
    ``recursive``; hidden files and folders are skipped), an image file, or any other file: a list
    with one image path per line (blank lines and ``#`` comments ignored; relative paths are
    relative to the list's folder). ``names`` are the outputs' names (see the module docstring);
    ``sources`` say where each file was found, for error messages.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError(f"data.path: {path} does not exist (a folder of images, an image, or a list of paths)")
    if path.is_dir():
        pattern = path.rglob("*") if recursive else path.glob("*")
        files = sorted(p for p in pattern if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                       and not _is_hidden(p.relative_to(path)))
        if not files:
            where = "in it or its subfolders" if recursive else "in it (data.recursive is false)"
            raise ConfigError(f"data.path: no {'/'.join(IMAGE_SUFFIXES)} images {where}: {path}")
        names = [p.relative_to(path).as_posix() for p in files]
        return files, names, [f"data.path {path}"] * len(files)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return [path], [path.name], ["data.path"]
    files, sources, problems = [], [], []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        file = Path(entry).expanduser()
        file = file if file.is_absolute() else path.parent / file
        source = f"{path}:{lineno}"
        if not file.is_file():
            problems.append(Problem(MISSING, str(file), "no such file", source))
        files.append(file)
        sources.append(source)
    if problems:
        raise DataError(problems)
    if not files:
        raise ConfigError(f"data.path: the list {path} names no image")
    common = Path(os.path.commonpath([str(f.resolve().parent) for f in files]))
    return files, [f.resolve().relative_to(common).as_posix() for f in files], sources


def check_distinct_outputs(names: Sequence[str], sources: Sequence[str]) -> None:
    """Two inputs whose outputs would overwrite each other (``a.png`` and ``a.jpg``; a list naming
    one file twice) are an error naming both."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        stem = Path(name).with_suffix("").as_posix()
        if stem in seen:
            j = seen[stem]
            raise ConfigError(f"data.path: {names[j]} ({sources[j]}) and {name} ({sources[i]}) would both be "
                              f"written as {stem}.png: rename one")
        seen[stem] = i


def to_input_size(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """An image at the network's input size: area averaging when shrinking (no aliasing), bilinear
    when enlarging, unchanged at its own size."""
    if rgb.shape[:2] == (height, width):
        return rgb
    shrink = height * width < rgb.shape[0] * rgb.shape[1]
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def round_to_multiple(size: int, multiple: int) -> int:
    """``size`` rounded to the nearest multiple of ``multiple`` (halves up), at least ``multiple``."""
    return max(multiple, int(math.floor(size / multiple + 0.5)) * multiple)


def header_size(path: Path, source: str) -> tuple[int, int]:
    """(H, W) of an image file as ``cv2.imread`` returns it, from its header (no decoding)."""
    from PIL import Image  # torchvision's dependency; only needed to group mixed sizes into batches

    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = im.getexif().get(0x0112, 1)
    except (OSError, ValueError, SyntaxError) as exc:  # PIL raises all three for bad files
        raise DataError(Problem(UNREADABLE, str(path), f"not a decodable image ({exc})", source)) from None
    return (width, height) if orientation in _TRANSPOSING_ORIENTATIONS else (height, width)


class ImageFileDataset(SampleDataset):
    """The images of :func:`list_images` as samples (see the module docstring).

    Args:
        files, names, sources: as :func:`list_images` returns them.
        size: (H, W) every image is resized to; None: its own size rounded to ``multiple_of``.
        multiple_of: see ``size``.
        input_sizes: per file, the input size decided in advance (from headers, to group batches);
            overrides ``size``/``multiple_of`` so that a batch always stacks.
    """

    def __init__(self, files: Sequence[Path], names: Sequence[str], sources: Sequence[str],
                 size: Sequence[int] | None = None, multiple_of: int = 32,
                 input_sizes: Sequence[tuple[int, int]] | None = None) -> None:
        super().__init__(augment=None)
        self.files, self.names, self.sources = list(files), list(names), list(sources)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.multiple_of = multiple_of
        self.input_sizes = None if input_sizes is None else list(input_sizes)

    def __len__(self) -> int:
        return len(self.files)

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The network's input (H, W) for an image of ``height`` x ``width``."""
        if self.size is not None:
            return self.size
        return round_to_multiple(height, self.multiple_of), round_to_multiple(width, self.multiple_of)

    def source(self, index: int) -> str:
        return self.sources[index]

    def load(self, index: int) -> dict:
        """The image at the network's input size (uint8 RGB), its file's size and name."""
        rgb = read_rgb(self.files[index], self.sources[index])
        height, width = rgb.shape[:2]
        in_h, in_w = self.input_sizes[index] if self.input_sizes is not None else self.input_size(height, width)
        return {"image": to_input_size(rgb, in_h, in_w), "original_size": (height, width), "name": self.names[index]}


class VideoFrameDataset(IterableDataset):
    """The frames of a video file, decoded one at a time (memory stays flat with the video's length),
    as samples like :class:`ImageFileDataset`'s: the frame at the network's input size, its own size,
    the name ``<video stem>/<frame number>.png`` and the frame number as ``index``.

    One decoding process: in DataLoader workers, only the first decodes (the others yield nothing), so
    no frame is repeated."""

    def __init__(self, path: Path, size: Sequence[int] | None = None, multiple_of: int = 32) -> None:
        from depthlab.video import video_info

        self.path, self.info = Path(path), video_info(path)  # a bad file is one line now, not in a worker
        height, width = self.info.size
        self.input = (int(size[0]), int(size[1])) if size is not None else (
            round_to_multiple(height, multiple_of), round_to_multiple(width, multiple_of))

    def __iter__(self) -> Iterator[dict]:
        from depthlab.data.pipeline import to_tensors
        from depthlab.video import read_frames

        worker = torch.utils.data.get_worker_info()
        if worker is not None and worker.id != 0:
            return
        in_h, in_w = self.input
        for number, rgb in enumerate(read_frames(self.path)):
            yield to_tensors({"image": to_input_size(rgb, in_h, in_w), "original_size": rgb.shape[:2], "index": number,
                              "name": f"{self.path.stem}/{number:06d}.png"})


class SizeGroupedBatchSampler(BatchSampler):
    """Batches of up to ``batch_size`` indices that share one input size (``sizes[index]``).

    Indices come in the order of ``sampler``; a batch is yielded as soon as its size has
    ``batch_size`` indices, the incomplete ones at the end. ``sampler`` and ``drop_last`` are named
    as in ``BatchSampler`` so that Lightning can put a DistributedSampler in under DDP.
    """

    def __init__(self, sampler: Sampler[int] | Sequence[int], batch_size: int, drop_last: bool = False,
                 sizes: Sequence[tuple[int, int]] = ()) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.sizes = list(sizes)

    def __iter__(self) -> Iterator[list[int]]:
        pending: dict[tuple[int, int], list[int]] = {}
        for index in self.sampler:
            batch = pending.setdefault(self.sizes[index], [])
            batch.append(index)
            if len(batch) == self.batch_size:
                yield pending.pop(self.sizes[index])
        if not self.drop_last:
            yield from (batch for batch in pending.values() if batch)

    def __len__(self) -> int:
        counts = Counter(self.sizes[index] for index in self.sampler)
        if self.drop_last:
            return sum(n // self.batch_size for n in counts.values())
        return sum(math.ceil(n / self.batch_size) for n in counts.values())


class ImageFolderDataModule(L.LightningDataModule):
    """Predict-only data: the images of a folder, a single image, or a list file (no ground truth).

    Args:
        path: a folder (``.png``/``.jpg``/``.jpeg``), an image file, a text file listing image
            paths one per line (relative to the list's folder; ``#`` comments), or a video file
            (``.mp4``, ``.mov``, ``.avi``, ``.mkv``, ``.webm``, ``.m4v``; decoded frame by frame with
            PyAV, the optional extra ``video``): the writer then writes a depth video too.
        size: [H, W] the network sees every image at; null (default): each image's own size
            rounded to the nearest multiple of ``multiple_of``. Predictions are resized back to
            each image's own size either way.
        multiple_of: see ``size``.
        recursive: a folder's subfolders too (their relative paths are kept in the output names).
        batch_size: images per batch. Images of different input sizes never share one: above 1
            without ``size``, batches are grouped by input size (each file's header is read once
            at start-up; a file whose header cannot be read is then an error before any prediction).
        num_workers: DataLoader worker processes decoding images.
    """

    def __init__(self, path: str | None = None, size: tuple[int, int] | None = None, multiple_of: int = 32,
                 recursive: bool = True, batch_size: int = 1, num_workers: int = 0) -> None:
        super().__init__()
        # Arguments are checked when the images are listed (setup), not here: LightningCLI turns an
        # error raised while it instantiates a data module into a traceback, not one line.
        self.path, self.size, self.multiple_of, self.recursive = path, size, multiple_of, recursive
        self.batch_size, self.num_workers = batch_size, num_workers
        self._dataset: ImageFileDataset | None = None

    def _check_arguments(self) -> None:
        if self.path is None:
            raise ConfigError("data.path is not set: give a folder of images, an image, or a text list of image paths")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ConfigError(f"data.size: expected [height, width] of positive pixels, got {list(self.size)}")
        if self.multiple_of < 1:
            raise ConfigError(f"data.multiple_of: must be >= 1, got {self.multiple_of}")
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size: must be >= 1, got {self.batch_size}")

    @property
    def provides(self) -> frozenset[str]:
        return frozenset({"image", "original_size", "name", "index"})

    @property
    def video(self) -> VideoFrameDataset | None:
        """The video being predicted (``path`` is a video file), else None."""
        dataset = self.dataset()
        return dataset if isinstance(dataset, VideoFrameDataset) else None

    def dataset(self) -> ImageFileDataset | VideoFrameDataset:
        """The listed images (listed once; a missing path or an empty folder is a ConfigError), or the
        frames of a video file (``.mp4``, ``.mov``, ...; needs the optional extra ``video``)."""
        if self._dataset is None:
            self._check_arguments()
            from depthlab.video import is_video

            if is_video(self.path):
                if not Path(self.path).expanduser().is_file():
                    raise ConfigError(f"data.path: video {self.path} does not exist")
                self._dataset = VideoFrameDataset(Path(self.path).expanduser(), self.size, self.multiple_of)
                return self._dataset
            files, names, sources = list_images(self.path, self.recursive)
            check_distinct_outputs(names, sources)
            input_sizes = None
            if self.batch_size > 1 and self.size is None:
                plain = ImageFileDataset(files, names, sources, None, self.multiple_of)
                input_sizes = [plain.input_size(*header_size(f, s)) for f, s in zip(files, sources)]
            self._dataset = ImageFileDataset(files, names, sources, self.size, self.multiple_of, input_sizes)
        return self._dataset

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict":
            self.dataset()

    def predict_dataloader(self) -> DataLoader:
        dataset = self.dataset()
        common = dict(num_workers=self.num_workers, persistent_workers=False, pin_memory=torch.cuda.is_available())
        if isinstance(dataset, VideoFrameDataset):  # in order, one decoder: at most one worker
            return DataLoader(dataset, batch_size=self.batch_size, **{**common, "num_workers": min(self.num_workers, 1)})
        if dataset.input_sizes is None:  # one input size for all, or one image per batch
            return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, **common)
        sampler = SizeGroupedBatchSampler(SequentialSampler(dataset), self.batch_size, False, dataset.input_sizes)
        return DataLoader(dataset, batch_sampler=sampler, **common)
