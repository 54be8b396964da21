"""Pose networks as plugins of the ``depthlab.pose_models`` entry-point group.

Contract: ``net(frames)`` with ``frames`` a list of ``num_frames`` images (B, 3, H, W), RGB in
[0, 1], in temporal order, returns ``(axis_angle, translation)``, each (B, num_frames - 1, 3):
the camera motions that :func:`depthlab.geometry.pose_from_parameters` turns into the 4x4 poses of
:func:`depthlab.geometry.warp_with_pose` (Monodepth2's monocular self-supervision). Networks
normalise their input themselves and know nothing of Lightning, as depth networks
(:mod:`depthlab.models`) do.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from depthlab.errors import ConfigError
from depthlab.registry import Registry, build_from_spec, with_defaults

REGISTRY = Registry("depthlab.pose_models", "pose model")
WHERE = "model.pose_net"


def available() -> list[str]:
    """Names of all registered pose networks."""
    return REGISTRY.available()


def build(spec: Any, **defaults: Any) -> nn.Module:
    """Build a pose network from a name or a ``{name: ..., **kwargs}`` / ``class_path`` mapping.

    ``defaults`` fill arguments the spec does not set (as :func:`depthlab.models.build`). Every
    failure to find or call the plugin is a :class:`~depthlab.errors.ConfigError` naming
    ``model.pose_net``.
    """
    spec = with_defaults(spec, defaults)
    try:
        return build_from_spec(REGISTRY, spec, WHERE)
    except ConfigError as exc:  # an unknown name or a wrong argument: say which setting it is
        if str(exc).startswith(WHERE):
            raise
        raise type(exc)(f"{WHERE}: {exc}") from exc


__all__ = ["REGISTRY", "available", "build"]
