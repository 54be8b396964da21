"""What does depthlab's Lightning loop cost over a plain PyTorch loop, and what does the non-finite guard cost?

    python benchmarks/bench_loop.py [--steps 40 --repeats 3 --threads N]

The main job's training (configs/synthetic.yaml: U-Net on resnet18 with a 128-64-32-16 decoder,
silog, AdamW with warm-up + cosine, 96x128 batches of 8) on the same pre-rendered batches held in
memory, so data loading is left out:

- ``plain``: a PyTorch loop (forward, masked loss, backward, AdamW step, scheduler step);
- ``depthlab``: ``lightning.Trainer`` with ``DepthModule`` as ``depthlab fit`` runs it (progress
  bar, TensorBoard logger, LearningRateMonitor), non-finite guard on (``max_nonfinite: 10``);
- ``depthlab guard off``: the same with ``max_nonfinite: 0``.

Two measurements, both interleaved and repeated, because on a shared machine the load changes from
one second to the next by more than the few per cent looked for:

1. Paired, in one process: a Lightning run in which a callback runs one plain step (a second copy
   of the network, its own optimizer) before each Lightning step, and turns the guard on and off on
   alternate steps. Every Lightning step is compared with the plain step timed just before it.
   ``ms/step`` is the median over steps (after ``--warmup``); ``vs plain`` the median of the
   per-step ratios; the guard's cost the median difference of neighbouring on/off steps.
2. Alone, one subprocess per loop (order rotated every repeat): steps/s (1 / median interval between
   step starts) and the process's peak RSS, imports included. The plain process does not import
   Lightning.

The guard's own work (gradient norm, buffer copy, bookkeeping and the one sync) is also timed by
itself on the network's real gradients, and the loops' own per-step cost in milliseconds by a
paired run of a network with almost no compute (``TINY_NET``), where it is not lost in the noise.
``--threads`` sets torch's CPU threads (default: torch's own, as ``depthlab fit`` runs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

NET = {"name": "unet", "encoder": "resnet18", "pretrained": False, "decoder_channels": [128, 64, 32, 16]}
HEIGHT, WIDTH, BATCH = 96, 128, 8
# A network with almost no compute (timm's 0.4M-parameter test_resnet), 64x64 batches of 2: what is
# left of a step is the loops' own per-step cost, in milliseconds, with less noise around it.
TINY_NET = {"name": "unet", "encoder": "test_resnet", "pretrained": False, "decoder_channels": [8, 8, 8, 8]}
TINY_HEIGHT, TINY_WIDTH, TINY_BATCH = 64, 64, 2
MIN_DEPTH, MAX_DEPTH, LR, WEIGHT_DECAY, WARMUP, MIN_LR_RATIO = 1e-3, 10.0, 1e-3, 1e-2, 0.05, 0.01
DISTINCT_BATCHES = 4  # cycled: no step sees the same tensors as the one before
ALONE = ("plain", "depthlab", "depthlab guard off")


def render_batches(path: str, net: dict, height: int, width: int, batch: int, n: int = DISTINCT_BATCHES) -> None:
    """Render ``n`` training batches once and save them with the network's settings: every run loads the same."""
    import torch

    from depthlab.data.synthetic import SceneConfig, render_sample

    cfg = SceneConfig(height=height, width=width)
    out = []
    for b in range(n):
        samples = [render_sample(cfg, 0, "train", b * batch + i) for i in range(batch)]
        out.append({k: torch.stack([s[k] for s in samples]) for k in samples[0]})
    torch.save({"net": net, "batches": out}, path)


