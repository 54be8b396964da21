"""depthlab/callbacks.py: the callbacks' numbers against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from depthlab.errors import ConfigError


def test_output_gradient_norm_callback_by_hand():
    import lightning as L

    from depthlab.callbacks import OutputGradientNorm
    from depthlab.models.output import DepthOutput

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor(2.0))

        def forward(self, x):
            return DepthOutput(depth=self.w * x)

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = Net()
            self.logged = {}

        def log(self, name, value, **kwargs):
            self.logged[name] = float(value)

    class Trainer:
        global_step, log_every_n_steps = 3, 10

    module, callback = Module(), OutputGradientNorm()
    callback.on_train_start(None, module)
    x = torch.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    # L = sum(depth^2) / 2: dL/d depth = depth = 2 x, norm 2 sqrt(1 + 4 + 9 + 16) = 2 sqrt(30)
    (module.net(x).depth.square().sum() / 2).backward()
    with torch.no_grad():
        module.net(x)  # an evaluation forward is not counted
    callback.on_before_optimizer_step(Trainer(), module, None)
    assert module.logged["train/grad_norm_output"] == pytest.approx(2 * math.sqrt(30))
    # under a GradScaler (16-mixed) the hook sees gradients times the scale: the logged norm is the loss's own
    class Scaler:
        def is_enabled(self):
            return True

        def get_scale(self):
            return 1024.0

    class Precision:
        scaler = Scaler()

    (1024.0 * module.net(x).depth.square().sum() / 2).backward()
    mixed = Trainer()
    mixed.precision_plugin = Precision()
    callback.on_before_optimizer_step(mixed, module, None)
    assert module.logged["train/grad_norm_output"] == pytest.approx(2 * math.sqrt(30))
    callback.on_train_end(None, module)
    module.net(x).depth.sum().backward()
    assert not callback._squares  # the hook is gone
    with pytest.raises(ConfigError, match="field: expected depth or inverse_depth"):
        OutputGradientNorm("disparity")
