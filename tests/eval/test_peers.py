"""depthlab's protocols and metrics against the published evaluation scripts, restated in NumPy/OpenCV.

Each ``*_script`` function below restates, from the paper's public evaluation script (named in its
docstring), what that script does to one image, in the script's own arithmetic: float32 NumPy
arrays, OpenCV's resize where monodepth2 uses it, torch's interpolate where AdaBins/ZoeDepth use it,
each metric per image then the mean over images. They are written from the formulas, not copied.

The data imitate the benchmarks' files: KITTI ground truth as uint16 PNG values / 256 m (sparse,
375x1242, some returns beyond the 80 m cap), NYU as uint16 millimetres (480x640, holes, some beyond
10 m). A seeded "network" reads the scene from its input image, so its predictions correlate with
the ground truth the way a trained network's do (delta1 well inside (0, 1)) while every protocol
step (KB window, flip, resize) changes what it sees. depthlab must agree to 1e-6 relative.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from depthlab.eval import build_protocol
from depthlab.metrics import METRIC_NAMES, depth_metrics, summarize_ratios
from depthlab.models.output import DepthOutput

KITTI_HW, NYU_HW, KB_HW = (375, 1242), (480, 640), (352, 1216)
GARG = (0.40810811, 0.99189189, 0.03594771, 0.96405229)  # rows (h), rows (h), cols (w), cols (w)
EIGEN = (0.3324324, 0.91351351, 0.0359477, 0.96405229)
MONODEPTH2_METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")


# ---- the scripts' arithmetic, restated ------------------------------------------------------------


def errors_script(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The nine metrics of one image's valid pixels as BTS/AdaBins/ZoeDepth ``compute_errors`` form them.

    NumPy in the arrays' own precision: two true divisions for the delta ratio, log errors as
    differences of logs, np.mean (pairwise float32 sums for float32 input).
    """
    ratio = np.maximum(gt / pred, pred / gt)
    log_error = np.log(pred) - np.log(gt)
    out = {
        "abs_rel": np.mean(np.abs(gt - pred) / gt),
        "sq_rel": np.mean((gt - pred) ** 2 / gt),
        "rmse": np.sqrt(np.mean((gt - pred) ** 2)),
        "rmse_log": np.sqrt(np.mean((np.log(gt) - np.log(pred)) ** 2)),
        "silog": 100 * np.sqrt(np.mean(log_error**2) - np.mean(log_error) ** 2),
        "log10": np.mean(np.abs(np.log10(pred) - np.log10(gt))),
    }
    for k in (1, 2, 3):
        out[f"delta{k}"] = np.mean(ratio < 1.25**k)
    return out


def mean_over_images(rows: list[dict[str, float]], names=METRIC_NAMES) -> dict[str, float]:
    """Each metric stored per image as float32 (the scripts' np.zeros(n, np.float32)), then averaged."""
    return {name: float(np.array([row[name] for row in rows], dtype=np.float32).mean()) for name in names}


