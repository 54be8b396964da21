"""One interface for every supervision: inverse-depth and uncertainty networks train and evaluate on
metres, evaluation runs the network once per view, and missing inputs stop the run at start-up."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from depthlab.data import SyntheticDataModule
from depthlab.errors import ConfigError
from depthlab.losses.pointwise import L1Loss
from depthlab.metrics import DepthMetrics
from depthlab.module import DepthModule

UNET = {"name": "unet", "encoder": "resnet18", "decoder_channels": [16, 8, 8, 8]}


def _trainer(tmp_path, **kwargs) -> L.Trainer:
    options = dict(
        accelerator="cpu", devices=1, max_steps=2, limit_val_batches=2, num_sanity_val_steps=0,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False, logger=False,
        default_root_dir=tmp_path,
    )
    options.update(kwargs)
    return L.Trainer(**options)


def _synthetic(**kwargs) -> SyntheticDataModule:
    options = dict(height=32, width=48, train_size=4, val_size=3, test_size=3, batch_size=2, num_workers=0)
    options.update(kwargs)
    return SyntheticDataModule(**options)


def test_inverse_depth_network_trains_and_is_scored_in_metres(tmp_path):
    torch.manual_seed(0)
    module = DepthModule(net={**UNET, "output": "inverse_depth"}, loss="silog", min_depth=0.1, max_depth=20.0)
    data = _synthetic()
    trainer = _trainer(tmp_path)
    trainer.fit(module, data)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    [logged] = trainer.validate(module, data, verbose=False)

    # By hand: the network's inverse depth (1/m), inverted, scored against metres.
    module.eval()
    metric = DepthMetrics(0.1, 20.0)
    with torch.no_grad():
        for batch in data.val_dataloader():
            out = module.net(batch["image"])
            assert out.inverse_depth is not None
            metric.update(1.0 / out.inverse_depth, batch["depth"], batch["valid"])
    expected = metric.compute()
    for name in ("abs_rel", "rmse", "delta1"):
        assert logged[f"val/{name}"] == pytest.approx(float(expected[name]), rel=1e-5), name
    # scoring the 1/m values as if they were metres would give a very different abs_rel
    assert expected["abs_rel"] < 5 and logged["val/abs_rel"] == pytest.approx(float(expected["abs_rel"]), rel=1e-5)


def test_uncertainty_network_trains_with_nll_and_logs_a_sigma_panel(tmp_path):
    torch.manual_seed(0)
    module = DepthModule(
        net={**UNET, "uncertainty": True},
        loss=[{"name": "log_depth_nll"}, {"name": "silog", "weight": 0.5}],
        min_depth=0.1, max_depth=20.0, log_images=2,
    )
    images = []
    logger = L.pytorch.loggers.TensorBoardLogger(tmp_path)
    logger.experiment.add_image = lambda tag, image, step: images.append((tag, image))
    trainer = _trainer(tmp_path, max_steps=3, logger=logger)
    trainer.fit(module, _synthetic())
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss_log_depth_nll"]) and torch.isfinite(metrics["val/loss"])
    assert all(torch.isfinite(p).all() for p in module.parameters())
    [(tag, panel)] = images
    assert tag == "val/image_gt_pred_sigma"
    assert panel.shape == (3, 2 * 32, 4 * 48)  # 2 rows of image | gt | prediction | sigma


class _FullFrames(Dataset):
    """KITTI-sized random frames (no rendering cost): image, sparse depth, valid."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        depth = torch.rand(1, 375, 1242, generator=g) * 70 + 2
        valid = torch.rand(1, 375, 1242, generator=g) < 0.1
        return {"image": torch.rand(3, 375, 1242, generator=g), "depth": depth * valid, "valid": valid}


class _FramesModule(L.LightningDataModule):
    provides = frozenset({"image", "depth", "valid"})

    def __init__(self, n: int = 3, batch_size: int = 2) -> None:
        super().__init__()
        self.n, self.batch_size = n, batch_size

    def val_dataloader(self):
        return DataLoader(_FullFrames(self.n), batch_size=self.batch_size)

    def train_dataloader(self):
        return self.val_dataloader()


@pytest.mark.parametrize(
    "flip, per_batch, input_size",
    [("none", 1, None), ("mean", 2, None), ("monodepth", 2, None), ("monodepth", 2, (96, 320))],
)
def test_kb_crop_and_flip_run_the_network_once_per_view(tmp_path, flip, per_batch, input_size):
    # eigen2014 works at a small fixed size internally, so KITTI-sized frames stay cheap
    module = DepthModule(
        net={"name": "eigen2014", "input_size": [48, 64], "fc_width": 32},
        min_depth=1e-3, max_depth=80.0,
        eval_protocol={"name": "kitti", "kb_crop": True, "flip": flip, "input_size": input_size},
    )
    shapes = []
    module.net.register_forward_hook(lambda net, inputs, output: shapes.append(tuple(inputs[0].shape)))
    [logged] = _trainer(tmp_path).validate(module, _FramesModule(n=3, batch_size=2), verbose=False)
    assert len(shapes) == 2 * per_batch  # 2 batches (2 + 1 images) x views
    assert {s[-2:] for s in shapes} == {input_size or (352, 1216)}  # the KB window only (resized)
    assert logged["val/images"] == 3 and torch.isfinite(torch.tensor(logged["val/loss"]))


class _NeedsRightView(L1Loss):
    requires = frozenset({"depth", "image_right"})


def test_a_loss_whose_batch_key_the_data_lacks_stops_at_start_up(tmp_path):
    module = DepthModule(net=UNET, loss=[{"name": "l1"}, {"class_path": f"{__name__}._NeedsRightView"}])
    with pytest.raises(ConfigError, match=r"requires batch key 'image_right', which data module _FramesModule"):
        _trainer(tmp_path).fit(module, _FramesModule())


def test_a_loss_whose_output_the_network_lacks_stops_at_start_up(tmp_path):
    module = DepthModule(net=UNET, loss="log_depth_nll")
    with pytest.raises(ConfigError, match=r"requires network output 'log_variance'.*uncertainty: true"):
        _trainer(tmp_path).fit(module, _synthetic())
