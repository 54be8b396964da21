"""Depth networks as plugins of the ``depthlab.models`` entry-point group.

Contract: ``net(image)`` with ``image`` (B, 3, H, W) RGB in [0, 1] returns a
:class:`~depthlab.models.output.DepthOutput` whose ``depth`` is metres, (B, 1, H, W) at the input
resolution, inside [min_depth, max_depth] (:class:`~depthlab.models.heads.DepthHead` fills it).
Networks normalise their input themselves (:class:`~depthlab.models.encoders.Encoder`, with their
encoder's mean/std), so data pipelines and photometric losses share one image convention; they
know nothing of Lightning, and export with dynamic sizes (:mod:`depthlab.models.export`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from depthlab.registry import Registry, build_from_spec, with_defaults

REGISTRY = Registry("depthlab.models", "model")


def available() -> list[str]:
    """Names of all registered networks."""
    return REGISTRY.available()


def build(spec: Any, **defaults: Any) -> nn.Module:
    """Build a network from a name or a ``{name: ..., **kwargs}`` / ``class_path`` mapping.

    ``defaults`` (e.g. ``min_depth``/``max_depth`` from the LightningModule) fill arguments the
    spec does not set.
    """
    spec = with_defaults(spec, defaults)
    return build_from_spec(REGISTRY, spec, "model.net")


def provides(net: nn.Module) -> frozenset[str] | None:
    """The :class:`~depthlab.models.output.DepthOutput` fields ``net`` fills, as it declares them
    (``net.provides``: a network without a :class:`~depthlab.models.heads.DepthHead`, e.g.
    :class:`depthlab.models.hf.HFDepthNetwork`; else its ``head.provides``); None when it declares
    nothing (then the first batch's output is checked instead)."""
    for owner in (net, getattr(net, "head", None)):
        value = getattr(owner, "provides", None) if owner is not None else None
        if isinstance(value, frozenset):
            return value
    return None


__all__ = ["REGISTRY", "available", "build", "provides"]
