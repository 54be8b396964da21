"""``depthlab predict`` writes its predictions: by default, on users' own images, at each image's size."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from depthlab.callbacks import DepthPredictionWriter
from depthlab.cli import main, run
from depthlab.data.images import ImageFolderDataModule, SizeGroupedBatchSampler, list_images
from depthlab.data.readers import DataError
from depthlab.errors import ConfigError
from depthlab.models.output import DepthOutput
from depthlab.module import DepthModule
from module_files import save_checkpoint, write_small_config

@pytest.fixture(autouse=True)
def _own_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["depthlab"])  # run() is given its arguments; pytest's are not for it


IMAGES = {"a.png": (64, 96), "sub/b.jpg": (50, 30), "c.png": (33, 47)}  # name -> (H, W)


def write_checkpoint(work: Path, config: dict) -> Path:
    """A checkpoint of the config's model, untrained but with depth that varies across the image."""
    torch.manual_seed(0)
    model = DepthModule(**config["model"])
    # A random init predicts nearly one depth everywhere; widen the logits so that resizing and
    # misplaced pixels would show in the compared values.
    last = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels == 1][-1]
    with torch.no_grad():
        last.weight.mul_(30.0)
    return save_checkpoint(model, work / "tiny.ckpt")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_config_dict):
    """(workdir, config path, checkpoint, folder of three images of different sizes)."""
    work = tmp_path_factory.mktemp("predict")
    config, cfg = write_small_config(work, tiny_config_dict)
    ckpt = write_checkpoint(work, config)
    images = work / "images"
    rng = np.random.default_rng(0)
    for name, (h, w) in IMAGES.items():
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        # smooth random images: JPEG keeps them close to what was written
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        assert cv2.imwrite(str(images / name), cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR))
    return work, cfg, ckpt, images


def _model(ckpt: Path) -> DepthModule:
    return DepthModule.load_from_checkpoint(ckpt, map_location="cpu").eval()


def _predict_file(model: DepthModule, path: Path, net_hw: tuple[int, int]) -> np.ndarray:
    """Reference: the image resized to net_hw (area when shrinking), predicted, resized back bilinearly."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    h, w = bgr.shape[:2]
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if (h, w) != net_hw:
        shrink = net_hw[0] * net_hw[1] < h * w
        rgb = cv2.resize(rgb, net_hw[::-1], interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    image = torch.from_numpy(rgb).permute(2, 0, 1).float()[None] / 255
    with torch.no_grad():
        depth = model(image).depth
    return F.interpolate(depth, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()


@pytest.mark.slow
def test_default_predict_writes_one_file_per_sample_of_the_configs_data(setup, monkeypatch, capsys):
    """The README's `depthlab predict --config X --ckpt_path Y`, no writer configured: predictions land
    in the run's log folder, named by index (synthetic data has no file names)."""
    work, cfg, ckpt, _ = setup
    monkeypatch.chdir(work)
    cli = run(["predict", "--config", str(cfg), "--ckpt_path", str(ckpt)])
    out = Path(cli.trainer.log_dir) / "predictions"
    assert sorted(f.name for f in out.glob("*.png")) == sorted(
        [f"{i:06d}.png" for i in range(5)] + [f"{i:06d}_color.png" for i in range(5)])  # test_size: 5
    assert f"wrote 5 depth maps to {out.resolve()}" in capsys.readouterr().out
    want = _model(ckpt)(cli.datamodule.dataset("test")[2]["image"][None]).depth[0, 0].detach().numpy()
    got = cv2.imread(str(out / "000002.png"), cv2.IMREAD_UNCHANGED)
    assert got.dtype == np.uint16
    np.testing.assert_allclose(got / 256.0, want, atol=0.5 / 256 + 1e-6)