def plain_stepper(net_config: dict, batches: list[dict], steps: int):
    """One plain PyTorch training step per call (the network initialised as DepthModule's, seed 0)."""
    # Nothing of Lightning is imported here (depthlab.data and depthlab.module would): the peak
    # RSS of the plain run is that of PyTorch, the network and the loss alone.
    import torch

    from depthlab import losses, models
    from depthlab.metrics import valid_depth_mask

    torch.manual_seed(0)
    net = models.build(net_config, min_depth=MIN_DEPTH, max_depth=MAX_DEPTH).train()
    objective = losses.build_objective("silog")
    optimizer = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    # DepthModule's warm-up + cosine, from torch's own schedulers (its factor function lives with Lightning)
    ramp = max(int(WARMUP * steps), 1)
    schedule = torch.optim.lr_scheduler.SequentialLR(optimizer, [
        torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1 / ramp, total_iters=ramp),
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps - ramp, 1), eta_min=MIN_LR_RATIO * LR),
    ], milestones=[ramp])
    count = 0

    def step() -> None:
        nonlocal count
        batch = batches[count % len(batches)]
        count += 1
        optimizer.zero_grad()
        out = net(batch["image"])
        mask = valid_depth_mask(batch["depth"], MIN_DEPTH, MAX_DEPTH, batch["valid"])
        target = {**batch, "depth": torch.where(mask, batch["depth"], torch.ones_like(batch["depth"]))}
        loss, _ = objective(out, target, mask)
        loss.backward()
        optimizer.step()
        schedule.step()

    return step


def fit_depthlab(net: dict, batches: list[dict], steps: int, max_nonfinite: int, callback) -> None:
    """``depthlab fit``'s loop on the in-memory batches, with ``callback`` added."""
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import TensorBoardLogger
    from torch.utils.data import DataLoader, Dataset

    from depthlab.module import DepthModule

    class InMemory(Dataset):
        def __len__(self) -> int:
            return steps

        def __getitem__(self, i: int) -> dict:
            return batches[i % len(batches)]

    torch.manual_seed(0)
    module = DepthModule(net=net, loss="silog", min_depth=MIN_DEPTH, max_depth=MAX_DEPTH, lr=LR,
                         weight_decay=WEIGHT_DECAY, warmup=WARMUP, min_lr_ratio=MIN_LR_RATIO,
                         max_nonfinite=max_nonfinite)
    with tempfile.TemporaryDirectory() as logs:
        trainer = L.Trainer(
            accelerator="cpu", devices=1, max_steps=steps, log_every_n_steps=10, enable_progress_bar=True,
            logger=TensorBoardLogger(logs, name="bench"), callbacks=[LearningRateMonitor("step"), callback],
            enable_checkpointing=False, limit_val_batches=0, num_sanity_val_steps=0, enable_model_summary=False,
        )
        # batch_size=None: the dataset's items are whole batches, no collation
        trainer.fit(module, DataLoader(InMemory(), batch_size=None, num_workers=0))


def _median_rate(starts: list[float], warmup: int) -> float:
    return 1 / statistics.median(b - a for a, b in zip(starts[warmup:], starts[warmup + 1:]))


def run_alone(variant: str, net: dict, batches: list[dict], steps: int, warmup: int) -> dict:
    starts: list[float] = []
    if variant == "plain":
        step = plain_stepper(net, batches, steps)
        for _ in range(steps):
            starts.append(time.perf_counter())
            step()
    else:
        import lightning as L

        class Starts(L.Callback):
            def on_train_batch_start(self, *args) -> None:
                starts.append(time.perf_counter())

        fit_depthlab(net, batches, steps, 0 if variant.endswith("guard off") else 10, Starts())
    return {"steps_per_s": _median_rate(starts, warmup)}


