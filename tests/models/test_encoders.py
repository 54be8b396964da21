"""The one encoder wrapper: timm creation, input normalisation, feature channels and strides."""

from __future__ import annotations

import pytest
import timm
import torch

from depthlab import models
from depthlab.errors import ConfigError
from depthlab.models.encoders import Encoder, Normalize
from network_args import network_spec


def test_encoder_normalises_its_input_and_declares_its_features() -> None:
    torch.manual_seed(0)
    encoder = Encoder("resnet18").eval()
    assert encoder.channels == [64, 64, 128, 256, 512] and encoder.reductions == [2, 4, 8, 16, 32]
    image = torch.rand(1, 3, 64, 96)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])  # resnet18's
    with torch.no_grad():
        feats = encoder(image)
        by_hand = encoder.model((image - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
    assert [f.shape[1] for f in feats] == encoder.channels
    assert [64 // f.shape[-2] for f in feats] == encoder.reductions
    for got, want in zip(feats, by_hand):
        torch.testing.assert_close(got, want)
    assert all(k.startswith("model.") for k in encoder.state_dict())  # mean/std are not saved


def test_normalize_by_hand() -> None:
    norm = Normalize(mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    image = torch.ones(1, 3, 2, 2)
    assert norm(image)[0, :, 0, 0].tolist() == [1.0, 3.0, 0.5]


def test_unknown_encoder_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="model.net.encoder.*Did you mean"):
        Encoder("resnet19")


@pytest.mark.parametrize("name", models.available())
def test_every_network_normalises_through_normalize(name: str) -> None:
    """Input statistics are set up in one place: no network registers its own mean/std buffers."""
    net = models.build(network_spec(name))
    owners = {
        type(module)
        for module in net.modules()
        if any(name in ("mean", "std") for name, _ in module.named_buffers(recurse=False))
    }
    timm_models = [m for m in net.modules() if isinstance(m, timm.models.FeatureListNet)]
    encoders = [m for m in net.modules() if isinstance(m, Encoder)]
    # hf normalises in its transformers processor's preprocessing (no buffers) and has no timm encoder
    assert owners == (set() if hasattr(net, "processor") else {Normalize})
    assert len(timm_models) == len(encoders)  # every timm model sits inside an Encoder
    assert all(any(m is e.model for e in encoders) for m in timm_models)


def test_fixed_size_vit_encoders_take_any_input_size():
    # timm builds ViTs for 224x224; depthlab asks timm to resample their position embeddings
    from depthlab import models

    net = models.build({"name": "unet", "encoder": "vit_tiny_patch16_224", "decoder_channels": [16, 8]},
                       min_depth=0.1, max_depth=10.0)
    for hw in ((96, 128), (90, 130)):
        assert net(torch.rand(1, 3, *hw)).depth.shape == (1, 1, *hw)


def test_a_fixed_size_encoder_timm_cannot_resize_is_refused_at_build_time():
    from depthlab import models
    from depthlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model.net.encoder: 'mixer_s16_224' takes only 224x224 inputs"):
        models.build({"name": "unet", "encoder": "mixer_s16_224"}, min_depth=0.1, max_depth=10.0)
