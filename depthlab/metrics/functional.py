"""Depth error metrics of the field, as the public evaluation code computes them: the math, once.

For one image, with g the valid ground truth and p the (clamped) prediction, both in metres:

    abs_rel  = mean(|g - p| / g)              sq_rel = mean((g - p)^2 / g)
    rmse     = sqrt(mean((g - p)^2))          rmse_log = sqrt(mean((ln g - ln p)^2))
    log10    = mean(|log10 g - log10 p|)      delta_k = fraction with max(g/p, p/g) < 1.25^k (strict)
    silog    = 100 sqrt(mean(e^2) - mean(e)^2), e = ln p - ln g   (KITTI's scale-invariant log error)

Sources: ``cleinc/bts pytorch/bts_eval.py``, ``shariqfarooq123/AdaBins utils.py``,
``isl-org/ZoeDepth zoedepth/utils/misc.py``, ``nianticlabs/monodepth2 evaluate_depth.py``.

Numerics follow those scripts: differences and the two ratios g/p, p/g are formed in the inputs'
precision with one rounding each, so a ratio of exactly 1.25 (frequent with depth quantised to
1/256 m or 1 mm, e.g. g = 7.625, p = 9.53125) fails ``< 1.25`` there and here. Log errors are
float64 (silog of a scale-biased prediction loses nothing to cancellation); sums are float64.

Valid pixels: ``min_depth < g < max_depth`` (strict both ends), g finite, and the caller's mask.
Predictions are clamped before evaluation as the public code does: NaN and values below
``min_depth`` become ``min_depth``; +inf and values above ``max_depth`` become ``max_depth``. Those non-finite values
are counted apart (:func:`nonfinite_update`; the evaluator reports and warns about them), so a
network that predicts NaN is not mistaken for one with a poor score.

Everything reduces to ten per-pixel sums per image (:func:`pixel_sums`). Averaging over a data set:

- ``"image"`` (default, the standard of BTS, AdaBins, ZoeDepth, monodepth2 and the Toolbox): each
  metric per image, then the plain mean over images, so dataset rmse is the mean of per-image rmse.
- ``"pixel"``: every valid pixel of the data set pooled into one set (FCRN's MATLAB
  ``error_metrics.m``), so images with more valid pixels weigh more.

torchmetrics style: :func:`depth_metrics_update` turns a batch into additive state increments and
:func:`depth_metrics_compute` turns the summed states into the metrics; :class:`DepthMetrics`
only stores the sums, and :func:`depth_metrics` is the one-call form over a whole data set.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

# The order of the papers' tables (BTS, AdaBins, ZoeDepth), used for every report.
METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3", "silog", "log10")
DELTA_BASE = 1.25  # delta_k threshold 1.25^k (Eigen et al. 2014; all public evaluation scripts)
DEFAULT_MIN_DEPTH_M = 1e-3  # min_depth_eval of BTS, ZoeDepth and monodepth2
Averaging = Literal["image", "pixel"]

# Columns of the per-pixel sums, all accumulated over the valid pixels of one image. log_dev_sq is
# (e - mean of e over the image)^2: silog's variance without the cancellation of mean(e^2) - mean(e)^2.
SUM_NAMES = (
    "abs_rel", "sq_rel", "sq_err", "sq_log_err", "log10", "delta1", "delta2", "delta3", "log_err", "log_dev_sq"
)
_LN10 = math.log(10.0)


def clamp_prediction(pred: Tensor, min_depth: float = DEFAULT_MIN_DEPTH_M, max_depth: float | None = None) -> Tensor:
    """The public code's clamp: NaN and < min -> min; +inf and > max -> max (``max_depth`` None: no cap)."""
    hi = math.inf if max_depth is None else float(max_depth)
    return torch.nan_to_num(pred, nan=min_depth, posinf=hi, neginf=min_depth).clamp(min_depth, hi)


def valid_depth_mask(
    gt: Tensor, min_depth: float = DEFAULT_MIN_DEPTH_M, max_depth: float | None = None, mask: Tensor | None = None
) -> Tensor:
    """Bool mask of ``gt``'s shape: ``min_depth < gt < max_depth`` (strict) and ``mask``.

    0 (no measurement), NaN and +-inf never pass (NaN fails every comparison; ``max_depth`` None
    means no upper cap, but +inf still fails ``gt < inf``).
    """
    valid = (gt > min_depth) & (gt < (math.inf if max_depth is None else max_depth))
    if mask is not None:
        valid &= mask.reshape(gt.shape).bool()
    return valid


