"""depthlab data pack and depthlab.data.StreamingDataModule: a split packed into litdata's chunks reads
back as the very samples of its source module (per-sample tensor hashes over an epoch), with its
transforms, ``provides`` and protocol; a run resumed mid-epoch trains on the uninterrupted run's
sample sequence; bad input is one line."""

from __future__ import annotations

import hashlib
import io
import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from depthlab.data.pack import META_FILE, Layout, from_record, read_pack, to_record
from depthlab.errors import ConfigError, DataError

H, W = 24, 32
# litdata is in the dev extra (CI has it); found without importing it (a second of the fast tier)
needs_litdata = pytest.mark.skipif(importlib.util.find_spec("litdata") is None, reason="pip install 'depthlab[stream]'")


def sample_hash(sample: dict, i: int | None = None) -> str:
    """One sample of a batch (``i``) or a sample: every key, dtype, shape and value."""
    digest = hashlib.sha256()
    for key in sorted(sample):
        value = sample[key] if i is None else sample[key][i]
        digest.update(key.encode())
        if isinstance(value, torch.Tensor):
            value = value.contiguous()
            digest.update(f"{value.dtype}{tuple(value.shape)}".encode() + value.numpy().tobytes())
        else:
            digest.update(str(value).encode())
    return digest.hexdigest()


def epoch_hashes(loader) -> list[str]:
    return [sample_hash(batch, i) for batch in loader for i in range(len(batch["index"]))]


