"""Stereo self-supervision: the photometric reprojection loss and Depth Hints (Watson et al., ICCV 2019).

A rectified stereo batch (``image``, ``image_right``, ``intrinsics``, ``baseline_m``) lets a
monocular network supervise itself: its depth d of the left view gives the disparity
``fx * baseline_m / d`` (pixels), warping the right image with it must reconstruct the left image,
and the per-pixel reprojection error (:func:`depthlab.geometry.reprojection_error`,
0.85 (1 - SSIM)/2 + 0.15 L1) is the loss (Godard et al. 2017; Monodepth2). The baseline is metric,
so the depth is too: a stereo-trained network needs no median scaling.

Per scale s of the prediction (``out`` and each of ``out.scales``, upsampled to the input size as
inverse depth, as Monodepth2 does), the photometric term is the mean reprojection error over the
pixels that warped from inside the right image and, with ``automask``, where the warp beats the
unwarped right image (Monodepth2's auto-masking: a pixel that the identity reconstructs better is
left out, e.g. at infinity or a view-independent texture). The scales' terms are averaged.

Depth Hints add a proxy label h from semi-global matching (``batch["hint"]`` in metres,
``hint_valid``; :mod:`depthlab.hints`). ``mode``:

- ``self``: the photometric term alone;
- ``hard``: ln(1 + |h - d|) over every valid hint pixel, no photometric term;
- ``sum``: photometric + ln(1 + |h - d|) over every valid hint pixel;
- ``hint`` (the paper's rule): photometric + ln(1 + |h - d|) over the pixels where the hint
  reprojects better than the prediction, l_r(h) < l_r(d) (with ``automask`` also better than the
  identity, as the published code takes one minimum over all three); pixels with no hint, or whose
  hint warps from outside the right image, count as losing (error + 1000);
- ``hard_uncertainty``: the network predicts a log-variance (``uncertainty: true``); the hint term
  is the Laplacian negative log-likelihood of ln d - ln h (:func:`~depthlab.losses.uncertainty.log_depth_nll`)
  over every valid hint pixel, no photometric term (no code was published for this mode).

Each hint term is evaluated on every scale's upsampled depth and averaged over the scales (the
published code's per-scale rule). The fraction of pixels where the hint was used is reported as
``hint_fraction`` (logged every step as ``train/<term>/hint_fraction``), and the fraction of pixels
whose warp samples inside the right image as ``inside_fraction``: near 0, the depth range is too
near for the baseline (the network starts at sigmoid 0.5, depth 2 / (1/min_depth + 1/max_depth)) and
the photometric term has nothing to learn from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor

from depthlab.errors import ConfigError
from depthlab.depth_ops import resize_depth
from depthlab.geometry import depth_to_disparity, reprojection_error, stereo_calibration, warp_horizontal
from depthlab.losses.base import DepthLoss, masked_mean
from depthlab.losses.uncertainty import log_depth_nll
from depthlab.models.output import DepthOutput

Mode = Literal["self", "hard", "sum", "hint", "hard_uncertainty"]
MODES = ("self", "hard", "sum", "hint", "hard_uncertainty")
STEREO_KEYS = frozenset({"image", "image_right", "intrinsics", "baseline_m"})
LOSING_ERROR = 1000.0  # added to the hint's error where it has no value: it never wins (depth-hints trainer.py)


def scale_depths(out: DepthOutput, size: tuple[int, int], use_scales: bool = True) -> list[Tensor]:
    """Depth (B, 1, H, W) metres of ``out`` and, with ``use_scales``, of each coarser scale upsampled
    to ``size`` bilinearly as inverse depth (Monodepth2 upsamples disparity before converting it)."""
    depths = [out.depth]
    for level in out.scales if use_scales else []:
        depths.append(resize_depth(level.depth, size, inverse=True, inverse_depth=level.inverse_depth)[0])
    return depths


def warp_error(depth_m: Tensor, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
    """Reprojection error (B, 1, H, W) of the left image rebuilt from the right one with ``depth_m``,
    and where the warp sampled inside the right image (bool, same shape; False where depth <= 0)."""
    fx, baseline_m = stereo_calibration(batch)
    dtype = torch.promote_types(depth_m.dtype, torch.float32)  # half-precision images compared in float32
    disparity = depth_to_disparity(depth_m.to(dtype), fx, baseline_m)
    warped, inside = warp_horizontal(batch["image_right"].to(dtype), disparity, source_view="right")
    return reprojection_error(warped, batch["image"].to(dtype)), inside & (depth_m > 0)


def _identity_error(batch: Mapping[str, Any], dtype: torch.dtype) -> Tensor:
    """Reprojection error of the unwarped right image as the left (Monodepth2's auto-masking)."""
    dtype = torch.promote_types(dtype, torch.float32)
    return reprojection_error(batch["image_right"].to(dtype), batch["image"].to(dtype))


class PhotometricLoss(DepthLoss):
    """Stereo photometric reprojection error of the left view rebuilt from the right (Monodepth2).

    See the module docstring. Needs a stereo batch; the prediction's metric depth and the
    calibrated baseline give pixel disparities.

    Args:
        automask: leave out pixels that the unwarped right image reconstructs at least as well
            (Monodepth2's auto-masking; ties go to the warp, deterministically, instead of
            Monodepth2's 1e-5 random noise).
        use_scales: also average over ``out.scales`` (multi-scale networks), each upsampled.
    """

    requires = STEREO_KEYS

    def __init__(self, automask: bool = True, use_scales: bool = True) -> None:
        super().__init__()
        self.automask = automask
        self.use_scales = use_scales

    def forward(self, out: DepthOutput, batch: Mapping[str, Any], mask: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        identity = _identity_error(batch, out.depth.dtype) if self.automask else None
        terms, kept, insides = [], [], []
        for depth in scale_depths(out, tuple(batch["image"].shape[-2:]), self.use_scales):
            error, inside = warp_error(depth, batch)
            keep = inside if identity is None else inside & ~(identity < error)  # ties keep the warp
            terms.append(masked_mean(error, keep))
            kept.append(keep.float().mean())
            insides.append(inside.float().mean())
        stats = {"inside_fraction": torch.stack(insides).mean()}
        if self.automask:
            stats["automasked_fraction"] = torch.stack(insides).mean() - torch.stack(kept).mean()
        return torch.stack(terms).mean(), stats

    def extra_repr(self) -> str:
        return f"automask={self.automask}, use_scales={self.use_scales}"


class DepthHintsLoss(DepthLoss):
    """Depth Hints (Watson et al. 2019): photometric loss plus SGM proxy labels, five supervision modes.

    See the module docstring for ``mode``. Needs a stereo batch with ``hint``/``hint_valid``
    (``self`` needs no hint; ``hard``/``hard_uncertainty`` need no right view).

    Args:
        mode: ``self``, ``hard``, ``sum``, ``hint`` (default, the paper's) or ``hard_uncertainty``.
        automask: Monodepth2's auto-masking of the photometric term (and, in ``hint`` mode, of
            where the hint may win).
        use_scales: also use ``out.scales`` (multi-scale networks), each upsampled.
    """

    def __init__(self, mode: Mode = "hint", automask: bool = True, use_scales: bool = True) -> None:
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"depth_hints: mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.automask = automask
        self.use_scales = use_scales
        photometric = mode in ("self", "sum", "hint")
        self.requires = frozenset(
            (STEREO_KEYS if photometric else {"image"}) | ({"hint", "hint_valid"} if mode != "self" else set())
        )
        self.requires_output = frozenset({"depth", "log_variance"} if mode == "hard_uncertainty" else {"depth"})

    def forward(self, out: DepthOutput, batch: Mapping[str, Any], mask: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        size = tuple(batch["image"].shape[-2:])
        depths = scale_depths(out, size, self.use_scales)
        stats: dict[str, Tensor] = {}
        if self.mode in ("hard", "hard_uncertainty"):
            valid = batch["hint_valid"].bool()
            hint = torch.where(valid, batch["hint"], torch.ones_like(batch["hint"]))
            if self.mode == "hard":
                terms = [masked_mean(torch.log1p((hint - d).abs()), valid) for d in depths]
            else:
                if out.log_variance is None:
                    raise ValueError("depth_hints mode hard_uncertainty needs out.log_variance: set uncertainty: true")
                terms = [log_depth_nll(depths[0], hint, out.log_variance, valid, "laplace")]
            stats["hint_fraction"] = valid.float().mean()
            return torch.stack(terms).mean(), stats

        identity = _identity_error(batch, out.depth.dtype) if self.automask else None
        if self.mode in ("sum", "hint"):
            valid = batch["hint_valid"].bool()
            hint = torch.where(valid, batch["hint"], torch.ones_like(batch["hint"]))
        if self.mode == "hint":  # the hint's own reprojection error, once, at full resolution
            hint_error, hint_inside = warp_error(hint, batch)
            hint_error = torch.where(valid & hint_inside, hint_error, hint_error + LOSING_ERROR)
        terms, used, insides = [], [], []
        for depth in depths:
            error, inside = warp_error(depth, batch)
            insides.append(inside.float().mean())
            # One minimum over [warp, identity, hint] as the published code: the identity masks the
            # photometric term only where it beats both; the hint is used where it beats both.
            identity_wins = None
            if identity is not None:
                identity_wins = identity < error
                if self.mode == "hint":
                    identity_wins &= identity <= hint_error
            keep = inside if identity_wins is None else inside & ~identity_wins
            term = masked_mean(error, keep)
            use = None
            if self.mode == "sum":
                use = valid
            elif self.mode == "hint":
                use = hint_error < error
                if identity is not None:
                    use &= hint_error < identity
            if use is not None:
                term = term + masked_mean(torch.log1p((hint - depth).abs()), use)
                used.append(use.float().mean())
            terms.append(term)
        stats["inside_fraction"] = torch.stack(insides).mean()
        if used:
            stats["hint_fraction"] = torch.stack(used).mean().detach()
        return torch.stack(terms).mean(), stats

    def extra_repr(self) -> str:
        return f"mode={self.mode}, automask={self.automask}, use_scales={self.use_scales}"
