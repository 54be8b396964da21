"""The DataLoader plumbing every depthlab data module shares, and the resumable training order."""

from __future__ import annotations

import itertools
import os
import weakref
from typing import Any, Iterable, Iterator, Literal

import lightning as L
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler

from depthlab.data.pipeline import SampleDataset
from depthlab.data.workers import install_exit_cleanup, shutdown_workers, worker_init_fn

Split = Literal["train", "val", "test"]


class ResumableSampler(DistributedSampler):
    """The training order: one permutation per epoch, a pure function of (seed, epoch), that a resumed
    run can enter part-way through an epoch.

    It is ``torch``'s ``DistributedSampler`` (so under DDP Lightning keeps it and each process takes its
    share of the same permutation; on one process it is the whole permutation) with a start position:
    :meth:`resume` skips the samples this process already trained on in that epoch. Lightning's
    ``set_epoch`` at every epoch start moves to the next permutation and clears the start.

    Why not the default shuffling: ``RandomSampler`` draws each epoch's order from the global RNG at
    that moment, so no checkpoint can say where in which order a run stood.
    """

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        super().__init__(
            dataset,
            num_replicas=torch.distributed.get_world_size() if distributed else 1,
            rank=torch.distributed.get_rank() if distributed else 0,
            shuffle=True,
            seed=seed,
        )
        self.start = 0

    def resume(self, epoch: int, start: int) -> None:
        """Continue epoch ``epoch`` after its first ``start`` samples (of this process's share)."""
        self.epoch, self.start = epoch, start

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start = 0
        super().set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)


