"""depthlab.eval.protocols: published crops, caps, resizing, KB crop conventions, median scaling, flip TTA."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from depthlab.errors import ConfigError
from depthlab.eval import EvalProtocol, Predicted, build_protocol, crop_bounds, crop_mask, resize_prediction
from depthlab.eval.protocols import kb_window, median_scale, monodepth_post_process
from depthlab.metrics import DepthMetrics, depth_metrics
from depthlab.models.output import DepthOutput


def constant_net(value: float, calls: list | None = None):
    """A network predicting ``value`` metres everywhere at its input's size; records input sizes in ``calls``."""

    def net(image):
        if calls is not None:
            calls.append(tuple(image.shape[-2:]))
        return DepthOutput(torch.full((image.shape[0], 1, *image.shape[-2:]), value))

    return net


def published_mask(h: int, w: int, rows: slice, cols: slice) -> torch.Tensor:
    mask = np.zeros((h, w), dtype=bool)
    mask[rows, cols] = True
    return torch.from_numpy(mask)


@pytest.mark.parametrize(
    "crop, hw, rows, cols",
    [
        ("garg", (375, 1242), slice(153, 371), slice(44, 1197)),  # monodepth2 / BTS at KITTI's usual size
        ("eigen", (375, 1242), slice(124, 342), slice(44, 1197)),
        ("nyu", (480, 640), slice(45, 471), slice(41, 601)),  # BTS eval_mask[45:471, 41:601]
        ("none", (7, 9), slice(0, 7), slice(0, 9)),
    ],
)
def test_crops_select_exactly_the_published_rows_and_columns(crop, hw, rows, cols):
    assert torch.equal(crop_mask(crop, *hw), published_mask(*hw, rows, cols))


def test_kitti_crops_follow_the_fractions_at_other_kitti_sizes():
    # Truncation of fraction * size, as the published np.int32(...) does.
    for h, w in ((370, 1224), (374, 1238), (376, 1241)):
        assert crop_bounds("garg", h, w) == (
            int(0.40810811 * h), int(0.99189189 * h), int(0.03594771 * w), int(0.96405229 * w))
        assert crop_bounds("eigen", h, w) == (
            int(0.3324324 * h), int(0.91351351 * h), int(0.0359477 * w), int(0.96405229 * w))


def test_presets_caps_and_crops():
    nyu, kitti = build_protocol("nyu"), build_protocol("kitti")
    assert (nyu.min_depth, nyu.max_depth, nyu.crop) == (1e-3, 10.0, "nyu")
    assert (kitti.min_depth, kitti.max_depth, kitti.crop) == (1e-3, 80.0, "garg")
    none = build_protocol("none", min_depth=0.0, max_depth=20.0)
    assert (none.min_depth, none.max_depth, none.crop) == (1e-3, 20.0, "none")
    custom = build_protocol({"name": "kitti", "crop": "eigen", "kb_crop": True, "flip": "monodepth"})
    assert (custom.crop, custom.kb_crop, custom.flip, custom.max_depth) == ("eigen", True, "monodepth", 80.0)


def test_bad_protocols_are_config_errors_with_a_hint():
    with pytest.raises(ConfigError, match="did you mean 'kitti'"):
        build_protocol("kitty")
    with pytest.raises(ConfigError, match="did you mean 'median_scaling'"):
        build_protocol({"name": "kitti", "median_scale": True})
    with pytest.raises(ConfigError, match="crop"):
        build_protocol({"name": "nyu", "crop": "center"})
    with pytest.raises(ConfigError, match="flip"):
        build_protocol({"name": "nyu", "flip": "vertical"})
    with pytest.raises(ConfigError, match="resize"):
        build_protocol({"name": "kitti", "resize": "disparity"})
    with pytest.raises(ConfigError, match="crop_frame"):
        build_protocol({"name": "kitti", "kb_crop": True, "crop_frame": "window"})
    with pytest.raises(ConfigError, match="crop_frame: kb_window .* kb_crop: true"):
        build_protocol({"name": "kitti", "crop_frame": "kb_window"})


