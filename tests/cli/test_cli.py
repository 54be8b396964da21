"""The ``depthlab`` command end to end: fit in a subprocess, reload, reproduce, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from depthlab.cli import run
from depthlab.metrics import DepthMetrics
from depthlab.module import DepthModule

pytestmark = pytest.mark.slow


def depthlab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DEPTHLAB_TRACEBACK"}
    return subprocess.run(
        [sys.executable, "-m", "depthlab.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def depthlab_here(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``depthlab ARGS`` in this process (what main() prints and returns; no interpreter start-up: the
    suite's time budget). For the one-line errors, which main() prints itself; an uncaught exception
    would fail the test as a traceback would."""
    import contextlib
    import io

    from depthlab.cli import main

    out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
    traceback = os.environ.pop("DEPTHLAB_TRACEBACK", None)
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # --help, --print_config
                code = exc.code if isinstance(exc.code, int) else 0
    finally:
        os.chdir(here)
        if traceback is not None:
            os.environ["DEPTHLAB_TRACEBACK"] = traceback
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def fit_run(tmp_path_factory, tiny_config_dict):
    """One short ``depthlab fit`` shared by the tests below: (workdir, config, checkpoint, process)."""
    import yaml

    work = tmp_path_factory.mktemp("fit")
    cfg = work / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config_dict))
    proc = depthlab("fit", "--config", str(cfg), cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpts = sorted((work / "logs" / "tiny").glob("version_*/checkpoints/last.ckpt"))
    assert ckpts, f"no checkpoint written under {work}"
    return work, cfg, ckpts[-1], proc


@pytest.fixture(scope="module")
def trained(fit_run):
    """(workdir, config, checkpoint) of :func:`fit_run`."""
    return fit_run[:3]


def test_fit_ends_by_printing_the_run_folder_and_last_ckpt(fit_run):
    _, _, ckpt, proc = fit_run
    lines = proc.stdout.strip().splitlines()[-2:]
    assert lines == [f"depthlab: run folder {ckpt.parent.parent.resolve()}",
                     f"depthlab: last checkpoint {ckpt.resolve()} (continue with --ckpt_path last)"], lines


def test_fit_prints_no_lightning_advertisement_or_foreign_deprecation(fit_run):
    *_, proc = fit_run
    assert "litlogger" not in proc.stderr and "Tip:" not in proc.stderr
    assert "LeafSpec" not in proc.stderr and "deprecated" not in proc.stderr.lower(), proc.stderr


def test_fit_writes_checkpoint_tensorboard_events_and_config(trained):
    work, _, ckpt = trained
    version = ckpt.parent.parent
    assert list(version.glob("events.out.tfevents.*")), "no TensorBoard event file"
    assert (version / "config.yaml").is_file()
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert state["global_step"] == 3  # limit_train_batches: 3, one epoch
    assert any(k.startswith("net.") for k in state["state_dict"])


def test_tensorboard_gets_metrics_and_image_panels(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    work, _, ckpt = trained
    acc = EventAccumulator(str(ckpt.parent.parent), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {"val/abs_rel", "val/rmse", "val/delta1", "train/loss"} <= scalars
    images = acc.Images("val/image_gt_pred")
    assert images, "no image | gt | prediction panel logged"
    # TINY_CONFIG: 4 panels (the first val batch) of 32x(3*48) stacked vertically
    assert (images[-1].height, images[-1].width) == (4 * 32, 3 * 48)


@pytest.mark.parametrize("subcommand", ["validate", "test"])
def test_reloaded_checkpoint_reproduces_the_metrics_of_its_weights(trained, subcommand, monkeypatch):
    work, cfg, ckpt = trained
    monkeypatch.chdir(work)
    cli = run([subcommand, "--config", str(cfg), "--ckpt_path", str(ckpt)])
    stage = "val" if subcommand == "validate" else "test"
    got = {k.split("/", 1)[1]: float(v) for k, v in cli.trainer.callback_metrics.items() if k.startswith(stage + "/")}

    # Independent reference: the checkpoint's weights applied by hand to the same images.
    model = DepthModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    data = cli.datamodule.dataset(stage)
    metric = DepthMetrics()
    with torch.no_grad():
        for i in range(len(data)):
            s = data[i]
            batch = {k: v[None] for k, v in s.items()}
            metric.update(model(batch["image"]).depth, batch["depth"], model.valid_mask(batch))
    want = {k: float(v) for k, v in metric.compute().items()}
    for name in ("abs_rel", "rmse", "delta1", "sq_rel", "rmse_log"):
        assert got[name] == pytest.approx(want[name], rel=1e-5, abs=1e-6), name
    if subcommand == "validate":
        # and the value the ModelCheckpoint recorded at the end of fit for these weights
        best = torch.load(ckpt, map_location="cpu", weights_only=False)["callbacks"]
        scores = [v["best_model_score"] for k, v in best.items() if k.startswith("ModelCheckpoint")]
        assert float(scores[0]) == pytest.approx(got["abs_rel"], rel=1e-5)


def test_help_lists_subcommands_and_plugin_listings(tmp_path):
    proc = depthlab("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for word in ("fit", "validate", "test", "predict", "--print_config", "depthlab losses", "depthlab models"):
        assert word in proc.stdout, word
    # every registered front end (entry-point group depthlab.commands), with its docstring's first line
    from depthlab.commands import COMMANDS

    assert set(COMMANDS.available()) >= {"losses", "models", "data", "hints", "export", "experiment"}
    for name in COMMANDS.available():
        assert f"depthlab {name}" in proc.stdout and COMMANDS.describe(name) in proc.stdout, name


def test_dotted_overrides_reach_the_module_and_trainer(tiny_config, tmp_path):
    proc = depthlab_here("fit", "--config", str(tiny_config), "--model.lr", "0.000123",
                    "--trainer.strategy", "ddp", "--print_config", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "lr: 0.000123" in proc.stdout
    assert "strategy: ddp" in proc.stdout


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "usage:" not in proc.stderr, proc.stderr  # the usage is for --help, not for every mistake
    lines = [ln for ln in proc.stderr.strip().splitlines() if "error" in ln.lower()]
    assert len(lines) == 1 and lines[0].startswith("depthlab: error: "), proc.stderr
    return lines[0]


def test_unknown_config_key_is_one_clear_line(tiny_config, tmp_path):
    line = _one_line_error(depthlab_here("fit", "--config", str(tiny_config), "--model.learning_rate", "1", cwd=tmp_path))
    assert "learning_rate" in line


def test_unknown_key_inside_the_yaml_file_is_named(tiny_config, tmp_path):
    text = tiny_config.read_text().replace("  lr: 0.001", "  lr: 0.001\n  lrr: 0.1")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    line = _one_line_error(depthlab_here("fit", "--config", str(bad), cwd=tmp_path))
    assert "lrr" in line


def test_missing_config_file_is_named(tmp_path):
    line = _one_line_error(depthlab_here("fit", "--config", str(tmp_path / "nope.yaml"), cwd=tmp_path))
    assert "nope.yaml" in line


def test_unknown_encoder_is_one_line_naming_it(tiny_config, tmp_path):
    proc = depthlab_here("fit", "--config", str(tiny_config), "--model.net",
                    '{"name": "unet", "encoder": "resnet_nope", "pretrained": false}', cwd=tmp_path)
    line = _one_line_error(proc)
    assert "resnet_nope" in line and "model.net.encoder" in line
    errors = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()]
    assert errors == [line], proc.stderr  # exactly one error line


@pytest.mark.parametrize(
    "override, expected",
    [(("--model.max_depth", "5"), "model.max_depth: 5.0 is stated, but checkpoint"),
     (("--model.net.encoder", "resnet34"), "model.net.encoder: 'resnet34' is stated, but checkpoint")],
)
def test_a_stated_network_setting_contradicting_the_checkpoint_is_one_error_naming_both(trained, override, expected):
    work, cfg, ckpt = trained
    line = _one_line_error(depthlab_here("test", "--config", str(cfg), "--ckpt_path", str(ckpt), *override, cwd=work))
    assert expected in line and str(ckpt) in line and ("10.0" in line or "test_resnet" in line)


def test_stated_evaluation_settings_win_over_the_checkpoint(trained, monkeypatch):
    work, cfg, ckpt = trained
    monkeypatch.chdir(work)
    cli = run(["validate", "--config", str(cfg), "--ckpt_path", str(ckpt), "--model.log_images", "0",
               "--model.loss", "l1"])
    assert cli.model.hparams.log_images == 0 and list(cli.model.loss.terms) == ["l1"]  # the checkpoint has silog
    assert cli.model.hparams.max_depth == 10.0  # unstated: the checkpoint's (and the config's)


def test_predict_writes_one_depth_file_per_sample(trained, tmp_path, monkeypatch):
    import cv2
    import numpy as np

    work, cfg, ckpt = trained
    monkeypatch.chdir(work)
    out = tmp_path / "pred"
    cli = run(["predict", "--config", str(cfg), "--ckpt_path", str(ckpt),
               "--trainer.callbacks+=depthlab.callbacks.DepthPredictionWriter",
               "--trainer.callbacks.output_dir", str(out), "--trainer.callbacks.format", "png16"])
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(5)]  # test_size: 5
    model = DepthModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    with torch.no_grad():
        want = model(cli.datamodule.dataset("test")[3]["image"][None]).depth[0, 0].numpy()
    got = cv2.imread(str(files[3]), cv2.IMREAD_UNCHANGED)
    assert got.dtype == np.uint16 and got.shape == want.shape
    np.testing.assert_allclose(got / 256.0, want, atol=0.5 / 256 + 1e-6)


def test_test_with_ckpt_path_needs_no_pretrained_encoder_weights_offline(trained, tmp_path):
    """A checkpoint of a network built with ``pretrained: true`` evaluates on an offline machine."""
    work, cfg, ckpt = trained
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    state["hyper_parameters"]["net"]["pretrained"] = True
    offline_ckpt = tmp_path / "pretrained_net.ckpt"
    torch.save(state, offline_ckpt)
    env = {k: v for k, v in os.environ.items() if k != "DEPTHLAB_TRACEBACK"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "empty_hf_home"))
    proc = subprocess.run(
        [sys.executable, "-m", "depthlab.cli", "test", "--config", str(cfg), "--ckpt_path", str(offline_ckpt),
         "--model.net.pretrained", "true"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "abs_rel" in proc.stdout
    # Without a checkpoint the same config fails with the one-line offline message.
    proc = subprocess.run(
        [sys.executable, "-m", "depthlab.cli", "test", "--config", str(cfg), "--model.net.pretrained", "true"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300,
    )
    line = _one_line_error(proc)
    assert "pretrained" in line
