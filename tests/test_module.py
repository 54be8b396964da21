"""DepthModule: masking of invalid ground truth, output contract; one interface for every supervision
(inverse-depth and uncertainty networks train and evaluate on metres, evaluation runs the network once
per view, missing inputs stop the run at start-up, predict checks no loss)."""

import warnings
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader, Dataset

from depthlab.data import SyntheticDataModule
from depthlab.losses.pointwise import L1Loss
from depthlab.metrics import DepthMetrics

from depthlab.errors import ConfigError
from depthlab.models.output import DepthOutput
from depthlab.module import DepthModule

NET = {"name": "unet", "encoder": "resnet18", "decoder_channels": [16, 8, 8, 8]}


@pytest.fixture(scope="module")
def module():
    torch.manual_seed(0)
    return DepthModule(net=NET, min_depth=0.5, max_depth=10.0).eval()


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    depth = torch.rand(2, 1, 32, 48, generator=g) * 8 + 1
    return {"image": torch.rand(2, 3, 32, 48, generator=g), "depth": depth, "valid": torch.ones_like(depth, dtype=torch.bool)}


def test_prediction_is_positive_metres_inside_the_range(module):
    with torch.no_grad():
        out = module(torch.rand(2, 3, 37, 50))
    assert isinstance(out, DepthOutput) and out.inverse_depth is None and out.log_variance is None
    assert out.depth.shape == (2, 1, 37, 50)
    assert (out.depth >= 0.5).all() and (out.depth <= 10.0).all()


def _loss(module, batch):
    """(total, mask) of the module's objective on ``batch``, as training computes it."""
    total, _ = module.compute_loss(module(batch["image"]), batch)
    return total, module.loss_mask(batch)


