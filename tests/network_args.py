"""Arguments for registered networks that cannot be built from their defaults alone, for the tests that run
every network in ``depthlab.models.available()`` (contract, encoders, export).

``hf`` wraps a transformers model and needs ``pretrained`` or ``config``: here a tiny metric Depth Anything
(random weights, built offline in milliseconds) resizing every image to 56x70, so batch and size export
dynamic (depthlab.models.hf).
"""

from __future__ import annotations

import inspect
from typing import Any

from depthlab import models

HF_TINY_DEPTH_ANYTHING = {
    "model_type": "depth_anything",
    "backbone_config": {"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2,
                        "intermediate_size": 64, "patch_size": 14, "image_size": 56,
                        "out_features": ["stage1", "stage2", "stage3", "stage4"], "reshape_hidden_states": False},
    "neck_hidden_sizes": [8, 16, 32, 32], "fusion_hidden_size": 16, "head_hidden_size": 8,
    "reassemble_hidden_size": 32, "patch_size": 14, "depth_estimation_type": "metric",
}
REQUIRED_ARGS: dict[str, dict[str, Any]] = {
    "hf": {"config": HF_TINY_DEPTH_ANYTHING, "input_size": [56, 70]},
}
# Smaller than the published defaults, for the tests' speed only: Eigen's two 4096-wide FC layers
# hold 77 M parameters, and nothing the contract checks depends on the width (test_eigen.py uses 64).
SMALL_ARGS: dict[str, dict[str, Any]] = {
    "eigen2014": {"fc_width": 512},
}


def network_spec(name: str, **kwargs: Any) -> dict[str, Any]:
    """``{"name": name, ...}``: the arguments ``name`` needs (:data:`REQUIRED_ARGS`), the smaller sizes of
    :data:`SMALL_ARGS`, then ``kwargs``."""
    return {"name": name, **REQUIRED_ARGS.get(name, {}), **SMALL_ARGS.get(name, {}), **kwargs}


def accepts(name: str, argument: str) -> bool:
    """Whether network ``name`` takes ``argument`` (``output``, ``uncertainty``: networks with a DepthHead)."""
    return argument in inspect.signature(models.REGISTRY.get(name)).parameters