class ResumableDataLoader(DataLoader):
    """The training DataLoader: resumable mid-epoch through its data module's state (the
    :class:`ResumableSampler` position in :meth:`SplitDataModule.state_dict`), so it has no state of
    its own. It still has ``state_dict``/``load_state_dict``: Lightning takes a loader that has them as
    resumable, and warns on every mid-epoch resume ("your dataloader is not resumable") otherwise."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass


def train_position(trainer: L.Trainer) -> tuple[int, int]:
    """(epoch, batches of it already trained on) where a run saved now would continue.

    Read from Lightning's loop progress, which its checkpoint restores with the same meaning: the
    batch count is ``processed`` (a batch whose step raised is not, and is trained on again when the run
    resumes), and the epoch is the one that count belongs to (``started - 1``: ``current_epoch``
    already moves on in ``on_train_epoch_end`` and ``on_train_end``). A finished epoch continues
    at the start of the next one.
    """
    loop = trainer.fit_loop
    epoch = max(loop.epoch_progress.current.started - 1, 0)
    done = loop.epoch_loop.batch_progress.current.processed
    if done >= trainer.num_training_batches:
        return epoch + 1, 0
    return epoch, done


class SplitDataModule(L.LightningDataModule):
    """DataLoaders over ``self.dataset(split)``: train in a :class:`ResumableSampler` order with full
    batches only, val/test/predict (predict reads the test split) in order with ``eval_batch_size``.

    The training order's seed is ``seed_everything``'s (Lightning's ``PL_GLOBAL_SEED``, 0 without
    one: the same as Lightning's own DDP sampler). Its position is this module's state, which
    Lightning saves in every checkpoint and gives back before the loaders are built, so a run resumed
    from a checkpoint written mid-epoch sees exactly the batches the interrupted one had not.

    Subclasses set ``batch_size``, ``eval_batch_size`` and ``num_workers`` and implement
    :meth:`dataset`. No ``save_hyperparameters()`` in data modules: Lightning rejects keys
    (``min_depth``, ``max_depth``) shared with the model's hparams with other values; LightningCLI
    saves the whole config next to the logs anyway.
    """

    batch_size: int
    eval_batch_size: int
    num_workers: int
    _train_sampler: ResumableSampler | None = None
    _resume_at: dict[str, int] | None = None
    _required: dict[str, frozenset[str]] | None = None

    def __init__(self) -> None:
        super().__init__()
        self._built_loaders: weakref.WeakSet[DataLoader] = weakref.WeakSet()  # those with workers

    def require(self, keys: Iterable[str] | None, split: Split | None = None) -> None:
        """Load only what is read: the batch keys some consumer of ``split`` (None: every split)
        reads; ``keys=None`` lifts the restriction (the default: everything :attr:`provides`).

        ``DepthModule.setup`` calls it with its objective's ``requires`` and its evaluation
        protocol's keys, after the data module's own ``setup`` and before Lightning asks for any
        loader. The datasets then leave out the per-view maps that nobody reads (see
        :class:`depthlab.data.pipeline.SampleDataset`; e.g. the procedural data do not ray cast
        the right camera for a supervised objective); every other key comes as before. A data
        module with datasets of its own kind (not :class:`~depthlab.data.pipeline.SampleDataset`)
        applies :meth:`required_keys` in its loaders itself, or ignores it: the restriction only
        saves work, a batch with more keys is still right.
        """
        splits = ("train", "val", "test") if split is None else (split,)
        required = dict(self._required or {})
        for s in splits:
            if keys is None:
                required.pop(s, None)
            else:
                required[s] = frozenset(keys)
        self._required = required

    def required_keys(self, split: Split) -> frozenset[str] | None:
        """The keys :meth:`require` set for ``split`` (None: no restriction)."""
        return (self._required or {}).get(split)

    def restrict(self, dataset: Dataset, split: Split) -> Dataset:
        """``dataset`` with :meth:`required_keys` of ``split`` applied (a
        :class:`~depthlab.data.pipeline.SampleDataset` reads them at every load; other datasets
        are returned as they are)."""
        if isinstance(dataset, SampleDataset):
            dataset.required = self.required_keys(split)
        return dataset

    def dataset(self, split: Split) -> Dataset:
        raise NotImplementedError

    @property
    def provides(self) -> frozenset[str]:
        """The keys of every batch this module yields, in every split (exactly: a loss's ``requires``
        is checked against it at start-up)."""
        raise NotImplementedError(f"{type(self).__name__} does not declare the batch keys it provides")

    def _loader(self, split: Split) -> DataLoader:
        train = split == "train"
        dataset = self.restrict(self.dataset(split), split)
        sampler = self._resumable_sampler(dataset) if train else None
        if self.num_workers > 0:
            install_exit_cleanup()
        batch_sampler = None if train else self.eval_batch_sampler(split, dataset)
        batching = (dict(batch_sampler=batch_sampler) if batch_sampler is not None else
                    dict(batch_size=self.batch_size if train else self.eval_batch_size, sampler=sampler, drop_last=train))
        loader = (ResumableDataLoader if train else DataLoader)(
            dataset,
            **batching,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            worker_init_fn=worker_init_fn,
        )
        if self.num_workers > 0:
            self._built_loaders.add(loader)
        return loader

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()  # a copy (ddp_spawn, deepcopy) holds none of these loaders
        state["_built_loaders"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._built_loaders = weakref.WeakSet()

    def _shutdown_workers(self) -> None:
        """End the (persistent) workers of every loader this module built: a failed run must not leave
        them running (the process would not exit; see :mod:`depthlab.data.workers`)."""
        for loader in list(self._built_loaders):
            shutdown_workers(loader)

    def on_exception(self, exception: BaseException) -> None:
        self._shutdown_workers()

    def teardown(self, stage: str) -> None:
        self._shutdown_workers()

    def _resumable_sampler(self, dataset: Dataset) -> ResumableSampler:
        at, self._resume_at = self._resume_at, None  # a later rebuild (reload_dataloaders_every_n_epochs) starts an epoch
        seed = at["seed"] if at else int(os.environ.get("PL_GLOBAL_SEED", 0))
        self._train_sampler = self.training_sampler(dataset, seed)
        if at:
            self._train_sampler.resume(at["epoch"], at["batches"] * self.batch_size)
        return self._train_sampler

    def eval_batch_sampler(self, split: Split, dataset: Dataset) -> BatchSampler | None:
        """How validation/test/predict batches are formed; None: ``eval_batch_size`` in order (a data
        set of mixed image sizes groups them, :class:`depthlab.data.images.SizeGroupedBatchSampler`)."""
        return None

    def training_sampler(self, dataset: Dataset, seed: int) -> ResumableSampler:
        """The training order (a :class:`ResumableSampler`; a mixture draws its members by weight)."""
        return ResumableSampler(dataset, seed=seed)

    def state_dict(self) -> dict[str, Any]:
        """Where the training order stands (saved in every checkpoint by Lightning)."""
        if self.trainer is None or self._train_sampler is None:
            return {}
        epoch, batches = train_position(self.trainer)
        return {"train_order": {"seed": self._train_sampler.seed, "epoch": epoch, "batches": batches}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume_at = state_dict.get("train_order")

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")