def test_invalid_ground_truth_never_reaches_loss_or_metrics(module):
    clean = _batch()
    dirty = {k: v.clone() for k, v in clean.items()}
    bad = torch.zeros_like(clean["depth"], dtype=torch.bool)
    bad[:, :, :4] = True
    values = [0.0, -1.0, float("nan"), float("inf"), 0.2, 50.0]  # <= 0, non-finite, outside (0.5, 10)
    dirty["depth"][bad] = torch.tensor(values).repeat(bad.sum() // len(values) + 1)[: int(bad.sum())]
    clean["depth"][bad] = 3.0  # any valid value: must not matter once masked below
    clean["valid"] = ~bad
    with torch.no_grad():
        loss_dirty, mask = _loss(module, dirty)
        loss_clean, _ = _loss(module, clean)
    assert torch.equal(mask, ~bad)
    assert torch.isfinite(loss_dirty)
    assert loss_dirty.item() == pytest.approx(loss_clean.item(), rel=1e-6)
    with torch.no_grad():
        module.evaluator.step("val", dirty, module.net, module.compute_loss)
        m_dirty = module.evaluator.compute("val")
        module.evaluator.step("val", clean, module.net, module.compute_loss)
        m_clean = module.evaluator.compute("val")
    for name in m_clean:
        assert torch.isfinite(m_dirty[name]), name
        assert m_dirty[name].item() == pytest.approx(m_clean[name].item(), rel=1e-6), name


def test_gradients_stay_finite_with_nan_ground_truth():
    torch.manual_seed(0)
    m = DepthModule(net=NET, max_depth=10.0)
    batch = _batch(1)
    batch["depth"][0, 0, 0, :10] = float("nan")
    loss, _ = m.compute_loss(m(batch["image"]), batch)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_bad_module_arguments_are_rejected_naming_the_key():
    with pytest.raises(ConfigError, match="min_depth"):
        DepthModule(net=NET, min_depth=5.0, max_depth=1.0)
    with pytest.raises(ConfigError, match="scheduler"):
        DepthModule(net=NET, scheduler="linear")
    with pytest.raises(ConfigError, match=r"model.lr: expected a learning rate > 0, got -0.001"):
        DepthModule(net=NET, lr=-1e-3)
    with pytest.raises(ConfigError, match=r"model.weight_decay: expected a value >= 0, got -0.1"):
        DepthModule(net=NET, weight_decay=-0.1)
    with pytest.raises(ConfigError, match=r"model.betas"):
        DepthModule(net=NET, betas=(0.9, 1.5))
    with pytest.raises(ConfigError, match="resnet_nope"):
        DepthModule(net={"name": "unet", "encoder": "resnet_nope"})
    with pytest.raises(ConfigError, match="did you mean|Did you mean"):
        DepthModule(net=NET, loss="silgo")


def test_loss_min_depth_leaves_near_ground_truth_out_of_the_loss_only():
    torch.manual_seed(0)
    plain = DepthModule(net=NET, min_depth=0.5, max_depth=10.0).eval()
    bts = DepthModule(net=NET, min_depth=0.5, max_depth=10.0, loss_min_depth=3.0).eval()
    bts.load_state_dict(plain.state_dict())
    batch = _batch(2)
    near = batch["depth"] <= 3.0
    assert near.any() and (~near).any()
    by_hand = {**batch, "valid": batch["valid"] & ~near}
    with torch.no_grad():
        loss_bts, mask_bts = _loss(bts, batch)
        loss_hand, _ = _loss(plain, by_hand)
        loss_plain, _ = _loss(plain, batch)
    assert loss_bts.item() == pytest.approx(loss_hand.item(), rel=1e-6)
    assert loss_bts.item() != pytest.approx(loss_plain.item(), rel=1e-3)
    assert torch.equal(mask_bts, by_hand["valid"])
    assert torch.equal(bts.valid_mask(batch), batch["valid"])  # the metrics' mask still holds the near pixels


# --- supervision (formerly tests/test_supervision.py) ---------------------------------------------

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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


def _set_up(module: DepthModule, stage, datamodule) -> None:
    """``module.setup(stage)`` as the trainer calls it, with a stand-in trainer holding ``datamodule``."""
    module.trainer = SimpleNamespace(datamodule=datamodule)
    module.setup(stage)


def test_a_loss_whose_batch_key_the_data_lacks_stops_at_start_up():
    module = DepthModule(net=UNET, loss=[{"name": "l1"}, {"class_path": f"{__name__}._NeedsRightView"}])
    with pytest.raises(ConfigError, match=r"requires batch key 'image_right', which data module _FramesModule"):
        _set_up(module, TrainerFn.FITTING, _FramesModule())


def test_a_loss_whose_output_the_network_lacks_stops_at_start_up():
    module = DepthModule(net=UNET, loss="log_depth_nll")
    with pytest.raises(ConfigError, match=r"requires network output 'log_variance'.*uncertainty: true"):
        _set_up(module, TrainerFn.FITTING, _synthetic())


def test_predict_checks_no_loss_and_evaluation_names_its_stage():
    # issue 17: predict on an image folder warned "TrainerFn.PREDICTING: the loss is not evaluated (...); the metrics are"
    module = DepthModule(net=UNET, loss=[{"name": "l1"}, {"class_path": f"{__name__}._NeedsRightView"}])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _set_up(module, TrainerFn.PREDICTING, _FramesModule())
    with pytest.warns(UserWarning) as caught:
        _set_up(module, TrainerFn.TESTING, _FramesModule())
    [message] = [str(w.message) for w in caught]
    assert message.startswith("test: the loss is not evaluated (") and "'image_right'" in message
    assert message.endswith("; the metrics are computed")


def test_sgd_optimizer_option():
    with pytest.raises(ConfigError, match="model.optimizer: expected adamw or sgd, got 'adam'"):
        DepthModule(net={"name": "unet", "encoder": "resnet18", "pretrained": False}, optimizer="adam")
    with pytest.raises(ConfigError, match=r"model.momentum: expected a value in \[0, 1\)"):
        DepthModule(net={"name": "unet", "encoder": "resnet18", "pretrained": False}, optimizer="sgd", momentum=1.0)