def write_rgbd(root: Path, count: int, seed: int) -> Path:
    """rgb/ JPEGs, right/ PNGs and depth/ 16-bit PNGs (millimetres) of smooth random scenes."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:H, 0:W]
    for name in ("rgb", "right", "depth"):
        (root / name).mkdir(parents=True)
    for i in range(count):
        base = np.stack([u * 7 + 40 * i, v * 9, (u + v) * 4], -1) % 256
        image = np.clip(base + rng.normal(0, 8, (H, W, 3)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / "rgb" / f"{i:03d}.jpg"), image)
        cv2.imwrite(str(root / "right" / f"{i:03d}.png"), np.roll(image, 2, axis=1))
        depth = (1000 + 300 * np.sin(u / 5 + i) * np.cos(v / 4) + 3000 + 100 * i).astype(np.uint16)
        depth[:, :3] = 0
        cv2.imwrite(str(root / "depth" / f"{i:03d}.png"), depth, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return root


# --- fast: the record of a sample, bad input ------------------------------------------------------


def test_a_record_reads_back_value_by_value_with_the_original_jpeg_bytes_or_a_png(tmp_path):
    from depthlab.data.readers import read_depth_png, read_rgb
    from depthlab.data.rgbd import read_depth_file

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.jpg"), image)
    jpeg = read_rgb(tmp_path / "a.jpg", "here")  # JPEG: what load returns is the decoded file
    cv2.imwrite(str(tmp_path / "d.png"), (1000 + np.arange(H * W).reshape(H, W)).astype(np.uint16),
                [cv2.IMWRITE_PNG_COMPRESSION, 9])  # smaller than pack's own PNG: kept as it is
    sample = {"image": jpeg, "image_right": image[:, ::-1].copy(),  # a mirrored view: not a file's pixels
              "image_f-1": np.float32(image) / 255,
              "depth": read_depth_file(tmp_path / "d.png", 1e-3, "here"),  # millimetres, float32 division
              "depth_right": read_depth_png(tmp_path / "d.png", 1e-3, "here"),  # times float32(0.001): NYU's
              "hint": rng.uniform(0, 80, (H, W)).astype(np.float32),  # no unit grid: the float32 array
              "intrinsics": np.array([20.0, 20.0, 15.5, 11.5]), "baseline_m": np.float32(0.25), "scale": 1.5,
              "index": 3, "name": "sub/a.jpg"}
    layout = Layout.of(sample, "here")
    assert layout.encoded == ("image", "image_right") and layout.arrays["image_f-1"] == "float32"
    assert layout.maps == ("depth", "depth_right", "hint")
    files = {"image": tmp_path / "a.jpg", "image_right": tmp_path / "a.jpg", "depth": tmp_path / "d.png"}
    record = to_record(sample, layout, files, index=7, seed=None, source="here")
    assert record["image"] == (tmp_path / "a.jpg").read_bytes()  # the original bytes, not re-encoded
    assert record["image_right"][:8] == b"\x89PNG\r\n\x1a\n"  # no file holds these pixels: a lossless PNG
    assert record["depth"][:2] == b"P/" and record["depth"][6:] == (tmp_path / "d.png").read_bytes()
    assert record["depth_right"][:2] == b"P*" and record["depth_right"][6:14] == b"\x89PNG\r\n\x1a\n"
    assert record["hint"][:1] == b"F"
    back, index, seed = from_record(layout_roundtrip(record), Layout.from_json(layout.to_json()), "pack")
    assert (index, seed) == (7, None) and set(back) == set(sample)
    for key, value in sample.items():
        assert type(back[key]) is type(value), key
        assert np.asarray(back[key]).dtype == np.asarray(value).dtype, key
        assert np.asarray(back[key]).tobytes() == np.asarray(value).tobytes(), key  # every bit


def layout_roundtrip(record: dict) -> dict:
    """What litdata gives back: bytes as memoryviews."""
    return {k: memoryview(v) if isinstance(v, bytes) else v for k, v in record.items()}


def test_a_sample_unlike_the_first_is_refused_naming_it():
    first = {"image": np.zeros((4, 4, 3), np.uint8), "depth": np.zeros((4, 4), np.float32),
             "intrinsics": np.ones(4, np.float32)}
    layout = Layout.of(first, "list.txt:1")
    with pytest.raises(DataError, match="list.txt:9.*lacks depth"):
        to_record({"image": first["image"], "intrinsics": first["intrinsics"]}, layout, {}, 8, None, "list.txt:9")
    with pytest.raises(DataError, match=r"list.txt:9.*depth is not a float32 \(H, W\) map"):
        to_record({**first, "depth": np.zeros((4, 4))}, layout, {}, 8, None, "list.txt:9")
    with pytest.raises(DataError, match="list.txt:9.*intrinsics is float64, float32 in the first sample"):
        to_record({**first, "intrinsics": np.ones(4)}, layout, {}, 8, None, "list.txt:9")
    with pytest.raises(DataError, match="depth.*a dict"):
        Layout.of({**first, "depth": {}}, "list.txt:1")


@needs_litdata
def test_a_missing_folder_or_one_that_is_not_a_pack_is_one_line_naming_it(tmp_path):
    from depthlab.data.streaming import StreamingDataModule

    with pytest.raises(ConfigError, match=rf"^data.input_dir: folder {tmp_path / 'nowhere'} does not exist"):
        StreamingDataModule(input_dir=str(tmp_path / "nowhere"))
    (tmp_path / "loose").mkdir()
    with pytest.raises(ConfigError, match=rf"^data.input_dir: {tmp_path / 'loose'} is not a depthlab pack"):
        StreamingDataModule(input_dir=str(tmp_path / "loose"))
    (tmp_path / "pk" / "train").mkdir(parents=True)
    (tmp_path / "pk" / "train" / META_FILE).write_text('{"format": 1, "split": "train"}')
    with pytest.raises(ConfigError, match=r"is the train split of a pack: give the folder above it"):
        StreamingDataModule(input_dir=str(tmp_path / "pk" / "train"))
    assert list(read_pack(str(tmp_path / "pk"))) == ["train"]
    with pytest.raises(ConfigError, match="^data.input_dir is not set"):
        StreamingDataModule()

    from depthlab.data.check import check

    with pytest.raises(ConfigError, match="^depthlab data check: StreamingDataModule has no files to check"):
        check(StreamingDataModule.__new__(StreamingDataModule))


def test_a_pack_in_object_storage_is_described_through_litdatas_storage_provider(tmp_path, monkeypatch):
    """The s3:// paths depthlab builds and the JSON it uploads and reads back (a local stand-in for the
    bucket: no object store is reachable here; the chunks themselves are litdata's)."""
    from depthlab.data import pack

    class Bucket:
        def __init__(self, *args) -> None:
            self.root = tmp_path / "bucket"

        def local(self, uri: str) -> Path:
            assert uri.startswith("s3://b/")
            return self.root / uri[len("s3://b/"):]

        def exists(self, uri: str) -> bool:
            return self.local(uri).is_file()

        def upload_file(self, local_path: str, uri: str) -> None:
            self.local(uri).parent.mkdir(parents=True, exist_ok=True)
            self.local(uri).write_bytes(Path(local_path).read_bytes())

        def download_file(self, uri: str, local_path: str) -> None:
            Path(local_path).write_bytes(self.local(uri).read_bytes())

    monkeypatch.setattr(pack, "_storage", Bucket)
    assert pack.join("s3://b/packs/", "val", META_FILE) == f"s3://b/packs/val/{META_FILE}"
    pack.write_json(pack.join("s3://b/packs", "val", META_FILE), {"format": 1, "split": "val", "samples": 3})
    assert (tmp_path / "bucket" / "packs" / "val" / META_FILE).is_file()
    assert read_pack("s3://b/packs") == {"val": {"format": 1, "split": "val", "samples": 3}}
    with pytest.raises(ConfigError, match="^data.input_dir: s3://b/other is not a depthlab pack"):
        read_pack("s3://b/other")


