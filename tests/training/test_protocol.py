"""depthlab.training.protocol: a data module's own evaluation protocol is used for its splits, and the
protocol validation used is what a checkpoint stores (fast: a stand-in trainer, no Lightning run)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from lightning.pytorch.trainer.states import TrainerFn

from depthlab.eval import build_protocol
from depthlab.module import DepthModule
from depthlab.training.protocol import datamodule_protocol, protocol_in_force, protocol_spec

NET = {"name": "unet", "encoder": "resnet18", "pretrained": False, "decoder_channels": [16, 8, 8, 8]}


class _Data:
    provides = frozenset({"image", "depth", "valid"})

    def __init__(self, eval_protocol=None) -> None:
        if eval_protocol is not None:
            self.eval_protocol = eval_protocol


class _PerStage(_Data):
    def eval_protocol(self, stage):  # e.g. a mixture of data sets: its own per split
        return {"name": "none", "averaging": "pixel"} if stage == "test" else "kitti"


def test_the_lookup_takes_the_data_module_and_the_stage():
    assert datamodule_protocol(_Data(), "val") is None
    assert datamodule_protocol(_Data("nyu"), "test") == "nyu"
    assert datamodule_protocol(_PerStage(), "val") == "kitti"
    assert datamodule_protocol(_PerStage(), "test") == {"name": "none", "averaging": "pixel"}
    default = build_protocol("none", max_depth=10.0)
    assert protocol_in_force(default, _Data(), "val", 1e-3, 10.0) == (default, "model.eval_protocol")
    protocol, source = protocol_in_force(default, _Data("nyu"), "val", 1e-3, 10.0)
    assert protocol.name == "nyu" and protocol.crop == "nyu" and source == "data module _Data"


@pytest.fixture(scope="module")
def module() -> DepthModule:
    return DepthModule(net=NET, max_depth=10.0, eval_protocol={"name": "none", "median_scaling": True})


def _set_up(module: DepthModule, stage, datamodule) -> None:
    module.trainer = SimpleNamespace(datamodule=datamodule)
    module.setup(stage)


def test_a_data_module_protocol_is_used_for_its_splits_and_stored_in_checkpoints(module):
    _set_up(module, TrainerFn.FITTING, _PerStage())
    assert module.stage_evaluators["val"].protocol == build_protocol("kitti", max_depth=10.0)
    assert module.stage_evaluators["test"] is module.evaluator  # fit validates only
    checkpoint = {"hyper_parameters": dict(module.hparams)}
    module.on_save_checkpoint(checkpoint)
    spec = checkpoint["hyper_parameters"]["eval_protocol"]
    assert build_protocol(spec, max_depth=10.0) == module.stage_evaluators["val"].protocol
    assert all(isinstance(v, (str, int, float, bool, list, type(None))) for v in spec.values())  # weights_only

    _set_up(module, TrainerFn.TESTING, _PerStage())
    assert module.stage_evaluators["test"].protocol.averaging == "pixel"
    _set_up(module, TrainerFn.TESTING, _Data())  # none of its own: the model's again
    assert module.stage_evaluators["test"] is module.evaluator and module.evaluator.protocol.median_scaling


def test_without_a_data_module_protocol_the_checkpoint_keeps_the_model_setting(module):
    _set_up(module, TrainerFn.VALIDATING, _Data())
    assert module.stage_evaluators["val"] is module.evaluator
    checkpoint = {"hyper_parameters": dict(module.hparams)}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint["hyper_parameters"]["eval_protocol"] == {"name": "none", "median_scaling": True}


def test_protocol_spec_round_trips_with_an_input_size():
    protocol = build_protocol({"name": "kitti", "kb_crop": True, "input_size": [96, 320]}, max_depth=80.0)
    spec = protocol_spec(protocol)
    assert spec["input_size"] == [96, 320] and build_protocol(spec) == protocol
