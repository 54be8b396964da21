"""Per-image least-squares alignment (EvalProtocol align: scale_shift) and prediction kinds:
exact on affine predictions, hand-checked at the clamp and at a degenerate fit, equal to a
general least-squares solver, and a relative prediction refused without alignment."""

from __future__ import annotations

import pytest
import torch

from depthlab.errors import ConfigError
from depthlab.eval import build_protocol
from depthlab.eval.protocols import align_scale_shift, scale_shift_fit
from depthlab.metrics import depth_metrics
from depthlab.models.output import DepthOutput


def _gt(seed: int = 0, shape=(2, 1, 24, 32), lo=0.5, hi=9.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    gt = lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float64)
    gt[:, :, :3] = 0  # holes
    return gt.float()


def _score(protocol, pred, gt, kind):
    ev = protocol.prepare(pred, gt, gt > 0, kind=kind)
    return depth_metrics(ev.pred, ev.gt, ev.mask, protocol.min_depth, protocol.max_depth), ev


def test_affine_inverse_depth_is_exact_after_scale_shift_and_scored_as_is_without():
    gt = _gt()
    pred = 3.7 / gt.clamp_min(1e-3) + 0.2  # an exact affine function of the ground truth's inverse depth
    aligned = build_protocol({"name": "nyu", "align": "scale_shift"})
    values, ev = _score(aligned, pred, gt, "relative_inverse_depth")
    assert float(values["abs_rel"]) < 1e-6 and float(values["delta1"]) == 1.0
    assert ev.ratios.tolist() == pytest.approx([1 / 3.7, 1 / 3.7], rel=1e-6)  # the fitted scales (float32 input)
    # The same map read as metric inverse depth (1/m) without alignment: scored as it is, 1 / pred.
    plain = build_protocol("nyu")
    values, _ = _score(plain, pred, gt, "inverse_depth")
    mask = (gt > 1e-3) & (gt < 10)
    mask[..., :45 * 24 // 480, :] = False  # the NYU crop scaled to 24x32 (rows 2..23, cols 2..28)
    region = torch.zeros_like(mask)
    region[..., 45 * 24 // 480 : 471 * 24 // 480, 41 * 32 // 640 : 601 * 32 // 640] = True
    want = depth_metrics((1 / pred).clamp(1e-3, 10), gt, mask & region, 1e-3, 10.0)
    assert float(values["abs_rel"]) == pytest.approx(float(want["abs_rel"]), rel=1e-6)
    assert float(values["abs_rel"]) > 0.5


def test_affine_depth_is_exact_in_depth_space_and_median_only_fixes_scale():
    gt = _gt(1)
    pred = 0.25 * gt + 1.5
    values, _ = _score(build_protocol({"name": "nyu", "align": "scale_shift", "align_space": "depth"}), pred, gt,
                       "relative_depth")
    assert float(values["abs_rel"]) < 1e-6
    values, _ = _score(build_protocol({"name": "nyu", "align": "median"}), pred, gt, "relative_depth")
    assert float(values["abs_rel"]) > 0.05  # a shift is not a scale


def test_normal_equations_equal_a_general_least_squares_solver():
    g = torch.Generator().manual_seed(2)
    pred = torch.rand(3, 1, 9, 11, generator=g, dtype=torch.float64)
    target = 2 * pred - 0.3 + 0.1 * torch.randn(pred.shape, generator=g, dtype=torch.float64)
    mask = torch.rand(pred.shape, generator=g) > 0.3
    pred[~mask] = float("nan")  # what is stored at masked pixels does not matter
    s, t = scale_shift_fit(pred, target, mask)
    for i in range(3):
        m = mask[i, 0]
        a = torch.stack([pred[i, 0][m], torch.ones(int(m.sum()), dtype=torch.float64)], dim=1)
        want = torch.linalg.lstsq(a, target[i, 0][m][:, None]).solution[:, 0]
        assert float(s[i]) == pytest.approx(float(want[0]), rel=1e-10)
        assert float(t[i]) == pytest.approx(float(want[1]), rel=1e-10)


def test_clamp_at_one_over_max_depth_and_the_degenerate_fit_by_hand():
    # Two valid pixels: gt 1 m and 2 m (inverse 1 and 0.5), prediction 0 and 1 -> s = -0.5, t = 1:
    # a third pixel predicted at 4 aligns to -1 (1/m), clamped at 1/max_depth = 0.1 -> 10 m.
    gt = torch.tensor([[[[1.0, 2.0, 0.0]]]])
    pred = torch.tensor([[[[0.0, 1.0, 4.0]]]])
    depth, scales = align_scale_shift(pred, gt, gt > 0, "inverse_depth", "relative_inverse_depth", max_depth=10.0)
    assert depth[0, 0, 0].tolist() == pytest.approx([1.0, 2.0, 10.0])
    assert scales.tolist() == pytest.approx([-0.5])
    # A constant prediction: det = 0, MiDaS leaves s = t = 0, so everything lands at max_depth.
    depth, scales = align_scale_shift(torch.ones(1, 1, 1, 3), gt, gt > 0, "inverse_depth", "relative_inverse_depth", 10.0)
    assert depth.flatten().tolist() == [10.0, 10.0, 10.0] and scales.tolist() == [0.0]


def test_relative_predictions_need_alignment_one_line_each():
    gt = _gt(3)
    with pytest.raises(ConfigError, match=r"relative inverse depth .* align: none; set model.eval_protocol.align: scale_shift") as exc:
        build_protocol("nyu").prepare(1 / gt.clamp_min(1), gt, kind="relative_inverse_depth")
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="align: median"):
        build_protocol({"name": "nyu", "median_scaling": True}).prepare(gt, gt, kind="relative_inverse_depth")
    with pytest.raises(ConfigError, match="align_space: depth fits depth"):
        build_protocol({"name": "nyu", "align": "scale_shift", "align_space": "depth"}).prepare(
            gt, gt, kind="relative_inverse_depth")
    with pytest.raises(ConfigError, match="relative depth"):
        build_protocol("nyu").prepare(gt, gt, kind="relative_depth")
    with pytest.raises(ConfigError, match="prediction kind"):
        build_protocol("nyu").prepare(gt, gt, kind="disparity")


def test_align_settings_validated_and_median_scaling_is_align_median():
    assert build_protocol({"name": "kitti", "median_scaling": True}) == build_protocol({"name": "kitti", "align": "median"})
    assert build_protocol({"name": "kitti", "align": "median"}).median_scaling is True
    with pytest.raises(ConfigError, match="two alignments"):
        build_protocol({"name": "kitti", "median_scaling": True, "align": "scale_shift"})
    with pytest.raises(ConfigError, match="align: expected none, median or scale_shift"):
        build_protocol({"name": "kitti", "align": "affine"})
    with pytest.raises(ConfigError, match="align_space"):
        build_protocol({"name": "kitti", "align": "scale_shift", "align_space": "log"})
    text = build_protocol({"name": "nyu", "align": "scale_shift"}).describe()
    assert "least-squares scale and shift in inverse depth" in text


def test_protocol_predict_keeps_a_relative_network_relative_through_flip_and_kb_crop():
    gt = _gt(4, shape=(1, 1, 375, 1242), lo=3, hi=70)

    def net(image):  # relative inverse depth read from the image, exact up to 2x + 0.1
        return DepthOutput(None, relative_inverse_depth=2.0 / (image[:, :1] * 100).clamp_min(1e-3) + 0.1)

    image = (gt.clamp_min(3) / 100).expand(1, 3, 375, 1242).clone()
    for options in ({"flip": "mean"}, {"flip": "monodepth"}, {"kb_crop": True, "crop_frame": "kb_window"}):
        protocol = build_protocol({"name": "kitti", "align": "scale_shift", **options})
        p = protocol.predict(net, image, gt.shape[-2:])
        assert p.kind == "relative_inverse_depth" and p.out.depth is None
        ev = protocol.prepare(p.depth, gt, gt > 0, None, p.predicts_inverse_depth, p.kind)
        values = depth_metrics(ev.pred, ev.gt, ev.mask, 1e-3, 80.0)
        assert float(values["abs_rel"]) < 1e-5, options