def test_prepare_masks_caps_crop_invalid_and_nonfinite():
    gt = torch.full((1, 1, 480, 640), 5.0)
    gt[..., 100, 100] = 0.0
    gt[..., 101, 100] = math.nan
    gt[..., 102, 100] = math.inf
    gt[..., 103, 100] = 10.0  # on the cap: out (strict)
    gt[..., 104, 100] = 12.0
    valid = torch.ones_like(gt, dtype=torch.bool)
    valid[..., 105, 100] = False
    ev = build_protocol("nyu").prepare(torch.full_like(gt, 5.0), gt, valid)
    expected = crop_mask("nyu", 480, 640)[None, None].clone()
    expected[..., 100:106, 100] = False
    assert torch.equal(ev.mask, expected)


def test_prediction_is_resized_bilinearly_to_the_ground_truth():
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    up = resize_prediction(pred, (3, 3), align_corners=True)
    assert torch.allclose(up[0, 0], torch.tensor([[1.0, 1.5, 2.0], [2.0, 2.5, 3.0], [3.0, 3.5, 4.0]]))
    gt = torch.full((1, 1, 6, 8), 2.0)
    ev = build_protocol("none").prepare(torch.full((1, 1, 3, 4), 2.0), gt)
    assert ev.pred.shape == gt.shape
    assert float(depth_metrics(ev.pred, ev.gt, ev.mask)["abs_rel"]) == 0.0


def test_resize_of_inverse_depth_by_hand():
    pred = torch.tensor([[[[1.0, 4.0]]]])  # depths 1 and 4 m: inverse depths 1 and 0.25
    # The middle column lies halfway (align_corners=True): depth (1 + 4) / 2 = 2.5, or
    # inverse depth (1 + 0.25) / 2 = 0.625, i.e. 1.6 m.
    as_depth = resize_prediction(pred, (1, 3), inverse=False, align_corners=True)
    as_inverse = resize_prediction(pred, (1, 3), inverse=True, align_corners=True)
    assert torch.allclose(as_depth, torch.tensor([[[[1.0, 2.5, 4.0]]]]))
    assert torch.allclose(as_inverse, torch.tensor([[[[1.0, 1.6, 4.0]]]]))
    # align_corners=False (cv2.resize), 2 -> 4 columns: output column j samples input position
    # j / 2 - 0.25 = -0.25, 0.25, 0.75, 1.25, clamped to [0, 1]: weights 0, 0.25, 0.75, 1 on the right.
    cv2_like = resize_prediction(pred, (1, 4), inverse=True, align_corners=False)
    inverse = torch.tensor([1.0, 1 - 0.25 * 0.75, 1 - 0.75 * 0.75, 0.25])
    assert torch.allclose(cv2_like[0, 0, 0], 1 / inverse)


@pytest.mark.parametrize(
    "resize, predicts_inverse_depth, middle",
    [("auto", False, 2.5), ("auto", True, 1.6), ("depth", True, 2.5), ("inverse_depth", False, 1.6)],
)
def test_resize_option_picks_what_is_interpolated(resize, predicts_inverse_depth, middle):
    protocol = build_protocol({"name": "none", "resize": resize, "max_depth": 10.0})
    assert protocol.resizes_inverse_depth(predicts_inverse_depth) == (middle == 1.6)
    ev = protocol.prepare(torch.tensor([[[[1.0, 4.0]]]]), torch.ones(1, 1, 1, 3), None, None, predicts_inverse_depth)
    assert float(ev.pred[0, 0, 0, 1]) == pytest.approx(middle)


