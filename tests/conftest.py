"""Shared fixtures: a tiny end-to-end configuration that trains in seconds on a CPU."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import platform
import tempfile

import pytest
import yaml

from disk_room import free_space_problem

# Under pytest-xdist (pyproject's addopts: two workers on this 2-core machine) each worker and the
# processes its tests start use one thread: two workers x two threads would oversubscribe the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# h5py's first import asks platform.processor(), which runs `uname -p` in a subprocess: done once here,
# before the fast tier's guard below refuses subprocesses (the answer is cached).
platform.processor()

# --- disk: a temp folder too full to run the suite is one line before any test starts (tests/disk_room.py).


def pytest_sessionstart(session):
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller checked already
        return
    basetemp = session.config.option.basetemp
    folder = os.path.dirname(os.path.abspath(basetemp)) if basetemp else tempfile.gettempdir()
    problem = free_space_problem(folder)
    if problem:
        pytest.exit(problem, returncode=3)


TINY_CONFIG = {
    "seed_everything": 0,
    "trainer": {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 1,
        "limit_train_batches": 3,
        "log_every_n_steps": 1,
        "enable_model_summary": False,
        "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                   "init_args": {"save_dir": "logs", "name": "tiny"}},
        "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                       "init_args": {"monitor": "val/abs_rel", "mode": "min", "save_last": True}}],
    },
    "model": {
        "net": {"name": "unet", "encoder": "test_resnet", "pretrained": False, "decoder_channels": [32, 16, 8, 8]},
        "loss": "silog",
        "max_depth": 10.0,
        "lr": 1e-3,
    },
    "data": {
        "class_path": "depthlab.data.SyntheticDataModule",
        "init_args": {"height": 32, "width": 48, "train_size": 12, "val_size": 5, "test_size": 5,
                      "batch_size": 4, "num_workers": 0},
    },
}


@pytest.fixture(scope="session")
def tiny_config_dict() -> dict:
    """A fresh copy of TINY_CONFIG (fixtures of any scope can use it)."""
    return copy.deepcopy(TINY_CONFIG)


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    """Write the tiny config into a temp dir (logs go there too: paths are relative to the cwd)."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_CONFIG))
    return path


# --- test tiers -------------------------------------------------------------------------------------
# `pytest -m "not slow"` is the tier a developer runs while editing (under 60 s here). A test that
# starts a Lightning run (fit/validate/test/predict) or a subprocess belongs to the `slow` tier; an
# unmarked one that does either fails here with a line saying so, so the fast tier stays fast.


@pytest.fixture(autouse=True)
def _fast_tier_guard(request, monkeypatch):
    if request.node.get_closest_marker("slow") is not None:
        yield
        return
    import subprocess

    from lightning.pytorch import Trainer

    def refuse(what):
        def _refused(*args, **kwargs):
            raise AssertionError(f"{request.node.nodeid} {what}: mark it @pytest.mark.slow (tests/conftest.py)")
        return _refused

    monkeypatch.setattr(Trainer, "_run", refuse("starts a Lightning run"))
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("starts a subprocess"))
    yield
