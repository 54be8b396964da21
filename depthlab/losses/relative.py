"""Losses on relative depth: multi-scale gradient matching and the MiDaS scale-and-shift-invariant loss.

Gradient matching: Li & Snavely, MegaDepth, CVPR 2018 (L_grad), in log space; MiDaS (Ranftl et al.,
TPAMI 2022) applies the same term to its aligned inverse-depth residual.
Scale-and-shift invariance: Ranftl et al., "Towards Robust Monocular Depth Estimation: Mixing Datasets
for Zero-shot Cross-dataset Transfer" (MiDaS), the least-squares-aligned loss L_ssimse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor

from depthlab.errors import ConfigError
from depthlab.losses.base import SupervisedLoss, check_inputs, safe_log, safe_reciprocal
from depthlab.models.output import DepthOutput

GRADIENT_SCALES = 4  # MegaDepth and MiDaS both use 4 scales, each subsampled by 2
MIDAS_ALPHA = 0.5  # MiDaS weight of the gradient term next to L_ssimse


def multiscale_gradient_loss(residual: Tensor, mask: Tensor, scales: int = GRADIENT_SCALES) -> Tensor:
    """sum_k (1/M_k) sum_i (|dx R^k_i| + |dy R^k_i|).

    R^k is ``residual`` (B, 1, H, W) subsampled with stride 2^k, dx/dy differences of neighbours at
    that scale, counted where both neighbours are valid; M_k is the number of valid pixels at scale
    k over the batch (MiDaS' batch-based reduction). A scale without valid pixels adds 0.
    """
    total = residual.new_zeros(())
    for k in range(scales):
        step = 2**k
        r = residual[..., ::step, ::step]
        m = mask[..., ::step, ::step]
        mx = m[..., :, 1:] & m[..., :, :-1]
        my = m[..., 1:, :] & m[..., :-1, :]
        gx = torch.where(mx, r[..., :, 1:] - r[..., :, :-1], torch.zeros_like(mx, dtype=r.dtype)).abs()
        gy = torch.where(my, r[..., 1:, :] - r[..., :-1, :], torch.zeros_like(my, dtype=r.dtype)).abs()
        total = total + (gx.sum() + gy.sum()) / m.sum().clamp_min(1).to(r.dtype)
    return total


def gradient_matching(pred: Tensor, target: Tensor, mask: Tensor, scales: int = GRADIENT_SCALES) -> Tensor:
    """:func:`multiscale_gradient_loss` of R = ln(pred) - ln(target) (MegaDepth's L_grad).

    In log space a global scale of ``pred`` cancels in R's gradients, so the term is scale invariant
    and asks only that depth edges sit where the ground truth has them. Depths clamped at 1e-7 m.
    """
    pred, target, mask = check_inputs(pred, target, mask)
    d = safe_log(pred) - safe_log(target)
    return multiscale_gradient_loss(torch.where(mask, d, torch.zeros_like(d)), mask, scales)


def align_scale_shift(pred: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per image, (s, t) = argmin sum_i (s pred_i + t - target_i)^2 over valid pixels; (B, 1, 1, 1) each.

    Solved in closed form on centred values (s = cov(pred, target) / var(pred), t = mean(target) -
    s mean(pred)), which is better conditioned than the 2x2 normal equations. When pred is constant
    over the valid pixels (or there are fewer than two) the minimiser is not unique: s = 0 and
    t = mean(target), the solution of least |s| (MiDaS returns s = t = 0 there).
    """
    dims = tuple(range(1, pred.ndim))
    m = mask.to(pred.dtype)
    n = m.sum(dims, keepdim=True).clamp_min(1)
    p_mean = (pred * m).sum(dims, keepdim=True) / n
    t_mean = (target * m).sum(dims, keepdim=True) / n
    pc = (pred - p_mean) * m
    tc = (target - t_mean) * m
    var = pc.square().sum(dims, keepdim=True)
    cov = (pc * tc).sum(dims, keepdim=True)
    # Below ~eps^2 of the mean square, var is round-off of a constant prediction, not signal.
    floor = 100 * torch.finfo(pred.dtype).eps ** 2 * (pred.square() * m).sum(dims, keepdim=True)
    ok = var > floor
    s = torch.where(ok, cov / torch.where(ok, var, torch.ones_like(var)), torch.zeros_like(var))
    return s, t_mean - s * p_mean


def aligned_residual(p: Tensor, g: Tensor, mask: Tensor) -> Tensor:
    """s p + t - g with (s, t) of :func:`align_scale_shift` per image, 0 outside ``mask``."""
    s, t = align_scale_shift(p, g, mask)
    return torch.where(mask, s * p + t - g, torch.zeros_like(p))


def scale_shift_invariant(
    pred: Tensor,
    target: Tensor,
    mask: Tensor,
    space: Literal["inverse_depth", "depth"] = "inverse_depth",
    alpha: float = 0.0,
    scales: int = GRADIENT_SCALES,
    pred_is_inverse: bool = False,
) -> Tensor:
    """MiDaS L_ssimse = (1 / 2M) sum_i (s p_i + t - g_i)^2 + alpha * multi-scale gradient term.

    p, g are 1/pred and 1/target (``space="inverse_depth"``, as MiDaS trains; depths clamped at 1e-7 m)
    or the depths themselves (``"depth"``); (s, t) aligns each image by least squares
    (:func:`align_scale_shift`, differentiable); sums run over all images and M counts the valid
    pixels of the batch. The gradient term is :func:`multiscale_gradient_loss` of the aligned
    residual s p + t - g. Returns an attached 0 when no pixel is valid. ``pred_is_inverse``: ``pred``
    already is an inverse depth, e.g. a relative network's affine-invariant one (MiDaS trains its
    output this way); then p = pred (``space`` must be ``inverse_depth``).
    """
    pred, target, mask = check_inputs(pred, target, mask)
    if pred_is_inverse:
        if space != "inverse_depth":
            raise ValueError("ssi: an inverse-depth prediction is aligned in space 'inverse_depth'")
        p, g = pred, safe_reciprocal(target)
    elif space == "inverse_depth":
        p, g = safe_reciprocal(pred), safe_reciprocal(target)
    elif space == "depth":
        p, g = pred, target
    else:
        raise ValueError(f"ssi: space must be 'inverse_depth' or 'depth', got {space!r}")
    r = aligned_residual(p, g, mask)
    loss = r.square().sum() / (2 * mask.sum()).clamp_min(1).to(r.dtype)
    if alpha:
        loss = loss + alpha * multiscale_gradient_loss(r, mask, scales)
    return loss


class GradientMatchingLoss(SupervisedLoss):
    """Multi-scale gradient matching in log space (MegaDepth): sum_k mean |grad(ln pred - ln target)|_k.

    L = sum_k (1/M_k) sum_i (|dx R^k_i| + |dy R^k_i|), R = ln pred - ln target subsampled by 2^k,
    neighbour pairs of valid pixels only. Scale invariant; use it next to a data term (MegaDepth
    weights it 0.5 next to its scale-invariant data term).

    On a relative network's output (``relative_inverse_depth`` r, known up to scale and shift) the
    term is MiDaS' L_reg instead: the multi-scale gradient term of the aligned inverse-depth residual
    s r + t - 1/target, (s, t) fitted per image by least squares.

    Args:
        scales: number of scales (stride 1, 2, 4, ...). Default 4.
    """

    accepts_relative = True
    scale_invariant = True

    def __init__(self, scales: int = GRADIENT_SCALES) -> None:
        super().__init__()
        if scales < 1:
            raise ConfigError(f"gradient_matching: scales must be >= 1, got {scales}")
        self.scales = int(scales)

    def forward(self, out: DepthOutput, batch: Mapping[str, Any], mask: Tensor) -> Tensor:
        if not out.is_relative:
            return self.compute(out.depth, batch["depth"], mask)
        r, target, mask = check_inputs(out.relative_inverse_depth, batch["depth"], mask)
        return multiscale_gradient_loss(aligned_residual(r, safe_reciprocal(target), mask), mask, self.scales)

    def compute(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return gradient_matching(pred, target, mask, self.scales)


class ScaleShiftInvariantLoss(SupervisedLoss):
    """MiDaS scale-and-shift-invariant loss: per-image least-squares alignment, then (1/2M) sum residual^2.

    L = (1/2M) sum_i (s p_i + t - g_i)^2 with (s, t) fitted per image (Ranftl et al., MiDaS,
    L_ssimse), in inverse-depth space by default, plus ``alpha`` times the multi-scale gradient term
    of the aligned residual.

    Args:
        space: ``"inverse_depth"`` (p = 1/pred, g = 1/target, as MiDaS) or ``"depth"``.
        alpha: weight of the gradient term; 0 by default (the ssi term alone), MiDaS uses 0.5.
        scales: scales of the gradient term. Default 4.

    On a relative network's output (``relative_inverse_depth``) p is that map itself (MiDaS trains
    its affine-invariant inverse depth this way); ``space`` must then be ``inverse_depth``.
    """

    scale_invariant = True

    @property
    def accepts_relative(self) -> bool:  # type: ignore[override]
        return self.space == "inverse_depth"

    def __init__(self, space: Literal["inverse_depth", "depth"] = "inverse_depth", alpha: float = 0.0,
                 scales: int = GRADIENT_SCALES) -> None:
        super().__init__()
        if space not in ("inverse_depth", "depth"):
            raise ConfigError(f"ssi: space must be 'inverse_depth' or 'depth', got {space!r}")
        if alpha < 0 or scales < 1:
            raise ConfigError(f"ssi: need alpha >= 0 and scales >= 1, got alpha={alpha}, scales={scales}")
        self.space = space
        self.alpha = float(alpha)
        self.scales = int(scales)

    def forward(self, out: DepthOutput, batch: Mapping[str, Any], mask: Tensor) -> Tensor:
        if not out.is_relative:
            return self.compute(out.depth, batch["depth"], mask)
        if self.space != "inverse_depth":
            raise ConfigError("ssi: space: depth aligns depth, but the network predicts relative inverse depth; "
                              "use space: inverse_depth (MiDaS)")
        return scale_shift_invariant(out.relative_inverse_depth, batch["depth"], mask, self.space, self.alpha,
                                     self.scales, pred_is_inverse=True)

    def compute(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return scale_shift_invariant(pred, target, mask, self.space, self.alpha, self.scales)
