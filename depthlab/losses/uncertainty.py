"""Negative log-likelihood of log depth under a predicted per-pixel variance (aleatoric uncertainty).

With r = ln(pred) - ln(target) and s = ``out.log_variance`` = ln sigma^2 (the variance of r that
the network predicts per pixel; Kendall & Gal, NeurIPS 2017), the loss is the exact negative
log-density of r, averaged over valid pixels:

    gaussian: 0.5 ln(2 pi) + s / 2 + r^2 / (2 e^s)              (r ~ N(0, sigma^2))
    laplace:  ln(2 b) + |r| / b,  b = sigma / sqrt(2) = e^(s/2) / sqrt(2)   (r ~ Laplace(0, b), var 2 b^2)

A pixel the network is unsure of costs log-variance instead of residual: it learns to predict large
s where it errs and small s where it is right. The network needs ``uncertainty: true``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor

from depthlab.errors import ConfigError
from depthlab.losses.base import DepthLoss, check_inputs, masked_mean, safe_log
from depthlab.models.output import DepthOutput

Distribution = Literal["gaussian", "laplace"]
_HALF_LN_2PI = 0.5 * math.log(2 * math.pi)
_LN_SQRT2 = 0.5 * math.log(2.0)


def log_depth_nll(
    pred: Tensor, target: Tensor, log_variance: Tensor, mask: Tensor, distribution: Distribution = "laplace"
) -> Tensor:
    """Mean NLL of r = ln pred - ln target over ``mask`` given ln sigma^2 = ``log_variance`` (all (B, 1, H, W))."""
    pred, target, mask = check_inputs(pred, target, mask)
    if log_variance.shape != pred.shape:
        raise ValueError(f"log_depth_nll: log_variance {tuple(log_variance.shape)} must match pred {tuple(pred.shape)}")
    s = torch.where(mask, log_variance.to(pred.dtype), torch.zeros_like(pred))
    r = torch.where(mask, safe_log(pred) - safe_log(target), torch.zeros_like(pred))
    if distribution == "gaussian":
        nll = _HALF_LN_2PI + 0.5 * s + 0.5 * r.square() * torch.exp(-s)
    elif distribution == "laplace":
        log_b = 0.5 * s - _LN_SQRT2  # b = sigma / sqrt(2)
        nll = math.log(2.0) + log_b + r.abs() * torch.exp(-log_b)
    else:
        raise ValueError(f"log_depth_nll: distribution must be 'gaussian' or 'laplace', got {distribution!r}")
    return masked_mean(nll, mask)


class LogDepthNLLLoss(DepthLoss):
    """Gaussian or Laplacian negative log-likelihood of the log-depth error with predicted variance.

    See the module docstring for the formulas. Needs a network with ``uncertainty: true``
    (``out.log_variance``) and ground truth ``depth``.

    Args:
        distribution: ``laplace`` (default; an L1-like residual term, robust) or ``gaussian``
            (an L2-like residual term).
    """

    requires = frozenset({"depth"})
    requires_output = frozenset({"depth", "log_variance"})

    def __init__(self, distribution: Distribution = "laplace") -> None:
        super().__init__()
        if distribution not in ("gaussian", "laplace"):
            raise ConfigError(f"log_depth_nll: distribution must be 'gaussian' or 'laplace', got {distribution!r}")
        self.distribution = distribution

    def forward(self, out: DepthOutput, batch: Mapping[str, Any], mask: Tensor) -> Tensor:
        if out.log_variance is None:
            raise ValueError("log_depth_nll needs out.log_variance: build the network with uncertainty: true")
        return log_depth_nll(out.depth, batch["depth"], out.log_variance, mask, self.distribution)

    def extra_repr(self) -> str:
        return f"distribution={self.distribution}"
