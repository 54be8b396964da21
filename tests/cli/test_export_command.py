"""``depthlab export``: a checkpoint's network as ONNX, TorchScript or a torch.export program, equal to PyTorch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from depthlab.cli import main
from depthlab.export import model_from_config, read_checkpoint
from depthlab.module import DepthModule
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
    model = model_from_config(["--config", str(cfg)], read_checkpoint(ckpt), ckpt)
    want = DepthModule.load_from_checkpoint(ckpt, map_location="cpu").state_dict()
    got = model.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_bad_checkpoint_is_one_error_line(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DEPTHLAB_TRACEBACK", raising=False)
    cfg, _ = checkpoint
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    for path, says in ((tmp_path / "nope.ckpt", "no such file"), (junk, "not a readable checkpoint")):
        assert main(["export", "--config", str(cfg), "--ckpt_path", str(path), "--format", "onnx"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(path) in err[0] and says in err[0], err
