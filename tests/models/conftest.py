"""Fixtures for the network tests: a tiny synthetic batch and the registered network names."""

from __future__ import annotations

import pytest
import torch

from depthlab.data.synthetic import SceneConfig, render_sample


@pytest.fixture(scope="session")
def synthetic_batch() -> dict[str, torch.Tensor]:
    """Four procedural rooms at 64x96 stacked into a batch (image, depth, valid)."""
    cfg = SceneConfig(height=64, width=96)
    samples = [render_sample(cfg, seed=0, split="train", index=i) for i in range(4)]
    return {k: torch.stack([s[k] for s in samples]) for k in ("image", "depth", "valid")}