@pytest.mark.slow
def test_predict_on_a_folder_of_mixed_sizes_writes_each_at_its_size_named_after_it(setup, monkeypatch, capsys,
                                                                                    tmp_path):
    work, cfg, ckpt, images = setup
    monkeypatch.chdir(work)
    out = tmp_path / "pred"
    # batch_size 4 comes from the config's synthetic data section: mixed sizes are grouped by size
    run(["predict", "--config", str(cfg), "--ckpt_path", str(ckpt), "--data", "depthlab.data.ImageFolderDataModule",
         "--data.path", str(images), "--trainer.callbacks+=depthlab.callbacks.DepthPredictionWriter",
         "--trainer.callbacks.output_dir", str(out), "--trainer.callbacks.format", "[png16, color, npy]"])
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(f"{Path(n).with_suffix('').as_posix()}{s}" for n in IMAGES
                             for s in (".png", "_color.png", ".npy"))
    printed = capsys.readouterr().out
    assert f"wrote 3 depth maps to {out.resolve()}" in printed

    model = _model(ckpt)
    # network sizes: a 64x96 as is; b 50x30 -> 64x32; c 33x47 -> 32x32 (nearest multiples of 32)
    for name, net_hw in (("a.png", (64, 96)), ("sub/b.jpg", (64, 32)), ("c.png", (32, 32))):
        stem = out / Path(name).with_suffix("")
        png = cv2.imread(f"{stem}.png", cv2.IMREAD_UNCHANGED)
        color = cv2.imread(f"{stem}_color.png", cv2.IMREAD_UNCHANGED)
        npy = np.load(f"{stem}.npy")
        assert png.dtype == np.uint16 and png.shape == IMAGES[name], name
        assert color.dtype == np.uint8 and color.shape == (*IMAGES[name], 3), name
        want = _predict_file(model, images / name, net_hw)
        assert want.std() > 0.05, "the reference does not vary: the comparison would prove little"
        np.testing.assert_allclose(npy, want, rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(png / 256.0, want, atol=0.5 / 256 + 1e-5, err_msg=name)


@pytest.mark.slow
def test_the_readmes_predict_to_a_folder_command_works_as_written(setup, tmp_path):
    """README: ``depthlab predict --config X --ckpt_path Y --data depthlab.data.ImageFolderDataModule
    --data.path photos/ --output_dir depth_maps/``, run as a user runs it."""
    import os
    import re
    import subprocess

    work, cfg, ckpt, images = setup
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    documented = re.search(r"depthlab predict [^\n]*\\\n\s*--data depthlab.data.ImageFolderDataModule --data.path "
                           r"photos/ \\\n\s*--output_dir depth_maps/", readme)
    assert documented, "the README no longer documents predict --output_dir as this test runs it"
    out = tmp_path / "depth_maps"
    env = {k: v for k, v in os.environ.items() if k != "DEPTHLAB_TRACEBACK"}
    proc = subprocess.run(
        [sys.executable, "-m", "depthlab.cli", "predict", "--config", str(cfg), "--ckpt_path", str(ckpt),
         "--data", "depthlab.data.ImageFolderDataModule", "--data.path", str(images), "--output_dir", str(out),
         "--trainer.enable_progress_bar", "false"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == sorted(f"{Path(n).with_suffix('').as_posix()}{s}" for n in IMAGES for s in (".png", "_color.png"))
    assert f"wrote 3 depth maps to {out.resolve()}" in proc.stdout


@pytest.mark.slow
def test_predict_at_a_fixed_size_and_from_a_list_file(setup, monkeypatch, tmp_path):
    work, cfg, ckpt, images = setup
    monkeypatch.chdir(work)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two of the images\n{images / 'sub/b.jpg'}\n\n{images / 'c.png'}\n")
    out = tmp_path / "pred"
    run(["predict", "--config", str(cfg), "--ckpt_path", str(ckpt), "--data", "depthlab.data.ImageFolderDataModule",
         "--data.path", str(listing), "--data.size", "[32, 64]",
         "--trainer.callbacks+=depthlab.callbacks.DepthPredictionWriter",
         "--trainer.callbacks.output_dir", str(out), "--trainer.callbacks.format", "npy"])
    # names relative to the deepest folder holding every listed file (images/)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy")) == ["c.npy", "sub/b.npy"]
    want = _predict_file(_model(ckpt), images / "c.png", (32, 64))
    np.testing.assert_allclose(np.load(out / "c.npy"), want, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", ["1", "2"])  # decoded in the data set; header read to group sizes
def test_an_unreadable_image_is_one_error_line_naming_it(setup, monkeypatch, capsys, tmp_path, batch_size):
    work, cfg, ckpt, images = setup
    monkeypatch.chdir(work)
    monkeypatch.delenv("DEPTHLAB_TRACEBACK", raising=False)
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes((images / "a.png").read_bytes())
    (folder / "zz_broken.jpg").write_bytes(b"not a jpeg at all")
    code = main(["predict", "--config", str(cfg), "--ckpt_path", str(ckpt), "--data",
                 "depthlab.data.ImageFolderDataModule", "--data.path", str(folder), "--data.batch_size", batch_size])
    assert code == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and str(folder / "zz_broken.jpg") in errors[0], errors


def test_the_writer_names_resizes_and_scales(tmp_path):
    writer = DepthPredictionWriter(output_dir=str(tmp_path), format=["png16", "npy"], png_scale=1000.0)
    depth = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    batch = {"name": ["x/y.jpg"], "original_size": torch.tensor([[4, 4]])}
    writer.write_on_batch_end(None, None, DepthOutput(depth), [0], batch, 0)
    png = cv2.imread(str(tmp_path / "x" / "y.png"), cv2.IMREAD_UNCHANGED)
    # bilinear, half-pixel centres, 2 -> 4: rows 1,1.25,1.75,2 times columns; corners kept
    want = F.interpolate(depth, size=(4, 4), mode="bilinear", align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(np.load(tmp_path / "x" / "y.npy"), want, rtol=1e-6)
    assert png.dtype == np.uint16 and png[0, 0] == 1000 and png[3, 3] == 4000
    np.testing.assert_array_equal(png, np.round(want * 1000).astype(np.uint16))
    with pytest.raises(ConfigError, match="DepthPredictionWriter.format"):
        DepthPredictionWriter(format="jpg")


def test_sizes_never_share_a_batch():
    sizes = [(32, 64), (64, 32), (32, 64), (32, 64), (64, 32)]
    sampler = SizeGroupedBatchSampler(range(5), batch_size=2, sizes=sizes)
    assert list(sampler) == [[0, 2], [1, 4], [3]] and len(sampler) == 3


def test_image_folder_batches_and_listing(setup, tmp_path):
    _, _, _, images = setup
    dm = ImageFolderDataModule(str(images), batch_size=2)
    dm.setup("predict")
    batches = list(dm.predict_dataloader())
    assert sorted(n for b in batches for n in b["name"]) == sorted(IMAGES)
    for batch in batches:
        assert set(batch) == dm.provides
        assert batch["image"].shape[-2:] in {(64, 96), (64, 32), (32, 32)}
    assert list_images(images, recursive=False)[1] == ["a.png", "c.png"]

    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "a.jpg").write_bytes(b"")
    with pytest.raises(ConfigError, match="a.jpg .* and a.png .* would both be written as a.png"):
        ImageFolderDataModule(str(tmp_path)).setup("predict")
    listing = tmp_path / "list.txt"
    listing.write_text("a.png\nmissing.png\n")
    with pytest.raises(DataError, match=r"missing.png: missing file: no such file \(listed at .*list.txt:2\)"):
        list_images(listing)
    with pytest.raises(ConfigError, match="data.path is not set"):
        ImageFolderDataModule().setup("predict")


def test_the_writer_ply_is_the_backprojection_at_the_images_own_size(tmp_path):
    plyfile = pytest.importorskip("plyfile")
    writer = DepthPredictionWriter(output_dir=str(tmp_path), format="ply")
    depth = torch.tensor([[1.0, 2.0], [0.0, 4.0]]).reshape(1, 1, 2, 2)  # 0: no depth, no point
    image = torch.stack([torch.full((2, 2), 0.2), torch.full((2, 2), 0.4), torch.full((2, 2), 1.0)])[None]
    # intrinsics in the pixels of the 2x2 batch image; the file's own size is 2x2 too (no resize)
    batch = {"name": ["a.png"], "image": image, "intrinsics": torch.tensor([[2.0, 4.0, 0.5, 0.5]])}
    writer.write_on_batch_end(None, None, DepthOutput(depth), [0], batch, 0)
    v = plyfile.PlyData.read(str(tmp_path / "a.ply"))["vertex"].data
    # x = (u - cx) z / fx, y = (v - cy) z / fy over the valid pixels, row-major
    want = [((0 - .5) * 1 / 2, (0 - .5) * 1 / 4, 1), ((1 - .5) * 2 / 2, (0 - .5) * 2 / 4, 2), ((1 - .5) * 4 / 2, (1 - .5) * 4 / 4, 4)]
    np.testing.assert_allclose(np.stack([v["x"], v["y"], v["z"]], 1), want, rtol=1e-6)
    assert v["red"].tolist() == [51] * 3 and v["green"].tolist() == [102] * 3 and v["blue"].tolist() == [255] * 3

    # resized back to the file's own size (4x4): the intrinsics follow (c' = (c + 0.5) * 2 - 0.5)
    batch = {**batch, "name": ["b.png"], "original_size": torch.tensor([[4, 4]])}
    writer.write_on_batch_end(None, None, DepthOutput(torch.full((1, 1, 2, 2), 3.0)), [0], batch, 0)
    v = plyfile.PlyData.read(str(tmp_path / "b.ply"))["vertex"].data
    assert len(v) == 16 and float(v["x"][0]) == pytest.approx((0 - 1.5) * 3 / 4)
    assert float(v["y"][-1]) == pytest.approx((3 - 1.5) * 3 / 8)


def test_ply_without_any_camera_is_one_line(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((4, 4, 3), np.uint8))

    class _Trainer:
        log_dir, default_root_dir, is_global_zero = str(tmp_path), str(tmp_path), True
        datamodule = ImageFolderDataModule(path=str(tmp_path))

    with pytest.raises(ConfigError, match="format ply needs the camera.*fx.*hfov_deg"):
        DepthPredictionWriter(output_dir=str(tmp_path), format="ply").setup(_Trainer(), None, "predict")
    DepthPredictionWriter(output_dir=str(tmp_path), format="ply", hfov_deg=60).setup(_Trainer(), None, "predict")


@pytest.mark.slow
def test_predict_on_a_video_writes_a_depth_video_of_as_many_frames(setup, monkeypatch, tmp_path):
    pytest.importorskip("av")
    from fractions import Fraction

    from depthlab.video import VideoWriter, read_frames, video_info

    work, cfg, ckpt, images = setup
    monkeypatch.chdir(work)
    video = tmp_path / "walk.mp4"
    with VideoWriter(video, fps=15) as writer:
        for i in range(9):
            writer.write(np.full((40, 56, 3), 25 * i, dtype=np.uint8))
    out = tmp_path / "out"
    code = main(["predict", "--config", str(cfg), "--ckpt_path", str(ckpt), "--data", "depthlab.data.ImageFolderDataModule",
                 "--data.path", str(video), "--data.batch_size", "4", "--output_dir", str(out),
                 "--trainer.enable_progress_bar", "false"])
    assert code == 0
    written = out / "walk_depth.mp4"
    assert video_info(written).fps == Fraction(15)
    assert sum(1 for _ in read_frames(written)) == 9
    assert not list(out.rglob("*.png"))  # per-frame files only with video_frames: true