def _check(pred: Tensor, gt: Tensor, mask: Tensor | None, min_depth: float, max_depth: float | None) -> None:
    if pred.shape != gt.shape:
        raise ValueError(
            f"pred and gt must have the same shape (resize pred first), got {tuple(pred.shape)} and {tuple(gt.shape)}"
        )
    if mask is not None and mask.numel() != gt.numel():
        raise ValueError(f"mask must have gt's shape {tuple(gt.shape)}, got {tuple(mask.shape)}")
    if not min_depth > 0:
        raise ValueError(f"min_depth must be > 0 (logs of the prediction are taken), got {min_depth}")
    if max_depth is not None and not max_depth > min_depth:
        raise ValueError(f"need max_depth > min_depth, got {min_depth} and {max_depth}")


def pixel_sums(
    pred: Tensor,
    gt: Tensor,
    mask: Tensor | None = None,
    min_depth: float = DEFAULT_MIN_DEPTH_M,
    max_depth: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-image sums over valid pixels of the quantities in :data:`SUM_NAMES`.

    ``pred``, ``gt``: (B, ...) metres, same shape, e.g. (B, 1, H, W); ``mask``: bool, same numel.
    Returns ``sums`` (B, 10) float64 and ``counts`` (B,) int64, the valid pixels per image.

    Only the valid pixels are gathered and computed on (sparse KITTI ground truth has ~5 % of
    them). Differences and ratios are formed as the public code forms them, in the inputs'
    precision; log errors in float64; every sum in float64.
    """
    _check(pred, gt, mask, min_depth, max_depth)
    b = gt.shape[0]
    # flatten, not reshape(b, -1): an empty batch (b = 0) is valid input
    valid = valid_depth_mask(gt.flatten(1), min_depth, max_depth, None if mask is None else mask.flatten(1))
    index = valid.flatten().nonzero().squeeze(1)  # image-major: each image's pixels are contiguous
    starts = torch.arange(b + 1, device=gt.device) * valid.shape[1]
    counts = torch.searchsorted(index, starts).diff()
    # Differences and ratios in the inputs' precision (at least float32), as the public NumPy code
    # computes them, each with one rounding (true divisions): a ratio of exactly 1.25 then fails
    # ``< 1.25`` as there (p * (1 / g) rounds twice and can land just below).
    dtype = torch.float64 if torch.float64 in (pred.dtype, gt.dtype) else torch.float32
    g = gt.flatten().index_select(0, index).to(dtype)
    p = clamp_prediction(pred.flatten().index_select(0, index).to(dtype), min_depth, max_depth)
    diff = g - p
    sq_err = diff * diff
    ratio = torch.maximum(g / p, p / g)
    # Log errors in float64 whatever the input, and silog's variance about each image's own mean
    # (two passes): mean(e^2) - mean(e)^2 cancels when e has a large mean (a scale-biased prediction).
    log_err = torch.log(p.double() / g.double())  # ln p - ln g
    if b == 0:
        return torch.zeros(0, len(SUM_NAMES), dtype=torch.float64, device=gt.device), counts
    image_mean = torch.segment_reduce(log_err, "sum", lengths=counts) / counts.clamp_min(1)
    log_dev = log_err - image_mean.repeat_interleave(counts, output_size=log_err.numel())
    columns = (
        diff.abs() / g,
        sq_err / g,
        sq_err,
        log_err * log_err,
        log_err.abs() * (1 / _LN10),  # |log10 p - log10 g| = |ln p - ln g| / ln 10
        ratio < DELTA_BASE,
        ratio < DELTA_BASE**2,
        ratio < DELTA_BASE**3,
        log_err,
        log_dev * log_dev,
    )
    sums = [torch.segment_reduce(c.double(), "sum", lengths=counts) for c in columns]
    return torch.stack(sums, dim=1), counts


def metrics_from_means(means: Tensor) -> Tensor:
    """(..., 10) means of :data:`SUM_NAMES` over one image -> (..., 9) metrics in :data:`METRIC_NAMES` order."""
    abs_rel, sq_rel, sq_err, sq_log_err, log10, d1, d2, d3, _, log_dev_sq = means.unbind(-1)
    silog = 100 * log_dev_sq.sqrt()  # the population variance of e about the image's mean
    return torch.stack([abs_rel, sq_rel, sq_err.sqrt(), sq_log_err.sqrt(), d1, d2, d3, silog, log10], dim=-1)


def depth_errors(
    pred: Tensor,
    gt: Tensor,
    mask: Tensor | None = None,
    min_depth: float = DEFAULT_MIN_DEPTH_M,
    max_depth: float | None = None,
) -> dict[str, Tensor]:
    """Every metric per image: a dict of (B,) float64 tensors, plus ``count`` (B,) valid pixels.

    An image with no valid pixel has count 0 and NaN metrics; :class:`DepthMetrics` skips it.
    """
    sums, counts = pixel_sums(pred, gt, mask, min_depth, max_depth)
    values = metrics_from_means(sums / counts[:, None])  # 0 / 0 = NaN for empty images
    out = dict(zip(METRIC_NAMES, values.unbind(-1)))
    out["count"] = counts
    return out


def depth_metrics_update(
    pred: Tensor,
    gt: Tensor,
    mask: Tensor | None = None,
    min_depth: float = DEFAULT_MIN_DEPTH_M,
    max_depth: float | None = None,
) -> dict[str, Tensor]:
    """Additive state increments of one batch (float64), for both averaging modes at once.

    ``image_sum`` (9,): sum over images with a valid pixel of their metrics (METRIC_NAMES order);
    ``images``/``skipped``: images with / without a valid pixel; ``pixel_sum`` (10,): sums of
    SUM_NAMES over every valid pixel; ``pixels``: their number.
    """
    sums, counts = pixel_sums(pred, gt, mask, min_depth, max_depth)
    ok = counts > 0
    per_image = metrics_from_means(sums[ok] / counts[ok, None])
    return {
        "image_sum": per_image.sum(0),
        "images": ok.sum().double(),
        "skipped": (~ok).sum().double(),
        "pixel_sum": sums.sum(0),
        "pixels": counts.sum().double(),
    }


def depth_metrics_compute(
    image_sum: Tensor,
    images: Tensor,
    pixel_sum: Tensor,
    pixels: Tensor,
    skipped: Tensor,
    averaging: Averaging = "image",
) -> dict[str, Tensor]:
    """Metrics from summed states: the mean over images (``image``) or over pooled pixels (``pixel``).

    Returns the nine metrics (float64 scalars) plus ``images`` (evaluated) and ``skipped`` (images
    without a valid pixel). With nothing evaluated at all the metrics are NaN (there is no number).
    """
    if averaging == "image":
        values = image_sum / images
    elif averaging == "pixel":
        # Pooled pixels have no common per-image mean: their variance is the one-pass form (float64).
        means = pixel_sum / pixels
        pooled_var = means[..., SUM_NAMES.index("sq_log_err")] - means[..., SUM_NAMES.index("log_err")] ** 2
        # clamp: the variance of a constant error is 0 up to rounding, never negative (NaN stays NaN)
        means[..., SUM_NAMES.index("log_dev_sq")] = pooled_var.clamp_min(0)
        values = metrics_from_means(means)
    else:
        raise ValueError(f"averaging must be 'image' or 'pixel', got {averaging!r}")
    out = dict(zip(METRIC_NAMES, values.unbind(-1)))
    out["images"] = images
    out["skipped"] = skipped
    return out


def depth_metrics(
    pred: Tensor,
    gt: Tensor,
    mask: Tensor | None = None,
    min_depth: float = DEFAULT_MIN_DEPTH_M,
    max_depth: float | None = None,
    averaging: Averaging = "image",
) -> dict[str, Tensor]:
    """The data-set metrics of all images at once (what :class:`DepthMetrics` streams)."""
    state = depth_metrics_update(pred, gt, mask, min_depth, max_depth)
    return depth_metrics_compute(averaging=averaging, **state)


def nonfinite_update(pred: Tensor) -> dict[str, Tensor]:
    """Additive counts of non-finite predictions (NaN, +-inf) in ``pred`` (B, ...), float64.

    ``nonfinite_pixels``: such values over every pixel of the batch (valid ground truth or not);
    ``nonfinite_images``: images with at least one. The metrics clamp these values (see
    :func:`clamp_prediction`), so a broken network still gets a plausible-looking score: these
    counts are how a report shows that it is broken.
    """
    per_image = (~torch.isfinite(pred)).flatten(1).sum(1)
    return {"nonfinite_pixels": per_image.sum().double(), "nonfinite_images": (per_image > 0).sum().double()}


def summarize_ratios(ratios: Tensor) -> dict[str, Tensor]:
    """Median-scaling report of monodepth2: median of the per-image ratios and std(ratios / median).

    The std is the population std (NumPy's default); the median of an even count is the mean of
    the two middle values, as ``np.median``.
    """
    r = ratios.double().flatten()
    if r.numel() == 0:
        nan = torch.tensor(math.nan, dtype=torch.float64, device=r.device)
        return {"ratio_median": nan, "ratio_std": nan}
    med = r.quantile(0.5)
    return {"ratio_median": med, "ratio_std": (r / med).std(correction=0)}