def test_the_resume_warning_counts_the_samples_an_elastic_resume_trains_on_again(recwarn):
    from depthlab.data.pack import warn_if_elastic

    saved = {"batch_size": 4, "world_size": 1, "num_workers": 2, "sample_in_epoch": 12}
    with pytest.warns(UserWarning, match=r"batch_size 5 on 1 device\(s\) where the checkpoint had 4 on 1: .*skipping "
                                         r"10 of the 12 samples already trained on in this epoch, so 2 of them"):
        warn_if_elastic(saved, 5, 2)
    warn_if_elastic(saved, 4, 2)  # the checkpoint's settings: exact, nothing to say
    warn_if_elastic(saved, 6, 0)  # 12 = 2 x 6: the same samples complete the epoch (an info line)
    assert not [w for w in recwarn if "depthlab" in str(w.message)]


def test_without_litdata_both_ends_say_pip_install_depthlab_stream(tmp_path, monkeypatch):
    from depthlab.commands.data import pack_dataset
    from depthlab.data.streaming import StreamingDataModule

    monkeypatch.setitem(sys.modules, "litdata", None)  # import litdata -> ImportError
    with pytest.raises(ConfigError, match=r"^depthlab data pack needs litdata: pip install 'depthlab\[stream\]'$"):
        pack_dataset(tmp_path / "any.yaml", ["train"], str(tmp_path / "out"), 1)
    with pytest.raises(ConfigError, match=r"StreamingDataModule needs litdata: pip install 'depthlab\[stream\]'$"):
        StreamingDataModule(input_dir=str(tmp_path))


# --- slow: packing and streaming --------------------------------------------------------------------


@pytest.mark.slow  # not a Lightning run, but it writes KITTI-size files (a third of a second)
def test_kitti_records_keep_the_files_bytes_unless_load_cut_the_frame(kitti_tree):
    from depthlab.data.kitti import KITTIDataset

    for kb_crop in (False, True):
        dataset = KITTIDataset(kitti_tree.list_path, kitti_tree.raw_root, kitti_tree.gt_root, kb_crop=kb_crop,
                               stereo=True)
        sample, files = dataset.load(0), dataset.source_files(0)
        layout = Layout.of(sample, "here")
        record = to_record(sample, layout, files, 0, None, "here")
        assert sorted(files) == ([] if kb_crop else ["depth", "depth_right", "image", "image_right"])
        for key, path in files.items():  # images as they are; depth maps after their 6-byte header
            assert record[key][6 * key.startswith("depth"):] == path.read_bytes(), key
        back = from_record(record, layout, "pack")[0]
        assert all(np.asarray(back[k]).tobytes() == np.asarray(v).tobytes() for k, v in sample.items()), kb_crop


