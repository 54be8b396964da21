"""DepthMetrics and depthlab.metrics.functional: hand-computed values, averaging, streaming, invalid pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from depthlab.metrics import METRIC_NAMES, DepthMetrics, depth_errors, depth_metrics, summarize_ratios
from depthlab.metrics.depth import ScaleRatios

LN, LOG10 = math.log, math.log10
NAN, INF = math.nan, math.inf


def t(rows) -> torch.Tensor:
    """Nested lists -> (1, 1, H, W) float64."""
    return torch.tensor(rows, dtype=torch.float64)[None, None]


def check(values: dict, expected: dict, rel: float = 1e-12) -> None:
    for name, want in expected.items():
        got = float(values[name].squeeze())
        assert got == pytest.approx(want, rel=rel, abs=rel), name


# 2x2, all valid. Pixels (g, p): (1, 1), (2, 2.5), (5, 9), (4, 2);
# max(g/p, p/g) = 1, 1.25 (not < 1.25: the thresholds are strict), 1.8, 2.
G2, P2 = t([[1.0, 2.0], [5.0, 4.0]]), t([[1.0, 2.5], [9.0, 2.0]])
E2 = [0.0, LN(1.25), LN(1.8), -LN(2)]  # e = ln p - ln g
EXPECTED_2X2 = {
    "abs_rel": (0 + 0.5 / 2 + 4 / 5 + 2 / 4) / 4,  # 0.3875
    "sq_rel": (0 + 0.25 / 2 + 16 / 5 + 4 / 4) / 4,  # 1.08125
    "rmse": math.sqrt((0 + 0.25 + 16 + 4) / 4),  # 2.25
    "rmse_log": math.sqrt(sum(e * e for e in E2) / 4),
    "log10": (LOG10(1.25) + LOG10(1.8) + LOG10(2)) / 4,  # log10(4.5) / 4
    "delta1": 1 / 4,
    "delta2": 2 / 4,  # 1.25 < 1.5625
    "delta3": 3 / 4,  # 1.8 < 1.953125 < 2
    "silog": 100 * math.sqrt(sum(e * e for e in E2) / 4 - (sum(E2) / 4) ** 2),
}

# 3x3 with caps 1e-3..10: gt 0 (no measurement), NaN, inf and 20 (above the cap) never count,
# whatever is predicted there. Valid (g, p): (1, 2), (2, 2), (3, 3), (4, 2), (6, 12 -> clamped to 10).
G3 = t([[1.0, 0.0, 2.0], [NAN, 3.0, INF], [4.0, 20.0, 6.0]])
P3 = t([[2.0, 5.0, 2.0], [1.0, 3.0, 1.0], [2.0, 1.0, 12.0]])
E3 = [LN(2), 0.0, 0.0, -LN(2), LN(10 / 6)]
EXPECTED_3X3 = {
    "abs_rel": (1 + 0 + 0 + 2 / 4 + 4 / 6) / 5,  # 13/30
    "sq_rel": (1 + 0 + 0 + 4 / 4 + 16 / 6) / 5,  # 14/15
    "rmse": math.sqrt((1 + 0 + 0 + 4 + 16) / 5),
    "rmse_log": math.sqrt(sum(e * e for e in E3) / 5),
    "log10": (2 * LOG10(2) + LOG10(10 / 6)) / 5,
    "delta1": 2 / 5,  # ratios 2, 1, 1, 2, 1.667
    "delta2": 2 / 5,
    "delta3": 3 / 5,
    "silog": 100 * math.sqrt(sum(e * e for e in E3) / 5 - (sum(E3) / 5) ** 2),
}


def test_hand_computed_2x2_functional_and_class():
    check(depth_errors(P2, G2), EXPECTED_2X2)
    metric = DepthMetrics()
    metric.update(P2, G2)
    check(metric.compute(), EXPECTED_2X2)


def test_hand_computed_3x3_with_invalid_pixels_and_clamping():
    check(depth_errors(P3, G3, max_depth=10.0), EXPECTED_3X3)
    assert int(depth_errors(P3, G3, max_depth=10.0)["count"]) == 5
    metric = DepthMetrics(max_depth=10.0)
    metric.update(P3.float(), G3.float())  # float32 inputs: per-pixel math in float32, sums in float64
    check(metric.compute(), EXPECTED_3X3, rel=1e-6)


def test_mask_argument_removes_pixels():
    mask = torch.tensor([[True, True], [True, False]])[None, None]  # drop (4, 2)
    e = [0.0, LN(1.25), LN(1.8)]
    check(
        depth_errors(P2, G2, mask),
        {"abs_rel": (0 + 0.25 + 0.8) / 3, "rmse": math.sqrt(16.25 / 3), "delta1": 1 / 3, "delta3": 1.0,
         "silog": 100 * math.sqrt(sum(x * x for x in e) / 3 - (sum(e) / 3) ** 2)},
    )


def test_identities_from_the_style_guide():
    gt = torch.rand(3, 1, 4, 5, dtype=torch.float64) * 9 + 0.5
    same = depth_metrics(gt.clone(), gt)
    for name in ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog"):
        assert float(same[name]) == pytest.approx(0, abs=1e-6)
    for name in ("delta1", "delta2", "delta3"):
        assert float(same[name]) == 1.0
    double = depth_metrics(2 * gt, gt, max_depth=100.0)
    assert float(double["abs_rel"]) == pytest.approx(1.0)
    assert float(double["rmse_log"]) == pytest.approx(LN(2))
    assert float(double["silog"]) == pytest.approx(0.0, abs=1e-5)  # a global scale is invisible to silog
    for name in ("delta1", "delta2", "delta3"):  # 2 > 1.25^3 = 1.953
        assert float(double[name]) == 0.0


def test_prediction_clamp_nan_inf_and_range():
    gt = t([[1.0, 2.0, 4.0, 5.0]])
    pred = t([[NAN, INF, -3.0, 50.0]])  # -> 1e-3, 10, 1e-3, 10
    p = np.array([1e-3, 10.0, 1e-3, 10.0])
    g = np.array([1.0, 2.0, 4.0, 5.0])
    out = depth_errors(pred, gt, max_depth=10.0)
    assert float(out["abs_rel"]) == pytest.approx(np.mean(np.abs(g - p) / g), rel=1e-12)
    assert float(out["rmse"]) == pytest.approx(np.sqrt(np.mean((g - p) ** 2)), rel=1e-12)
    assert all(math.isfinite(float(out[n])) for n in METRIC_NAMES)


def test_caps_are_strict():
    gt = t([[1e-3, 10.0, 5.0]])
    out = depth_errors(t([[1.0, 1.0, 5.0]]), gt, min_depth=1e-3, max_depth=10.0)
    assert int(out["count"]) == 1  # 1e-3 and 10 sit on the caps: out
    assert float(out["abs_rel"]) == 0.0


def _two_images_with_different_counts():
    # Image A: one valid pixel with abs_rel 1 (g 1, p 2). Image B: three valid pixels, exact.
    gt = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[1.0, 2.0], [3.0, 0.0]]]], dtype=torch.float64)
    pred = torch.tensor([[[[2.0, 7.0], [7.0, 7.0]]], [[[1.0, 2.0], [3.0, 7.0]]]], dtype=torch.float64)
    return pred, gt


def test_per_image_averaging_is_the_default_and_differs_from_pixel_pooling():
    pred, gt = _two_images_with_different_counts()
    default = DepthMetrics()
    default.update(pred, gt)
    per_image = default.compute()
    assert float(per_image["abs_rel"]) == pytest.approx((1 + 0) / 2)  # mean of per-image values
    assert float(per_image["delta1"]) == pytest.approx((0 + 1) / 2)
    assert float(per_image["rmse"]) == pytest.approx((1 + 0) / 2)  # mean of per-image rmse
    pooled = DepthMetrics(averaging="pixel")
    pooled.update(pred, gt)
    per_pixel = pooled.compute()
    assert float(per_pixel["abs_rel"]) == pytest.approx(1 / 4)  # all 4 valid pixels pooled
    assert float(per_pixel["delta1"]) == pytest.approx(3 / 4)
    assert float(per_pixel["rmse"]) == pytest.approx(math.sqrt(1 / 4))
    assert float(per_pixel["images"]) == 2


def test_image_without_valid_pixel_is_skipped_and_counted_never_nan():
    empty_gt = t([[0.0, NAN], [INF, 50.0]])  # nothing inside 1e-3..10
    per_image = depth_errors(t([[1.0, 1.0], [1.0, 1.0]]), empty_gt, max_depth=10.0)
    assert int(per_image["count"]) == 0 and math.isnan(float(per_image["abs_rel"]))  # functional: caller skips
    for averaging in ("image", "pixel"):
        metric = DepthMetrics(max_depth=10.0, averaging=averaging)
        metric.update(P2, G2)
        metric.update(t([[1.0, 1.0], [1.0, 1.0]]), empty_gt)
        out = metric.compute()
        assert float(out["skipped"]) == 1 and float(out["images"]) == 1
        check(out, EXPECTED_2X2)  # the empty image changed nothing, and nothing is NaN


def _numpy_reference(pred: np.ndarray, gt: np.ndarray, min_depth: float, max_depth: float) -> dict:
    """The public evaluation scripts' way: per image, mask, clamp, compute, then mean over images."""
    rows = []
    for p, g in zip(pred, gt):
        p = p.copy()
        p[np.isnan(p)] = min_depth
        p[p < min_depth] = min_depth
        p[p > max_depth] = max_depth
        valid = np.isfinite(g) & (g > min_depth) & (g < max_depth)
        if not valid.any():
            continue
        g, p = g[valid], p[valid]
        thresh = np.maximum(g / p, p / g)
        err = np.log(p) - np.log(g)
        rows.append({
            "abs_rel": np.mean(np.abs(g - p) / g), "sq_rel": np.mean((g - p) ** 2 / g),
            "rmse": np.sqrt(np.mean((g - p) ** 2)), "rmse_log": np.sqrt(np.mean((np.log(g) - np.log(p)) ** 2)),
            "delta1": np.mean(thresh < 1.25), "delta2": np.mean(thresh < 1.25**2), "delta3": np.mean(thresh < 1.25**3),
            "silog": np.sqrt(np.mean(err**2) - np.mean(err) ** 2) * 100,
            "log10": np.mean(np.abs(np.log10(g) - np.log10(p))),
        })
    return {name: np.mean([r[name] for r in rows]) for name in METRIC_NAMES}