def test_predict_runs_the_network_once_per_view_and_returns_the_plain_forward():
    outputs = []

    def net(image):
        outputs.append(DepthOutput(torch.full((image.shape[0], 1, *image.shape[-2:]), 3.0)))
        return outputs[-1]

    image = torch.rand(2, 3, 4, 6)
    plain = build_protocol("none").predict(net, image, (8, 12))
    assert isinstance(plain, Predicted) and len(outputs) == 1
    assert plain.out is outputs[0] and plain.depth is outputs[0].depth  # at the network's resolution
    assert plain.window is None and plain.predicts_inverse_depth is False
    flipped = build_protocol({"name": "none", "flip": "mean"}).predict(net, image, (8, 12))
    assert len(outputs) == 3 and flipped.out is outputs[1]  # the un-flipped forward comes first


def test_predicts_inverse_depth_comes_from_the_network_output():
    def net(image):
        inverse = torch.full((image.shape[0], 1, *image.shape[-2:]), 0.5)
        return DepthOutput(1 / inverse, inverse_depth=inverse)

    p = build_protocol("none").predict(net, torch.rand(1, 3, 2, 2), (2, 2))
    assert p.predicts_inverse_depth is True


def test_kb_crop_runs_the_net_on_the_window_and_pastes_back_as_bts():
    seen = []
    net = constant_net(7.0, seen)
    protocol = build_protocol({"name": "kitti", "kb_crop": True})
    assert kb_window(375, 1242) == (23, 13)
    predicted = protocol.predict(net, torch.rand(2, 3, 375, 1242), (375, 1242))
    assert seen == [(352, 1216)]
    assert predicted.window == (23, 13, 352, 1216) and predicted.out.depth.shape[-2:] == (352, 1216)
    pred = predicted.depth
    window = torch.zeros(375, 1242, dtype=torch.bool)
    window[23:375, 13:1229] = True
    assert torch.equal(pred[0, 0] == 7.0, window) and bool((pred[0, 0][~window] == 0).all())
    # The Garg crop lies inside the window, so the zero frame never enters the metrics.
    assert bool(window[crop_mask("garg", 375, 1242)].all())
    gt = torch.full((2, 1, 375, 1242), 7.0)
    ev = protocol.prepare(pred, gt)
    assert float(depth_metrics(ev.pred, ev.gt, ev.mask, max_depth=80.0)["abs_rel"]) == 0.0
    # Without a Garg/Eigen crop the zero frame counts, clamped to min_depth, as in BTS.
    no_crop = EvalProtocol(name="kitti", max_depth=80.0, kb_crop=True)
    out = depth_metrics(*no_crop.prepare(pred, gt)[:3], max_depth=80.0)
    outside = (~window).sum().item() / window.numel()
    assert float(out["delta1"]) == pytest.approx(1 - outside)


