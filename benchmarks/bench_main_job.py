"""The main job against a bare training-step loop on the same batches, paired in one run.

    python benchmarks/bench_main_job.py [--repeats 2 --bare-steps 120 --epochs 6 --variant NAME=ARGS ...]

- ``job``: ``depthlab fit --config configs/synthetic.yaml --trainer.enable_progress_bar false`` as a
  user runs it (its own data module and DataLoader worker, validation, TensorBoard logging, image
  panels, checkpoints), in a subprocess, with a callback (:class:`StepClock`) that only records the
  time of Lightning's hooks, and with ``--trainer.max_epochs`` from ``--epochs`` (6: the whole job).
- ``bare``: the same network (U-Net on resnet18, DepthModule's initialisation with seed 0), SiLog and
  AdamW with the same warm-up + cosine schedule, on the job's own first training batches (rendered
  once by the job's data module, in its training order, held in memory), in a subprocess:
  forward, loss, backward, step, nothing else. torch's thread count is its
  default in both (as ``depthlab fit`` runs).

Each repeat runs bare, job, bare (each job variant in turn, order rotated per repeat), so that a
change of load on a shared machine shows up as a difference of the two bare runs around a job.
Rates are throughputs (steps / seconds, after ``--warmup`` steps), not medians: a step that waits
for data counts. The table gives per job run:

- ``in-epoch``: training steps per second of training time (first batch start to last batch end
  of each epoch; validation, checkpoints and epoch ends left out), and its ratio to the mean of the
  two bare runs around it: the issue's "fraction of the bare step rate";
- ``whole``: steps / the job process's wall time (imports, start-up, sanity check, validation,
  checkpoints included), and its ratio;
- where the job's time goes: start-up to the first batch, the steps themselves, waiting for a batch
  (time between one step's end and the next one's start), validation, checkpoint writes, the rest.

``--variant NAME=ARGS`` adds a job run with extra ``depthlab fit`` arguments (e.g.
``w0=--data.init_args.num_workers 0``; an argument ``KEY=VALUE`` in capitals sets an environment
variable, e.g. ``omp1=OMP_NUM_THREADS=1``), ``NAME@DIR=ARGS`` the job of another depthlab checkout (e.g.
an older commit exported with ``git archive``) for a before/after comparison; ``--tree DIR`` runs
only another checkout's job. The bare loop and its batches always come from this checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning as L

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/synthetic.yaml"
BENCH_DIR = Path(__file__).resolve().parent
CLOCK_ENV = "DEPTHLAB_BENCH_CLOCK"  # where StepClock writes its hook times


def _workers_cpu() -> float:
    """CPU seconds (user + system) used so far by this process's live child processes (the
    DataLoader workers), from ``/proc`` (0 where there is none)."""
    import multiprocessing

    total = 0.0
    for child in multiprocessing.active_children():
        try:
            fields = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


class StepClock(L.Callback):
    """Records the wall time, the process's CPU time and its DataLoader workers' CPU time at
    Lightning's hooks, the duration of every checkpoint write and val/abs_rel after each
    validation, and writes them as JSON to ``$DEPTHLAB_BENCH_CLOCK`` when the fit ends. Measures only."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []
        self.saves: list[float] = []
        self.abs_rel: list[float | None] = []  # val/abs_rel after each epoch

    def _mark(self, name: str) -> None:
        # wall time, this process's CPU time (all its threads) and its DataLoader workers' CPU time
        self.events.append((name, time.perf_counter(), time.process_time(), _workers_cpu()))

    def setup(self, trainer, pl_module, stage) -> None:
        save = trainer.save_checkpoint

        def timed_save(*args, **kwargs):
            start = time.perf_counter()
            try:
                return save(*args, **kwargs)
            finally:
                self.saves.append(time.perf_counter() - start)

        trainer.save_checkpoint = timed_save  # ModelCheckpoint writes through it

    def on_fit_start(self, *args) -> None:
        self._mark("fit_start")

    def on_sanity_check_end(self, *args) -> None:
        self._mark("sanity_end")

    def on_train_epoch_start(self, *args) -> None:
        self._mark("epoch_start")

    def on_train_batch_start(self, *args) -> None:
        self._mark("batch_start")

    def on_train_batch_end(self, *args) -> None:
        self._mark("batch_end")

    def on_validation_start(self, trainer, *args) -> None:
        if not trainer.sanity_checking:
            self._mark("val_start")

    def on_validation_end(self, trainer, *args) -> None:
        if not trainer.sanity_checking:
            self._mark("val_end")
            value = trainer.callback_metrics.get("val/abs_rel")
            self.abs_rel.append(None if value is None else float(value))

    def on_train_epoch_end(self, *args) -> None:
        self._mark("epoch_end")

    def on_fit_end(self, trainer, pl_module) -> None:
        self._mark("fit_end")
        path = os.environ.get(CLOCK_ENV)
        if path:
            Path(path).write_text(json.dumps({"events": self.events, "saves": self.saves,
                                              "abs_rel": self.abs_rel}))