def _random_batch(seed: int, n: int = 7, h: int = 6, w: int = 9):
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(n, 1, h, w, generator=g, dtype=torch.float64) * 12
    gt[torch.rand(n, 1, h, w, generator=g) < 0.3] = 0  # sparse, with different valid counts per image
    gt[2] = 0  # one image without any valid pixel
    gt[0, 0, 0, 0] = NAN
    pred = gt * torch.exp(0.3 * torch.randn(n, 1, h, w, generator=g, dtype=torch.float64)) + 0.2
    pred[1, 0, 1, 1] = INF
    return pred, gt


def test_streaming_over_batches_equals_functional_on_all_images_and_numpy():
    pred, gt = _random_batch(0)
    for averaging in ("image", "pixel"):
        metric = DepthMetrics(max_depth=10.0, averaging=averaging)
        for lo, hi in ((0, 3), (3, 4), (4, 4), (4, 7)):  # uneven batches, one empty
            metric.update(pred[lo:hi], gt[lo:hi])
        streamed, at_once = metric.compute(), depth_metrics(pred, gt, max_depth=10.0, averaging=averaging)
        for name in (*METRIC_NAMES, "images", "skipped"):
            assert float(streamed[name]) == pytest.approx(float(at_once[name]), rel=1e-12), name
        assert float(streamed["skipped"]) == 1 and float(streamed["images"]) == 6
    reference = _numpy_reference(pred.numpy()[:, 0], gt.numpy()[:, 0], 1e-3, 10.0)
    ours = depth_metrics(pred, gt, max_depth=10.0)
    for name in METRIC_NAMES:
        assert float(ours[name]) == pytest.approx(reference[name], rel=1e-9), name


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(0, 7), max_size=4))
def test_any_split_into_batches_gives_the_same_numbers(seed, cuts):
    pred, gt = _random_batch(seed)
    bounds = [0, *sorted(cuts), 7]
    metric = DepthMetrics(max_depth=10.0)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        metric.update(pred[lo:hi], gt[lo:hi])
    at_once = depth_metrics(pred, gt, max_depth=10.0)
    for name in METRIC_NAMES:
        assert float(metric.compute()[name]) == pytest.approx(float(at_once[name]), rel=1e-12)


