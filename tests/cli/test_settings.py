"""Settings precedence with a checkpoint: stated settings win, unstated ones come from the checkpoint,
and a stated network setting that contradicts the checkpoint is an error naming both values."""

import pytest

from depthlab.parser import model_defaults, resolve_model_settings
from depthlab.errors import ConfigError
from depthlab.module import DepthModule

DEFAULTS = model_defaults(DepthModule)
SAVED = {"net": {"name": "unet", "encoder": "resnet34", "decoder_channels": [64, 32], "pretrained": True},
         "loss": "silog_bts", "min_depth": 0.001, "max_depth": 80.0, "lr": 1e-4, "log_images": 4}


def _parsed(**stated):
    """The model section as the parser fills it: the defaults, with what was stated on top."""
    return {**DEFAULTS, **stated}


def test_unstated_settings_come_from_the_checkpoint():
    resolved = resolve_model_settings(_parsed(), DEFAULTS, SAVED, "x.ckpt")
    assert resolved["net"] == SAVED["net"] and resolved["max_depth"] == 80.0 and resolved["loss"] == "silog_bts"


def test_stated_evaluation_and_training_settings_win():
    resolved = resolve_model_settings(_parsed(loss="l1", log_images=0, lr=3e-4), DEFAULTS, SAVED, "x.ckpt")
    assert resolved["loss"] == "l1" and resolved["log_images"] == 0 and resolved["lr"] == 3e-4


def test_a_stated_network_setting_that_contradicts_the_checkpoint_is_an_error_naming_both():
    with pytest.raises(ConfigError, match=r"model\.max_depth: 5\.0 is stated, but checkpoint x\.ckpt was trained with 80\.0"):
        resolve_model_settings(_parsed(max_depth=5.0), DEFAULTS, SAVED, "x.ckpt")
    with pytest.raises(ConfigError, match=r"model\.net\.encoder: 'resnet18' is stated, but checkpoint x\.ckpt was trained with 'resnet34'"):
        resolve_model_settings(_parsed(net={"name": "unet", "encoder": "resnet18"}), DEFAULTS, SAVED, "x.ckpt")


def test_a_stated_network_that_agrees_is_merged_and_pretrained_may_differ():
    stated = {"name": "unet", "encoder": "resnet34", "pretrained": False}  # a config with the same network
    resolved = resolve_model_settings(_parsed(net=stated, max_depth=80), DEFAULTS, SAVED, "x.ckpt")
    assert resolved["net"] == {**SAVED["net"], "pretrained": False}  # decoder_channels from the checkpoint
    assert resolved["max_depth"] == 80
