"""Encoder weights: a local file loads exactly its tensors; offline hub access fails clearly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import timm
import torch
from safetensors.torch import save_file

from depthlab import models
from depthlab.errors import ConfigError
from depthlab.models.encoders import _normalised_key, create_encoder, pretrained_weights_disabled

# (network spec, encoder name, where the encoder lives in the network)
CASES = [
    ({"name": "unet", "encoder": "resnet18"}, "resnet18", "encoder.model"),
    ({"name": "glpn", "encoder": "pvt_v2_b0"}, "pvt_v2_b0", "encoder.model"),
    ({"name": "eigen2014", "coarse_encoder": "resnet18", "fc_width": 16}, "resnet18", "coarse.layers.backbone.model"),
]


def _assert_holds(encoder: torch.nn.Module, reference: dict[str, torch.Tensor]) -> None:
    by_name = {_normalised_key(k): v for k, v in reference.items()}
    state = encoder.state_dict()
    assert state
    for key, value in state.items():
        torch.testing.assert_close(value, by_name[_normalised_key(key)], rtol=0, atol=0)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
@pytest.mark.parametrize("spec, encoder_name, where", CASES, ids=[c[0]["name"] for c in CASES])
def test_local_file_loads_exactly_its_weights(tmp_path, suffix, spec, encoder_name, where) -> None:
    torch.manual_seed(123)
    source = timm.create_model(encoder_name)  # a whole timm model, classifier included, as timm saves it
    reference = {k: v.contiguous() for k, v in source.state_dict().items()}
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(reference, str(path))
    else:
        torch.save({"state_dict": reference}, path)  # timm training checkpoints nest it
    torch.manual_seed(0)  # a different random init, so a silent non-load would be caught
    net = models.build({**spec, "pretrained": str(path)})
    _assert_holds(net.get_submodule(where), reference)


def test_features_only_state_dict_also_loads(tmp_path) -> None:
    torch.manual_seed(5)
    saved = create_encoder("pvt_v2_b0")
    path = tmp_path / "encoder.pth"
    torch.save(saved.state_dict(), path)
    _assert_holds(create_encoder("pvt_v2_b0", str(path)), saved.state_dict())


def test_wrong_or_missing_file_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "convnext.safetensors"
    save_file(timm.create_model("convnext_atto").state_dict(), str(path))
    with pytest.raises(ConfigError, match="does not fit this encoder"):
        create_encoder("resnet18", str(path))
    with pytest.raises(ConfigError, match="does not exist"):
        create_encoder("resnet18", str(tmp_path / "nope.safetensors"))


@pytest.mark.slow
def test_offline_without_cache_names_both_ways_out(tmp_path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "torch")}
    code = (
        "from depthlab import models\n"
        "from depthlab.errors import ConfigError\n"
        "try:\n"
        "    models.build({'name': 'glpn', 'pretrained': True})\n"
        "except ConfigError as exc:\n"
        "    print('CONFIGERROR', exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    message = result.stdout
    assert "CONFIGERROR" in message, result.stderr[-2000:]
    assert "pvt_v2_b0" in message and "offline" in message
    assert "pretrained: /path/to/weights.safetensors" in message  # way out 1: a local file
    assert "HF_HOME" in message and "cache" in message  # way out 2: a copied hub cache


def test_checkpoint_loading_needs_no_encoder_weights(tmp_path) -> None:
    """With pretrained weights disabled, a network with pretrained: true builds offline; its checkpoint fills it."""
    trained = models.build({"name": "unet", "decoder_channels": [16, 8]})
    with pretrained_weights_disabled():
        net = models.build({"name": "unet", "decoder_channels": [16, 8], "pretrained": True})
        with pytest.raises(ConfigError, match="resnet19"):  # an unknown encoder is still an error
            models.build({"name": "unet", "encoder": "resnet19", "pretrained": True})
    net.load_state_dict(trained.state_dict())
    image = torch.rand(1, 3, 50, 70)
    torch.testing.assert_close(net.eval()(image).depth, trained.eval()(image).depth)


def _fake_hub_cache(root, repo_id: str, filename: str, state: dict) -> None:
    """A Hugging Face hub cache holding ``filename`` of ``repo_id`` (the layout huggingface_hub writes)."""
    repo = root / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / filename))


@pytest.mark.slow
def test_pretrained_true_offline_fails_in_seconds_not_a_minute(tmp_path) -> None:
    # Without HF_HUB_OFFLINE, on a machine whose hub host does not resolve: the probe answers at once.
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "torch"),
           "HF_ENDPOINT": "https://hub.invalid"}
    env.pop("HF_HUB_OFFLINE", None)
    code = (
        "import time\n"
        "from depthlab.models.encoders import create_encoder\n"
        "from depthlab.errors import ConfigError\n"
        "t = time.perf_counter()\n"
        "try:\n"
        "    create_encoder('resnet18', pretrained=True)\n"
        "except ConfigError as exc:\n"
        "    print('CONFIGERROR', round(time.perf_counter() - t, 1), exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "CONFIGERROR" in result.stdout, result.stderr[-2000:]
    seconds = float(result.stdout.split()[1])
    assert seconds < 15, result.stdout  # the hub client's own retries took about 54 s here
    assert "cannot be reached" in result.stdout and "pretrained: /path/to/weights.safetensors" in result.stdout


def test_pretrained_true_uses_a_cached_copy_without_any_network(tmp_path, monkeypatch) -> None:
    from huggingface_hub import constants

    from depthlab.models import encoders

    reference = timm.create_model("resnet18", pretrained=False).state_dict()
    _fake_hub_cache(tmp_path, "timm/resnet18.a1_in1k", "model.safetensors", reference)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(encoders, "hub_reachable", lambda *a, **k: pytest.fail("the network was probed"))
    assert encoders.cached_pretrained_file("resnet18").endswith("model.safetensors")
    _assert_holds(create_encoder("resnet18", pretrained=True), reference)
