"""depthlab.models.hf: transformers depth networks behind depthlab's network contract.

The reference everywhere is transformers' own pipeline on the same float image:
``processor(images, do_rescale=False)`` -> ``model(pixel_values)`` -> ``processor.post_process_depth_estimation``,
with the processor built here from the published settings (not taken from the network). Tiny random
configs build in milliseconds offline.
"""

from __future__ import annotations

import math
import socket
import sys
import time

import pytest
import torch

transformers = pytest.importorskip("transformers")

from depthlab.errors import ConfigError  # noqa: E402
from depthlab.models.hf import HFDepthNetwork  # noqa: E402

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
DINOV2_TINY = {"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2,
               "intermediate_size": 64, "patch_size": 14, "image_size": 56,
               "out_features": ["stage1", "stage2", "stage3", "stage4"], "reshape_hidden_states": False}
VIT_TINY = {"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 64, "patch_size": 14, "image_size": 28}
CONFIGS = {
    "depth_anything": {"model_type": "depth_anything", "backbone_config": DINOV2_TINY, "neck_hidden_sizes": [8, 16, 32, 32],
                       "fusion_hidden_size": 16, "head_hidden_size": 8, "reassemble_hidden_size": 32, "patch_size": 14},
    "dpt": {"model_type": "dpt", "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2,
            "intermediate_size": 64, "image_size": 64, "patch_size": 16, "neck_hidden_sizes": [8, 16, 32, 32],
            "fusion_hidden_size": 16, "backbone_out_indices": [0, 1, 2, 3], "head_in_index": -1},
    "glpn": {"model_type": "glpn", "num_encoder_blocks": 4, "depths": [1, 1, 1, 1], "hidden_sizes": [8, 16, 32, 64],
             "num_attention_heads": [1, 1, 2, 2], "decoder_hidden_size": 16, "sr_ratios": [8, 4, 2, 1]},
    "zoedepth": {"model_type": "zoedepth", "backbone_config": DINOV2_TINY, "neck_hidden_sizes": [8, 16, 32, 32],
                 "fusion_hidden_size": 16, "bottleneck_features": 16, "num_attractors": [4, 4, 4, 4],
                 "bin_embedding_dim": 16, "num_relative_features": 8, "reassemble_factors": [4, 2, 1, 0.5]},
    "depth_pro": {"model_type": "depth_pro", "fusion_hidden_size": 16, "patch_size": 14, "intermediate_hook_ids": [1, 0],
                  "intermediate_feature_dims": [8, 8], "scaled_images_ratios": [0.5, 1.0],
                  "scaled_images_overlap_ratios": [0.0, 0.25], "scaled_images_feature_dims": [16, 16],
                  "image_model_config": VIT_TINY, "patch_model_config": VIT_TINY, "fov_model_config": VIT_TINY,
                  "use_fov_model": True},
}
DA_METRIC = {**CONFIGS["depth_anything"], "depth_estimation_type": "metric"}


def tiny(name: str, **kwargs) -> HFDepthNetwork:
    torch.manual_seed(0)
    config = DA_METRIC if name == "depth_anything_metric" else CONFIGS[name]
    return HFDepthNetwork(config=config, **kwargs).eval()


# name -> (network kwargs, the reference processor built from the published settings, extra post-processing kwargs)
CASES = {
    # Depth Anything's preprocessor_config.json (depth-anything/Depth-Anything-V2-*-hf); the network's default.
    "depth_anything": ({}, lambda: transformers.DPTImageProcessor(
        size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14, resample=3,
        image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD), {}),
    "depth_anything_metric": ({"max_depth": 20.0, "input_size": 126}, lambda: transformers.DPTImageProcessor(
        size={"height": 126, "width": 126}, keep_aspect_ratio=True, ensure_multiple_of=14, resample=3,
        image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD), {}),
    "dpt": ({"input_size": 64}, lambda: transformers.DPTImageProcessor(size={"height": 64, "width": 64}), {}),
    "glpn": ({}, lambda: transformers.GLPNImageProcessor(), {}),
    "zoedepth": ({"input_size": [56, 70]}, lambda: transformers.ZoeDepthImageProcessor(
        size={"height": 56, "width": 70}, keep_aspect_ratio=False), {"source_sizes": [(61, 83)] * 2}),
    "depth_pro": ({"input_size": 112}, lambda: transformers.DepthProImageProcessor(size={"height": 112, "width": 112}), {}),
}


def reference(net: HFDepthNetwork, image: torch.Tensor, processor, post_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' pipeline: (pixel_values, prediction (B, 1, H, W))."""
    pixel_values = processor(images=list(image), do_rescale=False, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        outputs = net.model(pixel_values=pixel_values)
    sizes = [tuple(image.shape[-2:])] * len(image)
    results = processor.post_process_depth_estimation(outputs, target_sizes=sizes, **post_kwargs)
    return pixel_values, torch.stack([r["predicted_depth"] for r in results])[:, None]


@pytest.mark.parametrize("name", list(CASES))
def test_forward_equals_the_transformers_pipeline(name):
    kwargs, make_processor, post_kwargs = CASES[name]
    net = tiny(name, **kwargs)
    image = torch.rand(2, 3, 61, 83, generator=torch.Generator().manual_seed(1))  # odd sizes: the size rule
    pixel_values, want = reference(net, image, make_processor(), post_kwargs)
    assert torch.equal(net.preprocess(image), pixel_values)
    with torch.no_grad():
        out = net(image)
    got = out.prediction
    assert got.shape == (2, 1, 61, 83) and got.dtype == torch.float32
    if out.depth is not None:  # metric: clamped below at min_depth (bicubic overshoot)
        want = want.clamp_min(net.min_depth)
    rel = ((got - want).abs() / want.abs().clamp_min(1e-12)).max()
    assert rel <= 1e-5
    assert net.encoder_names() and all(n in dict(net.named_modules()) for n in net.encoder_names())


@pytest.mark.parametrize("shape, want", [((480, 640), (518, 686)), ((1000, 2000), (518, 1036)), ((900, 600), (784, 518))])
def test_depth_anything_resizes_the_shorter_side_to_518_at_multiples_of_14(shape, want):
    # Downscaled inputs: the processor fits the side that needs the least scaling, i.e. the shorter one
    # to 518 and the other by the aspect ratio, rounded to a multiple of 14 (640 * 518 / 480 = 690.7 -> 686;
    # 900 * 518 / 600 = 777 = 55.5 * 14, and Python rounds half to even: 56 * 14 = 784).
    net = tiny("depth_anything")
    assert tuple(net.preprocess(torch.rand(1, 3, *shape)).shape[-2:]) == want


def test_relative_and_metric_depth_anything():
    image = torch.rand(1, 3, 56, 70)
    relative = tiny("depth_anything")
    assert relative.kind == "relative_inverse_depth" and relative.provides == {"relative_inverse_depth"}
    out = relative(image)
    assert out.depth is None and out.relative_inverse_depth.shape == (1, 1, 56, 70)
    metric = tiny("depth_anything_metric", max_depth=20.0)
    assert metric.kind == "depth" and metric.provides == {"depth"}
    depth = metric(image).depth
    assert metric.model.config.max_depth == 20.0
    assert depth.min() >= metric.min_depth and depth.max() <= 20.0


def test_kind_metric_on_a_relative_depth_anything_keeps_its_weights(tmp_path):
    tiny("depth_anything").save_pretrained(tmp_path / "relative")
    relative = HFDepthNetwork(pretrained=str(tmp_path / "relative")).eval()
    metric = HFDepthNetwork(pretrained=str(tmp_path / "relative"), kind="metric", max_depth=15.0).eval()
    assert relative.kind == "relative_inverse_depth" and metric.kind == "depth"
    assert metric.model.config.depth_estimation_type == "metric" and metric.model.config.max_depth == 15.0
    a, b = relative.model.state_dict(), metric.model.state_dict()
    assert a.keys() == b.keys()
    for key in ("backbone.encoder.layer.0.attention.q_proj.weight", "neck.convs.0.weight", "head.conv3.weight"):
        assert torch.equal(a[key], b[key])
    # the same last layer, read through sigmoid * max_depth instead of ReLU
    image = torch.rand(1, 3, 56, 70)
    depth = metric(image).depth
    assert depth.min() >= metric.min_depth and depth.max() <= 15.0


def test_load_backbone_keeps_the_backbone_and_starts_a_fresh_head(tmp_path):
    # Depth Anything V2 metric_depth/train.py: only the relative checkpoint's encoder ("pretrained.*")
    tiny("depth_anything").save_pretrained(tmp_path / "relative")
    relative = HFDepthNetwork(pretrained=str(tmp_path / "relative")).eval()
    torch.manual_seed(3)
    fresh = HFDepthNetwork(pretrained=str(tmp_path / "relative"), kind="metric", load="backbone").eval()
    a, b = relative.model.state_dict(), fresh.model.state_dict()
    backbone = [k for k in a if k.startswith("backbone.")]
    assert backbone and all(torch.equal(a[k], b[k]) for k in backbone)
    assert not torch.equal(a["head.conv3.weight"], b["head.conv3.weight"])
    assert not torch.equal(a["neck.convs.0.weight"], b["neck.convs.0.weight"])
    with pytest.raises(ConfigError, match="model.net.load: backbone keeps the pretrained backbone's weights"):
        HFDepthNetwork(config=tiny("depth_anything").model.config.to_dict(), load="backbone")


@pytest.mark.parametrize("name, kind, message", [
    ("dpt", "metric", r"model.net.kind: metric: dpt has no metric head"),
    ("glpn", "relative", r"model.net.kind: relative: glpn has only a metric head"),
    ("depth_pro", "relative", r"model.net.kind: relative: depth_pro has only a metric head"),
    ("dpt", "metres", r"model.net.kind: expected auto, metric or relative, got 'metres'"),
])
def test_a_kind_the_architecture_has_no_head_for_is_refused(name, kind, message):
    with pytest.raises(ConfigError, match=message) as err:
        HFDepthNetwork(config=CONFIGS[name], kind=kind)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs, message", [
    ({}, r"model.net: the hf network needs exactly one of `pretrained` .* got neither"),
    ({"pretrained": "a/b", "config": CONFIGS["glpn"]}, r"exactly one of .* got both"),
    ({"config": {"hidden_size": 8}}, r"model.net.config: a mapping needs `model_type`"),
    ({"config": {"model_type": "bert"}}, r"model.net: the hf network supports the depth models .* this one is 'bert'"),
    ({"config": "/no/such/config.json"}, r"model.net.config: '/no/such/config.json' does not exist"),
    ({"config": CONFIGS["glpn"], "input_size": 320}, r"model.net.input_size: glpn's processor keeps the input's size"),
    ({"config": CONFIGS["dpt"], "input_size": [64]}, r"model.net.input_size: expected a positive integer or \[height, width\]"),
])
def test_bad_arguments_are_one_line_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message) as err:
        HFDepthNetwork(**kwargs)
    assert "\n" not in str(err.value)