def test_states_are_sums_that_merge_like_ranks():
    """What DDP does at compute(): states of two 'ranks' summed equal one metric over everything."""
    pred, gt = _random_batch(1)
    rank0, rank1, single = DepthMetrics(max_depth=10.0), DepthMetrics(max_depth=10.0), DepthMetrics(max_depth=10.0)
    rank0.update(pred[0::2], gt[0::2])
    rank1.update(pred[1::2], gt[1::2])
    single.update(pred, gt)
    for name, reduce in rank0._reductions.items():
        assert reduce.__name__ == "dim_zero_sum", name
        setattr(rank0, name, getattr(rank0, name) + getattr(rank1, name))
    for name in METRIC_NAMES:
        assert float(rank0.compute()[name]) == pytest.approx(float(single.compute()[name]), rel=1e-12)


def test_nothing_evaluated_gives_nan_not_zero():
    metric = DepthMetrics()
    metric.update(t([[1.0]]), t([[0.0]]))
    out = metric.compute()
    assert math.isnan(float(out["rmse"])) and float(out["skipped"]) == 1


def test_shape_and_argument_errors():
    with pytest.raises(ValueError, match="same shape"):
        depth_errors(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 4, 4))
    with pytest.raises(ValueError, match="min_depth"):
        depth_errors(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2), min_depth=0.0)
    with pytest.raises(ValueError, match="averaging"):
        DepthMetrics(averaging="batch")


