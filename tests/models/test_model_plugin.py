"""A third-party network registered through a real entry point builds by name."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from depthlab.registry import Registry, build_from_spec

PLUGIN_MODULE = '''
"""A third-party depth network."""
import torch
from torch import nn

from depthlab.models.output import DepthOutput


class ConstantDepthNet(nn.Module):
    """Toy plugin network: a learned constant depth everywhere."""

    def __init__(self, min_depth: float = 1e-3, max_depth: float = 10.0, start: float = 2.0):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(float(start)))
        self.min_depth, self.max_depth = min_depth, max_depth

    def forward(self, image):
        d = self.value.clamp(self.min_depth, self.max_depth)
        return DepthOutput(depth=d.expand(image.shape[0], 1, *image.shape[-2:]))
'''


@pytest.fixture
def plugin_on_path(tmp_path, monkeypatch):
    (tmp_path / "toy_depth_nets.py").write_text(PLUGIN_MODULE)
    info = tmp_path / "toy_depth_nets-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-depth-nets\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [depthlab.models]
            constant_depth = toy_depth_nets:ConstantDepthNet
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("toy_depth_nets", None)


def test_third_party_network_builds_by_name(plugin_on_path) -> None:
    registry = Registry("depthlab.models", "model")  # fresh: the global one may have scanned already
    assert "constant_depth" in registry.available()
    assert {"unet", "eigen2014", "glpn"} <= set(registry.available())
    assert registry.distribution_of("constant_depth") == "toy-depth-nets"
    net = build_from_spec(registry, {"name": "constant_depth", "start": 3.0, "max_depth": 10.0}, "model.net")
    depth = net(torch.rand(2, 3, 50, 70)).depth
    assert depth.shape == (2, 1, 50, 70) and torch.all(depth == 3.0)
    assert "learned constant depth" in registry.table()