# --- the job's batches, and the bare loop on them -----------------------------------------------

def job_settings() -> tuple[dict, dict, dict]:
    """(model settings, data init_args, trainer settings) of the main job's config."""
    import yaml

    config = yaml.safe_load((ROOT / CONFIG).read_text())
    return config["model"], config["data"]["init_args"], config["trainer"]


def render_batches(path: str, n: int) -> None:
    """The job's first ``n`` training batches, in its order (seed 0: seed_everything's), as the job's
    data module makes them for its objective (SiLog reads image and depth)."""
    import torch

    from depthlab.data import SyntheticDataModule

    os.environ["PL_GLOBAL_SEED"] = "0"
    _, data, _ = job_settings()
    dm = SyntheticDataModule(**(data | {"num_workers": 0}))
    dm.require({"image", "depth", "valid"}, "train")
    batches = []
    for batch in dm.train_dataloader():
        batches.append({k: batch[k] for k in ("image", "depth", "valid")})
        if len(batches) == n:
            break
    torch.save(batches, path)


def bare(batches_path: str, steps: int, warmup: int, total_steps: int) -> dict:
    """A plain PyTorch training loop: steps per second after ``warmup`` steps."""
    import torch

    from depthlab import losses, models
    from depthlab.metrics import valid_depth_mask

    model, _, _ = job_settings()
    batches = torch.load(batches_path)
    torch.manual_seed(0)  # as seed_everything(0) before DepthModule builds its network
    lo, hi = model["min_depth"], model["max_depth"]
    net = models.build(model["net"], min_depth=max(lo, 1e-3), max_depth=hi).train()
    objective = losses.build_objective(model["loss"])
    lr = model["lr"]
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=model["weight_decay"])
    ramp = max(int(model["warmup"] * total_steps), 1)  # DepthModule's warm-up + cosine, from torch's schedulers
    schedule = torch.optim.lr_scheduler.SequentialLR(optimizer, [
        torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1 / ramp, total_iters=ramp),
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps - ramp, 1), eta_min=0.01 * lr),
    ], milestones=[ramp])
    start = cpu = None
    for i in range(steps):
        if i == warmup:
            start, cpu = time.perf_counter(), time.process_time()
        batch = batches[i % len(batches)]
        optimizer.zero_grad()
        out = net(batch["image"])
        mask = valid_depth_mask(batch["depth"], lo, hi, batch["valid"])
        target = {**batch, "depth": torch.where(mask, batch["depth"], torch.ones_like(batch["depth"]))}
        loss, _ = objective(out, target, mask)
        loss.backward()
        optimizer.step()
        schedule.step()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"steps_per_s": (steps - warmup) / elapsed, "cpu_per_step": cpu / (steps - warmup),
            "threads": torch.get_num_threads()}


# --- the job -----------------------------------------------------------------------------------