def run_paired(net: dict, batches: list[dict], steps: int, warmup: int) -> dict:
    """Per Lightning step: its time, the plain step's just before it, and whether the guard was on."""
    import lightning as L

    step = plain_stepper(net, batches, steps)
    starts, plain, guard_on = [], [], []

    class Paired(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            now = time.perf_counter()
            starts.append(now)
            step()
            plain.append(time.perf_counter() - now)
            # Callbacks' hooks run before the module's: the whole Lightning step sees this setting.
            module._guard.max_nonfinite = 10 if batch_idx % 2 == 0 else 0
            guard_on.append(batch_idx % 2 == 0)

    fit_depthlab(net, batches, steps, 10, Paired())
    # A Lightning step is the time between two starts, less the plain step run at the first.
    lightning = [b - a - p for a, b, p in zip(starts, starts[1:], plain)]
    n = len(lightning)
    return {"plain": plain[warmup:n], "lightning": lightning[warmup:], "guard_on": guard_on[warmup:n]}


def run_guard_work(net: dict, batches: list[dict], repeats: int) -> dict:
    """ms of the guard's own work per step, on the main job's network with real gradients."""
    import torch

    from depthlab.module import DepthModule
    from depthlab.training.guard import NonFiniteGuard, nonfinite

    torch.manual_seed(0)
    batch = batches[0]
    module = DepthModule(net=net, min_depth=MIN_DEPTH, max_depth=MAX_DEPTH)
    loss, _ = module.compute_loss(module(batch["image"]), batch)
    loss.backward()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    guard = NonFiniteGuard(10)
    guard.reset(module)  # as at the start of fit: the buffers it restores on a skip

    def work() -> None:
        guard.taken()  # a new optimizer step: before_batch copies the buffers again
        guard.before_batch(module, batch, 0)  # buffer copy, sample bookkeeping
        nonfinite(loss.detach(), grads).item()  # gradient norm and the one sync the decision needs

    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return {"guard_ms": 1e3 * statistics.median(times)}


def child(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    saved = torch.load(args.batches)
    net, batches = saved["net"], saved["batches"]
    if args.child == "guard work":
        result = run_guard_work(net, batches, 50)
    elif args.child == "paired":
        result = run_paired(net, batches, args.steps, args.warmup)
    else:
        result = run_alone(args.child, net, batches, args.steps, args.warmup)
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    result["lightning_imported"] = "lightning" in sys.modules
    result["threads"] = torch.get_num_threads()
    print("RESULT " + json.dumps(result))


def spawn(variant: str, batches_path: str, args: argparse.Namespace, steps: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", variant, "--batches", batches_path,
           "--steps", str(steps), "--warmup", str(args.warmup)] + (["--threads", str(args.threads)] if args.threads else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"bench_loop: the {variant!r} run failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def summarize_paired(paired: list[dict]) -> dict:
    """Medians of the paired runs: ms/step per loop, ratios to the plain step, guard on - off."""
    plain = [t for run in paired for t in run["plain"]]
    on = [(t, p) for run in paired for t, p, g in zip(run["lightning"], run["plain"], run["guard_on"]) if g]
    off = [(t, p) for run in paired for t, p, g in zip(run["lightning"], run["plain"], run["guard_on"]) if not g]
    # neighbouring steps (2j guard on, 2j+1 guard off) of the same run
    guard_diff = [run["lightning"][i] - run["lightning"][i + 1]
                  for run in paired for i in range(len(run["lightning"]) - 1) if run["guard_on"][i]]
    q = statistics.quantiles(guard_diff, n=4)
    return {
        "ms": {"plain": 1e3 * statistics.median(plain),
               "depthlab": 1e3 * statistics.median(t for t, _ in on),
               "depthlab guard off": 1e3 * statistics.median(t for t, _ in off)},
        "extra_ms": {"depthlab": 1e3 * statistics.median(t - p for t, p in on),
                     "depthlab guard off": 1e3 * statistics.median(t - p for t, p in off)},
        "ratio": {"depthlab": statistics.median(t / p for t, p in on),
                  "depthlab guard off": statistics.median(t / p for t, p in off)},
        "guard_ms": (1e3 * statistics.median(guard_diff), 1e3 * q[0], 1e3 * q[2]),
        "steps": len(plain),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="Lightning steps per paired run (alone runs: half)")
    parser.add_argument("--warmup", type=int, default=4, help="first steps of each run left out of the timings")
    parser.add_argument("--repeats", type=int, default=3, help="paired runs, and alone runs of each loop")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--batches", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    alone_steps = max(args.steps // 2, args.warmup + 3)
    if not 0 <= args.warmup < args.steps - 2:
        parser.error("--warmup must be smaller than --steps - 2 (some steps must be timed)")

    paired: list[dict] = []
    tiny: list[dict] = []
    alone: dict[str, list[dict]] = {v: [] for v in ALONE}
    with tempfile.TemporaryDirectory() as tmp:
        main_batches, tiny_batches = os.path.join(tmp, "main.pt"), os.path.join(tmp, "tiny.pt")
        render_batches(main_batches, NET, HEIGHT, WIDTH, BATCH)
        render_batches(tiny_batches, TINY_NET, TINY_HEIGHT, TINY_WIDTH, TINY_BATCH)
        for r in range(args.repeats):
            paired.append(spawn("paired", main_batches, args, args.steps))
            tiny.append(spawn("paired", tiny_batches, args, 4 * args.steps))
            print(f"repeat {r + 1}/{args.repeats} paired runs done", file=sys.stderr)
            for variant in ALONE[r % 3:] + ALONE[: r % 3]:
                alone[variant].append(spawn(variant, main_batches, args, alone_steps))
                print(f"repeat {r + 1}/{args.repeats} {variant:<20} {alone[variant][-1]['steps_per_s']:.2f} steps/s",
                      file=sys.stderr)
        guard = spawn("guard work", main_batches, args, args.steps)
    if any(run["lightning_imported"] for run in alone["plain"]):  # its peak RSS would hold Lightning's
        sys.exit("bench_loop: the plain loop imported Lightning; import the network and loss without depthlab.data")

    main_job, fixed = summarize_paired(paired), summarize_paired(tiny)
    print(f"{HEIGHT}x{WIDTH} batches of {BATCH}, main job's U-Net/resnet18 + silog + AdamW, CPU, torch threads "
          f"{paired[0]['threads']}; paired: {main_job['steps']} steps in {args.repeats} runs; alone: {args.repeats} runs "
          f"x {alone_steps} steps per loop; medians")
    print(f"{'loop':<20} {'ms/step':>9} {'vs plain':>9} {'alone steps/s (min-max)':>25} {'peak RSS MB':>12}")
    for v in ALONE:
        rates = [run["steps_per_s"] for run in alone[v]]
        spread = f"{statistics.median(rates):.2f} ({min(rates):.2f}-{max(rates):.2f})"
        vs = "" if v == "plain" else f"{100 * (main_job['ratio'][v] - 1):+.1f} %"
        rss = statistics.median(run["max_rss_mb"] for run in alone[v])
        print(f"{v:<20} {main_job['ms'][v]:>9.1f} {vs:>9} {spread:>25} {rss:>12.0f}")
    g, q1, q3 = main_job["guard_ms"]
    print(f"non-finite guard: {g:+.1f} ms/step on - off, paired (quartiles {q1:+.1f} .. {q3:+.1f}); its own work "
          f"alone: {guard['guard_ms']:.2f} ms/step ({100 * guard['guard_ms'] / main_job['ms']['depthlab']:.1f} % of a step)")
    g, q1, q3 = fixed["guard_ms"]
    print(f"per-step cost of the loops themselves (tiny network, {TINY_HEIGHT}x{TINY_WIDTH} batches of {TINY_BATCH}, "
          f"plain step {fixed['ms']['plain']:.1f} ms, {fixed['steps']} steps): Lightning "
          f"+{fixed['extra_ms']['depthlab guard off']:.1f} ms with the guard off, "
          f"+{fixed['extra_ms']['depthlab']:.1f} ms with it on (guard on - off {g:+.1f} ms, quartiles {q1:+.1f} .. {q3:+.1f})")


if __name__ == "__main__":
    main()