@pytest.mark.slow
@needs_litdata
def test_packed_procedural_and_own_data_splits_stream_the_samples_of_their_modules(tmp_path):
    """The set of per-sample tensor hashes over an epoch is the original module's: procedural data
    with its (per-sample seeded) flips and colour jitter, own data (JPEG, a right view, intrinsics)."""
    from litdata import StreamingDataset

    from depthlab.data.pack import pack_split
    from depthlab.data.rgbd import RGBDDataModule
    from depthlab.data.stats import stats
    from depthlab.data.streaming import StreamingDataModule
    from depthlab.data.synthetic import SyntheticDataModule

    transforms = [{"name": "HorizontalFlip", "p": 0.5}, {"name": "RandomBrightnessContrast", "p": 1.0}]
    rooms = SyntheticDataModule(height=H, width=W, train_size=8, val_size=3, batch_size=4, num_workers=0,
                                train_transforms=transforms)
    for split in ("train", "val"):
        pack_split(rooms, split, str(tmp_path / "rooms"), workers=2, progress=False)
    own = RGBDDataModule(train=str(write_rgbd(tmp_path / "own_train", 8, 0)),
                         val=str(write_rgbd(tmp_path / "own_val", 3, 1)),
                         intrinsics=(30.0, 30.0, 15.5, 11.5), baseline_m=0.1, eval_protocol="nyu", batch_size=4,
                         num_workers=0)
    for split in ("train", "val"):
        pack_split(own, split, str(tmp_path / "own"), workers=1, progress=False)

    for name, module in (("rooms", rooms), ("own", own)):
        streamed = StreamingDataModule(input_dir=str(tmp_path / name), batch_size=4, num_workers=0)
        assert streamed.provides == module.provides
        expected, got = epoch_hashes(module.train_dataloader()), epoch_hashes(streamed.train_dataloader())
        assert len(got) == len(expected) == 8 and sorted(got) == sorted(expected), name
        assert sorted(epoch_hashes(streamed.val_dataloader())) == sorted(epoch_hashes(module.val_dataloader())), name
        described = [r.lines() for m in (module, streamed) for r in stats(m, ["train", "val"], out=io.StringIO())]
        assert described[:2] == described[2:], name  # depthlab data stats reads a pack as its source
    assert streamed.eval_protocol("val") == "nyu" and streamed.transforms["train"] == []
    assert StreamingDataModule(input_dir=str(tmp_path / "rooms")).transforms["train"] == transforms

    record = StreamingDataset(str(tmp_path / "own" / "train"))[0]
    row = own.rows("train")[record["__index__"]]
    assert bytes(record["image"]) == row.image.read_bytes() and bytes(record["image_right"]) == row.right.read_bytes()
    assert bytes(record["depth"])[6:] == row.depth.read_bytes()  # the millimetre PNG as it is (the smaller)

    (tmp_path / "own_train" / "rgb" / "005.jpg").write_bytes(b"\xff\xd8\xff not a JPEG")  # read by a litdata worker
    with pytest.raises(DataError, match=r"^depthlab data pack: 1 problem\(s\) in the train split \(nothing written; "
                                        r".*first: \S*own_train/rgb/005.jpg: unreadable file"):
        pack_split(own, "train", str(tmp_path / "bad"), workers=2, progress=False)
    assert not (tmp_path / "bad" / "train").exists()


