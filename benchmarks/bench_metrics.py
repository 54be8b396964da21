"""Metric update cost per image at KITTI resolution: DepthMetrics against the public scripts' NumPy loop.

    python benchmarks/bench_metrics.py [--batch 8 --repeats 5 --density 0.16 --threads 1]

Both sides evaluate the same float32 batch (375x1242, sparse ground truth with ``--density`` of the
pixels valid, Garg crop, caps 1e-3..80 m, all nine metrics) in one run:

- ``numpy loop``: per image, clamp the prediction, build the cap and crop mask, index the valid
  pixels and compute the metrics, then the mean over images: how BTS's ``bts_eval.py`` and
  monodepth2's ``evaluate_depth.py`` do it.
- ``DepthMetrics.update``: one call on the batch (mask = Garg crop; the caps and the clamp are
  inside the metric), and the same preceded by the protocol's ``prepare`` (mask building).

Times are medians over ``--repeats`` runs after a warm-up; ``ratio`` is numpy time / this time
(> 1: faster than the loop). A CUDA row is added when a GPU is present.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from depthlab.eval import build_protocol, crop_mask
from depthlab.metrics import METRIC_NAMES, DepthMetrics

KITTI_HW = (375, 1242)
MIN_DEPTH, MAX_DEPTH = 1e-3, 80.0


def numpy_errors(gt: np.ndarray, pred: np.ndarray) -> list[float]:
    """The nine metrics of one image's valid pixels, written as the public scripts write them."""
    thresh = np.maximum(gt / pred, pred / gt)
    d1, d2, d3 = (thresh < 1.25).mean(), (thresh < 1.25**2).mean(), (thresh < 1.25**3).mean()
    rmse = np.sqrt(((gt - pred) ** 2).mean())
    rmse_log = np.sqrt(((np.log(gt) - np.log(pred)) ** 2).mean())
    abs_rel = np.mean(np.abs(gt - pred) / gt)
    sq_rel = np.mean(((gt - pred) ** 2) / gt)
    err = np.log(pred) - np.log(gt)
    silog = np.sqrt(np.mean(err**2) - np.mean(err) ** 2) * 100
    log10 = np.mean(np.abs(np.log10(pred) - np.log10(gt)))
    return [abs_rel, sq_rel, rmse, rmse_log, d1, d2, d3, silog, log10]


def numpy_loop(preds: np.ndarray, gts: np.ndarray) -> np.ndarray:
    rows = []
    for pred, gt in zip(preds, gts):
        pred = pred.copy()
        pred[pred < MIN_DEPTH] = MIN_DEPTH
        pred[pred > MAX_DEPTH] = MAX_DEPTH
        pred[np.isinf(pred)] = MAX_DEPTH
        pred[np.isnan(pred)] = MIN_DEPTH
        valid = np.logical_and(gt > MIN_DEPTH, gt < MAX_DEPTH)
        h, w = gt.shape
        crop = np.zeros(valid.shape)
        crop[int(0.40810811 * h) : int(0.99189189 * h), int(0.03594771 * w) : int(0.96405229 * w)] = 1
        valid = np.logical_and(valid, crop)
        rows.append(numpy_errors(gt[valid], pred[valid]))
    return np.array(rows).mean(0)


def median_time(fn, repeats: int, sync=lambda: None) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--density", type=float, default=0.16, help="fraction of pixels with ground truth")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (NumPy's loop is single-threaded)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    h, w = KITTI_HW
    gt = rng.uniform(2.0, 85.0, size=(args.batch, h, w)).astype(np.float32)
    gt[rng.random(gt.shape) > args.density] = 0.0
    pred = (gt * rng.lognormal(0, 0.15, size=gt.shape)).astype(np.float32)  # dense: a network's output
    pred[gt == 0] = rng.uniform(2.0, 80.0, size=int((gt == 0).sum())).astype(np.float32)

    protocol = build_protocol("kitti")
    gt_t, pred_t = torch.from_numpy(gt)[:, None], torch.from_numpy(pred)[:, None]
    garg = crop_mask("garg", h, w)

    def torch_update(p, g, m):
        def fn():
            metric = DepthMetrics(MIN_DEPTH, MAX_DEPTH)
            metric.update(p, g, m)
            return metric

        return fn

    def torch_protocol(p, g):
        def fn():
            metric = DepthMetrics(MIN_DEPTH, MAX_DEPTH)
            ev = protocol.prepare(p, g)
            metric.update(ev.pred, ev.gt, ev.mask)
            return metric

        return fn

    reference = numpy_loop(pred, gt)
    ours = torch_update(pred_t, gt_t, garg.expand_as(gt_t))().compute()
    max_rel = max(abs(float(ours[n]) - reference[i]) / abs(reference[i]) for i, n in enumerate(METRIC_NAMES))

    rows = [("numpy loop (public scripts)", "cpu", median_time(lambda: numpy_loop(pred, gt), args.repeats))]
    rows.append(("DepthMetrics.update", "cpu", median_time(torch_update(pred_t, gt_t, garg.expand_as(gt_t)), args.repeats)))
    rows.append(("prepare + DepthMetrics.update", "cpu", median_time(torch_protocol(pred_t, gt_t), args.repeats)))
    if torch.cuda.is_available():
        p, g = pred_t.cuda(), gt_t.cuda()
        m = garg.cuda().expand_as(g)
        sync = torch.cuda.synchronize
        rows.append(("DepthMetrics.update", torch.cuda.get_device_name(), median_time(torch_update(p, g, m), args.repeats, sync)))
        rows.append(("prepare + DepthMetrics.update", torch.cuda.get_device_name(), median_time(torch_protocol(p, g), args.repeats, sync)))

    base = rows[0][2]
    print(f"KITTI {h}x{w}, batch {args.batch}, gt density {args.density:.2f}, Garg crop, torch threads {args.threads}")
    print(f"max relative difference of the nine metrics, DepthMetrics vs numpy loop: {max_rel:.1e}")
    print(f"| {'method':<30} | {'device':<24} | {'ms / image':>10} | {'ratio':>6} |")
    print(f"|{'-' * 32}|{'-' * 26}|{'-' * 12}|{'-' * 8}|")
    for name, device, seconds in rows:
        print(f"| {name:<30} | {device:<24} | {1e3 * seconds / args.batch:>10.3f} | {base / seconds:>6.2f} |")


if __name__ == "__main__":
    main()
