"""The non-finite guard (depthlab.training.guard, DepthModule.max_nonfinite).

Training runs are tiny (32x48 images, a 16-8-8-8 decoder, a few steps) and use Lightning directly.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import warnings

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch.utils.data import DataLoader, Dataset

from depthlab.data import SyntheticDataModule
from depthlab.errors import ConfigError
from depthlab.module import DepthModule
from depthlab.training import NonFiniteStepWarning, NonFiniteTrainingError, nonfinite, warmup_cosine

NET = {"name": "unet", "encoder": "test_resnet", "pretrained": False, "decoder_channels": [16, 8, 8, 8]}
STEPS = 6  # 12 training samples in batches of 2


class _NaNImages(Dataset):
    """``dataset`` with NaN in one pixel of the image of the samples at ``bad`` indices."""

    def __init__(self, dataset: Dataset, bad: set[int]) -> None:
        self.dataset, self.bad = dataset, bad

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        sample = self.dataset[index]
        if index in self.bad:
            sample["image"] = sample["image"].clone()
            sample["image"][:, 0, 0] = math.nan
        return sample


class NaNData(SyntheticDataModule):
    """Tiny procedural data whose training samples at ``bad`` have a NaN in their image."""

    def __init__(self, bad=(), **kwargs) -> None:
        super().__init__(height=32, width=48, train_size=2 * STEPS, val_size=2, test_size=2, batch_size=2,
                         num_workers=0, **kwargs)
        self.bad = set(bad)

    def dataset(self, split):
        dataset = super().dataset(split)
        return _NaNImages(dataset, self.bad) if split == "train" else dataset

    def train_dataloader(self) -> DataLoader:
        # in order: sample i is in step i // 2, whatever the data module's shuffling does
        return DataLoader(self.dataset("train"), batch_size=self.batch_size, shuffle=False)


def _trainer(**kwargs) -> L.Trainer:
    options = dict(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                   limit_val_batches=0)
    return L.Trainer(**{**options, **kwargs})


def _module(**kwargs) -> DepthModule:
    torch.manual_seed(0)
    # warm-up over half the steps: the LR differs from step to step, so a schedule that advanced
    # on a skipped step would give other weights than the replay below
    return DepthModule(net=NET, warmup=0.5, **kwargs)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class _Recorder(L.Callback):
    """Every batch, the LR it was trained with, and whether the step left the module's state as it was."""

    def __init__(self) -> None:
        self.batches, self.lrs, self.unchanged = [], [], []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.before = _state(module)
        self.batches.append({k: v.clone() for k, v in batch.items()})
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.unchanged.append(_same(self.before, _state(module)))


def _has_nan(batch) -> bool:
    return not torch.isfinite(batch["image"]).all()


