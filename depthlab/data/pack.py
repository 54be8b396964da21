"""A data module's split as litdata's optimised chunks (``depthlab data pack``), and the way back.

A pack holds the *raw* samples, what a data set's ``load`` returns (``data/pipeline.py``): before
augmentation, so that training from the pack (:class:`depthlab.data.streaming.StreamingDataModule`)
runs the same pipeline, ``load -> augment -> to_tensors``, as training from the original module, with
the same transforms. Every value is stored losslessly:

- a uint8 image (``image``, ``image_right``, video frames ``image_f-1`` ...) as encoded bytes: the
  file's own bytes where ``load`` returned that file's pixels as they are (the data set names its
  files, :meth:`~depthlab.data.pipeline.SampleDataset.source_files`, and packing checks that the bytes
  decode to the very same pixels), otherwise (a crop or a flip made in ``load``, e.g. KITTI's KB crop,
  or pixels from a ``.mat`` file) a PNG of the loaded pixels;
- a depth-like map (``depth``, ``hint``, their ``_right`` views: float32 metres) as a 16-bit PNG of
  its integer units when it is one (a millimetre or 1/256 m PNG read by ``load``; packing checks that
  the units give back every float32 bit, :func:`encode_map`): the depth file's own bytes where they
  hold exactly these units and are no larger than a new PNG, else the new PNG; otherwise the float32
  array;
- a float image (the procedural renderer returns float32 in [0, 1]) and every other array
  (``intrinsics``, ``pose_f*``, ...) as the array itself, dtype kept;
- numbers and strings (``baseline_m``, ``name``) as they are, numbers with their NumPy type.

Beside litdata's ``index.json`` and chunks, each split's folder holds ``depthlab_pack.json``
(:data:`META_FILE`): the split, the number of samples, the record layout, the source data module
(class and settings), its ``provides``, the split's transforms and evaluation protocol. Layout of a
pack: ``<output>/<split>/`` per split, local or in object storage (``s3://bucket/prefix``).

Each record also carries the sample's index in its split and its augmentation seed (the procedural
data draw each sample's augmentation from its own seed; -1: the worker's stream), so that a sample
read back from the pack is the sample the original module makes.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depthlab.data.keys import sample_views
from depthlab.errors import ConfigError, DataError, Problem

META_FILE = "depthlab_pack.json"
INDEX_FILE = "index.json"  # litdata's
FORMAT = 1
INDEX_KEY = "__index__"  # the sample's index in its split
SEED_KEY = "__augment_seed__"  # its augmentation seed, -1 for None
SPLITS = ("train", "val", "test")
STREAM_EXTRA = "pip install 'depthlab[stream]'"


def require_litdata(what: str) -> None:
    """A one-line :class:`ConfigError` saying how to install litdata when it is not there (found without
    importing it: the import costs a second, paid where litdata is used)."""
    try:
        found = sys.modules["litdata"] is not None if "litdata" in sys.modules else \
            importlib.util.find_spec("litdata") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ConfigError(f"{what} needs litdata: {STREAM_EXTRA}")


# --- where a pack lives: a folder or an object-store URI -----------------------------------------


def is_remote(location: str) -> bool:
    return "://" in str(location)


def join(location: str, *parts: str) -> str:
    """``location`` / ``parts``: a path for a folder, ``/``-joined for a URI (``s3://bucket/prefix``)."""
    if is_remote(location):
        return "/".join([str(location).rstrip("/"), *parts])
    return str(Path(location).expanduser().joinpath(*parts))


def _storage(location: str, storage_options: dict[str, Any] | None) -> Any:
    from litdata.streaming.fs_provider import _get_fs_provider

    return _get_fs_provider(location, storage_options or {})


def write_json(location: str, data: dict[str, Any], storage_options: dict[str, Any] | None = None) -> None:
    text = json.dumps(data, indent=1, default=str) + "\n"
    if not is_remote(location):
        Path(location).write_text(text)
        return
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, os.path.basename(location))
        Path(local).write_text(text)
        _storage(location, storage_options).upload_file(local, location)