def clamp_script(pred: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The scripts' four assignments: < lo -> lo, > hi -> hi, inf -> hi, NaN -> lo."""
    pred = pred.copy()
    pred[pred < lo] = lo
    pred[pred > hi] = hi
    pred[np.isinf(pred)] = hi
    pred[np.isnan(pred)] = lo
    return pred


def fraction_region(shape: tuple[int, int], fractions: tuple[float, ...]) -> np.ndarray:
    """Garg/Eigen region: int() of each fraction times the height or width of ``shape``."""
    h, w = shape
    region = np.zeros(shape, dtype=bool)
    region[int(fractions[0] * h) : int(fractions[1] * h), int(fractions[2] * w) : int(fractions[3] * w)] = True
    return region


def nyu_region() -> np.ndarray:
    region = np.zeros(NYU_HW, dtype=bool)
    region[45:471, 41:601] = True  # Eigen crop of the 480x640 frame, rows 45..470, cols 41..600
    return region


def bts_script(window_preds, gts, fractions, max_depth=80.0):
    """BTS ``bts_eval.py`` on KITTI with ``--do_kb_crop``: the 352x1216 prediction is pasted at
    (H - 352, (W - 1216) / 2) into a zero frame, clamped, and the crop fractions are taken of the full frame."""
    rows = []
    for pred, gt in zip(window_preds, gts):
        h, w = gt.shape
        top, left = h - 352, int((w - 1216) / 2)
        full = np.zeros((h, w), dtype=np.float32)
        full[top : top + 352, left : left + 1216] = pred
        full = clamp_script(full, 1e-3, max_depth)
        keep = (gt > 1e-3) & (gt < max_depth) & fraction_region(gt.shape, fractions)
        rows.append(errors_script(gt[keep], full[keep]))
    return mean_over_images(rows)


def adabins_script(window_gts, net_preds, net_preds_of_flipped, fractions, max_depth=80.0):
    """AdaBins ``evaluate.py`` / ZoeDepth ``evaluate.py`` + ``compute_metrics`` on KITTI.

    The loader has cut the ground truth to the 352x1216 KB window; the two views' depths (the
    flipped one flipped back) are averaged, resized with torch's bilinear ``align_corners=True``,
    clamped, and the crop fractions are taken of the window's own height and width. (AdaBins
    also clips each view to the training range first; the network here stays inside it.)
    """
    rows = []
    for gt, plain, flipped in zip(window_gts, net_preds, net_preds_of_flipped):
        mean = 0.5 * (plain + flipped[:, ::-1])
        mean = torch.from_numpy(mean.copy())[None, None]
        resized = F.interpolate(mean, gt.shape, mode="bilinear", align_corners=True)
        pred = clamp_script(resized[0, 0].numpy(), 1e-3, max_depth)
        keep = (gt > 1e-3) & (gt < max_depth) & fraction_region(gt.shape, fractions)
        rows.append(errors_script(gt[keep], pred[keep]))
    return mean_over_images(rows)


def zoedepth_nyu_script(gts, net_preds, net_preds_of_flipped):
    """ZoeDepth on NYU: flip mean, bilinear ``align_corners=True`` to 480x640, caps 1e-3..10, Eigen crop."""
    rows = []
    for gt, plain, flipped in zip(gts, net_preds, net_preds_of_flipped):
        mean = 0.5 * (plain + flipped[:, ::-1])
        mean = torch.from_numpy(mean.copy())[None, None]
        resized = F.interpolate(mean, gt.shape, mode="bilinear", align_corners=True)
        pred = clamp_script(resized[0, 0].numpy(), 1e-3, 10.0)
        keep = (gt > 1e-3) & (gt < 10.0) & nyu_region()
        rows.append(errors_script(gt[keep], pred[keep]))
    return mean_over_images(rows)


def monodepth_post_process_script(l: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Monodepth's disparity post-processing (Godard et al. 2017) on (h, w) maps, weights in float64.

    With x in [0, 1] over the columns, L(x) = 1 - clip(20 (x - 0.05), 0, 1) and R(x) = L(1 - x):
    R l + L r + (1 - L - R) (l + r) / 2.
    """
    x = np.linspace(0, 1, l.shape[-1])
    weight_l = 1.0 - np.clip(20 * (x - 0.05), 0, 1)
    weight_r = weight_l[::-1]
    return weight_r * l + weight_l * r + (1.0 - weight_l - weight_r) * 0.5 * (l + r)


def monodepth2_script(disps, gts, scale_factor: float, median_scaling: bool):
    """monodepth2 ``evaluate_depth.py`` on the Eigen split: ``cv2.resize`` of the disparity to the
    ground truth (bilinear, half-pixel centres), depth = 1 / disparity, caps 1e-3..80 and Garg crop
    on the ground truth, scale factor, per-image median scaling, clamp, seven metrics."""
    rows, ratios = [], []
    for disp, gt in zip(disps, gts):
        h, w = gt.shape
        depth = 1 / cv2.resize(disp, (w, h))  # OpenCV's size is (width, height)
        bounds = (np.array(GARG) * np.array([h, h, w, w])).astype(np.int32)
        region = np.zeros(gt.shape, dtype=bool)
        region[bounds[0] : bounds[1], bounds[2] : bounds[3]] = True
        keep = (gt > 1e-3) & (gt < 80) & region
        p, g = depth[keep] * scale_factor, gt[keep]
        if median_scaling:
            ratio = np.median(g) / np.median(p)
            ratios.append(ratio)
            p = p * ratio
        p = np.clip(p, 1e-3, 80)
        rows.append(errors_script(g, p))
    ratios = np.array(ratios)
    summary = {}
    if median_scaling:
        summary = {"ratio_median": np.median(ratios), "ratio_std": np.std(ratios / np.median(ratios))}
    return mean_over_images(rows, MONODEPTH2_METRICS), summary


# ---- data and a network ---------------------------------------------------------------------------


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], lo: float, hi: float) -> np.ndarray:
    """A scene's depth: a few random low-frequency waves, mapped to [lo, hi] metres."""
    y, x = np.meshgrid(np.linspace(0, 1, shape[0]), np.linspace(0, 1, shape[1]), indexing="ij")
    waves = (rng.uniform(0.3, 3) * x + rng.uniform(0.3, 2) * y + rng.uniform(0, 1) for _ in range(4))
    field = sum(np.cos(2 * np.pi * wave) for wave in waves)
    field = (field - field.min()) / (field.max() - field.min())
    return lo + (hi - lo) * field


def scenes(seed: int, n: int, shape: tuple[int, int], lo: float, hi: float) -> tuple[np.ndarray, torch.Tensor]:
    """(n, H, W) true depth and the images (n, 3, H, W) a network sees: depth / 100, noise, grey.

    The noise comes in 8x8 blocks, so that it survives the networks' lower resolutions.
    """
    rng = np.random.default_rng(seed)
    depth = np.stack([smooth_field(rng, shape, lo, hi) for _ in range(n)])
    blocks = rng.random((n, -(-shape[0] // 8), -(-shape[1] // 8)))
    noise = blocks.repeat(8, axis=1).repeat(8, axis=2)[:, : shape[0], : shape[1]]
    image = np.stack([depth / 100, noise, np.full(depth.shape, 0.5)], axis=1)
    return depth, torch.from_numpy(image).float()


def kitti_ground_truth(seed: int, depth: np.ndarray, density: float = 0.15) -> np.ndarray:
    """uint16 PNG values / 256 m as the benchmark's loader decodes them: sparse, none in the top rows."""
    rng = np.random.default_rng(seed)
    png = np.round(depth * (1 + 0.05 * rng.standard_normal(depth.shape)) * 256)
    png[rng.random(depth.shape) > density] = 0
    png[:, :100] = 0  # no LiDAR return above the horizon
    png[(rng.random(depth.shape) < 0.002) & (png > 0)] = 85 * 256  # beyond the 80 m cap
    return png.astype(np.uint16).astype(np.float32) / 256.0


def nyu_ground_truth(seed: int, depth: np.ndarray) -> np.ndarray:
    """uint16 millimetres / 1000 as BTS's NYU loader: dense, with holes (0) and some beyond the 10 m cap."""
    rng = np.random.default_rng(seed)
    mm = np.round(depth * (1 + 0.05 * rng.standard_normal(depth.shape)) * 1000)
    mm[rng.random(depth.shape) < 0.05] = 0
    mm[rng.random(depth.shape) < 0.002] = 10500
    return mm.astype(np.uint16).astype(np.float32) / 1000.0


def network(output: str = "depth", scale: float = 1.0, downsample: int = 1):
    """A stand-in network: depth read from the image (channel 0 x 100 m), perturbed by the noise
    channel and tilted across the columns so that it is not flip-symmetric; ``output`` says whether
    it predicts depth or inverse depth (``scale`` / depth, monodepth2's units) natively."""

    def net(image: torch.Tensor) -> DepthOutput:
        columns = torch.linspace(0, 1, image.shape[-1])
        depth = 100 * image[:, :1] * torch.exp(0.8 * (image[:, 1:2] - 0.5)) * (1 + 0.1 * (columns - 0.5))
        if downsample > 1:
            depth = F.avg_pool2d(depth, downsample)
        if output == "depth":
            return DepthOutput(depth)
        inverse = scale / depth
        return DepthOutput(1 / inverse, inverse_depth=inverse)

    return net


def numpy_views(net, image: torch.Tensor, key: str = "depth") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The network's (h, w) maps for each image and for its mirror image (not flipped back)."""
    plain = getattr(net(image), key)[:, 0].numpy()
    mirrored = getattr(net(image.flip(-1)), key)[:, 0].numpy()
    return list(plain), list(mirrored)


def depthlab_metrics(protocol, net, image, gt, window=None, names=METRIC_NAMES):
    """depthlab's path: one predict, one prepare, depth_metrics (and the median-scaling summary)."""
    gt = torch.from_numpy(gt)[:, None]
    predicted = protocol.predict(net, image, tuple(gt.shape[-2:]))
    ev = protocol.prepare(predicted.depth, gt, gt > 0, window, predicted.predicts_inverse_depth, predicted.kind)
    values = depth_metrics(ev.pred, ev.gt, ev.mask, protocol.min_depth, protocol.max_depth, protocol.averaging)
    ours = {name: float(values[name]) for name in names}
    if protocol.align == "median":
        ours.update({k: float(v) for k, v in summarize_ratios(ev.ratios).items()})
    return ours, ev


def assert_agree(ours: dict, theirs: dict) -> None:
    for name, want in theirs.items():
        assert ours[name] == pytest.approx(float(want), rel=1e-6), name


# ---- the comparisons ------------------------------------------------------------------------------


@pytest.mark.parametrize("crop, fractions", [("garg", GARG), ("eigen", EIGEN)])
def test_bts_kitti_kb_crop_pasted_into_the_full_frame(crop, fractions):
    depth, image = scenes(0, 2, KITTI_HW, 3.0, 45.0)
    gt = kitti_ground_truth(1, depth)
    net = network("depth")
    top, left = KITTI_HW[0] - 352, (KITTI_HW[1] - 1216) // 2
    window_preds = list(net(image[..., top : top + 352, left : left + 1216]).depth[:, 0].numpy())
    theirs = bts_script(window_preds, gt, fractions)
    assert 0.2 < theirs["delta1"] < 0.98  # the thresholds are exercised
    ours, _ = depthlab_metrics(build_protocol({"name": "kitti", "crop": crop, "kb_crop": True}), net, image, gt)
    assert_agree(ours, theirs)


@pytest.mark.parametrize("dataset", ["kitti", "nyu"])
def test_bts_eval_with_pngs_on_quantised_predictions_with_exact_1_25_ratios(dataset):
    """BTS ``utils/eval_with_pngs.py``: predictions read back from uint16 PNGs, like the ground truth.

    Ratios of exactly 1.25 are then common; with the old p * (1 / g) form depthlab disagreed here.
    """
    rng = np.random.default_rng(2)
    if dataset == "kitti":
        depth, _ = scenes(3, 2, KITTI_HW, 3.0, 45.0)
        gt, unit, hw, max_depth = kitti_ground_truth(4, depth), 256.0, KB_HW, 80.0
        top, left = KITTI_HW[0] - 352, (KITTI_HW[1] - 1216) // 2
        gt_png = np.round(gt[:, top : top + 352, left : left + 1216] * unit)
    else:
        depth, _ = scenes(3, 2, NYU_HW, 0.5, 6.0)
        gt, unit, hw, max_depth = nyu_ground_truth(4, depth), 1000.0, NYU_HW, 10.0
        gt_png = np.round(gt * unit)
    # Predicted PNG values: the ground truth's (2000 where it has none) with noise,
    # and exact ties p = 1.25 g or 0.8 g on a fifth of the pixels where the integers allow it.
    base = np.where(gt_png > 0, gt_png, 2000)
    pred_png = np.round(base * np.exp(0.25 * rng.standard_normal(base.shape)))
    tie = rng.random(base.shape) < 0.2
    pred_png[tie & (base % 4 == 0)] = base[tie & (base % 4 == 0)] * 5 // 4
    pred_png[tie & (base % 5 == 0)] = base[tie & (base % 5 == 0)] * 4 // 5
    pred = np.clip(pred_png, 1, 65535).astype(np.uint16).astype(np.float32) / unit

    if dataset == "kitti":  # eval_with_pngs clamps before the paste, bts_eval after: same pixels in the crop
        theirs = bts_script(list(pred), gt, GARG)
        protocol = build_protocol({"name": "kitti", "kb_crop": True})
        image = torch.zeros(2, 3, *KITTI_HW)
    else:
        rows = []
        for p, g in zip(pred, gt):
            p = clamp_script(p, 1e-3, max_depth)
            keep = (g > 1e-3) & (g < max_depth) & nyu_region()
            rows.append(errors_script(g[keep], p[keep]))
        theirs = mean_over_images(rows)
        protocol = build_protocol("nyu")
        image = torch.zeros(2, 3, *hw)

    def png_net(window: torch.Tensor) -> DepthOutput:  # "predicts" the PNGs for the window it is given
        assert tuple(window.shape[-2:]) == hw
        return DepthOutput(torch.from_numpy(pred)[:, None])

    ours, ev = depthlab_metrics(protocol, png_net, image, gt)
    assert_agree(ours, theirs)
    # The ties are there and sit inside the mask: the two-rounding form would have let them pass.
    p, g = ev.pred[ev.mask].numpy(), ev.gt[ev.mask].numpy()
    r = p * (np.float32(1) / g)
    assert np.count_nonzero(np.maximum(g / p, p / g) == np.float32(1.25)) > 100
    assert np.count_nonzero((np.maximum(r, 1 / r) < 1.25) != (np.maximum(g / p, p / g) < 1.25)) > 0


@pytest.mark.parametrize("crop, fractions", [("garg", GARG), ("eigen", EIGEN)])
def test_adabins_zoedepth_kitti_ground_truth_cut_to_the_kb_window(crop, fractions):
    depth, image = scenes(5, 2, KITTI_HW, 3.0, 45.0)
    gt = kitti_ground_truth(6, depth)
    net = network("depth", downsample=2)  # AdaBins predicts at half resolution
    top, left = KITTI_HW[0] - 352, (KITTI_HW[1] - 1216) // 2
    window = (slice(None), slice(top, top + 352), slice(left, left + 1216))
    window_image = image[:, :, top : top + 352, left : left + 1216]
    plain, mirrored = numpy_views(net, window_image)
    theirs = adabins_script(list(gt[window]), plain, mirrored, fractions)
    assert 0.2 < theirs["delta1"] < 0.98
    options = {"name": "kitti", "crop": crop, "kb_crop": True, "flip": "mean"}
    protocol = build_protocol({**options, "crop_frame": "kb_window"})
    # Full frames, the KB window taken by the protocol ...
    ours, _ = depthlab_metrics(protocol, net, image, gt)
    assert_agree(ours, theirs)
    # ... or samples the data module already cut, carrying crop_offset/full_size (one at a time).
    rows = [
        depthlab_metrics(protocol, net, window_image[i : i + 1], gt[window][i : i + 1], (top, left, *KITTI_HW))[0]
        for i in range(2)
    ]
    assert_agree({name: np.mean([row[name] for row in rows]) for name in METRIC_NAMES}, theirs)
    # BTS's convention on the same data selects other pixels and gives other numbers.
    bts, _ = depthlab_metrics(build_protocol(options), net, image, gt)
    assert bts["abs_rel"] != pytest.approx(theirs["abs_rel"], rel=1e-6)


def test_zoedepth_nyu_flip_mean_resized_with_align_corners():
    depth, image = scenes(7, 2, NYU_HW, 0.5, 6.0)
    gt = nyu_ground_truth(8, depth)
    net = network("depth", downsample=2)
    plain, mirrored = numpy_views(net, image)
    theirs = zoedepth_nyu_script(gt, plain, mirrored)
    assert 0.2 < theirs["delta1"] < 0.98
    ours, _ = depthlab_metrics(build_protocol({"name": "nyu", "flip": "mean"}), net, image, gt)
    assert_agree(ours, theirs)


@pytest.mark.parametrize(
    "mode, options, scale_factor",
    [
        ("mono", {"median_scaling": True, "flip": "monodepth"}, 1.0),  # --eval_mono --post_process
        ("mono", {"median_scaling": True}, 1.0),  # --eval_mono
        ("stereo", {"pred_scale": 5.4}, 5.4),  # --eval_stereo: x 5.4, no median scaling
    ],
)
def test_monodepth2_resizes_disparity_with_opencv_then_inverts(mode, options, scale_factor):
    depth, full_image = scenes(9, 2, KITTI_HW, 3.0, 45.0)
    gt = kitti_ground_truth(10, depth, density=0.05)
    # The network sees the frame at 192x640 (monodepth2's loader resizes it) and predicts disparity
    # in its training units: 0.3 / depth (mono, any scale), depth / 5.4 (stereo, baseline 0.1).
    image = F.interpolate(full_image, size=(192, 640), mode="area")
    net = network("inverse_depth", scale=0.3 if mode == "mono" else 5.4)
    plain, mirrored = numpy_views(net, image, key="inverse_depth")
    if options.get("flip") == "monodepth":
        disps = [monodepth_post_process_script(l, r[:, ::-1]) for l, r in zip(plain, mirrored)]
    else:
        disps = plain
    theirs, ratios = monodepth2_script(disps, gt, scale_factor, options.get("median_scaling", False))
    assert 0.2 < theirs["delta1"] < 0.98
    protocol = build_protocol({"name": "kitti", "align_corners": False, **options})
    assert protocol.resizes_inverse_depth(True)  # resize: auto, and the network predicts inverse depth
    ours, _ = depthlab_metrics(protocol, net, image, gt, names=MONODEPTH2_METRICS)
    assert_agree(ours, theirs)
    if ratios:
        assert ours["ratio_median"] == pytest.approx(float(ratios["ratio_median"]), rel=1e-6)
        # The script's ratios are float32 (~3e-8 each); their spread is ~1 %, so its std carries
        # ~1e-6 of itself as rounding. depthlab's ratios are float64.
        assert ours["ratio_std"] == pytest.approx(float(ratios["ratio_std"]), abs=1e-7)
    # Resizing depth instead of disparity moves the numbers (sq_rel most): the option matters.
    as_depth, _ = depthlab_metrics(
        build_protocol({"name": "kitti", "align_corners": False, "resize": "depth", **options}),
        net, image, gt, names=MONODEPTH2_METRICS,
    )
    assert abs(as_depth["sq_rel"] / theirs["sq_rel"] - 1) > 1e-4


# ---- relative depth: per-image least-squares alignment --------------------------------------------


def marigold_script(gts, preds, masks, alignment: str, min_depth=1e-3, max_depth=10.0):
    """Marigold ``script/depth/eval.py`` with ``src/util/alignment.py``, restated: per image a
    float32 ``np.linalg.lstsq`` of [pred, 1] against the target over the valid mask.
    ``least_square`` fits depth; ``least_square_disparity`` fits 1 / gt over the pixels where gt and
    the prediction are > 0, clips the aligned disparity at 1e-3 and inverts it. Both then clip to
    [min_depth, max_depth] (and at 1e-6) and score the valid pixels."""
    rows = []
    for gt, pred, mask in zip(gts, preds, masks):
        if alignment == "least_square":
            target, fit_mask = gt, mask
        else:
            target = np.zeros_like(gt)
            target[gt > 0] = 1.0 / gt[gt > 0]
            fit_mask = mask & (gt > 0) & (pred > 0)
        a = np.stack([pred[fit_mask], np.ones_like(pred[fit_mask])], axis=-1)
        (scale, shift), *_ = np.linalg.lstsq(a, target[fit_mask].reshape(-1, 1), rcond=None)
        aligned = pred * scale + shift
        if alignment != "least_square":
            aligned = np.clip(aligned, 1e-3, None)
            out = np.zeros_like(aligned)
            out[aligned > 0] = 1.0 / aligned[aligned > 0]
            aligned = out
        depth = np.clip(np.clip(aligned, min_depth, max_depth), 1e-6, None)
        rows.append(errors_script(gt[mask], depth[mask]))
    return mean_over_images(rows)


def midas_script(gts, preds, masks, depth_cap=10.0):
    """The MiDaS evaluation gist's ``compute_scale_and_shift`` + disparity cap, restated in float32
    torch: the 2x2 normal equations on the masked pixels (s = t = 0 where det <= 0), aligned
    inverse depth clamped below at 1 / depth_cap, depth = 1 / it."""
    rows = []
    for gt, pred, mask in zip(gts, preds, masks):
        p, m = torch.from_numpy(pred), torch.from_numpy(mask).float()
        t = torch.zeros_like(p)
        t[torch.from_numpy(gt) > 0] = 1.0 / torch.from_numpy(gt)[torch.from_numpy(gt) > 0]
        a00, a01, a11 = (m * p * p).sum(), (m * p).sum(), m.sum()
        b0, b1 = (m * p * t).sum(), (m * t).sum()
        det = a00 * a11 - a01 * a01
        s, shift = ((a11 * b0 - a01 * b1) / det, (-a01 * b0 + a00 * b1) / det) if det > 0 else (0.0, 0.0)
        aligned = s * p + shift
        aligned[aligned < 1.0 / depth_cap] = 1.0 / depth_cap
        depth = (1.0 / aligned).numpy()
        rows.append(errors_script(gt[mask], np.clip(depth[mask], 1e-3, depth_cap)))
    return mean_over_images(rows)


def relative_network(shift: float = 0.05):
    """A relative network: an affine function of the stand-in's inverse depth (unknown scale and shift)."""
    inner = network("depth")

    def net(image: torch.Tensor) -> DepthOutput:
        return DepthOutput(None, relative_inverse_depth=3.0 / inner(image).depth + shift)

    return net


def _nyu_relative_case(seed: int):
    depth, image = scenes(seed, 2, NYU_HW, 0.5, 8.0)
    gt = nyu_ground_truth(seed + 1, depth)
    masks = [(g > 1e-3) & (g < 10.0) & nyu_region() for g in gt]
    return gt, image, masks


@pytest.mark.parametrize("source", ["midas", "marigold_disparity"])
def test_relative_inverse_depth_aligned_as_midas_and_marigold_align_it(source):
    gt, image, masks = _nyu_relative_case(21)
    net = relative_network()
    preds = list(net(image).relative_inverse_depth[:, 0].numpy())
    assert min(p.min() for p in preds) > 0  # Marigold drops pixels with a prediction <= 0 from the fit
    theirs = midas_script(gt, preds, masks) if source == "midas" else marigold_script(gt, preds, masks, "least_square_disparity")
    assert 0.2 < theirs["delta1"] < 0.98
    protocol = build_protocol({"name": "nyu", "align": "scale_shift", "align_space": "inverse_depth"})
    ours, ev = depthlab_metrics(protocol, net, image, gt)
    assert ev.ratios.shape == (2,) and (ev.ratios > 0).all()  # the fitted scales are reported
    for name, want in theirs.items():  # the peers fit in float32, depthlab in float64
        assert ours[name] == pytest.approx(float(want), rel=2e-5, abs=1e-7), name


def test_relative_depth_aligned_in_depth_space_as_marigold():
    gt, image, masks = _nyu_relative_case(23)
    rel = (0.4 * network("depth")(image).depth + 1.5)[:, 0].numpy()  # affine depth (Marigold's output kind)
    theirs = marigold_script(gt, list(rel), masks, "least_square")
    assert 0.2 < theirs["delta1"] < 0.98
    protocol = build_protocol({"name": "nyu", "align": "scale_shift", "align_space": "depth"})
    g = torch.from_numpy(gt)[:, None]
    ev = protocol.prepare(torch.from_numpy(rel)[:, None], g, g > 0, kind="relative_depth")
    values = depth_metrics(ev.pred, ev.gt, ev.mask, protocol.min_depth, protocol.max_depth)
    for name, want in theirs.items():
        assert float(values[name]) == pytest.approx(float(want), rel=2e-5, abs=1e-7), name
