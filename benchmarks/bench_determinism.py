"""What does ``trainer.deterministic: true`` cost? Training steps/s of the main job's network with and
without it, and whether two runs from one seed end with bit-identical weights.

    python benchmarks/bench_determinism.py [--steps 10 --rounds 3 --device cpu --threads N]

Lightning's ``deterministic: true`` calls ``torch.use_deterministic_algorithms(True)`` (on CUDA it also
sets cuDNN to deterministic algorithms without autotuning, and ``CUBLAS_WORKSPACE_CONFIG``); this does
the same around one training step of the main job (U-Net on resnet18, decoder 128-64-32-16, SILog,
AdamW) on a batch of 8 procedural 96x128 samples. Rounds alternate the switch off and on so that a
busy machine slows both alike; the median round is reported, as wall-clock steps/s and as CPU
seconds per step (``time.process_time``, all threads): on a machine shared with other jobs the wall
clock mostly measures the others, the CPU time this process needed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before CUDA starts, as Lightning sets it

import torch  # noqa: E402

from depthlab.data.synthetic import SceneConfig, render_sample  # noqa: E402
from depthlab.module import DepthModule  # noqa: E402


def set_deterministic(on: bool) -> None:
    torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = not on


def make(device: str, seed: int = 0):
    torch.manual_seed(seed)
    model = DepthModule(net={"name": "unet", "encoder": "resnet18", "decoder_channels": [128, 64, 32, 16]}).to(device)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


def step(model: DepthModule, optimizer: torch.optim.Optimizer, batch: dict) -> None:
    optimizer.zero_grad()
    loss, _ = model.compute_loss(model(batch["image"]), batch)
    loss.backward()
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per setting")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's); 1 keeps an oversubscribed machine's "
                             "spin-waiting out of the CPU time")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = SceneConfig(height=96, width=128)
    samples = [render_sample(cfg, 0, "train", i) for i in range(8)]
    batch = {k: torch.stack([s[k] for s in samples]).to(args.device) for k in samples[0]}
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    rates: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    models = {on: make(args.device) for on in rates}
    for round_ in range(args.rounds + 1):  # round 0 warms up
        for on, (model, optimizer) in models.items():
            set_deterministic(on)
            sync()
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                step(model, optimizer, batch)
            sync()
            if round_:
                rates[on].append(args.steps / (time.perf_counter() - start))
                cpu[on].append((time.process_time() - start_cpu) / args.steps)

    repeatable = {}
    for on in rates:  # two runs of a few steps from one seed: bit-identical weights?
        set_deterministic(on)
        weights = []
        for _ in range(2):
            model, optimizer = make(args.device)
            for _ in range(3):
                step(model, optimizer, batch)
            weights.append([p.detach().clone() for p in model.parameters()])
        repeatable[on] = all(torch.equal(a, b) for a, b in zip(*weights))
    set_deterministic(False)

    off_cpu = statistics.median(cpu[False])
    print(f"main job's train step, batch 8 at 96x128, {args.device}, torch threads {torch.get_num_threads()}, "
          f"{args.rounds} rounds of {args.steps} steps, median; load average {os.getloadavg()[0]:.1f}")
    print(f"{'trainer.deterministic':<22} {'steps/s':>8} {'CPU s/step':>11} {'CPU ratio':>10} {'seeded runs bit-identical':>26}")
    for on in (False, True):
        rate, per_step = statistics.median(rates[on]), statistics.median(cpu[on])
        print(f"{str(on).lower():<22} {rate:>8.2f} {per_step:>11.3f} {per_step / off_cpu:>10.2f} "
              f"{str(repeatable[on]).lower():>26}")


if __name__ == "__main__":
    main()
