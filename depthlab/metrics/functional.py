"""Depth error metrics of the field, per image (see ``../shared/SPEC.md`` section 1).

For one image with valid ground truth g and prediction p (metres):
abs_rel = mean(|g - p| / g), sq_rel = mean((g - p)^2 / g), rmse = sqrt(mean((g - p)^2)),
rmse_log = sqrt(mean((ln g - ln p)^2)), log10 = mean(|log10 g - log10 p|),
delta_k = fraction with max(g/p, p/g) < 1.25^k, silog = 100 sqrt(mean(e^2) - mean(e)^2), e = ln p - ln g.
"""

from __future__ import annotations

import torch
from torch import Tensor

METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3", "silog", "log10")


def depth_errors(pred: Tensor, gt: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """Per-image metrics. ``pred``, ``gt``: (B, 1, H, W) or (B, H, W) metres; ``mask`` bool.

    Returns a dict of (B,) tensors (float64) and ``count`` (B,), the valid pixels per image.
    Images with no valid pixel have count 0 and NaN metrics: callers skip them.
    """
    b = gt.shape[0]
    p = pred.reshape(b, -1).double()
    g = gt.reshape(b, -1).double()
    m = mask.reshape(b, -1) & torch.isfinite(g) & (g > 0)
    p = torch.where(m, p, torch.ones_like(p))
    g = torch.where(m, g, torch.ones_like(g))
    mf = m.double()
    n = mf.sum(1)
    nz = n.clamp_min(1)

    def mean(x: Tensor) -> Tensor:
        return torch.where(n > 0, (x * mf).sum(1) / nz, torch.full_like(n, float("nan")))

    ratio = torch.maximum(g / p, p / g)
    log_diff = torch.log(p) - torch.log(g)
    out = {
        "abs_rel": mean((g - p).abs() / g),
        "sq_rel": mean((g - p) ** 2 / g),
        "rmse": mean((g - p) ** 2).sqrt(),
        "rmse_log": mean(log_diff**2).sqrt(),
        "log10": mean((torch.log10(p) - torch.log10(g)).abs()),
        "delta1": mean((ratio < 1.25).double()),
        "delta2": mean((ratio < 1.25**2).double()),
        "delta3": mean((ratio < 1.25**3).double()),
        # clamp: the variance of a constant error is 0 up to rounding, never negative
        "silog": 100 * (mean(log_diff**2) - mean(log_diff) ** 2).clamp_min(0).sqrt(),
    }
    out["count"] = n
    return out
