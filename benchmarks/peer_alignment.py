"""depthlab's per-image scale-and-shift alignment beside the peers' own code, on identical inputs.

Runs the real published functions (not restatements): Marigold's ``src/util/alignment.py``
(``align_depth_least_square``, ``depth2disparity``, as ``script/depth/eval.py`` calls them) and
Video Depth Anything's ``benchmark/eval/eval.py`` (``eval_depthcrafter`` on one-frame sequences),
read from local clones or git mirrors of the two repositories (nothing is downloaded)::

    python benchmarks/peer_alignment.py --marigold PATH --video_depth_anything PATH

PATH is a checkout or a bare git directory (the file is read from HEAD). Prints a table of the
largest differences. The fast tests restate the same arithmetic (tests/eval/test_peers.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "eval"))

from test_peers import _nyu_relative_case, network, relative_network  # noqa: E402

from depthlab.eval import build_protocol  # noqa: E402
from depthlab.metrics import depth_metrics  # noqa: E402


def _source(repo: str, path: str, into: Path) -> Path:
    """``path`` of ``repo`` (a checkout, or a git directory read at HEAD) copied into ``into``."""
    target = into / Path(path).name
    if (Path(repo) / path).is_file():
        target.write_bytes((Path(repo) / path).read_bytes())
    else:
        target.write_bytes(subprocess.run(["git", "-C", repo, "show", f"HEAD:{path}"], check=True,
                                          capture_output=True).stdout)
    return target


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    spec.loader.exec_module(module)
    return module


def marigold_rows(repo: str, tmp: Path) -> list[tuple[str, str]]:
    mg = _import(_source(repo, "src/util/alignment.py", tmp), "marigold_alignment")
    gt, image, masks = _nyu_relative_case(21)
    rows = []
    inputs = {"inverse_depth": (relative_network()(image).relative_inverse_depth[:, 0].numpy(), "relative_inverse_depth"),
              "depth": ((0.4 * network("depth")(image).depth + 1.5)[:, 0].numpy(), "relative_depth")}
    for space, (preds, kind) in inputs.items():
        protocol = build_protocol({"name": "nyu", "align": "scale_shift", "align_space": space})
        g = torch.from_numpy(gt)[:, None]
        ours = protocol.prepare(torch.from_numpy(preds)[:, None], g, g > 0, kind=kind).pred
        ours = ours.clamp(protocol.min_depth, protocol.max_depth)[:, 0].numpy()
        worst = 0.0
        for i, (gi, pi, mi) in enumerate(zip(gt, preds, masks)):
            if space == "depth":
                theirs = mg.align_depth_least_square(gi, pi, mi, return_scale_shift=False)
            else:
                gdisp, gmask = mg.depth2disparity(gi, return_mask=True)
                disp = mg.align_depth_least_square(gdisp, pi, mi & gmask & (pi > 0), return_scale_shift=False)
                theirs = mg.disparity2depth(np.clip(disp, 1e-3, None))
            theirs = np.clip(theirs, protocol.min_depth, protocol.max_depth)
            worst = max(worst, float(np.max(np.abs(ours[i][mi] - theirs[mi]) / theirs[mi])))
        mode = "least_square_disparity" if space == "inverse_depth" else "least_square"
        rows.append((f"Marigold {mode}", f"aligned depth, max relative difference {worst:.1e}"))
    return rows


def vda_rows(repo: str, tmp: Path) -> list[tuple[str, str]]:
    _source(repo, "benchmark/eval/metric.py", tmp)
    vda = _import(_source(repo, "benchmark/eval/eval.py", tmp), "vda_eval")
    vda.device = "cpu"
    gt, image, _ = _nyu_relative_case(21)
    preds = relative_network()(image).relative_inverse_depth[:, 0].numpy()
    protocol = build_protocol({"name": "none", "min_depth": 1e-3, "max_depth": 10.0, "align": "scale_shift"})
    worst = {"abs_rel": 0.0, "rmse": 0.0, "delta1": 0.0}
    for i in range(len(gt)):
        np.save(tmp / f"gt{i}.npy", gt[i])
        np.save(tmp / f"p{i}.npy", preds[i])
        args = types.SimpleNamespace(max_eval_len=1, max_depth_eval=10.0, a=0, b=gt.shape[1], c=0, d=gt.shape[2])
        theirs = vda.eval_depthcrafter([str(tmp / f"p{i}.npy")], [str(tmp / f"gt{i}.npy")], [1.0], args)
        g = torch.from_numpy(gt[i])[None, None]
        ev = protocol.prepare(torch.from_numpy(preds[i])[None, None], g, None, kind="relative_inverse_depth")
        ours = depth_metrics(ev.pred, ev.gt, ev.mask, 1e-3, 10.0)
        for name, value in zip(worst, theirs):
            worst[name] = max(worst[name], abs(float(ours[name]) - value) / abs(value))
    return [("Video Depth Anything eval_depthcrafter", ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--marigold", help="prs-eth/Marigold checkout or git directory")
    parser.add_argument("--video_depth_anything", help="DepthAnything/Video-Depth-Anything checkout or git directory")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.marigold:
            rows += marigold_rows(args.marigold, Path(tmp))
        if args.video_depth_anything:
            rows += vda_rows(args.video_depth_anything, Path(tmp))
    width = max(len(r[0]) for r in rows) if rows else 0
    print(f"{'peer':<{width}}  depthlab vs peer (relative)")
    for name, text in rows:
        print(f"{name:<{width}}  {text}")


if __name__ == "__main__":
    main()