def _env(tree: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree), str(BENCH_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_job(tree: Path, epochs: int, extra: list[str], warmup: int) -> dict:
    environment = dict(arg.split("=", 1) for arg in extra if arg.split("=", 1)[0].isupper())
    extra = [arg for arg in extra if arg.split("=", 1)[0] not in environment]
    with tempfile.TemporaryDirectory() as tmp:
        clock = Path(tmp) / "clock.json"
        cmd = [sys.executable, "-m", "depthlab.cli", "fit", "--config", CONFIG, "--trainer.enable_progress_bar",
               "false", "--trainer.max_epochs", str(epochs), "--trainer.default_root_dir", str(Path(tmp) / "logs"),
               "--trainer.callbacks+=bench_main_job.StepClock", *extra]
        env = _env(tree) | environment | {CLOCK_ENV: str(clock)}
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0 or not clock.exists():
            sys.exit(f"bench_main_job: the job failed (exit {proc.returncode}): {proc.stderr.strip()[-3000:]}")
        data = json.loads(clock.read_text())
    return summarize_job(data["events"], data["saves"], wall, warmup) | {"abs_rel": data["abs_rel"]}


def summarize_job(events: list, saves: list[float], wall: float, warmup: int) -> dict:
    """Where the job's time went, from the hook times (see the module docstring)."""
    epochs: list[list[tuple[list, list]]] = []
    val = val_cpu = val_workers = 0.0
    batch_start = val_start = epoch_start = None
    train_workers = 0.0
    for event in events:
        name = event[0]
        if name == "epoch_start":
            epochs.append([])
            epoch_start = event
        elif name == "batch_start":
            batch_start = event
        elif name == "batch_end":
            epochs[-1].append((batch_start, event))
        elif name == "val_start":
            val_start = event
            train_workers += event[3] - epoch_start[3]
        elif name == "val_end":
            val += event[1] - val_start[1]
            val_cpu += event[2] - val_start[2]
            val_workers += event[3] - val_start[3]
    epochs = [e for e in epochs if e]
    fit = events[-1][1] - events[0][1]
    timed_steps = train = step = wait = step_cpu = wait_cpu = 0.0
    for e, batches in enumerate(epochs):
        step += sum(b[1] - a[1] for a, b in batches)
        step_cpu += sum(b[2] - a[2] for a, b in batches)
        wait += sum(b[0][1] - a[1][1] for a, b in zip(batches, batches[1:]))
        wait_cpu += sum(b[0][2] - a[1][2] for a, b in zip(batches, batches[1:]))
        timed = batches[warmup:] if e == 0 else batches  # the run's first steps: allocation, warm-up
        if timed:
            train += timed[-1][1][1] - timed[0][0][1]
            timed_steps += len(timed)
    steps = sum(len(e) for e in epochs)
    first = epochs[0][0][0]
    return {
        "wall_s": wall, "steps": steps, "in_epoch_steps_per_s": timed_steps / train, "whole_steps_per_s": steps / wall,
        # imports, set-up, sanity check: everything before the first batch, and the exit after the fit
        "startup_s": wall - fit + (first[1] - events[0][1]),
        "step_s": step, "wait_s": wait, "val_s": val, "ckpt_s": sum(saves), "saves": len(saves),
        # CPU seconds: the training process in its steps and between them, its workers during the
        # training epochs, validation (process and workers), and the process before its first batch
        "cpu": {"step": step_cpu, "wait": wait_cpu, "workers_train": train_workers, "val": val_cpu,
                "val_workers": val_workers, "startup": first[2]},
    }


def spawn_bare(tree: Path, batches: str, steps: int, warmup: int, total_steps: int) -> dict:
    cmd = [sys.executable, __file__, "--child-bare", batches, "--bare-steps", str(steps), "--warmup", str(warmup),
           "--total-steps", str(total_steps)]
    proc = subprocess.run(cmd, cwd=tree, env=_env(tree), capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"bench_main_job: the bare loop failed (exit {proc.returncode}): {proc.stderr.strip()[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="bare, job, bare sequences (per variant)")
    parser.add_argument("--epochs", type=int, default=6, help="the job's --trainer.max_epochs (6: the whole job)")
    parser.add_argument("--bare-steps", type=int, default=120, help="steps of each bare run")
    parser.add_argument("--warmup", type=int, default=5, help="first steps of a run left out of its rate")
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME[@TREE]=ARGS: also run the job with these extra depthlab fit arguments (from the "
                             "depthlab checkout TREE)")
    parser.add_argument("--no-shipped", action="store_true", help="run only the --variant jobs")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the depthlab checkout to run (default: this one)")
    parser.add_argument("--batches", type=int, default=25, help="distinct in-memory batches of the bare loop")
    parser.add_argument("--json", type=Path, help="also write every run's numbers here")
    parser.add_argument("--threads", type=int, help="torch threads of the job and the bare loop (OMP_NUM_THREADS; "
                        "default: torch's own, one per core)")
    parser.add_argument("--child-bare", help=argparse.SUPPRESS)
    parser.add_argument("--total-steps", type=int, default=600, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_bare:
        print("RESULT " + json.dumps(bare(args.child_bare, args.bare_steps, args.warmup, args.total_steps)))
        return
    tree = args.tree.resolve()
    variants = ([] if args.no_shipped else [("shipped", tree, [])])
    for v in args.variant:  # NAME[@TREE]=ARGS, where an argument KEY=VALUE in capitals is an environment variable
        name, _, extra = v.partition("=")
        name, _, other = name.partition("@")
        variants.append((name, Path(other).resolve() if other else tree, shlex.split(extra)))
    for name, _, _ in variants:
        if sum(v[0] == name for v in variants) > 1:
            parser.error(f"two variants are named {name!r}")
    if not variants:
        parser.error("nothing to run: --no-shipped needs a --variant")
    _, _, trainer = job_settings()
    total_steps = args.epochs * trainer["limit_train_batches"]
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by every child, read by torch at start
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        batches = str(Path(tmp) / "batches.pt")
        subprocess.run([sys.executable, "-c", f"import bench_main_job as b; b.render_batches({batches!r}, "
                        f"{args.batches})"], cwd=ROOT, env=_env(ROOT), check=True)
        for r in range(args.repeats):
            order = variants[r % len(variants):] + variants[:r % len(variants)]
            before = spawn_bare(ROOT, batches, args.bare_steps, args.warmup, total_steps)
            for name, job_tree, extra in order:
                job = run_job(job_tree, args.epochs, extra, args.warmup)
                after = spawn_bare(ROOT, batches, args.bare_steps, args.warmup, total_steps)
                rate = (before["steps_per_s"] + after["steps_per_s"]) / 2
                runs.append({"variant": name, "tree": str(job_tree), "repeat": r, "bare_before": before["steps_per_s"],
                             "bare_after": after["steps_per_s"], "bare": rate, "threads": after["threads"],
                             "bare_cpu_per_step": (before["cpu_per_step"] + after["cpu_per_step"]) / 2, **job})
                print(f"repeat {r + 1}/{args.repeats} {name}: job {job['in_epoch_steps_per_s']:.2f} steps/s in epochs, "
                      f"{job['wall_s']:.0f} s wall; bare {before['steps_per_s']:.2f} / {after['steps_per_s']:.2f}",
                      file=sys.stderr)
                before = after
    print(f"main job ({CONFIG}, {args.epochs} epochs x {trainer['limit_train_batches']} steps) against a bare loop "
          f"on its batches; torch threads {runs[0]['threads']}; {os.cpu_count()} CPUs")
    head = (f"{'variant':<12} {'bare':>6} {'in-epoch':>8} {'ratio':>6} {'whole':>6} {'ratio':>6} {'wall s':>7} "
            f"{'start':>6} {'steps':>6} {'wait':>6} {'val':>6} {'ckpt':>6} {'rest':>6}  val abs_rel per epoch")
    print(head)
    print("-" * len(head))
    for run in runs:
        rest = run["wall_s"] - run["startup_s"] - run["step_s"] - run["wait_s"] - run["val_s"] - run["ckpt_s"]
        print(f"{run['variant']:<12} {run['bare']:>6.2f} {run['in_epoch_steps_per_s']:>8.2f} "
              f"{run['in_epoch_steps_per_s'] / run['bare']:>6.2f} {run['whole_steps_per_s']:>6.2f} "
              f"{run['whole_steps_per_s'] / run['bare']:>6.2f} {run['wall_s']:>7.1f} {run['startup_s']:>6.1f} "
              f"{run['step_s']:>6.1f} {run['wait_s']:>6.1f} {run['val_s']:>6.1f} {run['ckpt_s']:>6.1f} {rest:>6.1f}  "
              + " ".join("-" if a is None else f"{a:.3f}" for a in run["abs_rel"]))
    print("\nCPU seconds per training step (all threads of a process; a load-independent view of the work): "
          "bare loop; job's process in its steps and between them; its DataLoader worker; then per epoch: "
          "validation (process, its worker); then the process's CPU before its first batch")
    head = (f"{'variant':<12} {'bare':>6} {'step':>6} {'between':>7} {'worker':>6} {'val':>6} {'val wk':>6} "
            f"{'start':>6}")
    print(head)
    print("-" * len(head))
    for run in runs:
        cpu, n, epochs = run["cpu"], run["steps"], len(run["abs_rel"]) or 1
        print(f"{run['variant']:<12} {run['bare_cpu_per_step']:>6.3f} {cpu['step'] / n:>6.3f} {cpu['wait'] / n:>7.3f} "
              f"{cpu['workers_train'] / n:>6.3f} {cpu['val'] / epochs:>6.2f} {cpu['val_workers'] / epochs:>6.2f} "
              f"{cpu['startup']:>6.1f}")
    for name, _, _ in variants:
        mine = [r for r in runs if r["variant"] == name]
        ratios = [r["in_epoch_steps_per_s"] / r["bare"] for r in mine]
        whole = [r["whole_steps_per_s"] / r["bare"] for r in mine]
        print(f"{name}: in-epoch rate {statistics.median(ratios):.2f} of the bare loop's (min {min(ratios):.2f}), "
              f"whole job {statistics.median(whole):.2f} (min {min(whole):.2f}); median of {len(mine)}")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
