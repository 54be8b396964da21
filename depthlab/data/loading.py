"""The DataLoader plumbing every depthlab data module shares."""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

Split = Literal["train", "val", "test"]


class SplitDataModule(L.LightningDataModule):
    """DataLoaders over ``self.dataset(split)``: train shuffled with full batches only, val/test/
    predict (predict reads the test split) in order with ``eval_batch_size``.

    Subclasses set ``batch_size``, ``eval_batch_size`` and ``num_workers`` and implement
    :meth:`dataset`. No ``save_hyperparameters()`` in data modules: Lightning rejects keys
    (``min_depth``, ``max_depth``) shared with the model's hparams with other values; LightningCLI
    saves the whole config next to the logs anyway.
    """

    batch_size: int
    eval_batch_size: int
    num_workers: int

    def dataset(self, split: Split) -> Dataset:
        raise NotImplementedError

    @property
    def provides(self) -> frozenset[str]:
        """The keys of every batch this module yields, in every split (exactly: a loss's ``requires``
        is checked against it at start-up)."""
        raise NotImplementedError(f"{type(self).__name__} does not declare the batch keys it provides")

    def _loader(self, split: Split) -> DataLoader:
        train = split == "train"
        return DataLoader(
            self.dataset(split),
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            drop_last=train,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")
