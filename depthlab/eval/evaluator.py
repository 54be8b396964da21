"""The evaluator: validation and test of a depth network under one protocol, exact under DDP.

:class:`Evaluator` owns everything evaluation needs, so the LightningModule only trains:

- the protocol's prediction (KB crop, flip TTA) with ONE forward per view: the plain forward's
  output also gives the loss, so ``kb_crop`` or flip does not run the network a second time;
- ``<stage>/loss`` (and each term) per image, averaged over images, so it does not depend on how
  images are grouped into batches or devices;
- the nine depth metrics (and median-scaling ratios) of :mod:`depthlab.metrics`;
- the non-finite values the network predicts (``nonfinite_pixels``, ``nonfinite_images``), counted
  before the metrics clamp them, with a warning: a NaN network otherwise scores abs_rel 1.0;
- the samples Lightning's DistributedSampler repeats to pad the last batch get zero weight in all
  of them (:class:`depthlab.eval.distributed.RepeatTracker`), so under DDP every image counts once.

States are torchmetrics sum states, reduced across devices by :meth:`compute`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torchmetrics import Metric

from depthlab.data.keys import crop_batch, select_samples
from depthlab.eval.protocols import EvalProtocol, Predicted
from depthlab.eval.report import format_table, write_report
from depthlab.metrics import DepthMetrics, NonFiniteCount, ScaleRatios
from depthlab.models.layers import resize_output
from depthlab.models.output import DepthOutput

Stage = Literal["val", "test"]
STAGES: tuple[Stage, ...] = ("val", "test")
LossFn = Callable[[DepthOutput, Mapping[str, Any]], "tuple[Tensor, dict[str, Tensor]]"]


class SampleMeans(Metric):
    """Means over samples of a fixed list of per-sample values (sum and count states, summed across devices)."""

    full_state_update = False
    higher_is_better = None
    is_differentiable = False

    def __init__(self, size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("sums", default=torch.zeros(size, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, values: Tensor) -> None:
        """``values`` (N, size): one row per sample (N may be 0)."""
        values = values.detach().double().reshape(-1, self.sums.numel())
        self.sums = self.sums + values.sum(0)
        self.count = self.count + values.shape[0]

    def compute(self) -> Tensor:
        return self.sums / self.count  # NaN when nothing was seen: there is no number


class Evaluator(nn.Module):
    """Per-stage metrics, loss means and scale ratios of one :class:`EvalProtocol`.

    Args:
        protocol: the evaluation protocol (caps, crops, resizing, TTA, averaging).
        loss_terms: names of the objective's terms; with more than one, each is reported as
            ``loss_<name>`` beside the total ``loss``.
    """

    #: The batch keys :meth:`step` reads under every protocol (the loss's own come on top): the
    #: network's input and the ground truth with its validity mask (crops and paste-back read
    #: ``crop_offset``/``full_size``, which every batch keeps).
    requires: frozenset[str] = frozenset({"image", "depth", "valid"})

    def __init__(self, protocol: EvalProtocol, loss_terms: Sequence[str] = ()) -> None:
        super().__init__()
        self.protocol = protocol
        self.loss_names = ["loss"] + ([f"loss_{name}" for name in loss_terms] if len(loss_terms) > 1 else [])
        p = protocol
        self.metrics = nn.ModuleDict({s: DepthMetrics(p.min_depth, p.max_depth, p.averaging) for s in STAGES})
        self.ratios = nn.ModuleDict({s: ScaleRatios() for s in STAGES})
        self.losses = nn.ModuleDict({s: SampleMeans(len(self.loss_names)) for s in STAGES})
        self.nonfinite = nn.ModuleDict({s: NonFiniteCount() for s in STAGES})

    def step(
        self,
        stage: Stage,
        batch: Mapping[str, Any],
        net: Callable[[Tensor], DepthOutput],
        loss_fn: LossFn | None = None,
        real: Tensor | None = None,
    ) -> tuple[Predicted, Mapping[str, Any]]:
        """Evaluate one batch: one protocol prediction, then loss and metrics of its real samples.

        ``real`` (B,) bool marks the samples that are not DDP padding repeats (None: all are real).
        Returns the prediction and the batch as the network saw it (cut to the KB window when the
        protocol crops), for panels. The loss compares the plain forward's output with that batch
        (resized to it first when the protocol feeds the network another ``input_size``).
        """
        image, gt = batch["image"], batch["depth"]
        pred = self.protocol.predict(net, image, tuple(gt.shape[-2:]))
        seen = batch if pred.window is None else crop_batch(batch, *pred.window)
        keep = torch.arange(image.shape[0], device=image.device) if real is None else real.nonzero().squeeze(1)
        out = pred.out
        if out.prediction.shape[-2:] != seen["image"].shape[-2:]:  # a protocol input_size: loss at the batch's size
            out = resize_output(out, tuple(seen["image"].shape[-2:]))
        if loss_fn is not None:
            rows = []
            for i in keep.tolist():  # per image: the mean over images is independent of batching
                total, parts = loss_fn(out.select([i]), select_samples(seen, [i]))
                values = [total] + ([parts[name[len("loss_"):]] for name in self.loss_names[1:]])
                rows.append(torch.stack([v.detach().double() for v in values]))
            self.losses[stage].update(torch.stack(rows) if rows else gt.new_zeros(0, len(self.loss_names), dtype=torch.float64))
        # The prediction as the protocol made it, before resizing, median scaling and the metrics' clamp.
        self.nonfinite[stage].update(pred.depth[keep])
        self._update_metrics(stage, batch, pred, keep)
        return pred._replace(out=out), seen

    def _update_metrics(self, stage: Stage, batch: Mapping[str, Any], pred: Predicted, keep: Tensor) -> None:
        gt, valid = batch["depth"][keep], batch.get("valid")
        valid = None if valid is None else valid[keep]
        depth = pred.depth[keep]
        offset, full = batch.get("crop_offset"), batch.get("full_size")
        if offset is None or keep.numel() == 0:
            parts = [(depth, gt, valid, None)]
        else:  # windows of larger frames (KB-cropped eval samples): crops are placed on each full frame
            offset, full = offset[keep], full[keep]
            parts = [
                (depth[i : i + 1], gt[i : i + 1], None if valid is None else valid[i : i + 1],
                 (*offset[i].tolist(), *full[i].tolist()))
                for i in range(gt.shape[0])
            ]
        for p, g, v, window in parts:
            ev = self.protocol.prepare(p, g, v, window, predicts_inverse_depth=pred.predicts_inverse_depth, kind=pred.kind)
            # Updated even with no real sample left: every rank then holds states for the sync.
            self.metrics[stage].update(ev.pred, ev.gt, ev.mask)
            if self.protocol.aligns:
                self.ratios[stage].update(ev.ratios)

    def compute(self, stage: Stage) -> dict[str, Tensor]:
        """The stage's metrics (synced across devices), loss means and ratios; then resets them.

        Warns when the network predicted non-finite values (their count is in the values too).
        """
        values = self.metrics[stage].compute()
        self.metrics[stage].reset()
        values.update(self.nonfinite[stage].compute())
        self.nonfinite[stage].reset()
        if values["nonfinite_pixels"] > 0:  # synced: every rank holds the same counts, rank 0 warns
            rank_zero_warn(
                f"{stage}: the network predicted {int(values['nonfinite_pixels'])} non-finite depth values "
                f"(NaN/inf) in {int(values['nonfinite_images'])} images; the metrics clamp them into "
                f"[{self.protocol.min_depth}, {self.protocol.max_depth}] m, so the score is not the network's: "
                "check the checkpoint's training (train/nonfinite_skipped) and the inputs"
            )
        if self.protocol.aligns:
            values.update(self.ratios[stage].compute())
            self.ratios[stage].reset()
        if self.losses[stage].update_count:  # a loss was computed this epoch (not only metrics)
            values.update(zip(self.loss_names, self.losses[stage].compute().reshape(-1).unbind()))  # 1 term: squeezed
        self.losses[stage].reset()
        return values


def report_stage(
    values: Mapping[str, Tensor], stage: str, protocol: EvalProtocol, log_dir: str, ckpt_path: str | None, devices: int
) -> str:
    """After a stand-alone ``validate``/``test``: print the table, write ``<log_dir>/<stage>_metrics.json``."""
    path = write_report(
        os.path.join(log_dir, f"{stage}_metrics.json"),
        values,
        stage=stage,
        protocol=dataclasses.asdict(protocol),
        ckpt_path=ckpt_path,
        devices=devices,
    )
    print(format_table(values, title=f"depthlab {stage} ({protocol.describe()})"))
    print(f"metrics written to {path}")
    return path
