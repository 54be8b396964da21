"""Training from a pack (``depthlab data pack``): litdata's ``StreamingDataset`` and
``StreamingDataLoader`` over the optimised chunks, from a local folder or object storage (``s3://``).

    depthlab data pack --config configs/own_data.yaml --split train --split val --output packs/mine
    depthlab fit --config configs/streaming.yaml          # data.input_dir: packs/mine (or s3://bucket/mine)

A pack holds a data module's raw samples (before augmentation, :mod:`depthlab.data.pack`); each one
read back goes through the same pipeline as in the original module
(:func:`~depthlab.data.pipeline.finish_sample`: stereo pairs completed, the split's transforms, tensors),
so batches have the same keys, dtypes and validity masks, and ``provides`` and the evaluation
protocol are the original module's (recorded in the pack). The transforms are the pack's (the
source module's) unless ``train_transforms``/``eval_transforms`` are given.

Order and resume. The training order is litdata's: with ``shuffle``, chunks and the samples inside
them are permuted per epoch from ``seed_everything``'s seed, otherwise the pack's order. Every
epoch sees each sample once (the last incomplete batch is dropped, as in every depthlab module). A
run resumed from a checkpoint written mid-epoch continues exactly where it stood: the
``StreamingDataLoader`` is stateful, Lightning stores its state (samples yielded, epoch, workers) in
the checkpoint with the fit loop's, and the resumed loader skips the samples already trained on
(:class:`~depthlab.data.streaming_loader.PackLoader` makes the epochs after it whole again). That is
exact with the interrupted run's ``batch_size`` and number of devices; with others litdata re-stripes
the rest of the epoch and a few samples come twice, which a warning counts
(:func:`~depthlab.data.pack.warn_if_elastic`).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from depthlab.data.loading import Split
from depthlab.data.pack import META_FILE, Layout, from_record, join, read_pack, require_litdata
from depthlab.data.pipeline import finish_sample
from depthlab.data.workers import install_exit_cleanup, worker_init_fn
from depthlab.errors import ConfigError

_SIZE_FIXING = ("Resize",)  # transforms that make every training image one size (besides *Crop)


class PackedSample:
    """litdata's per-item ``transform``: a record -> the :class:`DepthSample` the original module makes
    (picklable: it runs in the loader's workers)."""

    def __init__(self, layout: Layout, augment: Any, where: str) -> None:
        self.layout, self.augment, self.where = layout, augment, where

    def __call__(self, record: dict[str, Any]) -> Any:
        raw, index, seed = from_record(record, self.layout, self.where)
        return finish_sample(raw, self.augment, seed, index)


class PackedSplit:
    """The raw samples of a packed split by index (``load``, before any augmentation): what
    ``depthlab data stats`` reads from a pack."""

    def __init__(self, dataset: Any, layout: Layout, where: str) -> None:
        self.dataset, self.layout, self.where = dataset, layout, where

    def __len__(self) -> int:
        return len(self.dataset)

    def load(self, index: int) -> dict[str, Any]:
        return from_record(self.dataset[index], self.layout, self.where)[0]

    def source(self, index: int) -> str:
        return f"{self.where} sample {index}"


class StreamingDataModule(L.LightningDataModule):
    """A pack written by ``depthlab data pack`` (see the module docstring and docs/data.md, "Streaming").

    Args:
        input_dir: the pack: a folder or a URI (``s3://bucket/prefix``) holding ``train/``, ``val/``
            and ``test/`` (the splits packed; test reads val when it was not packed).
        batch_size, eval_batch_size, num_workers: DataLoader settings (``eval_batch_size``: default
            ``batch_size``; 1 for an evaluation split whose images differ in size).
        shuffle: shuffle the training split (litdata's chunk and in-chunk shuffle, per epoch).
        train_transforms, eval_transforms: the augmentation lists (as for every data module); None:
            the pack's own, those of the module it was packed from; ``[]``: none.
        eval_protocol: this data's evaluation protocol; None: the pack's (its source module's), else
            the model's.
        cache_dir, max_cache_size: where litdata keeps chunks streamed from object storage and how
            much of them (None: litdata's defaults).
        storage_options: litdata's options for the object store (credentials, endpoint).
    """

    def __init__(
        self,
        input_dir: str | None = None,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        shuffle: bool = True,
        train_transforms: list[dict[str, Any]] | None = None,
        eval_transforms: list[dict[str, Any]] | None = None,
        eval_protocol: str | dict[str, Any] | None = None,
        cache_dir: str | None = None,
        max_cache_size: str | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        require_litdata("depthlab.data.StreamingDataModule")
        # Lightning's caution about an IterableDataset's length under workers; litdata's StreamingDataset
        # gives each worker its own share and reports the exact length.
        warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")
        if input_dir is None:
            raise ConfigError("data.input_dir is not set: point it at a pack written by 'depthlab data pack'")
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1):
            raise ConfigError(f"data: batch sizes must be >= 1, got {batch_size} and {eval_batch_size}")
        self.input_dir = str(input_dir)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.shuffle = num_workers, shuffle
        self.cache_dir, self.max_cache_size = cache_dir, max_cache_size
        self.storage_options = dict(storage_options or {})
        self._eval_protocol = eval_protocol
        self.packs = read_pack(self.input_dir, "data.input_dir", self.storage_options)
        from depthlab.data.transforms import DepthAugment  # albumentations: once the pack is known to exist

        self.transforms = {
            split: meta["transforms"] if override is None else list(override)
            for split, meta in self.packs.items()
            for override in [train_transforms if split == "train" else eval_transforms]
        }
        self.augments = {split: DepthAugment.from_config(specs, f"data.{'train' if split == 'train' else 'eval'}"
                                                                 "_transforms")
                         for split, specs in self.transforms.items()}
        if "train" in self.packs and self.packs["train"].get("mixed_sizes"):
            names = [str(t.get("name", "")) for t in self.transforms["train"] or []]
            if not any(n.endswith("Crop") or n in _SIZE_FIXING for n in names):
                raise ConfigError(f"data.train_transforms: the pack {join(self.input_dir, 'train')} holds images of "
                                  "different sizes: add a Resize or a RandomCrop to a fixed size")

    # -- what the pack says ---------------------------------------------------------------------

    def pack_of(self, split: Split) -> tuple[str, dict[str, Any]]:
        """(the split that ``split`` reads, its description); test reads val when test was not packed."""
        source = "val" if split == "test" and "test" not in self.packs else split
        if source not in self.packs:
            raise ConfigError(f"data.input_dir: {join(self.input_dir, source)} holds no pack ({META_FILE}): write it "
                              f"with 'depthlab data pack --config X.yaml --split {source} --output {self.input_dir}'")
        return source, self.packs[source]

    @property
    def provides(self) -> frozenset[str]:
        """The keys of every batch: those of the module the pack was written from."""
        meta = self.packs.get("train") or next(iter(self.packs.values()))
        return frozenset(meta["provides"])

    def eval_protocol(self, stage: str) -> Any:
        """The evaluation protocol of ``stage`` (``val``/``test``): ``eval_protocol`` if given, else the
        pack's (recorded from its source module; None: the model's)."""
        if self._eval_protocol is not None:
            return self._eval_protocol
        meta = self.packs.get("test" if stage == "test" and "test" in self.packs else "val")
        return None if meta is None else meta.get("eval_protocol")

    # -- data sets and loaders --------------------------------------------------------------------

    def dataset(self, split: Split) -> Any:
        """litdata's ``StreamingDataset`` over the pack of ``split``, each record through :class:`PackedSample`."""
        from litdata import StreamingDataset

        source, meta = self.pack_of(split)
        location = join(self.input_dir, source)
        train = split == "train"
        options: dict[str, Any] = {}
        if self.cache_dir is not None:
            options["cache_dir"] = self.cache_dir
        if self.max_cache_size is not None:
            options["max_cache_size"] = self.max_cache_size
        return StreamingDataset(location, shuffle=train and self.shuffle, drop_last=None,
                                seed=int(os.environ.get("PL_GLOBAL_SEED", 0)),
                                storage_options=self.storage_options or None,
                                transform=PackedSample(Layout.from_json(meta["layout"]), self.augments[source],
                                                       location),
                                **options)

    def build(self, split: Split, augment: Any = None) -> PackedSplit:
        """The raw samples of ``split``'s pack (``depthlab data stats``; ``augment`` is not applied)."""
        from litdata import StreamingDataset

        source, meta = self.pack_of(split)
        location = join(self.input_dir, source)
        return PackedSplit(StreamingDataset(location, storage_options=self.storage_options or None),
                           Layout.from_json(meta["layout"]), location)

    def check_splits(self) -> list[Split]:
        """The splits packed (what ``depthlab data stats`` describes)."""
        return [split for split in ("train", "val", "test") if split in self.packs]  # type: ignore[misc]

    def _loader(self, split: Split) -> Any:
        from depthlab.data.streaming_loader import PackLoader

        train = split == "train"
        batch_size = self.batch_size if train else self.eval_batch_size
        source, meta = self.pack_of(split)
        if not train and batch_size > 1 and meta.get("mixed_sizes"):
            rank_zero_info(f"depthlab: the {source} pack holds images of different sizes: evaluated one at a time")
            batch_size = 1
        if self.num_workers > 0:
            install_exit_cleanup()
        return PackLoader(self.dataset(split), batch_size=batch_size, num_workers=self.num_workers, drop_last=train,
                          pin_memory=torch.cuda.is_available(), worker_init_fn=worker_init_fn)

    def train_dataloader(self) -> Any:
        return self._loader("train")

    def val_dataloader(self) -> Any:
        return self._loader("val")

    def test_dataloader(self) -> Any:
        return self._loader("test")

    def predict_dataloader(self) -> Any:
        return self._loader("test")