def _no_network(monkeypatch):
    """HF_HUB_OFFLINE=1 and every socket connection refused: a loading path that reaches out fails."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_save_pretrained_reloads_to_identical_outputs_offline(tmp_path, monkeypatch):
    net = tiny("depth_anything_metric", input_size=[70, 84], max_depth=20.0)
    net.save_pretrained(tmp_path / "saved")
    _no_network(monkeypatch)
    again = HFDepthNetwork(pretrained=str(tmp_path / "saved"), max_depth=20.0).eval()
    assert again.kind == "depth" and again.model.config.max_depth == 20.0
    assert again.target_size == (70, 84) and not again.keep_aspect_ratio
    image = torch.rand(2, 3, 61, 83)
    with torch.no_grad():
        assert torch.equal(net(image).depth, again(image).depth)


def test_with_pretrained_weights_disabled_only_the_config_is_read(tmp_path):
    # loading a depthlab checkpoint: the network is rebuilt from the pretrained config, its weights come later
    from depthlab.models.encoders import pretrained_weights_disabled

    saved = tiny("depth_anything_metric", max_depth=20.0)
    saved.save_pretrained(tmp_path / "saved")
    with pretrained_weights_disabled():
        rebuilt = HFDepthNetwork(pretrained=str(tmp_path / "saved"), max_depth=20.0)
    assert rebuilt.kind == "depth" and rebuilt.model.config.max_depth == 20.0
    key = "backbone.encoder.layer.0.attention.q_proj.weight"
    assert not torch.equal(rebuilt.model.state_dict()[key], saved.model.state_dict()[key])
    rebuilt.load_state_dict(saved.state_dict())  # the checkpoint's weights fit strictly


def test_an_uncached_hub_id_offline_fails_in_seconds_with_both_ways_out(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    _no_network(monkeypatch)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        HFDepthNetwork(pretrained="depthlab-test/no-such-depth-model")
    assert time.perf_counter() - start < 10
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("model.net.pretrained: could not get the Hugging Face model 'depthlab-test/no-such-depth-model'")
    assert "`hf download depthlab-test/no-such-depth-model`" in message and "HF_HOME" in message
    assert "`pretrained: /path/to/folder`" in message


def test_gradients_reach_the_backbone_and_the_head():
    net = tiny("depth_anything_metric").train()
    net(torch.rand(2, 3, 56, 70)).depth.log().mean().backward()
    params = dict(net.named_parameters())
    for name in ("model.backbone.encoder.layer.0.attention.q_proj.weight", "model.head.conv3.weight"):
        grad = params[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("name, kwargs", [(n, CASES[n][0]) for n in CASES])
def test_every_trainable_parameter_gets_a_gradient(name, kwargs):
    # hf.UNUSED_PARAMETERS (never used for depth) are frozen; every other parameter is trained
    net = tiny(name, **kwargs).train()
    net(torch.rand(1, 3, 61, 83)).prediction.mean().backward()
    frozen = [n for n, p in net.named_parameters() if not p.requires_grad]
    assert [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None] == []
    assert all(p.grad is None for p in net.parameters() if not p.requires_grad)  # frozen: really unused
    assert (frozen == []) == (name == "glpn")


def test_output_is_float32_under_bf16_autocast():
    net = tiny("glpn")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(torch.rand(1, 3, 64, 96))
    assert out.depth.dtype == torch.float32


def test_without_transformers_one_line_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` raises ImportError
    with pytest.raises(ConfigError) as err:
        HFDepthNetwork(config=CONFIGS["glpn"])
    assert "\n" not in str(err.value)
    assert "pip install 'depthlab[hf]'" in str(err.value) and "Python >= 3.11" in str(err.value)


def test_a_pretrained_metric_model_keeps_its_max_depth_and_says_so(tmp_path):
    tiny("glpn", max_depth=80.0).save_pretrained(tmp_path / "glpn")
    with pytest.warns(UserWarning, match=r"predicts at most 80 m .* model.max_depth is 10 m"):
        net = HFDepthNetwork(pretrained=str(tmp_path / "glpn"), max_depth=10.0)
    assert net.model.config.max_depth == 80


def test_a_few_training_steps_reduce_the_loss():
    from depthlab.data.synthetic import SceneConfig, render_sample
    from depthlab.module import DepthModule

    cfg = SceneConfig(height=56, width=70)
    samples = [render_sample(cfg, seed=0, split="train", index=i) for i in range(2)]
    batch = {k: torch.stack([s[k] for s in samples]) for k in ("image", "depth", "valid")}
    torch.manual_seed(0)
    module = DepthModule(net={"class_path": "depthlab.models.hf.HFDepthNetwork",
                              "init_args": {"config": DA_METRIC, "input_size": [56, 70]}},
                         loss="silog", max_depth=10.0)
    optimizer = torch.optim.AdamW(module.parameters(), lr=5e-3)
    losses = []
    for _ in range(20):
        loss, _ = module.compute_loss(module(batch["image"]), batch)
        optimizer.zero_grad()
        loss.backward()
        # clipped: without it a random tiny head can take one large step into dead ReLUs (seen for some seeds)
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
    assert math.isfinite(losses[-1]) and losses[-1] < 0.5 * losses[0]  # from 0.19 (a constant prediction's SiLog)


@pytest.mark.parametrize("size", [(61, 83), (64, 96), (30, 20)])
@pytest.mark.parametrize("mode, antialias", [("bicubic", True), ("bilinear", True), ("bicubic", False)])
def test_resize_is_torchvisions_resize(size, mode, antialias):
    # hf._resize is tvF.resize's F.interpolate call without its early return for an unchanged size
    # (64x96 -> 64x96 here): interpolating to the same size must give the input back exactly.
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as tvF

    from depthlab.models.hf import _resize

    image = torch.rand(2, 3, 64, 96)
    mode = InterpolationMode(mode)
    assert torch.equal(_resize(image, size, mode, antialias), tvF.resize(image, list(size), mode, antialias=antialias))


@pytest.mark.parametrize("target, multiple", [((70, 84), 14), ((64, 64), 1), ((518, 518), 14)])
def test_a_fixed_target_size_does_not_depend_on_the_input(target, multiple):
    # Exporting with keep_aspect_ratio off, the size rule reads a stand-in of the target's size instead
    # of the symbolic input (hf.HFDepthNetwork._size_reference): the same result for every input size.
    from transformers.models.dpt.image_processing_dpt import get_resize_output_image_size

    want = get_resize_output_image_size(torch.empty(0, 0, *target), target, False, multiple)
    for h in range(8, 400, 7):
        for w in range(8, 400, 11):
            assert get_resize_output_image_size(torch.empty(0, 0, h, w), target, False, multiple) == want


@pytest.mark.parametrize("name, kwargs, axes", [
    ("depth_anything", {}, {"batch"}),
    ("depth_anything", {"input_size": 98}, {"batch"}),
    ("depth_anything", {"input_size": [70, 84]}, {"batch", "size"}),
    ("dpt", {"input_size": 64}, {"batch", "size"}),
    ("glpn", {}, {"batch", "size"}),
    ("zoedepth", {"input_size": [56, 70]}, {"batch"}),
    ("depth_pro", {"input_size": 112}, {"size"}),
])
def test_the_axes_each_architecture_exports_dynamic(name, kwargs, axes):
    from depthlab.export import check_shapes
    from depthlab.models.export import ExportableDepth, dynamic_axes

    net = tiny(name, **kwargs)
    assert dynamic_axes(net) == axes
    assert ExportableDepth(net).output_names == ["relative_inverse_depth" if name in ("depth_anything", "dpt") else "depth"]
    shapes = check_shapes((61, 83), dynamic_axes(net))  # depthlab export's check varies only the dynamic axes
    assert {s[0] for s in shapes} == ({1, 2} if "batch" in axes else {1})
    assert {s[1:] for s in shapes} == ({(61, 83), (101, 107)} if "size" in axes else {(61, 83)})


@pytest.mark.slow
@pytest.mark.parametrize("name, kwargs, dynamic_size", [
    ("depth_anything", {"input_size": [70, 84]}, True),
    ("depth_anything", {}, False),
])  # GLPN's ONNX export (dynamic) was checked the same way but takes 16 s; a metric hf network is exported
#     by tests/cli/test_hf_cli.py
def test_onnx_export_matches_pytorch(name, kwargs, dynamic_size, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from depthlab.export import CHECK_RTOL, check_export, export_network

    net = tiny(name, **kwargs)
    size = (64, 96) if name == "glpn" else (61, 83)
    path = export_network(net, "onnx", tmp_path / f"{name}.onnx", size)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (image_input,) = session.get_inputs()
    want_name = "depth" if name == "glpn" else "relative_inverse_depth"
    assert [o.name for o in session.get_outputs()] == [want_name]
    assert image_input.shape == (["batch", 3, "height", "width"] if dynamic_size else ["batch", 3, *size])
    worst, shapes = check_export(net, path, "onnx", size)  # the traced shape and, where dynamic, another
    assert worst <= CHECK_RTOL and len(shapes) == 2
    image = torch.rand(1, 3, *((size[0] + 40, size[1] + 24) if dynamic_size else size))
    (got,) = session.run(None, {"image": image.numpy()})
    with torch.no_grad():
        want = net(image).prediction
    torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))
