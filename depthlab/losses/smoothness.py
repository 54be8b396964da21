"""Edge-aware smoothness of inverse depth (Godard et al., Monodepth, CVPR 2017; monodepth2 ``layers.py``).

Two forms (``scales``):

- ``finest`` (depthlab's default): the term of the finest prediction only (``out``);
- ``all`` (monodepth2's ``compute_losses``): per scale s (``out`` then each of ``out.scales``) the
  term of that scale's mean-normalised inverse depth at its own resolution, edge-aware with the
  image resized to that resolution, weighted 1/2^s, and averaged over the scales:
  (1/S) sum_s L_s / 2^s. Monodepth2 adds ``disparity_smoothness * L_s / 2^s`` to each scale's loss
  and divides the total by the number of scales, so its published weight (1e-3) carries over as
  this term's weight. Monodepth2's loader resizes the image with PIL's antialiasing (Lanczos);
  depthlab averages the pixels each coarse pixel covers (``area``), equal for a constant image.
  Monodepth2 normalises its sigmoid output, depthlab the inverse depth in 1/m (an affine map of it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from depthlab.errors import ConfigError
from depthlab.losses.base import DepthLoss, check_inputs, masked_mean, safe_reciprocal
from depthlab.models.output import DepthOutput

MEAN_NORM_EPS = 1e-7  # monodepth2 divides its disparity (inverse depth) by (its spatial mean + 1e-7)


def edge_aware_smoothness(disp: Tensor, image: Tensor, mask: Tensor | None = None) -> Tensor:
    """mean(|dx disp| exp(-mean_c |dx I|)) + mean(|dy disp| exp(-mean_c |dy I|)).

    ``disp`` (B, 1, H, W), ``image`` (B, C, H, W) in [0, 1]; dx/dy are differences of horizontal /
    vertical neighbours and mean_c averages over the image channels, so a strong image edge lowers
    the penalty on a disparity jump there. With ``mask`` only neighbour pairs whose two pixels are
    both valid count; each mean is over those pairs (0 when there are none).
    """
    dx = (disp[..., :, 1:] - disp[..., :, :-1]).abs()
    dy = (disp[..., 1:, :] - disp[..., :-1, :]).abs()
    wx = torch.exp(-(image[..., :, 1:] - image[..., :, :-1]).abs().mean(1, keepdim=True))
    wy = torch.exp(-(image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True))
    if mask is None:
        mask = torch.ones_like(disp, dtype=torch.bool)
    mx = mask[..., :, 1:] & mask[..., :, :-1]
    my = mask[..., 1:, :] & mask[..., :-1, :]
    return masked_mean(dx * wx, mx) + masked_mean(dy * wy, my)


def edge_smoothness(inverse_depth: Tensor, mask: Tensor, image: Tensor, masked: bool = True) -> Tensor:
    """:func:`edge_aware_smoothness` of the mean-normalised inverse depth (1/m), (B, 1, H, W).

    disp = inverse depth, divided per image by its spatial mean (+ 1e-7) as monodepth2 does, so the
    term cannot fall by shrinking the scale. ``masked`` restricts the penalty, and the mean, to the
    pixels of ``mask``; ``masked=False`` regularises every pixel with the mean over all of them,
    exactly monodepth2's form (and what self-supervised training, with no ground truth, needs).
    """
    disp, _, mask = check_inputs(inverse_depth, inverse_depth, mask)
    if image.shape[0] != disp.shape[0] or image.shape[-2:] != disp.shape[-2:]:
        raise ValueError(f"edge_smoothness: image {tuple(image.shape)} does not match the prediction {tuple(disp.shape)}")
    if masked:  # the mean over valid pixels, so that nothing at an invalid pixel changes the value
        m = mask.to(disp.dtype)
        mean = (disp * m).sum((2, 3), keepdim=True) / m.sum((2, 3), keepdim=True).clamp_min(1)
    else:
        mean = disp.mean((2, 3), keepdim=True)
    disp = disp / (mean + MEAN_NORM_EPS)
    return edge_aware_smoothness(disp, image.to(disp.dtype), mask if masked else None)


def multi_scale_edge_smoothness(inverse_depths: list[Tensor], image: Tensor) -> Tensor:
    """Monodepth2's multi-scale smoothness: (1/S) sum_s L_s / 2^s over ``inverse_depths`` (finest first,
    each (B, 1, H_s, W_s) 1/m), L_s the unmasked :func:`edge_smoothness` at scale s with ``image``
    resized to (H_s, W_s) by area averaging (unchanged at the image's own size)."""
    terms = []
    for s, inverse in enumerate(inverse_depths):
        size = tuple(inverse.shape[-2:])
        scaled = image if tuple(image.shape[-2:]) == size else F.interpolate(image, size=size, mode="area")
        everywhere = torch.ones_like(inverse, dtype=torch.bool)
        terms.append(edge_smoothness(inverse, everywhere, scaled, masked=False) / 2**s)
    return torch.stack(terms).mean()


def _inverse(out: DepthOutput) -> Tensor:
    return out.inverse_depth if out.inverse_depth is not None else safe_reciprocal(out.depth)


class EdgeAwareSmoothnessLoss(DepthLoss):
    """Edge-aware smoothness of mean-normalised inverse depth, weighted by exp(-|image gradient|) (Monodepth).

    L = mean(|dx d*| exp(-mean_c |dx I|)) + mean(|dy d*| exp(-mean_c |dy I|)), d* = (1/pred) / mean(1/pred).
    A regulariser for next to a data term: monodepth2 weights it 1e-3 / 2^scale. Reads the batch's
    ``image``; uses the network's own inverse depth when it predicts one (else 1 / depth, depths
    clamped at 1e-7 m).

    Args:
        masked: only pairs of valid pixels count (default, so an all-invalid mask gives 0); False
            regularises every pixel, which suits sparse ground truth such as KITTI's.
        scales: ``finest`` (default): the finest prediction only; ``all``: monodepth2's multi-scale
            form over ``out`` and ``out.scales`` (:func:`multi_scale_edge_smoothness`; weight 1/2^s,
            averaged over the scales, every pixel: needs ``masked: false``), under which
            monodepth2's published weight 1e-3 carries over.
    """

    requires = frozenset({"image"})

    def __init__(self, masked: bool = True, scales: Literal["finest", "all"] = "finest") -> None:
        super().__init__()
        if scales not in ("finest", "all"):
            raise ConfigError(f"edge_smoothness: scales must be 'finest' or 'all', got {scales!r}")
        if scales == "all" and masked:
            raise ConfigError("edge_smoothness: scales: all is monodepth2's form over every pixel; set masked: false")
        self.masked = masked
        self.scales = scales

    def forward(self, out: DepthOutput, batch: Mapping[str, Any], mask: Tensor) -> Tensor:
        if self.scales == "all":
            return multi_scale_edge_smoothness([_inverse(level) for level in (out, *out.scales)], batch["image"])
        return edge_smoothness(_inverse(out), mask, batch["image"], self.masked)

    def extra_repr(self) -> str:
        return f"masked={self.masked}, scales={self.scales}"