@pytest.mark.slow
def test_nan_samples_skip_their_steps_name_their_indices_and_train_as_if_never_seen():
    bad = {2, 7}  # steps 1 and 3 of 6
    module, recorder = _module(), _Recorder()
    initial = _state(module)
    trainer = _trainer(callbacks=[recorder])
    with pytest.warns(NonFiniteStepWarning) as caught:
        trainer.fit(module, NaNData(bad))

    skipped = [i for i, b in enumerate(recorder.batches) if _has_nan(b)]
    assert len(recorder.batches) == STEPS and skipped == [1, 3]
    messages = [str(w.message) for w in caught if issubclass(w.category, NonFiniteStepWarning)]
    assert len(messages) == 2
    for message, i in zip(messages, skipped):
        indices = recorder.batches[i]["index"].tolist()
        assert f"samples {indices}" in message, message
        assert f"non-finite input image: {[j for j in indices if j in bad]}" in message, message
    assert float(trainer.callback_metrics["train/nonfinite_skipped"]) == 2

    # a skipped step leaves weights, buffers (BatchNorm statistics) and the LR schedule as they were
    assert [recorder.unchanged[i] for i in skipped] == [True, True]
    assert not any(recorder.unchanged[i] for i in range(STEPS) if i not in skipped)
    for i in skipped:
        assert recorder.lrs[i + 1] == recorder.lrs[i]
    assert all(torch.isfinite(v).all() for v in module.state_dict().values())

    # the same training in plain PyTorch on the clean batches only
    replay = _module()
    replay.load_state_dict(initial)
    replay.train()
    hp = replay.hparams
    optimizer = torch.optim.AdamW(replay.parameters(), lr=hp.lr, weight_decay=hp.weight_decay, betas=tuple(hp.betas))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(STEPS, STEPS // 2, hp.min_lr_ratio))
    for batch in recorder.batches:
        if _has_nan(batch):
            continue
        optimizer.zero_grad()
        loss, _ = replay.compute_loss(replay(batch["image"]), batch)
        loss.backward()
        optimizer.step()
        schedule.step()
    for name, value in replay.state_dict().items():
        torch.testing.assert_close(module.state_dict()[name], value, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow
def test_max_nonfinite_steps_in_a_row_stop_the_run_saying_what_to_try():
    module = _module(max_nonfinite=3)
    initial = _state(module)
    recorder = _Recorder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonFiniteStepWarning)
        with pytest.raises(NonFiniteTrainingError) as err:
            _trainer(callbacks=[recorder]).fit(module, NaNData(range(2 * STEPS)))
    message = str(err.value)
    assert len(recorder.batches) == 3  # stopped at the third skip, not at the end of the epoch
    assert "\n" not in message and "3 optimizer steps in a row" in message
    for advice in ("model.lr", "depthlab data check", "trainer.gradient_clip_val", "bf16-mixed"):
        assert advice in message
    last = recorder.batches[-1]["index"].tolist()
    assert f"samples {last}" in message
    assert isinstance(err.value, ConfigError)  # the CLI prints it as one line, exit status 2
    assert _same(initial, _state(module))


@pytest.mark.slow
def test_max_nonfinite_0_turns_the_guard_off_and_bad_values_are_rejected():
    module = _module(max_nonfinite=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonFiniteStepWarning)
        _trainer(max_steps=1).fit(module, NaNData(range(2 * STEPS)))
    assert not all(torch.isfinite(p).all() for p in module.parameters())  # what the guard prevents
    for value in (-1, 2.5, True, "10"):
        with pytest.raises(ConfigError, match="model.max_nonfinite"):
            DepthModule(net=NET, max_nonfinite=value)


def test_nonfinite_sees_nan_and_inf_in_the_loss_or_any_gradient():
    grads = [torch.ones(3), torch.zeros(2, 2)]
    assert not nonfinite(torch.tensor(0.5), grads)
    assert nonfinite(torch.tensor(math.nan), grads)
    assert nonfinite(torch.tensor(math.inf), grads)
    assert not nonfinite(None, [])
    for bad in (math.nan, math.inf, -math.inf):
        g = [t.clone() for t in grads]
        g[1][1, 0] = bad
        assert nonfinite(torch.tensor(0.5), g)


@pytest.mark.slow
def test_fp16_overflow_is_left_to_the_grad_scaler_and_not_counted():
    # A scale so large that every scaled gradient overflows: the scaler skips each step and
    # halves the scale. Those are not errors: no warning, no stop (max_nonfinite 2 < 3 steps).
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**120)
    module = _module(max_nonfinite=2)
    initial = _state(module)
    trainer = _trainer(max_steps=3, plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonFiniteStepWarning)
        trainer.fit(module, NaNData())
    assert scaler.get_scale() < 2.0**120  # the scaler did skip
    assert float(trainer.callback_metrics["train/nonfinite_skipped"]) == 0
    params = {k for k, _ in module.named_parameters()}
    assert all(torch.equal(initial[k], v) for k, v in module.state_dict().items() if k in params)


@pytest.mark.slow
def test_fp16_nan_loss_is_counted_and_does_not_lower_the_scale():
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    module = _module()
    trainer = _trainer(max_steps=1, plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)])
    with pytest.warns(NonFiniteStepWarning, match="non-finite loss"):
        trainer.fit(module, NaNData(range(2 * STEPS)))
    assert float(trainer.callback_metrics["train/nonfinite_skipped"]) == 1
    assert scaler.get_scale() == 2.0**8


DDP_SCRIPT = """
import sys
import lightning as L
import torch
from depthlab.module import DepthModule
from depthlab.data import SyntheticDataModule

class RankOneNaNLoss(DepthModule):
    # Rank 1's second loss is NaN while its gradients stay finite (a detached NaN is added), so
    # DDP's gradient averaging does not spread it: only a decision taken together keeps replicas equal.
    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        if self.global_rank == 1 and batch_idx == 1:
            loss = loss + torch.tensor(float("nan"))
        return loss

class Save(L.Callback):
    def on_train_end(self, trainer, module):
        # parameters only: BatchNorm running statistics are each rank's own under DDP
        params = {k: v.detach().clone() for k, v in module.named_parameters()}
        torch.save({"params": params, "skipped": module._guard.total}, f"{sys.argv[1]}/rank{trainer.global_rank}.pt")

torch.manual_seed(0)
module = RankOneNaNLoss(net=%(net)r)
data = SyntheticDataModule(height=32, width=48, train_size=12, val_size=2, test_size=2, batch_size=2, num_workers=0)
trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, logger=False,
                    enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                    num_sanity_val_steps=0, limit_val_batches=0, callbacks=[Save()])
trainer.fit(module, data)
"""


@pytest.mark.slow
def test_every_ddp_rank_skips_the_step_that_one_rank_found_nonfinite(tmp_path):
    script = tmp_path / "ddp_nan.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT % {"net": NET}))
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_PORT", "MASTER_ADDR")}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rank 1: step 1 skipped" in proc.stderr
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert [r["skipped"] for r in ranks] == [1, 1]
    assert _same(ranks[0]["params"], ranks[1]["params"])  # the replicas did not drift apart
    assert all(torch.isfinite(v).all() for v in ranks[0]["params"].values())
