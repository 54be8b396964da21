"""DataLoader workers end with a failing run: the run exits at once with one error line, whatever the
worker count (it used to hang for ever with 3+ workers), and the exit clean-up kills every worker
left even when torch's SIGCHLD handler raises during it."""

from __future__ import annotations

import json
import multiprocessing
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from depthlab.data import SyntheticDataModule
from depthlab.data.workers import _kill_workers_ignoring_sigterm

from data_trees import build_kitti

REPO = Path(__file__).resolve().parents[2]


def _children(besides: list | tuple = ()) -> list:
    """The daemonic child processes (DataLoader workers) not in ``besides``."""
    return [c for c in multiprocessing.active_children() if c.daemon and c not in besides]


def test_on_exception_shuts_down_the_persistent_workers():
    dm = SyntheticDataModule(height=16, width=16, val_size=4, batch_size=1, num_workers=2)
    loader = dm.val_dataloader()
    others = _children()  # left by other tests
    next(iter(loader))
    assert len(_children(others)) == 2
    dm.on_exception(RuntimeError("a failed run"))
    assert loader._iterator is None and _children(others) == []


def test_exit_cleanup_kills_every_worker_despite_torchs_sigchld_handler():
    # Workers ignore SIGTERM; before, the first SIGKILL made torch's SIGCHLD handler raise "worker
    # is killed by signal" inside the clean-up, which left the other workers alive (exit then hung).
    previous = signal.getsignal(signal.SIGCHLD)
    try:
        dm = SyntheticDataModule(height=16, width=16, val_size=8, batch_size=1, num_workers=4)
        loader = dm.val_dataloader()
        others = _children()
        for _ in loader:  # every worker has made a batch: each has run its start-up (SIGTERM ignored)
            pass
        workers = _children(others)  # persistent: alive after the epoch
        assert len(workers) == 4
        _kill_workers_ignoring_sigterm()
        assert all(not w.is_alive() for w in workers)
    finally:
        signal.signal(signal.SIGCHLD, previous)


# One interpreter runs the six failing fits (2, 4, 8 workers; failing in the sanity check, in
# training) through the CLI's main(), then exits with their status: each must fail within seconds
# and leave no worker behind, and the process must then exit (it hung in atexit before).
_DRIVER = textwrap.dedent("""
    import json, multiprocessing, sys, time
    from depthlab.cli import main
    runs = []
    for config in sys.argv[1:]:
        start = time.monotonic()
        code = main(["fit", "--config", config])
        runs.append([code, round(time.monotonic() - start, 1), len(multiprocessing.active_children())])
    print("RUNS", json.dumps(runs))
    sys.exit(max(run[0] for run in runs))
""")


@pytest.fixture(scope="module")
def broken_kitti(tmp_path_factory) -> dict:
    """A KITTI tree with one ground-truth file removed; lists that meet it in validation and in training."""
    root = tmp_path_factory.mktemp("broken_kitti")
    tree = build_kitti(root)
    lines = [line for line in tree.list_path.read_text().splitlines() if "None" not in line]
    bad = lines[1]  # drive_0001 frame 6
    (tree.gt_root / "train" / bad.split()[1]).unlink()
    lists = {"bad_first": [bad, lines[0]], "good": [lines[0], lines[3]]}
    for name, content in lists.items():
        (root / f"{name}.txt").write_text("\n".join(content) + "\n")
    return {"root": root, "tree": tree, "missing": str(tree.gt_root / bad.split()[1])}  # the first place looked


def _config(data: dict, workers: int, phase: str) -> Path:
    tree, root = data["tree"], data["root"]
    val, train = ("bad_first", "good") if phase == "sanity" else ("good", "bad_first")
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_epochs": 1, "limit_train_batches": 1,
                    "num_sanity_val_steps": 2 if phase == "sanity" else 0, "enable_model_summary": False,
                    "enable_progress_bar": False, "default_root_dir": str(root / "runs"),
                    "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                               "init_args": {"save_dir": str(root / "logs"), "name": phase}}},
        "model": {"net": {"name": "unet", "encoder": "test_resnet", "pretrained": False,
                          "decoder_channels": [8, 8, 8, 8]}, "loss": "silog", "max_depth": 80.0},
        "data": {"class_path": "depthlab.data.KITTIDataModule", "init_args": {
            "raw_root": str(tree.raw_root), "gt_root": str(tree.gt_root), "train_list": str(root / f"{train}.txt"),
            "val_list": str(root / f"{val}.txt"), "test_list": str(root / "good.txt"), "batch_size": 2,
            "num_workers": workers, "train_transforms": [{"name": "RandomCrop", "height": 32, "width": 32}]}},
    }
    path = root / f"{phase}_{workers}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_fit_with_a_missing_file_exits_at_once_with_one_line(broken_kitti):
    configs = [str(_config(broken_kitti, workers, phase)) for workers in (2, 4, 8) for phase in ("sanity", "training")]
    run = subprocess.run([sys.executable, "-c", _DRIVER, *configs], cwd=broken_kitti["root"], capture_output=True,
                         text=True, timeout=150, env={"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
                                                      "PATH": "/usr/bin:/bin"})
    assert run.returncode == 2, run.stderr[-2000:]
    runs = json.loads(run.stdout.split("RUNS", 1)[1])
    assert [code for code, _, _ in runs] == [2] * 6
    assert all(seconds < 60 for _, seconds, _ in runs), runs
    assert [left for _, _, left in runs] == [0] * 6  # no worker left running by a failed run
    missing, listed = broken_kitti["missing"], f"{broken_kitti['root']}/bad_first.txt:1"
    expected = f"depthlab: error: {missing}: missing file: no such file (listed at {listed})"
    errors = [line[line.index("depthlab: error:"):] for line in run.stderr.splitlines() if "depthlab: error:" in line]
    assert errors == [expected] * 6
    assert "Traceback" not in run.stderr and "Caught DataError" not in run.stderr


def test_a_data_module_with_loaders_still_pickles():
    import pickle

    dm = SyntheticDataModule(height=16, width=16, val_size=2, num_workers=1)
    loader = dm.val_dataloader()  # noqa: F841  (held: the module keeps only weak references)
    copy = pickle.loads(pickle.dumps(dm))
    assert copy.sizes == dm.sizes and len(copy._built_loaders) == 0 and len(dm._built_loaders) == 1