def test_kb_window_paste_resizes_a_low_resolution_prediction_to_the_window():
    def net(image):  # half resolution, depth 2 m in the left half of the window and 4 m in the right
        b, _, h, w = image.shape
        depth = torch.full((b, 1, h // 2, w // 2), 2.0)
        depth[..., w // 4 :] = 4.0
        return DepthOutput(depth, inverse_depth=1 / depth)

    image = torch.rand(1, 3, 375, 1242)
    # align_corners=False doubling: output column 607 samples input column 607 / 2 - 0.25 = 303.25,
    # a quarter of the way from the last 2 m column (303) to the first 4 m one (304).
    for resize, expected in (("depth", 0.75 * 2 + 0.25 * 4), ("inverse_depth", 1 / (0.75 / 2 + 0.25 / 4))):
        protocol = build_protocol({"name": "kitti", "kb_crop": True, "resize": resize, "align_corners": False})
        canvas = protocol.predict(net, image, (375, 1242)).depth
        assert bool((canvas[..., :23, :] == 0).all())  # zero frame above the window
        row = canvas[0, 0, 100, 13 : 13 + 1216]
        assert float(row[0]) == 2.0 and float(row[-1]) == 4.0
        assert float(row[607]) == pytest.approx(expected)


def test_kb_crop_needs_a_full_size_frame_and_the_ground_truth_frame():
    protocol = build_protocol({"name": "kitti", "kb_crop": True})
    with pytest.raises(ConfigError, match="352x1216"):
        protocol.predict(constant_net(1.0), torch.rand(1, 3, 32, 48), (32, 48))
    with pytest.raises(ValueError, match="gt_hw"):
        protocol.predict(constant_net(1.0), torch.rand(1, 3, 375, 1242), (376, 1242))


@pytest.mark.parametrize("crop", ["garg", "eigen"])
def test_kb_window_convention_takes_the_crop_fractions_of_the_window_as_adabins(crop):
    """AdaBins/ZoeDepth: ground truth cut to the window, Garg/Eigen fractions of 352x1216."""
    protocol = build_protocol({"name": "kitti", "crop": crop, "kb_crop": True, "crop_frame": "kb_window"})
    predicted = protocol.predict(constant_net(7.0), torch.rand(1, 3, 375, 1242), (375, 1242))
    assert predicted.depth.shape[-2:] == (352, 1216) and predicted.window == (23, 13, 352, 1216)
    gt = torch.full((1, 1, 375, 1242), 7.0)
    gt[..., :23, :] = 0.0  # outside the window: not in the window's frame at all
    ev = protocol.prepare(predicted.depth, gt)
    assert ev.gt.shape[-2:] == (352, 1216) and bool((ev.gt == 7.0).all())
    assert torch.equal(ev.mask[0, 0], crop_mask(crop, 352, 1216))
    # Rows: Garg int(0.40810811 * 352) = 143 .. int(0.99189189 * 352) = 349, not the full frame's 153 - 23 = 130 .. 348.
    r0, r1, c0, c1 = crop_bounds(crop, 352, 1216)
    f0, f1, g0, g1 = crop_bounds(crop, 375, 1242)
    assert (r0, r1) != (f0 - 23, f1 - 23)
    # A sample already cut to the window gives the same mask, with or without its window (no warning).
    cut = gt[..., 23:, 13:1229]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for window in (None, (23, 13, 375, 1242)):
            again = protocol.prepare(predicted.depth, cut, None, window)
            assert torch.equal(again.mask, ev.mask) and torch.equal(again.gt, ev.gt)
    # A full frame that carries its (0, 0, H, W) window is cut the same way.
    assert torch.equal(protocol.prepare(predicted.depth, gt, None, (0, 0, 375, 1242)).mask, ev.mask)
    with pytest.raises(ValueError, match="KB window"):  # a window of the frame that is not the KB window
        protocol.prepare(predicted.depth, cut, None, (23, 0, 375, 1242))
    assert "KB crop, crop of the window" in protocol.describe()
    # The two conventions select different pixels (the 0.2-1 % of the abstract).
    full = build_protocol({"name": "kitti", "crop": crop, "kb_crop": True})
    bts = full.prepare(full.predict(constant_net(7.0), torch.rand(1, 3, 375, 1242), (375, 1242)).depth, gt)
    assert int(bts.mask.sum()) != int(ev.mask.sum())


def test_median_scaling_per_image_with_numpy_medians_and_clamp_after():
    gt = torch.tensor([[[[5.0, 5.0, 5.0, 5.0]]], [[[1.0, 2.0, 3.0, 0.0]]]])
    pred = torch.tensor([[[[1.0, 2.0, 3.0, 4.0]]], [[[2.0, 4.0, 6.0, 99.0]]]])
    protocol = EvalProtocol(max_depth=10.0, median_scaling=True)
    ev = protocol.prepare(pred, gt)
    # image 0: median(p) = 2.5 (mean of the middle two, np.median), ratio 5 / 2.5 = 2
    # image 1: the pixel without ground truth is not in the median: ratio 2 / 4 = 0.5
    assert torch.allclose(ev.ratios, torch.tensor([2.0, 0.5], dtype=torch.float64))
    assert torch.allclose(ev.pred[0], torch.tensor([2.0, 4.0, 6.0, 8.0]).view(1, 1, 4))
    assert torch.allclose(ev.pred[1, 0, 0, :3], gt[1, 0, 0, :3])
    # scaled 8 is compared with 5 as is (no clamp needed); a scaled value > max is clamped by the metric
    out = depth_metrics(ev.pred, ev.gt, ev.mask, max_depth=10.0)
    assert float(out["abs_rel"]) == pytest.approx(((3 + 1 + 1 + 3) / 5 / 4 + 0) / 2)


def test_median_scale_skips_images_without_valid_pixels():
    pred = torch.ones(2, 1, 2, 2)
    mask = torch.zeros(2, 1, 2, 2, dtype=torch.bool)
    mask[0] = True
    scaled, ratios = median_scale(pred, torch.full_like(pred, 3.0), mask)
    assert ratios.tolist() == [3.0] and torch.equal(scaled[1], pred[1])


def test_flip_mean_averages_the_unflipped_prediction_of_the_flipped_image():
    def net(image):  # depth = 1 + column index / (w - 1): sees the flip
        w = image.shape[-1]
        depth = (1 + torch.arange(w, dtype=image.dtype) / (w - 1)).expand(image.shape[0], 1, image.shape[-2], w)
        return DepthOutput(depth)

    image = torch.zeros(1, 3, 2, 5)
    pred = build_protocol({"name": "none", "flip": "mean"}).predict(net, image, (2, 5))
    assert torch.allclose(pred.depth, torch.full((1, 1, 2, 5), 1.5))
    assert torch.equal(pred.out.depth, net(image).depth)  # out: the plain forward, not the merged one


def test_monodepth_post_process_weights():
    w = 41
    l = torch.full((1, 1, 1, w), 1.0)
    r = torch.full((1, 1, 1, w), 3.0)
    out = monodepth_post_process(l, r)[0, 0, 0]
    x = np.linspace(0, 1, w)
    lw = 1 - np.clip(20 * (x - 0.05), 0, 1)  # L(x); R(x) = L(1 - x)
    rw = lw[::-1]
    assert np.allclose(out.numpy(), rw * 1 + lw * 3 + (1 - lw - rw) * 2)
    assert out[0] == 3.0 and out[-1] == 1.0 and out[w // 2] == 2.0  # edges from the other view, mean inside


def test_flip_monodepth_works_on_the_networks_inverse_depth():
    protocol = build_protocol({"name": "none", "flip": "monodepth"})
    pred = protocol.predict(constant_net(2.0), torch.zeros(1, 3, 4, 9), (4, 9))
    assert torch.allclose(pred.depth, torch.full((1, 1, 4, 9), 2.0))

    def net(image):  # inverse depth 1 on the left half, 0.25 on the right: post-processing mixes inverses
        inverse = torch.ones(image.shape[0], 1, *image.shape[-2:])
        inverse[..., image.shape[-1] // 2 :] = 0.25
        return DepthOutput(1 / inverse, inverse_depth=inverse)

    pred = protocol.predict(net, torch.zeros(1, 3, 1, 41), (1, 41))
    l = net(torch.zeros(1, 3, 1, 41)).inverse_depth
    expected = 1 / monodepth_post_process(l, l.flip(-1))  # the flipped image's prediction, flipped back
    assert torch.allclose(pred.depth, expected)
    # column 10 (x = 0.25) is in the middle, where the two views are averaged: inverse depths 1 and
    # 0.25 (column 30 flipped back), i.e. 1 / 0.625 = 1.6 m, not the mean depth 2.5 m
    assert float(pred.depth[0, 0, 0, 10]) == pytest.approx(1.6)


def test_protocol_feeds_depth_metrics_end_to_end():
    gt = torch.full((1, 1, 375, 1242), 20.0)
    gt[..., 0, 0] = 90.0  # above the 80 m cap, outside the crop too
    pred = torch.full((1, 1, 188, 621), 25.0)  # half resolution, resized to the gt
    protocol = build_protocol("kitti")
    ev = protocol.prepare(pred, gt)
    metric = DepthMetrics(protocol.min_depth, protocol.max_depth, protocol.averaging)
    metric.update(ev.pred, ev.gt, ev.mask)
    out = metric.compute()
    assert float(out["abs_rel"]) == pytest.approx(0.25, rel=1e-6)
    assert float(out["delta1"]) == 0.0 and float(out["delta2"]) == 1.0  # ratio exactly 1.25: strict


def test_garg_crop_on_a_kb_cropped_ground_truth_warns():
    gt = torch.full((1, 1, 352, 1216), 5.0)
    with pytest.warns(UserWarning, match="KB-cropped"):
        build_protocol("kitti").prepare(gt.clone(), gt)


@pytest.mark.parametrize("crop", ["garg", "eigen"])
def test_kb_cropped_ground_truth_with_its_window_gives_the_full_frame_numbers(crop):
    """A KB-cropped sample that carries crop_offset/full_size scores exactly as the full frame."""
    g = torch.Generator().manual_seed(0)
    full_gt = torch.rand(1, 1, 375, 1242, generator=g) * 70 + 2
    full_gt[torch.rand(full_gt.shape, generator=g) < 0.8] = 0  # sparse, as LiDAR
    full_pred = torch.rand(1, 1, 375, 1242, generator=g) * 70 + 2
    top, left = kb_window(375, 1242)
    win = (slice(None), slice(None), slice(top, top + 352), slice(left, left + 1216))
    protocol = build_protocol({"name": "kitti", "crop": crop})

    ref = protocol.prepare(full_pred, full_gt)
    got = protocol.prepare(full_pred[win], full_gt[win], window=(top, left, 375, 1242))
    assert int(got.mask.sum()) == int(ref.mask.sum()) > 0  # the published crop lies inside the window
    want, have = depth_metrics(ref.pred, ref.gt, ref.mask), depth_metrics(got.pred, got.gt, got.mask)
    for name in want:
        torch.testing.assert_close(have[name], want[name])
    # Without the window the crop fractions would be applied to the 352x1216 frame: other pixels.
    with pytest.warns(UserWarning, match="crop_offset"):
        wrong = protocol.prepare(full_pred[win], full_gt[win])
    assert not torch.equal(wrong.mask, got.mask)
    with pytest.raises(ValueError, match="window"):
        protocol.prepare(full_pred[win], full_gt[win], window=(30, left, 375, 1242))


def test_input_size_feeds_the_network_a_resized_image_and_scores_at_ground_truth_size():
    seen = []

    def net(image):
        seen.append(tuple(image.shape))
        return DepthOutput(depth=1.0 + image.mean(1, keepdim=True))

    protocol = build_protocol({"name": "none", "input_size": [8, 10]}, min_depth=0.1, max_depth=10.0)
    image = torch.rand(2, 3, 20, 30)
    gt = torch.full((2, 1, 20, 30), 1.5)
    p = protocol.predict(net, image, gt.shape[-2:])
    assert seen == [(2, 3, 8, 10)] and p.depth.shape == (2, 1, 8, 10)
    small = torch.nn.functional.interpolate(image, size=(8, 10), mode="bilinear", align_corners=False, antialias=True)
    assert torch.allclose(p.depth, 1.0 + small.mean(1, keepdim=True))
    ev = protocol.prepare(p.depth, gt, None, None, p.predicts_inverse_depth)
    assert ev.pred.shape == gt.shape
    assert "network input 8x10" in protocol.describe()
    with pytest.raises(ConfigError, match="input_size"):
        build_protocol({"name": "none", "input_size": [8]})