def test_scale_ratio_summary_like_monodepth2():
    out = summarize_ratios(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert float(out["ratio_median"]) == pytest.approx(2.5)  # np.median: mean of the two middle values
    assert float(out["ratio_std"]) == pytest.approx(np.std(np.array([1, 2, 3, 4]) / 2.5))
    metric = ScaleRatios()
    metric.update(torch.tensor([1.0, 2.0]))
    metric.update(torch.zeros(0))
    metric.update(torch.tensor([3.0, 4.0]))
    assert float(metric.compute()["ratio_median"]) == pytest.approx(2.5)


# Exactness: the public scripts form max(g/p, p/g) with two true divisions, so a ratio of exactly
# 1.25 (frequent with depth quantised to 1/256 m or 1 mm) fails the strict "< 1.25".


def _two_rounding_ratio(p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The form depthlab used before: r = p * (1 / g), then max(r, 1 / r) (three roundings)."""
    r = p * (1 / g)
    return torch.maximum(r, 1 / r)


@pytest.mark.parametrize(
    "g_png, p_png, scale",
    [
        (1952, 2440, 256.0),  # KITTI: g = 7.625 m, p = 9.53125 m, p / g = 1.25 exactly
        (1500, 1200, 1000.0),  # NYU mm: g = 1.5 m, p = 1.2 m; float32 1.5 / 1.2 rounds to 1.25
    ],
)
def test_quantised_ratio_of_1_25_fails_delta1_as_in_the_public_code(g_png, p_png, scale):
    # As the loaders decode PNGs: uint16 -> float32 / scale.
    g = torch.tensor([[[[g_png]]]], dtype=torch.int32).float() / scale
    p = torch.tensor([[[[p_png]]]], dtype=torch.int32).float() / scale
    assert float(torch.maximum(g / p, p / g)) == 1.25  # NumPy's np.maximum(gt / pred, pred / gt)
    assert bool(_two_rounding_ratio(p, g) < 1.25)  # the case the old form got wrong
    out = depth_errors(p, g, max_depth=80.0)
    assert float(out["delta1"]) == 0.0 and float(out["delta2"]) == 1.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_delta1_is_zero_for_p_equal_0_8_g_and_1_25_g(dtype):
    # g = 5k / 256 m: 0.8 g = 4k / 256 and 1.25 g = 6.25k / 256 (k a multiple of 4) are exact too.
    k = torch.arange(4, 16000, 4, dtype=torch.float64)
    g = (5 * k / 256).to(dtype).view(1, 1, 1, -1)
    for p in ((4 * k / 256).to(dtype).view(1, 1, 1, -1), (6.25 * k / 256).to(dtype).view(1, 1, 1, -1)):
        out = depth_errors(p, g, max_depth=1e4)
        assert int(out["count"]) == k.numel()
        assert float(out["delta1"]) == 0.0 and float(out["delta2"]) == 1.0
    if dtype == torch.float32:  # some of these pass the two-rounding form: the test can fail
        assert bool((_two_rounding_ratio((4 * k / 256).float(), (5 * k / 256).float()) < 1.25).any())


def test_silog_of_a_scale_biased_float32_prediction_matches_float64():
    # e = ln p - ln g has mean ln 37 = 3.6 and std 1e-3: mean(e^2) - mean(e)^2 would cancel 7 digits.
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(3, 1, 40, 60, generator=g) * 79 + 1
    pred = 37 * gt * (1 + 1e-3 * torch.randn(gt.shape, generator=g))
    assert pred.dtype == torch.float32
    e = np.log(pred.double().numpy().reshape(3, -1)) - np.log(gt.double().numpy().reshape(3, -1))
    reference = 100 * np.sqrt(e.var(axis=1))  # NumPy's two-pass population variance, float64
    got = depth_errors(pred, gt)["silog"].numpy()
    np.testing.assert_allclose(got, reference, rtol=1e-9)
    np.testing.assert_allclose(float(depth_metrics(pred, gt)["silog"]), reference.mean(), rtol=1e-9)
    # Pooled pixels share no per-image mean: the one-pass float64 variance, still within 1e-6.
    pooled = float(depth_metrics(pred, gt, averaging="pixel")["silog"])
    assert pooled == pytest.approx(100 * np.sqrt(e.var()), rel=1e-6)
