"""``depthlab export``: a checkpoint's network as ONNX, TorchScript or a torch.export program, equal to PyTorch."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from depthlab.cli import main
from depthlab.module import DepthModule
from depthlab.parser import model_from_config
from module_files import save_checkpoint, write_small_config

EXPORT_SIZE = (64, 96)
# the traced shape, then a batch and a size (not multiples of 32) the tracer never saw
CHECK_SHAPES = [(2, 64, 96), (1, 72, 104)]
RTOL = 1e-4


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_config_dict):
    """(config, checkpoint): a tiny U-Net whose weights differ from any fresh initialisation."""
    work = tmp_path_factory.mktemp("export")
    config, cfg = write_small_config(work, tiny_config_dict)
    torch.manual_seed(1)
    model = DepthModule(**config["model"])
    with torch.no_grad():  # not the weights a seeded build from the config would have
        for p in model.net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return cfg, save_checkpoint(model, work / "tiny.ckpt")


def _run_exported(path: Path, fmt: str):
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (image_input,) = session.get_inputs()
        assert image_input.name == "image" and image_input.shape == ["batch", 3, "height", "width"]
        return lambda image: torch.from_numpy(session.run(None, {"image": image.numpy()})[0])
    if fmt == "torchscript":
        module = torch.jit.load(str(path), map_location="cpu")
    else:
        module = torch.export.load(str(path)).module()
    return lambda image: module(image)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "pt2"])
def test_exported_file_matches_the_checkpoint_at_two_sizes(checkpoint, tmp_path, capsys, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxscript")
    cfg, ckpt = checkpoint
    out = tmp_path / f"net.{fmt}"
    code = main(["export", "--config", str(cfg), "--ckpt_path", str(ckpt), "--format", fmt, "--output", str(out),
                 "--size", *map(str, EXPORT_SIZE)])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"wrote {out.resolve()}" in printed and "max relative difference" in printed

    net = DepthModule.load_from_checkpoint(ckpt, map_location="cpu").net.eval()
    run = _run_exported(out, fmt)
    for batch, h, w in CHECK_SHAPES:
        image = torch.rand(batch, 3, h, w)
        with torch.no_grad():
            torch.testing.assert_close(run(image), net(image).depth, rtol=RTOL, atol=0)


def test_the_checkpoint_supplies_the_weights(checkpoint):
    cfg, ckpt = checkpoint
    model = model_from_config(["--config", str(cfg)], "depthlab export", ckpt_path=ckpt)
    want = DepthModule.load_from_checkpoint(ckpt, map_location="cpu").state_dict()
    got = model.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_bad_checkpoint_is_one_error_line(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DEPTHLAB_TRACEBACK", raising=False)
    cfg, _ = checkpoint
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    truncated = tmp_path / "truncated.ckpt"
    whole = Path(checkpoint[1]).read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    for path, says in ((tmp_path / "nope.ckpt", "no such file"), (junk, "not a readable checkpoint"),
                       (truncated, "truncated")):
        assert main(["export", "--config", str(cfg), "--ckpt_path", str(path), "--format", "onnx"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(path) in err[0] and says in err[0], err


def test_a_stated_network_setting_contradicting_the_checkpoint_is_the_same_line_as_for_test(checkpoint, capsys,
                                                                                           monkeypatch):
    """One precedence rule for every --ckpt_path command: export refuses what test refuses, in the same words."""
    monkeypatch.delenv("DEPTHLAB_TRACEBACK", raising=False)
    monkeypatch.setattr(sys, "argv", ["depthlab"])  # main() is given its arguments; pytest's are not for it
    cfg, ckpt = checkpoint
    lines = {}
    for command, extra in (("export", ["--format", "onnx"]), ("test", [])):
        code = main([command, "--config", str(cfg), "--ckpt_path", str(ckpt), *extra, "--model.net.encoder", "resnet34"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        lines[command] = err[0]
    assert lines["export"] == lines["test"]
    assert lines["export"].startswith("depthlab: error: model.net.encoder: 'resnet34' is stated, but checkpoint")
    assert str(ckpt) in lines["export"] and "'test_resnet'" in lines["export"]


def test_unstated_settings_come_from_the_checkpoint_as_for_test(checkpoint, tmp_path):
    """A config that does not state the network (here: another decoder) gets the checkpoint's, as test does."""
    import yaml

    cfg, ckpt = checkpoint
    config = yaml.safe_load(cfg.read_text())
    del config["model"]["net"]["decoder_channels"]  # unstated: the checkpoint's 16-8-8-8, not the default
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(config))
    model = model_from_config(["--config", str(other)], "depthlab export", ckpt_path=ckpt)
    assert model.hparams.net["decoder_channels"] == [16, 8, 8, 8]
