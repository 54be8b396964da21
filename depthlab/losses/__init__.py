"""Depth losses as plugins of the ``depthlab.losses`` entry-point group.

Every loss is an ``nn.Module`` called as ``loss(pred, target, mask, image=None)`` with
``pred``/``target`` of shape (B, 1, H, W) in metres and a boolean ``mask`` of valid pixels; it
reduces over valid pixels only and returns a scalar. ``image`` (B, 3, H, W, values in [0, 1]) is
passed for losses that need it (edge-aware smoothness).
"""

from __future__ import annotations

from typing import Any

from depthlab.losses.base import DepthLoss, WeightedSum
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
    """
    terms = spec if isinstance(spec, list) else [spec]
    if not terms:
        raise ValueError("model.loss: the list of loss terms is empty")
    built: dict[str, tuple[float, DepthLoss]] = {}
    for i, term in enumerate(terms):
        weight = 1.0
        if isinstance(term, dict):
            term = dict(term)
            weight = float(term.pop("weight", 1.0))
        key = term if isinstance(term, str) else term.get("name") or term.get("class_path", "").rsplit(".", 1)[-1]
        if key in built:
            key = f"{key}_{i}"
        built[key] = (weight, build_from_spec(REGISTRY, term, f"model.loss[{i}]"))
    return WeightedSum(built)


__all__ = ["DepthLoss", "WeightedSum", "available", "build", "build_objective", "REGISTRY"]
