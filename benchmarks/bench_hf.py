"""Depth Anything V2 Small (the ``hf`` network, random weights) against depthlab's U-Net resnet34, on this CPU.

    .venv/bin/python benchmarks/bench_hf.py                         # 518x518, batch 1
    .venv/bin/python benchmarks/bench_hf.py --size 392 518 --forward_steps 5 --train_steps 3

Each network runs in a fresh subprocess (so that its peak memory is its own):

- forward: ``net.eval()`` under ``torch.no_grad()``, median of ``--forward_steps`` calls after one
  warm-up (the median resists other processes sharing the machine);
- training step: ``net.train()``, forward, SiLog loss (:func:`depthlab.losses.silog.silog`),
  backward, AdamW step; median of ``--train_steps`` after one warm-up;
- memory: the process's resident set size (``/proc/self/statm``) after building the network, and
  its peak (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) after the forward calls and after the
  training steps. ru_maxrss is monotone, so the first peak is inference's and the second
  training's; both include Python, torch and (for hf) transformers, about 0.5-1 GiB before any
  network. tracemalloc would miss torch's allocations (they are not Python objects).

Depth Anything V2 Small as published (``depth-anything/Depth-Anything-V2-Small-hf``), written out
here instead of downloaded (:data:`DEPTH_ANYTHING_V2_SMALL`): the authors' depth_anything_v2/dpt.py
(``model_configs['vits']``: features 64, out_channels [48, 96, 192, 384];
``intermediate_layer_idx['vits'] = [2, 5, 8, 11]``, i.e. transformers' backbone stages 3, 6, 9, 12)
on DINOv2 ViT-S/14 (hidden 384, 12 layers, 6 heads, MLP 1536; facebook/dinov2-small), DPT
reassemble factors [4, 2, 1, 0.5], head hidden size 32; transformers'
models/depth_anything/convert_depth_anything_to_hf.py builds V1 Small with the same neck and head
(it is not shipped in the installed wheel). It is built metric (``kind: metric``, the head
``sigmoid * max_depth`` of V2's metric models, same weights and cost as the relative head) so the
SiLog loss applies as to the U-Net; its processor resizes 518x518 to 518x518 (keep_aspect_ratio,
multiple of 14), so both networks see the same pixels.

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

from bench_models import cpu_name, rss_mib, run_worker  # this folder is on sys.path when run as a script

DEPTH_ANYTHING_V2_SMALL = {
    "model_type": "depth_anything",
    "backbone_config": {
        "model_type": "dinov2",
        "hidden_size": 384,
        "num_hidden_layers": 12,
        "num_attention_heads": 6,
        "mlp_ratio": 4,  # MLP 1536
        "patch_size": 14,
        "image_size": 518,
        "layerscale_value": 1.0,
        "out_features": ["stage3", "stage6", "stage9", "stage12"],
        "apply_layernorm": True,
        "reshape_hidden_states": False,
    },
    "patch_size": 14,
    "reassemble_hidden_size": 384,
    "reassemble_factors": [4, 2, 1, 0.5],
    "neck_hidden_sizes": [48, 96, 192, 384],
    "fusion_hidden_size": 64,
    "head_hidden_size": 32,
    "head_in_index": -1,
    "depth_estimation_type": "relative",
}
NETWORKS = {
    "Depth Anything V2 Small (hf, metric head)": {
        "class_path": "depthlab.models.hf.HFDepthNetwork",
        "init_args": {"config": DEPTH_ANYTHING_V2_SMALL, "kind": "metric"},
    },
    "U-Net resnet34": {"name": "unet", "encoder": "resnet34", "pretrained": False},
}


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _median(times: list[float]) -> float:
    return sorted(times)[len(times) // 2]


def worker(label: str, height: int, width: int, batch: int, forward_steps: int, train_steps: int) -> dict:
    import torch

    from depthlab import models
    from depthlab.losses.silog import silog

    torch.manual_seed(0)
    net = models.build(NETWORKS[label], min_depth=1e-3, max_depth=10.0)
    rss_built = rss_mib()
    image = torch.rand(batch, 3, height, width)
    gt = torch.rand(batch, 1, height, width) * 9 + 0.5
    mask = torch.ones_like(gt, dtype=torch.bool)

    net.eval()
    times = []
    with torch.no_grad():
        for i in range(forward_steps + 1):
            start = time.perf_counter()
            out = net(image)
            if i:  # the first call is the warm-up
                times.append(time.perf_counter() - start)
    assert out.depth.shape == (batch, 1, height, width)
    forward_s, peak_forward = _median(times), _peak_mib()

    net.train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    times = []
    for i in range(train_steps + 1):
        start = time.perf_counter()
        loss = silog(net(image).depth, gt, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i:
            times.append(time.perf_counter() - start)
    return {
        "network": label,
        "parameters_M": sum(p.numel() for p in net.parameters()) / 1e6,
        "forward_s": forward_s,
        "train_step_s": _median(times),
        "rss_built_mib": rss_built,
        "peak_forward_mib": peak_forward,
        "peak_train_mib": _peak_mib(),
        "threads": torch.get_num_threads(),
    }


def run_one(label: str, args: argparse.Namespace) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", label, "--size", *map(str, args.size), "--batch", str(args.batch),
           "--forward_steps", str(args.forward_steps), "--train_steps", str(args.train_steps)]
    return run_worker(cmd, label)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=[518, 518], metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--forward_steps", type=int, default=7, help="timed forward calls (median), after 1 warm-up")
    parser.add_argument("--train_steps", type=int, default=5, help="timed training steps (median), after 1 warm-up")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, *args.size, args.batch, args.forward_steps, args.train_steps)))
        return 0

    import torch
    import transformers

    results = [run_one(label, args) for label in NETWORKS]
    threads = next((r["threads"] for r in results if r), torch.get_num_threads())
    print(f"# CPU: {cpu_name()}, {os.cpu_count()} cores, {threads} torch threads; torch {torch.__version__}, "
          f"transformers {transformers.__version__}; input {args.size[0]}x{args.size[1]}, batch {args.batch}; "
          f"medians of {args.forward_steps} forward calls and {args.train_steps} training steps after 1 warm-up each; "
          "random weights; memory: RSS / ru_maxrss of a fresh process per network")
    print("| network | params (M) | forward (s) | training step (s) | RSS after build (MiB) | "
          "peak RSS, inference (MiB) | peak RSS, training (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for label, res in zip(NETWORKS, results):
        if res is None:
            print(f"| {label} | failed | | | | | |")
            continue
        print(f"| {label} | {res['parameters_M']:.1f} | {res['forward_s']:.3f} | {res['train_step_s']:.3f} | "
              f"{res['rss_built_mib']:.0f} | {res['peak_forward_mib']:.0f} | {res['peak_train_mib']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
