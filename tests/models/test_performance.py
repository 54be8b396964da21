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
    assert summary.parameters == sum(p.numel() for p in net.parameters())
    assert 0.1 < summary.gflops < 10
    assert "M parameters" in str(summary) and "GFLOPs/image" in str(summary)


def test_torch_compile_matches_eager() -> None:
    reason = compile_unavailable_reason("inductor", "cpu")
    if reason is not None:
        pytest.skip(reason)
    torch.manual_seed(0)
    net = models.build({"name": "eigen2014", "fc_width": 32}).eval()  # the smallest graph of the three
    image = torch.rand(1, 3, 50, 70)
    with torch.no_grad():
        eager = net(image)
        compiled = compile_network(net)(image)
    assert "_orig_mod" not in "".join(net.state_dict())  # checkpoints keep their keys
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)


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
