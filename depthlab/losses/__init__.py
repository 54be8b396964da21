"""Depth losses as plugins of the ``depthlab.losses`` entry-point group.

Every loss is an ``nn.Module`` called as ``loss(out, batch, mask)``: the network's
:class:`~depthlab.models.output.DepthOutput`, the whole batch, and a (B, 1, H, W) bool mask of the
pixels whose ground truth counts. It declares what it reads (``requires``: batch keys;
``requires_output``: DepthOutput fields), reduces over valid pixels only and returns a scalar.
Supervised losses subclass :class:`SupervisedLoss` and implement ``compute(pred, target, mask)``.
See :class:`depthlab.losses.base.DepthLoss` and docs/losses.md.
"""

from __future__ import annotations

from typing import Any

from depthlab.errors import ConfigError
from depthlab.losses.base import DepthLoss, SupervisedLoss, WeightedSum
from depthlab.registry import Registry, build_from_spec

REGISTRY = Registry("depthlab.losses", "loss")


def available() -> list[str]:
    """Names of all registered losses (depthlab's and third-party)."""
    return REGISTRY.available()


def build(name: str, **kwargs: Any) -> DepthLoss:
    """Build the loss registered as ``name`` with its keyword arguments."""
    return REGISTRY.build(name, **kwargs)


def build_objective(spec: Any) -> WeightedSum:
    """Build the training objective from its YAML form.

    ``spec`` is a loss name (``"silog"``), a mapping (``{name: silog, lambd: 0.85}`` or
    ``{class_path: ..., init_args: ...}``), or a list of such mappings each with an optional
    ``weight`` (default 1), e.g. ``[{name: silog}, {name: edge_smoothness, weight: 0.1}]``.
    The result returns ``(total, parts)``: parts maps each term's name (its loss name; a repeated
    name gets ``_<index>``) to its unweighted value, for logging.
    """
    terms = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    if not terms:
        raise ConfigError("model.loss: the list of loss terms is empty")
    built: dict[str, tuple[float, DepthLoss]] = {}
    for i, term in enumerate(terms):
        where = f"model.loss[{i}]"
        weight = 1.0
        if isinstance(term, dict):
            term = dict(term)
            raw = term.pop("weight", 1.0)
            try:
                weight = float(raw)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: weight must be a number, got {raw!r}") from None
        if isinstance(term, str):
            key = term
        elif isinstance(term, dict):
            key = term.get("name") or str(term.get("class_path", "loss")).rsplit(".", 1)[-1]
        else:
            key = "loss"  # build_from_spec rejects it with a message
        if key in built:  # the same loss twice (e.g. at two settings): log it as name_<index>
            key = f"{key}_{i}"
        built[key] = (weight, build_from_spec(REGISTRY, term, where))
    return WeightedSum(built)


__all__ = ["DepthLoss", "SupervisedLoss", "WeightedSum", "available", "build", "build_objective", "REGISTRY"]
