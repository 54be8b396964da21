"""depthlab.training.optim: short names and class paths, the lr in force, parameter groups, the start-up lines.

Fast: DepthModule.configure_optimizers with a stand-in trainer (batch sizes and run length only), and
schedulers stepped by hand. The runs through Lightning and the CLI are in test_optim_runs.py (slow).
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import pytest
import torch

from depthlab.errors import ConfigError
from depthlab.module import DepthModule
from depthlab.training import optim
from depthlab.training.optim import warmup_cosine

NET = {"name": "unet", "encoder": "resnet18", "pretrained": False, "decoder_channels": [16, 8, 8, 8]}


def _trainer(steps: int = 600, batch_size: int = 8, epochs: int = 6) -> SimpleNamespace:
    return SimpleNamespace(datamodule=SimpleNamespace(batch_size=batch_size), accumulate_grad_batches=1, world_size=1,
                           estimated_stepping_batches=steps, max_epochs=epochs)


def _configure(module: DepthModule, **trainer) -> optim.Setup:
    module.trainer = _trainer(**trainer)
    return optim.configure(module)


@pytest.fixture(scope="module")
def module_factory():
    def make(**kwargs) -> DepthModule:
        torch.manual_seed(0)
        return DepthModule(net=NET, **kwargs)

    return make


def test_warmup_cosine_schedule_values():
    f = warmup_cosine(total_steps=110, warmup_steps=10, min_ratio=0.01)
    assert f(0) == pytest.approx(0.1)
    assert f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.01 + 0.99 * 0.5)  # half way through the cosine
    assert f(110) == pytest.approx(0.01)
    assert f(500) == pytest.approx(0.01)


def test_the_start_up_line_says_lr_optimizer_and_schedule(module_factory):
    setup = _configure(module_factory())  # the main job's settings: 600 steps, warm-up 0.05
    assert setup.lines == [
        "effective batch 8 = 8 per device x 1 devices x 1 accumulation; lr 0.001; optimizer AdamW (weight_decay 0.01, "
        "betas (0.9, 0.999)); schedule cosine (linear warm-up 30 steps, cosine to 0.01 x lr at step 600), stepped per step"
    ]
    optimizer = setup.config["optimizer"]
    assert type(optimizer) is torch.optim.AdamW and len(optimizer.param_groups) == 1
    assert setup.config["lr_scheduler"]["interval"] == "step"
    sgd = _configure(module_factory(optimizer="sgd", scheduler="none", lr=0.01))
    assert sgd.lines[0].endswith("; lr 0.01; optimizer SGD (momentum 0.9, weight_decay 0.01); schedule constant (scheduler none)")
    assert sgd.config.defaults["momentum"] == 0.9


def test_a_class_path_optimizer_with_a_stated_lr_wins_over_model_lr(module_factory):
    module = module_factory(optimizer={"class_path": "torch.optim.SGD", "init_args": {"lr": 0.01, "momentum": 0.5}},
                            lr=0.3, scheduler="none")
    setup = _configure(module)
    optimizer = setup.config
    assert type(optimizer) is torch.optim.SGD
    assert optimizer.param_groups[0]["lr"] == 0.01 and optimizer.param_groups[0]["momentum"] == 0.5
    assert "; lr 0.01 (model.optimizer.lr); optimizer SGD(lr=0.01, momentum=0.5);" in setup.lines[0]


def test_a_class_path_without_an_lr_of_its_own_takes_model_lr(module_factory):
    # jsonargparse binds every default of the class: an lr equal to the class's default is not stated
    sgd = functools.partial(torch.optim.SGD, lr=1e-3, momentum=0.0, weight_decay=0.0)
    setup = _configure(module_factory(optimizer=sgd, lr=0.05, scheduler="none"))
    assert setup.config.param_groups[0]["lr"] == 0.05
    assert "; lr 0.05; optimizer SGD();" in setup.lines[0]


def test_a_class_path_scheduler_is_stepped_per_step_by_its_own_formula(module_factory):
    step_lr = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=3, gamma=0.5)
    setup = _configure(module_factory(lr_scheduler=step_lr, lr=0.1))
    config = setup.config["lr_scheduler"]
    assert config["interval"] == "step" and isinstance(config["scheduler"], torch.optim.lr_scheduler.StepLR)
    assert setup.lines[0].endswith("; schedule StepLR(step_size=3, gamma=0.5), stepped per step")
    optimizer, scheduler = setup.config["optimizer"], config["scheduler"]
    for k in range(8):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** (k // 3)), k
        optimizer.step()
        scheduler.step()
    epoch = _configure(module_factory(lr_scheduler=step_lr, lr_scheduler_interval="epoch"))
    assert epoch.config["lr_scheduler"]["interval"] == "epoch" and epoch.lines[0].endswith("stepped per epoch")


def test_onecycle_by_class_path_gets_the_run_length_and_each_group_its_multiple(module_factory):
    onecycle = functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.01, total_steps=None, epochs=None)
    setup = _configure(module_factory(lr_scheduler=onecycle, encoder_lr_mult=0.1), steps=40)
    scheduler = setup.config["lr_scheduler"]["scheduler"]
    assert scheduler.total_steps == 40
    optimizer = setup.config["optimizer"]
    peak = {g["name"]: g["max_lr"] for g in optimizer.param_groups}
    assert peak == {"encoder": pytest.approx(0.001), "rest": pytest.approx(0.01)}
    assert "OneCycleLR(max_lr=0.01, total_steps=40, max_lr=" not in setup.lines[0]  # one max_lr, the list


def test_poly_decay_by_class_path_spans_the_run_as_depth_anything_v2_decays(module_factory):
    # Depth Anything V2 metric_depth/train.py: lr * (1 - it / total)^0.9 per iteration, each group its own lr
    poly = functools.partial(torch.optim.lr_scheduler.PolynomialLR, power=0.9)
    setup = _configure(module_factory(lr_scheduler=poly, lr=5e-5, encoder_lr_mult=0.1), steps=30)
    assert setup.config["lr_scheduler"]["scheduler"].total_iters == 30
    optimizer, scheduler = setup.config["optimizer"], setup.config["lr_scheduler"]["scheduler"]
    for it in range(30):
        lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
        assert lrs == {"encoder": pytest.approx(5e-6 * (1 - it / 30) ** 0.9, rel=1e-9),
                       "rest": pytest.approx(5e-5 * (1 - it / 30) ** 0.9, rel=1e-9)}, it
        optimizer.step(), scheduler.step()


def test_the_short_onecycle_keeps_its_formula(module_factory):
    # pct_start = warm-up steps / total, max_lr = lr: as before the move to depthlab.training
    setup = _configure(module_factory(scheduler="onecycle", lr=0.02, warmup=0.1), steps=50)
    scheduler = setup.config["lr_scheduler"]["scheduler"]
    reference = torch.optim.lr_scheduler.OneCycleLR(
        torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.02), max_lr=0.02, total_steps=50, pct_start=5 / 50)
    optimizer = setup.config["optimizer"]
    for _ in range(50):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(reference.optimizer.param_groups[0]["lr"])
        optimizer.step(), scheduler.step(), reference.optimizer.step(), reference.step()


def test_parameter_groups_each_have_their_own_lr_and_weight_decay(module_factory):
    module = module_factory(encoder_lr_mult=0.1, param_groups=[{"pattern": r"\.bias$", "weight_decay": 0.0, "name": "no_decay"}])
    setup = _configure(module, steps=100)
    optimizer = setup.config["optimizer"]
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert list(groups) == ["no_decay", "encoder", "rest"]
    assert [groups[n]["lr"] for n in groups] == pytest.approx([1e-3 / 5, 1e-4 / 5, 1e-3 / 5])  # warm-up: 5 steps
    assert [groups[n]["initial_lr"] for n in groups] == pytest.approx([1e-3, 1e-4, 1e-3])
    assert [groups[n]["weight_decay"] for n in groups] == [0.0, 0.01, 0.01]
    names = {p: n for n, p in module.named_parameters()}
    by_group = {g: [names[p] for p in groups[g]["params"]] for g in groups}
    assert sum(map(len, by_group.values())) == len(names)  # every parameter once
    assert all(n.endswith(".bias") for n in by_group["no_decay"])
    assert by_group["encoder"] and all(n.startswith("net.encoder.") for n in by_group["encoder"])
    assert not any(n.startswith("net.encoder.") for n in by_group["rest"])
    # the schedule keeps the ratio: every group follows the same factor
    scheduler = setup.config["lr_scheduler"]["scheduler"]
    factor = warmup_cosine(100, 5, 0.01)
    for k in range(12):
        for g in optimizer.param_groups:
            assert g["lr"] == pytest.approx(g["initial_lr"] * factor(k))
        optimizer.step()
        scheduler.step()
    n_bias = len(by_group["no_decay"])
    assert setup.lines[1].startswith(f"parameter groups: no_decay ({n_bias} tensors, ")
    assert ") lr 0.001, weight_decay 0; encoder (" in setup.lines[1]
    assert "lr 0.0001 = 0.1 x lr; rest (" in setup.lines[1]


def test_freeze_encoder_steps_marks_the_encoder_group(module_factory):
    setup = _configure(module_factory(freeze_encoder_steps=7))
    [encoder] = [g for g in setup.groups if g.freeze_steps]
    assert encoder.name == "encoder" and encoder.freeze_steps == 7
    assert "encoder (" in setup.lines[1] and "frozen for the first 7 steps" in setup.lines[1]
    for p in encoder.params:
        p.grad = torch.ones_like(p)
    optim.drop_frozen_grads(setup.groups, 7)  # step 7 is trained
    assert all(p.grad is not None for p in encoder.params)
    optim.drop_frozen_grads(setup.groups, 6)
    assert all(p.grad is None for p in encoder.params)


@pytest.mark.parametrize("net, prefix", [
    ({"name": "glpn", "pretrained": False}, "net.encoder."),
    ({"name": "eigen2014", "coarse_encoder": "resnet18", "input_size": [48, 64], "fc_width": 8},
     "net.coarse.layers.backbone."),
])
def test_the_encoder_of_each_network(net, prefix):
    module = DepthModule(net=net)
    rules = optim.group_rules(module, None, encoder_lr_mult=0.5)
    [encoder, rest] = optim.parameter_groups(module, rules)
    assert encoder.names and all(n.startswith(prefix) for n in encoder.names)
    assert not any(n.startswith(prefix) for n in rest.names)


@pytest.mark.parametrize("kwargs, message", [
    ({"param_groups": [{"pattern": "^nothing"}]}, r"model.param_groups\[0\].pattern: '\^nothing' matches no parameter"),
    ({"param_groups": [{"pattern": "bias", "lr": 2}]}, r"model.param_groups\[0\]: unknown key 'lr'"),
    ({"param_groups": [{"pattern": "("}]}, r"model.param_groups\[0\].pattern: '\(' is not a regular expression"),
    ({"param_groups": [{"pattern": "bias", "lr_mult": -1}]}, r"model.param_groups\[0\].lr_mult: expected a number >= 0"),
    ({"encoder_lr_mult": 0}, r"model.encoder_lr_mult: expected a number > 0, got 0"),
    ({"freeze_encoder_steps": 2.5}, r"model.freeze_encoder_steps: expected an integer >= 0, got 2.5"),
    ({"optimizer": "adam"}, r"model.optimizer: expected adamw or sgd, got 'adam' \(or an optimizer's class path"),
    ({"optimizer": {"class_path": "torch.optim.Nope"}}, r"model.optimizer: cannot import 'torch.optim.Nope'"),
    ({"lr_scheduler_interval": "batch"}, r"model.lr_scheduler_interval: expected step or epoch"),
])
def test_bad_optimisation_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message) as err:
        DepthModule(net=NET, **kwargs)
    assert "\n" not in str(err.value)


def test_a_network_without_a_pretrained_encoder_says_to_use_param_groups():
    with pytest.raises(ConfigError, match=r"model.freeze_encoder_steps: network Eigen2014 has no pretrained encoder"):
        DepthModule(net={"name": "eigen2014", "input_size": [48, 64], "fc_width": 8}, freeze_encoder_steps=3)


def test_stated_args_are_those_that_differ_from_the_class_defaults():
    fn = functools.partial(functools.partial(torch.optim.SGD, lr=1e-3, momentum=0.9), nesterov=False)
    assert optim.target_class(fn) is torch.optim.SGD
    assert optim.stated_args(fn) == {"momentum": 0.9}
    assert optim.base_lr(fn, 0.5) == (0.5, "model.lr")
    assert optim.base_lr(functools.partial(torch.optim.SGD, lr=0.02), 0.5) == (0.02, "model.optimizer.lr")
    assert math.isclose(optim.base_lr("adamw", 0.5)[0], 0.5)


def test_encoder_lr_mult_finds_the_backbone_of_an_hf_network():
    pytest.importorskip("transformers")
    backbone = {"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                "intermediate_size": 64, "patch_size": 14, "image_size": 56, "out_features": ["stage1", "stage2"],
                "reshape_hidden_states": False}
    config = {"model_type": "depth_anything", "backbone_config": backbone, "neck_hidden_sizes": [8, 16],
              "fusion_hidden_size": 16, "head_hidden_size": 8, "reassemble_hidden_size": 32,
              "reassemble_factors": [4, 2], "patch_size": 14}
    module = DepthModule(net={"class_path": "depthlab.models.hf.HFDepthNetwork", "init_args": {"config": config}},
                         encoder_lr_mult=0.1)
    assert optim.encoder_prefixes(module) == ["net.model.backbone"]
    [encoder, rest] = optim.parameter_groups(module, optim.group_rules(module, None, encoder_lr_mult=0.1))
    want = sorted(n for n, _ in module.named_parameters() if n.startswith("net.model.backbone."))
    assert sorted(encoder.names) == want and encoder.lr_mult == 0.1
    assert rest.names and not any(n.startswith("net.model.backbone.") for n in rest.names)
    assert any(n.startswith("net.model.neck.") for n in rest.names) and any(n.startswith("net.model.head.") for n in rest.names)
