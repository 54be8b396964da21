"""Performance options (channels_last, bf16 mixed precision, torch.compile) and the network summary."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn

from depthlab import models
from depthlab.callbacks import NetworkSummaryCallback, PerformanceOptions
from depthlab.models.performance import compile_network, compile_unavailable_reason, count_flops, summarize


def test_flop_count_by_hand() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert count_flops(conv, torch.rand(1, 3, 10, 10)) == 2 * (3 * 3 * 3) * 8 * 10 * 10  # 2 per MAC


def test_summary_of_a_network() -> None:
    net = models.build("unet").train()
    summary = summarize(net, torch.rand(4, 3, 64, 96))
    assert net.training  # restored
    assert summary.input_shape == (4, 3, 64, 96) and summary.output_shape == (1, 1, 64, 96)
    assert summary.outputs == ("depth",) and summary.scales == 0
    assert summary.parameters == sum(p.numel() for p in net.parameters())
    assert 0.1 < summary.gflops < 10
    assert "M parameters" in str(summary) and "GFLOPs/image" in str(summary)
    assert "-> depth (1, 64, 96)," in str(summary)


def test_summary_names_extra_outputs_and_scales() -> None:
    net = models.build({"name": "unet", "decoder_channels": [16, 8], "uncertainty": True, "num_scales": 3})
    summary = summarize(net, torch.rand(1, 3, 32, 48), flops=False)
    assert summary.outputs == ("depth", "log_variance") and summary.scales == 2 and summary.gflops is None
    assert "(+ log_variance, 2 coarser scales)" in str(summary) and "FLOPs not counted" in str(summary)


def test_summary_callback_logs_once(monkeypatch) -> None:
    """Without DepthModule: the callback summarises ``pl_module.net`` at the first batch only."""
    logged = []

    class Logger:
        def log_metrics(self, metrics, step):
            logged.append((metrics, step))

    module = L.LightningModule()
    module.net = models.build({"name": "glpn", "decoder_channels": 16})
    trainer = type("Trainer", (), {"loggers": [Logger()], "global_step": 0})()
    callback = NetworkSummaryCallback()
    batch = {"image": torch.rand(2, 3, 64, 96)}
    callback.on_train_batch_start(trainer, module, batch, 0)
    callback.on_train_batch_start(trainer, module, batch, 1)
    assert len(logged) == 1 and callback.summary.name == "GLPN"
    assert set(logged[0][0]) == {"net/parameters_M", "net/trainable_M", "net/gflops_per_image"}
    assert callback.summary.output_shape == (1, 1, 64, 96)


@pytest.mark.slow
def test_torch_compile_matches_eager() -> None:
    reason = compile_unavailable_reason("inductor", "cpu")
    if reason is not None:
        pytest.skip(reason)
    torch.manual_seed(0)
    net = models.build({"name": "eigen2014", "fc_width": 32}).eval()  # the smallest graph of the three
    image = torch.rand(1, 3, 50, 70)
    with torch.no_grad():
        eager = net(image).depth
        compiled = compile_network(net)(image).depth
    assert "_orig_mod" not in "".join(net.state_dict())  # checkpoints keep their keys
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_fit_with_bf16_channels_last_and_summary(tmp_path) -> None:
    """DepthModule + Lightning precision='bf16-mixed' + the callbacks train on CPU."""
    from depthlab.data import SyntheticDataModule
    from depthlab.module import DepthModule

    L.seed_everything(0)
    module = DepthModule(net={"name": "glpn", "decoder_channels": 16}, loss="silog", scheduler="none", log_images=0)
    data = SyntheticDataModule(height=32, width=48, train_size=4, val_size=2, test_size=2, batch_size=2, num_workers=0)
    summary = NetworkSummaryCallback()
    trainer = L.Trainer(
        accelerator="cpu", precision="bf16-mixed", max_steps=2, limit_val_batches=1, num_sanity_val_steps=0,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[PerformanceOptions(channels_last=True), summary], default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=data)
    conv = next(m for m in module.net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert summary.summary is not None and summary.summary.input_shape == (2, 3, 32, 48)
    assert summary.summary.gflops > 0
    assert torch.isfinite(trainer.callback_metrics["val/loss"])