def read_json(location: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The JSON file at ``location`` (a path or a URI), or None when there is none."""
    if not is_remote(location):
        path = Path(location)
        return json.loads(path.read_text()) if path.is_file() else None
    storage = _storage(location, storage_options)
    try:
        if not storage.exists(location):
            return None
    except Exception:  # providers raise their own "not found" errors
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, os.path.basename(location))
        storage.download_file(location, local)
        return json.loads(Path(local).read_text())


# --- the record of one sample --------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """How the values of a split's samples are stored (the same for every sample of the split, as
    litdata requires): ``encoded`` uint8 images as bytes, ``arrays`` as arrays of their dtype,
    ``scalars`` as numbers (key -> NumPy type name, or ``int``/``float``/``bool`` for Python numbers),
    ``strings`` as they are."""

    encoded: tuple[str, ...] = ()
    arrays: dict[str, str] = field(default_factory=dict)  # key -> dtype
    scalars: dict[str, str] = field(default_factory=dict)
    strings: tuple[str, ...] = ()
    maps: tuple[str, ...] = ()  # float32 (H, W) depth-like maps, as encode_map's bytes

    @property
    def keys(self) -> frozenset[str]:
        return frozenset((*self.encoded, *self.arrays, *self.scalars, *self.strings, *self.maps))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Layout:
        return cls(tuple(data["encoded"]), dict(data["arrays"]), dict(data["scalars"]), tuple(data["strings"]),
                   tuple(data["maps"]))

    @classmethod
    def of(cls, sample: dict[str, Any], source: str) -> Layout:
        """The layout of a raw sample (the first of its split)."""
        kinds = {key: vk.kind for key, vk, _ in sample_views(sample)}
        encoded, arrays, scalars, strings, maps = [], {}, {}, [], []
        for key, value in sample.items():
            if key in (INDEX_KEY, SEED_KEY):
                raise DataError(Problem("unpackable value", key, "a sample key reserved by depthlab data pack", source))
            if isinstance(value, str):
                strings.append(key)
            elif isinstance(value, (bool, np.bool_)):
                scalars[key] = "bool"
            elif isinstance(value, (int, float)) and not isinstance(value, np.generic):
                scalars[key] = type(value).__name__
            elif isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
                scalars[key] = np.asarray(value).dtype.name
            elif isinstance(value, (np.ndarray, list, tuple)):
                array = np.asarray(value)
                if array.dtype == object or array.dtype.kind not in "biuf":
                    raise DataError(Problem("unpackable value", key, f"an array of {array.dtype}", source))
                if kinds.get(key) == "image" and array.dtype == np.uint8:
                    encoded.append(key)
                elif kinds.get(key) == "depth" and array.dtype == np.float32 and array.ndim == 2:
                    maps.append(key)
                else:
                    arrays[key] = array.dtype.name
            else:
                raise DataError(Problem("unpackable value", key, f"a {type(value).__name__}, which a pack cannot "
                                        "store (arrays, numbers and strings only)", source))
        return cls(tuple(sorted(encoded)), dict(sorted(arrays.items())), dict(sorted(scalars.items())),
                   tuple(sorted(strings)), tuple(sorted(maps)))


def png_bytes(image: np.ndarray) -> bytes:
    """A lossless PNG of (H, W, 3) uint8 RGB pixels."""
    import cv2

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("PNG encoding failed")
    return encoded.tobytes()


def encode_image(image: np.ndarray, file: Path | None, source: str) -> bytes:
    """The bytes a pack stores for uint8 pixels ``image``: those of ``file`` when they decode to exactly
    these pixels (the original encoding, JPEG included), else a PNG of the pixels."""
    from depthlab.data.readers import decode_rgb

    if file is not None:
        try:
            data = Path(file).read_bytes()
            same = np.array_equal(decode_rgb(data, str(file), source), image)
        except (OSError, DataError):
            same = False
        if same:
            return data
    return png_bytes(np.ascontiguousarray(image))


# A depth-like map's bytes: b"P" + op + divisor (uint32) + a 16-bit PNG of its integer units, or
# b"F" + H, W (uint32) + the float32 array. The ops are the three ways depthlab's readers turn units
# into metres (rgbd.read_depth_file, readers.read_depth_png), so a map read from a depth PNG is one.
_MAP_PNG, _MAP_RAW = b"P", b"F"
_DIVISORS = (1000, 256, 5000, 100, 10, 1)  # units per metre tried: mm, KITTI's 1/256 m, TUM's 1/5000 m, ...
_UNITS = {
    b"/": lambda raw, d: raw.astype(np.float32) / np.float32(d),  # float32 division
    b"*": lambda raw, d: raw.astype(np.float32) * np.float32(1 / d),  # times the float32 scale
    b"d": lambda raw, d: (raw.astype(np.float64) * (1 / d)).astype(np.float32),  # in float64, then rounded
}


def _as_units(values: np.ndarray) -> tuple[bytes, int, np.ndarray] | None:
    """(op, divisor, uint16 units) that give back ``values`` bit for bit, or None."""
    flat = values.ravel()
    probe = flat[np.flatnonzero(flat)[:: max(1, np.count_nonzero(flat) // 64)]]  # a cheap first test
    for divisor in _DIVISORS:
        for op, to_metres in _UNITS.items():
            guess = np.rint(probe.astype(np.float64) * divisor)
            if not (np.all(guess >= 0) and np.all(guess <= 65535)):
                break
            if not np.array_equal(to_metres(guess.astype(np.uint16), divisor).view(np.uint32), probe.view(np.uint32)):
                continue
            units = np.rint(values.astype(np.float64) * divisor)
            if not (np.all(units >= 0) and np.all(units <= 65535)):
                break
            units = units.astype(np.uint16)
            if np.array_equal(to_metres(units, divisor).view(np.uint32), values.view(np.uint32)):
                return op, divisor, units
    return None


def encode_map(values: np.ndarray, file: Path | None = None) -> bytes:
    """A float32 (H, W) depth-like map as bytes, lossless: a 16-bit PNG of its integer units when the map
    is units / divisor (a depth PNG as read, about a quarter of the array's size): ``file``'s own bytes
    when it is a PNG of exactly these units no larger than a new one (OpenCV's default PNG writer
    compresses little), else the new PNG; otherwise the array."""
    import cv2

    values = np.ascontiguousarray(values, dtype=np.float32)
    found = _as_units(values) if values.size else None
    if found is not None:
        op, divisor, units = found
        header = _MAP_PNG + op + np.uint32(divisor).tobytes()
        ok, png = cv2.imencode(".png", units, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if file is not None and Path(file).suffix.lower() == ".png" and Path(file).is_file():
            data = Path(file).read_bytes()
            raw = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
            if (raw is not None and raw.dtype == np.uint16 and np.array_equal(raw, units)
                    and (not ok or len(data) <= png.size)):
                return header + data
        if ok:
            return header + png.tobytes()
    return _MAP_RAW + np.array(values.shape, dtype=np.uint32).tobytes() + values.tobytes()


def decode_map(data: bytes) -> np.ndarray:
    """The float32 (H, W) map of :func:`encode_map`'s bytes."""
    import cv2

    if data[:1] == _MAP_PNG:
        divisor = int(np.frombuffer(data[2:6], dtype=np.uint32)[0])
        units = cv2.imdecode(np.frombuffer(data[6:], dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        return _UNITS[data[1:2]](units, divisor)
    height, width = np.frombuffer(data[1:9], dtype=np.uint32)
    return np.frombuffer(data[9:], dtype=np.float32).reshape(int(height), int(width)).copy()


def to_record(sample: dict[str, Any], layout: Layout, files: dict[str, Path], index: int, seed: int | None,
              source: str) -> dict[str, Any]:
    """The litdata record of raw ``sample`` (index ``index`` of its split, augmentation ``seed``)."""
    keys = frozenset(sample)
    if keys != layout.keys:
        extra, missing = sorted(keys - layout.keys), sorted(layout.keys - keys)
        what = "; ".join(part for part in (f"has {', '.join(extra)}" * bool(extra),
                                           f"lacks {', '.join(missing)}" * bool(missing)) if part)
        raise DataError(Problem("inconsistent sample", source, f"{what} (the first sample of the split sets the "
                                "keys of every record)", source))
    record: dict[str, Any] = {INDEX_KEY: int(index), SEED_KEY: -1 if seed is None else int(seed)}
    for key in layout.encoded:
        image = sample[key]
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8):
            raise DataError(Problem("inconsistent sample", source, f"{key} is not uint8 as in the first sample",
                                    source))
        record[key] = encode_image(image, files.get(key), source)
    for key in layout.maps:
        values = sample[key]
        if not (isinstance(values, np.ndarray) and values.dtype == np.float32 and values.ndim == 2):
            raise DataError(Problem("inconsistent sample", source, f"{key} is not a float32 (H, W) map as in the "
                                    "first sample", source))
        record[key] = encode_map(values, files.get(key))
    for key, dtype in layout.arrays.items():
        array = np.ascontiguousarray(sample[key])
        if array.dtype.name != dtype:
            raise DataError(Problem("inconsistent sample", source, f"{key} is {array.dtype}, {dtype} in the first "
                                    "sample", source))
        record[key] = array
    for key, kind in layout.scalars.items():
        python = {"int": int, "float": float, "bool": bool}.get(kind)
        record[key] = python(sample[key]) if python is not None else np.asarray(sample[key]).item()
    for key in layout.strings:
        record[key] = str(sample[key])
    return record


def from_record(record: dict[str, Any], layout: Layout, where: str) -> tuple[dict[str, Any], int, int | None]:
    """(raw sample, index, augmentation seed) of a record read back from a pack."""
    from depthlab.data.readers import decode_rgb

    index, seed = int(record[INDEX_KEY]), int(record[SEED_KEY])
    source = f"{where} sample {index}"
    sample: dict[str, Any] = {}
    for key in layout.encoded:
        sample[key] = decode_rgb(bytes(record[key]), f"{where}:{key}", source)
    for key in layout.maps:
        sample[key] = decode_map(bytes(record[key]))
    for key, dtype in layout.arrays.items():
        array = np.asarray(record[key])
        sample[key] = array if array.dtype.name == dtype else array.astype(dtype)
    for key, kind in layout.scalars.items():
        value = record[key]
        sample[key] = {"int": int, "float": float, "bool": bool}[kind](value) if kind in ("int", "float", "bool") \
            else np.dtype(kind).type(value)
    for key in layout.strings:
        sample[key] = str(record[key])
    return sample, index, None if seed < 0 else seed


# --- packing -----------------------------------------------------------------------------------------


class _PackSample:
    """litdata's ``fn``: split index -> record (picklable: runs in litdata's worker processes).

    A sample that cannot be read is not litdata's error (its worker error stops the run with a
    traceback and can leave processes behind): its problems go to ``problems_dir`` (one file per
    process), the record of the first sample stands in, and :func:`pack_split` reports them all and
    removes the pack at the end."""

    def __init__(self, dataset: Any, layout: Layout, placeholder: dict[str, Any], problems_dir: str) -> None:
        self.dataset, self.layout, self.placeholder, self.problems_dir = dataset, layout, placeholder, problems_dir

    def __call__(self, index: int) -> dict[str, Any]:
        ds = self.dataset
        try:
            files = ds.source_files(index) if hasattr(ds, "source_files") else {}
            seed = ds.augment_seed(index) if hasattr(ds, "augment_seed") else None
            return to_record(ds.load(index), self.layout, files, index, seed, ds.source(index))
        except DataError as exc:
            problems = exc.problems or [Problem("unreadable sample", "?", str(exc), ds.source(index))]
            with open(os.path.join(self.problems_dir, f"{os.getpid()}.jsonl"), "a") as file:
                file.writelines(json.dumps(asdict(p)) + "\n" for p in problems)
            return self.placeholder


def _collected_problems(problems_dir: str) -> list[Problem]:
    return [Problem(**json.loads(line)) for path in sorted(Path(problems_dir).glob("*.jsonl"))
            for line in path.read_text().splitlines() if line]


def raw_dataset(module: Any, split: str) -> tuple[Any, list[dict[str, Any]] | None]:
    """(the data set of ``split`` without augmentation, the transforms of that split as configured)."""
    if isinstance(getattr(module, "members", None), dict):
        raise ConfigError(f"depthlab data pack: {type(module).__name__} is a mixture: pack each member's config on "
                          "its own")
    if not hasattr(module, "dataset"):
        raise ConfigError(f"depthlab data pack: {type(module).__name__} has no data sets to pack (no dataset(split))")
    dataset = module.dataset(split)
    if not hasattr(dataset, "load"):
        raise ConfigError(f"depthlab data pack: the {split} split of {type(module).__name__} has no raw samples "
                          "(its data set has no load(index))")
    augment = getattr(dataset, "augment", None)
    specs = [] if augment is None else getattr(augment, "specs", None)
    raw = copy.copy(dataset)
    raw.augment = None
    return raw, specs


def source_protocol(module: Any, split: str) -> Any:
    """The data module's own evaluation protocol of ``split`` as plain values (None: the model's)."""
    if split == "train":
        return None
    from depthlab.eval import EvalProtocol
    from depthlab.training.protocol import datamodule_protocol, protocol_spec

    spec = datamodule_protocol(module, split)  # type: ignore[arg-type]
    return protocol_spec(spec) if isinstance(spec, EvalProtocol) else spec


def _mixed_sizes(module: Any, split: str, dataset: Any) -> bool:
    """Whether the module batches this split's evaluation by image size (its images differ in size)."""
    sampler = getattr(module, "eval_batch_sampler", None)
    try:
        return sampler is not None and sampler(split, dataset) is not None
    except ConfigError:  # mixed_sizes: error
        return True


@dataclass
class PackReport:
    split: str
    output: str
    samples: int
    seconds: float
    bytes: int | None  # local packs only

    def line(self) -> str:
        size = "" if self.bytes is None else f", {self.bytes / 2**20:.1f} MiB"
        rate = self.samples / self.seconds if self.seconds > 0 else float("inf")
        return (f"pack: {self.split}: {self.samples} samples -> {self.output} ({self.seconds:.1f} s, "
                f"{rate:.1f} samples/s{size})")


def pack_split(module: Any, split: str, output: str, *, workers: int = 1, chunk_bytes: str = "64MB",
               overwrite: bool = False, source: dict[str, Any] | None = None, progress: bool = True,
               storage_options: dict[str, Any] | None = None) -> PackReport:
    """Write split ``split`` of data module ``module`` to ``<output>/<split>/`` with ``litdata.optimize``
    (``workers`` processes) and its ``depthlab_pack.json``. ``source``: the module's settings as
    configured (recorded). Returns what was written."""
    require_litdata("depthlab data pack")
    from litdata import optimize

    if split not in SPLITS:
        raise ConfigError(f"depthlab data pack: --split must be one of {', '.join(SPLITS)}, got {split!r}")
    if workers < 1:
        raise ConfigError(f"depthlab data pack: --workers must be >= 1, got {workers}")
    dataset, transforms = raw_dataset(module, split)
    count = len(dataset)
    if count == 0:
        raise ConfigError(f"depthlab data pack: the {split} split of {type(module).__name__} has no samples")
    first = dataset.load(0)
    layout = Layout.of(first, dataset.source(0))
    placeholder = to_record(first, layout, {}, -1, None, dataset.source(0))
    target = join(output, split)
    if not is_remote(target):
        existing = Path(target)
        if (existing / INDEX_FILE).is_file() and not overwrite:
            raise ConfigError(f"depthlab data pack: {existing} already holds a pack: pass --overwrite to replace it "
                              "or choose another --output")
        existing.mkdir(parents=True, exist_ok=True)
        (existing / META_FILE).unlink(missing_ok=True)  # a pack is complete when its META_FILE is there
    meta = {
        "format": FORMAT,
        "split": split,
        "samples": count,
        "layout": layout.to_json(),
        "provides": sorted(module.provides),
        "transforms": transforms,
        "eval_protocol": source_protocol(module, split),
        "mixed_sizes": _mixed_sizes(module, split, dataset),
        "source": source or {"class_path": f"{type(module).__module__}.{type(module).__qualname__}"},
    }
    # litdata sets the global start method (and an environment variable); fork as torch's DataLoader
    # workers on Linux (no re-import: workers start in milliseconds), spawn where fork is not there.
    # Both put back afterwards.
    previous = multiprocessing.get_start_method(allow_none=True)
    previous_env = os.environ.get("DATA_OPTIMIZER_NUM_WORKERS")
    start = "fork" if "fork" in multiprocessing.get_all_start_methods() and sys.platform != "darwin" else "spawn"
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as problems_dir:
        try:
            optimize(fn=_PackSample(dataset, layout, placeholder, problems_dir), inputs=list(range(count)),
                     output_dir=target, num_workers=workers, chunk_bytes=chunk_bytes,
                     mode="overwrite" if overwrite else None, start_method=start, keep_data_ordered=True,
                     reorder_files=False, verbose=progress, storage_options=storage_options or {})
        except RuntimeError as exc:
            if "already contains" not in str(exc):
                raise
            raise ConfigError(f"depthlab data pack: {target} already holds a pack: pass --overwrite to replace it or "
                              "choose another --output") from None
        finally:
            multiprocessing.set_start_method(previous, force=True)
            if previous_env is None:
                os.environ.pop("DATA_OPTIMIZER_NUM_WORKERS", None)
            else:
                os.environ["DATA_OPTIMIZER_NUM_WORKERS"] = previous_env
        problems = _collected_problems(problems_dir)
    seconds = time.perf_counter() - began
    if problems:
        if is_remote(target):
            kept = f"{target} holds chunks but no {META_FILE}: not a pack"
        else:
            shutil.rmtree(target, ignore_errors=True)
            kept = "nothing written"
        raise DataError(f"depthlab data pack: {len(problems)} problem(s) in the {split} split ({kept}; "
                        f"'depthlab data check' lists them all); first: {problems[0]}")
    write_json(join(target, META_FILE), meta, storage_options)
    size = None if is_remote(target) else sum(p.stat().st_size for p in Path(target).iterdir() if p.is_file())
    return PackReport(split, target, count, seconds, size)


# --- reading a pack's description ------------------------------------------------------------------


def read_pack(input_dir: str, key: str = "data.input_dir",
              storage_options: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """``{split: its depthlab_pack.json}`` of every split packed under ``input_dir``; a one-line
    :class:`ConfigError` naming ``key`` when ``input_dir`` is missing or not a pack."""
    how = "write one with 'depthlab data pack --config X.yaml --split train --output DIR'"
    if not is_remote(input_dir) and not Path(input_dir).expanduser().is_dir():
        raise ConfigError(f"{key}: folder {input_dir} does not exist ({how})")
    packs = {}
    for split in SPLITS:
        meta = read_json(join(input_dir, split, META_FILE), storage_options)
        if meta is None:
            continue
        if meta.get("format") != FORMAT or meta.get("split") != split:
            raise ConfigError(f"{key}: {join(input_dir, split, META_FILE)} is not a depthlab pack description of "
                              f"format {FORMAT} for split {split}")
        packs[split] = meta
    if packs:
        return packs
    own = read_json(join(input_dir, META_FILE), storage_options)
    if own is not None and own.get("split") in SPLITS:
        raise ConfigError(f"{key}: {input_dir} is the {own['split']} split of a pack: give the folder above it "
                          "(it holds train/, val/, test/)")
    raise ConfigError(f"{key}: {input_dir} is not a depthlab pack (no train/, val/ or test/ with {META_FILE}; {how})")


# --- resuming from a pack -------------------------------------------------------------------------


def warn_if_elastic(saved: dict[str, Any], batch_size: int, num_workers: int) -> None:
    """Say what a resume with other settings than the checkpoint's trains on.

    With the checkpoint's batch size, devices and workers the resumed epoch is exact. Otherwise litdata
    re-stripes the rest of the epoch from its canonical order (its "elastic" resume): it skips the
    samples already taken rounded down to a multiple of devices x batch size, so the remainder of that
    multiple is trained on again; another number of workers alone changes only how the remaining
    batches interleave.
    """
    import torch
    from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    world = torch.distributed.get_world_size() if distributed else 1
    before = (int(saved.get("batch_size", batch_size)), int(saved.get("world_size", world)))
    taken = int(saved.get("sample_in_epoch", int(saved.get("num_samples_yielded", 0)) * before[1]))
    again = taken % (batch_size * world)
    if before != (batch_size, world) and again:
        rank_zero_warn(f"depthlab: resuming the streamed training split with batch_size {batch_size} on {world} "
                       f"device(s) where the checkpoint had {before[0]} on {before[1]}: litdata re-stripes the rest "
                       f"of the epoch (its elastic resume), skipping {taken - again} of the {taken} samples already "
                       f"trained on in this epoch, so {again} of them are trained on again; resume with the "
                       "checkpoint's batch size and devices for an exact continuation")
    elif taken and (before != (batch_size, world) or int(saved.get("num_workers", 1)) != max(num_workers, 1)):
        rank_zero_info(f"depthlab: resuming with other loader settings than the checkpoint's (batch_size "
                       f"{before[0]} -> {batch_size}, devices {before[1]} -> {world}, workers "
                       f"{saved.get('num_workers')} -> {max(num_workers, 1)}): the samples not yet trained on in this "
                       "epoch complete it, in batches that may differ from the interrupted run's")