@pytest.mark.slow
@needs_litdata
@pytest.mark.parametrize("workers", [0, 2])
def test_a_run_resumed_mid_epoch_trains_on_the_uninterrupted_runs_sample_sequence(tmp_path, workers):
    """Stopped after 4 steps (one into the second 3-step epoch) with last.ckpt, resumed from it: the
    batches of steps 5-9 (the rest of epoch 1, all of epoch 2) are those of a run never stopped."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from depthlab.data.pack import pack_split
    from depthlab.data.streaming import StreamingDataModule
    from depthlab.data.synthetic import SyntheticDataModule

    pack_split(SyntheticDataModule(height=8, width=8, train_size=12, num_workers=0), "train", str(tmp_path / "pk"),
               workers=1, chunk_bytes="4KB", progress=False)  # several chunks: litdata shuffles them too

    class Record(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(()))
            self.seen: list[list[int]] = []

        def training_step(self, batch, batch_idx):
            self.seen.append(batch["index"].tolist())
            return self.weight * batch["image"].mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class Stopped(Exception):
        pass

    class Crash(L.Callback):
        def on_train_batch_start(self, trainer, *args) -> None:
            if trainer.global_step == 4:  # last.ckpt holds step 4
                raise Stopped

    def fit(folder: str, module: Record, *callbacks, ckpt_path=None, batch_size: int = 4) -> list[list[int]]:
        L.seed_everything(0, verbose=False)
        trainer = L.Trainer(default_root_dir=tmp_path, accelerator="cpu", logger=False, max_epochs=3,
                            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                            callbacks=[ModelCheckpoint(tmp_path / folder, save_last=True, every_n_train_steps=1,
                                                       save_top_k=0), *callbacks])
        trainer.fit(module, StreamingDataModule(input_dir=str(tmp_path / "pk"), batch_size=batch_size,
                                                num_workers=workers),
                    ckpt_path=ckpt_path)
        return module.seen

    uninterrupted = fit("a", Record())
    assert len(uninterrupted) == 9 and sorted(sum(uninterrupted[3:6], [])) == list(range(12))
    stopped = Record()
    with pytest.raises(Stopped):
        fit("b", stopped, Crash())
    assert stopped.seen == uninterrupted[:4]
    if workers == 0:  # another batch size: litdata's elastic resume, as the warning says
        with pytest.warns(UserWarning, match="skipping 3 of the 4 samples already trained on in this epoch, so 1 "):
            rest = fit("c", Record(), ckpt_path=tmp_path / "b" / "last.ckpt", batch_size=3)[:3]
        again = sorted(set(sum(rest, [])) & set(uninterrupted[3]))
        assert len(again) == 1 and sorted(sum(rest, [])) == sorted(sum(uninterrupted[4:6], []) + again)
    assert fit("b", Record(), ckpt_path=tmp_path / "b" / "last.ckpt") == uninterrupted[4:]


@pytest.mark.slow
@needs_litdata
def test_depthlab_data_pack_then_fit_from_the_pack(tiny_config_dict, tmp_path, monkeypatch, capsys):
    import yaml

    from depthlab.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["depthlab"])
    Path("rooms.yaml").write_text(yaml.safe_dump(tiny_config_dict))
    assert main(["data", "pack", "--config", "rooms.yaml", "--split", "train", "--split", "val",
                 "--output", "packs", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "pack: train: 12 samples -> packs/train (" in out and "pack: val: 5 samples -> packs/val (" in out
    config = {**tiny_config_dict, "data": {"class_path": "depthlab.data.StreamingDataModule",
                                           "init_args": {"input_dir": "packs", "batch_size": 4, "num_workers": 0}}}
    Path("stream.yaml").write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", "stream.yaml", "--trainer.enable_progress_bar", "false"]) == 0
    [ckpt] = Path("logs").glob("tiny/version_0/checkpoints/last.ckpt")
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"] == 3
    code = main(["data", "pack", "--config", "rooms.yaml", "--output", "packs", "--workers", "1"])
    assert code != 0 and "packs/train already holds a pack: pass --overwrite" in capsys.readouterr().err
