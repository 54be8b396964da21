"""The loss contract, the guards every loss shares, and the weighted sum of several losses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from depthlab.data.keys import VIEW_KEYS, VIEWS
from depthlab.errors import ConfigError
from depthlab.models.output import RELATIVE, DepthOutput

LOG_EPS = 1e-7  # smallest depth (m) that enters a log or a reciprocal; ZoeDepth adds the same 1e-7
SQRT_EPS = 1e-8  # added inside square roots: caps d sqrt(x)/dx = 1/(2 sqrt(x)) at 5e3 as x -> 0
SAFE_FILL = 1.0  # metres stored at invalid pixels of every depth-like map before a loss sees it


class DepthLoss(nn.Module):
    """Base class of every loss: ``forward(out, batch, mask) -> scalar``.

    - ``out``: the network's :class:`~depthlab.models.output.DepthOutput` (``out.depth`` (B, 1, H, W)
      metres; ``inverse_depth``, ``log_variance``, ``scales`` where the network predicts them);
    - ``batch``: the whole :class:`~depthlab.data.DepthSample` batch (``image``, ``depth``,
      ``image_right``, ``intrinsics``, ``baseline_m``, ...). Every depth-like map (ground truth,
      Depth Hints; :func:`safe_batch`) holds 1 m at its invalid pixels, so nothing stored there (0,
      NaN, inf) reaches a value or a gradient;
    - ``mask``: (B, 1, H, W) bool, the pixels whose ground truth counts for the loss (valid, inside
      the depth range and above ``loss_min_depth``); all False when the batch has no ground truth.

    ``forward`` returns a scalar, or ``(scalar, diagnostics)`` where ``diagnostics`` maps names to
    detached scalars worth logging beside the loss (e.g. Depth Hints' ``hint_fraction``; logged as
    ``train/<term>/<name>``). A loss declares what it reads: ``requires`` (batch keys) and
    ``requires_output`` (DepthOutput fields). The objective checks them once at start-up against what the data module provides and
    what the network predicts, and stops with a message naming a missing key. Every loss reduces over
    its valid pixels only; with none it returns a zero that is still attached to the prediction (so
    the gradient is exactly zero, never NaN).
    """

    requires: frozenset[str] = frozenset()
    requires_output: frozenset[str] = frozenset({"depth"})
    # Reads a relative network's ``relative_inverse_depth`` in place of ``depth`` (ssi, gradient
    # matching); every other loss reads metres and is refused for a relative network at start-up.
    accepts_relative: bool = False
    # Blind to the prediction's overall scale (ssi, gradient matching): an objective of such terms
    # alone cannot teach a metric network metres (:meth:`WeightedSum.scale_invariant`).
    scale_invariant: bool = False

    def forward(self, out: DepthOutput, batch: Mapping[str, Any], mask: Tensor) -> Tensor:
        raise NotImplementedError


class SupervisedLoss(DepthLoss):
    """A loss of predicted against ground-truth depth: subclasses implement :meth:`compute`.

    ``compute(pred, target, mask)`` is the pure tensor form ((B, 1, H, W) metres and a bool mask);
    ``forward`` feeds it ``out.depth`` and ``batch["depth"]`` (a loss that ``accepts_relative``
    overrides ``forward`` for a relative network's output).
    """

    requires = frozenset({"depth"})

    def forward(self, out: DepthOutput, batch: Mapping[str, Any], mask: Tensor) -> Tensor:
        return self.compute(out.metric_depth(f"loss {type(self).__name__}"), batch["depth"], mask)

    def compute(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        raise NotImplementedError


def fill_invalid(values: Tensor, valid: Tensor, fill: float = SAFE_FILL) -> Tensor:
    """``values`` with ``fill`` wherever ``valid`` is False: the one rule that makes a target safe.

    Whatever a data set stores at invalid pixels (0, NaN, inf) then never reaches a value or a
    gradient: ``0 * NaN`` is NaN, masking after the fact is not enough.
    """
    return torch.where(valid.bool(), values, torch.full_like(values, fill))


def safe_batch(batch: Mapping[str, Any], masks: Mapping[str, Tensor] | None = None, fill: float = SAFE_FILL) -> dict[str, Any]:
    """A copy of ``batch`` whose depth-like maps hold ``fill`` (1 m) at their invalid pixels.

    Driven by the per-view key table (:data:`depthlab.data.keys.VIEW_KEYS`): every depth-kind map
    present (``depth``, ``hint`` and their ``_right`` views) is filled where its validity mask is
    False: ``masks[key]`` when given (e.g. ``{"depth": loss_mask}``: the pixels whose ground truth
    counts for the loss), else the batch's own validity key (``valid``, ``hint_valid``, ...), else
    where the map is finite and > 0. Images and every other key are passed through.
    """
    masks = masks or {}
    out = dict(batch)
    for vk in VIEW_KEYS:
        if vk.kind != "depth":
            continue
        for view in VIEWS:
            key = vk.key(view)
            if key not in batch:
                continue
            valid = masks.get(key, batch.get(vk.valid_key(view)))
            if valid is None:
                valid = torch.isfinite(batch[key]) & (batch[key] > 0)
            out[key] = fill_invalid(batch[key], valid, fill)
    return out


def check_inputs(pred: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Validate shapes; return ``(pred, target, mask)`` with a bool mask and a finite target.

    Target values at invalid pixels are replaced by 1 (:func:`fill_invalid`, the rule
    :func:`safe_batch` applies to a whole batch), so that the functional forms are safe on their
    own too. Half-precision inputs (mixed-precision training) are computed in float32: the
    guards' epsilons and the variances of log depths need its range and precision.
    """
    if pred.shape != target.shape or pred.shape != mask.shape:
        raise ValueError(
            f"loss inputs must have one shape (B, 1, H, W); got pred {tuple(pred.shape)}, "
            f"target {tuple(target.shape)}, mask {tuple(mask.shape)}"
        )
    mask = mask.bool()
    dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    pred, target = pred.to(dtype), target.to(dtype)
    return pred, fill_invalid(target, mask), mask


def safe_log(depth: Tensor) -> Tensor:
    """ln(max(depth, LOG_EPS)): zero or negative depths give a finite value and a zero gradient."""
    return torch.log(depth.clamp_min(LOG_EPS))


def safe_reciprocal(depth: Tensor) -> Tensor:
    """1 / max(depth, LOG_EPS): inverse depth (1/m) of a depth in metres, finite for zero or negative depths."""
    return 1.0 / depth.clamp_min(LOG_EPS)


def safe_sqrt(x: Tensor, eps: float = SQRT_EPS) -> Tensor:
    """sqrt(max(x, 0) + eps): finite value and gradient at x = 0 (and for round-off below 0)."""
    return torch.sqrt(x.clamp_min(0.0) + eps)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` over ``mask``; 0 (attached to the graph) when the mask is empty.

    Invalid entries are selected away with ``torch.where`` rather than multiplied by 0, so an inf
    there cannot turn the result into NaN.
    """
    mask = mask.bool()
    total = torch.where(mask, x, torch.zeros_like(x)).sum()
    return total / mask.sum().clamp_min(1).to(x.dtype)


class WeightedSum(nn.Module):
    """sum_k w_k L_k. ``forward(out, batch, mask)`` returns the total and, for logging, ``parts``:
    each term's unweighted value under its name and each term's diagnostics under ``<term>/<name>``.

    ``requires`` / ``requires_output`` are the unions of the terms' declarations.
    """

    def __init__(self, terms: dict[str, tuple[float, nn.Module]]) -> None:
        super().__init__()
        self.weights = {name: w for name, (w, _) in terms.items()}
        self.terms = nn.ModuleDict({name: loss for name, (_, loss) in terms.items()})

    @property
    def requires(self) -> frozenset[str]:
        return frozenset().union(*(getattr(loss, "requires", frozenset()) for loss in self.terms.values()))

    @property
    def scale_invariant(self) -> bool:
        """True when every term is blind to depth's overall scale (nothing in the objective fixes metres)."""
        return bool(self.terms) and all(getattr(loss, "scale_invariant", False) for loss in self.terms.values())

    @property
    def requires_output(self) -> frozenset[str]:
        return frozenset().union(*(getattr(loss, "requires_output", {"depth"}) for loss in self.terms.values()))

    def check_requirements(
        self, batch_keys: Iterable[str] | None = None, output_fields: Iterable[str] | None = None, source: str = ""
    ) -> None:
        """Raise :class:`ConfigError` naming the first term whose batch key / output field is missing.

        ``batch_keys``: what the data provides (None: not known, not checked); ``output_fields``:
        what the network predicts (None: not checked); ``source`` names where the keys came from.
        A network that predicts ``relative_inverse_depth`` only suits terms that ``accept_relative``
        (their ``depth`` requirement is met by it); any other term is refused in one line.
        """
        if output_fields is not None and RELATIVE in set(output_fields):
            for name, loss in self.terms.items():
                if not getattr(loss, "accepts_relative", False):
                    raise ConfigError(
                        f"model.loss: term {name!r} reads depth in metres, but {source or 'the network'} predicts relative "
                        "inverse depth, known only up to a scale and a shift; train it with a relative loss (ssi with "
                        "space: inverse_depth, gradient_matching) or make the network metric (model.net.kind: metric)"
                    )
            output_fields = set(output_fields) | {"depth"}
        for name, loss in self.terms.items():
            for needed, have, what in (
                (getattr(loss, "requires", frozenset()), batch_keys, "batch key"),
                (getattr(loss, "requires_output", frozenset({"depth"})), output_fields, "network output"),
            ):
                if have is None:
                    continue
                missing = sorted(set(needed) - set(have))
                if missing:
                    hint = (
                        "use a data module that provides it (e.g. stereo data for stereo losses, "
                        "data.frame_ids: [0, -1, 1] for video frames)"
                        if what == "batch key"
                        else "set model.pose_net (e.g. monodepth2): temporal frames are warped with its poses"
                        if missing[0] == "poses"
                        else "configure the network to predict it (e.g. model.net.uncertainty: true for log_variance, "
                        "model.net.output: inverse_depth)"
                    )
                    raise ConfigError(
                        f"model.loss: term {name!r} requires {what} {missing[0]!r}, which {source or 'the source'} "
                        f"does not provide (it provides: {', '.join(sorted(have)) or 'nothing'}); {hint}"
                    )

    def forward(self, out: DepthOutput, batch: Mapping[str, Any], mask: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        parts: dict[str, Tensor] = {}
        total = out.prediction.new_zeros(())
        for name, loss in self.terms.items():
            value = loss(out, batch, mask)
            if isinstance(value, tuple):
                value, diagnostics = value
                parts.update({f"{name}/{key}": v.detach() for key, v in diagnostics.items()})
            parts[name] = value.detach()
            total = total + self.weights[name] * value
        return total, parts
