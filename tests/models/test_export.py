"""Every registered network exports (torch.export and ONNX) with dynamic batch, height and width.

A network with a Python branch on its input's shape either fails to export with dynamic sizes
or gives a program that is wrong at a size it was not traced at; both would fail here.
"""

from __future__ import annotations

import pytest
import torch

from depthlab import models
from depthlab.errors import ConfigError
from depthlab.models.export import ExportableDepth, export_onnx, export_program
from network_args import network_spec

# Small but real configurations: the default encoders (resnet18, pvt_v2_b0) with narrow decoders.
SMALL = {
    "unet": {"decoder_channels": [32, 16, 16, 8]},
    "glpn": {"decoder_channels": 16},
    "eigen2014": {"fc_width": 16},
}
EXPORT_SIZE = (96, 128)
# (batch, H, W): the traced shape, then a batch, height and width the tracer never saw (72 and 104
# are not multiples of 32; glpn's pvt_v2 needs at least about 61 pixels, see depthlab.models.export).
CHECK_SHAPES = [(2, 96, 128), (1, 72, 104)]
RTOL = 1e-4


def build(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return models.build(network_spec(name, **{**SMALL.get(name, {}), **kwargs})).eval()


@pytest.mark.slow
@pytest.mark.parametrize("name", models.available())
def test_export_matches_eager_at_two_sizes(name: str, tmp_path) -> None:
    net = build(name)
    program = export_program(net, EXPORT_SIZE)
    exported = program.module()
    images = [torch.rand(b, 3, h, w) for b, h, w in CHECK_SHAPES]
    with torch.no_grad():
        eager = [net(image).depth for image in images]
        for image, reference in zip(images, eager):
            torch.testing.assert_close(exported(image), reference, rtol=RTOL, atol=0)

    if name == "glpn":
        # Its ONNX conversion alone takes 16 s here, a twentieth of the full suite's budget; the
        # program it converts is checked above, and `depthlab export` runs every file it writes at a
        # second batch and size against PyTorch, glpn's ONNX included.
        return
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    path = export_onnx(program, tmp_path / f"{name}.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (image_input,) = session.get_inputs()
    assert image_input.name == "image" and image_input.shape == ["batch", 3, "height", "width"]
    assert [o.name for o in session.get_outputs()] == ["depth"]
    for image, reference in zip(images, eager):
        (depth,) = session.run(None, {"image": image.numpy()})
        torch.testing.assert_close(torch.from_numpy(depth), reference, rtol=RTOL, atol=0)


def test_log_variance_is_a_second_output() -> None:
    net = build("unet", decoder_channels=[16, 8], uncertainty=True)
    assert ExportableDepth(net).log_variance  # picked up from net.head.provides
    program = export_program(net, (64, 96))
    image = torch.rand(1, 3, 50, 70)
    depth, log_variance = program.module()(image)
    with torch.no_grad():
        out = net(image)
    torch.testing.assert_close(depth, out.depth, rtol=RTOL, atol=0)
    torch.testing.assert_close(log_variance, out.log_variance, rtol=RTOL, atol=1e-6)
    assert not ExportableDepth(net, log_variance=False).log_variance


def test_export_keeps_training_mode_and_rejects_bad_requests() -> None:
    net = build("eigen2014").train()
    program = export_program(net, (64, 96), dynamic=False)
    assert net.training  # restored after exporting in eval mode
    assert program.module()(torch.rand(2, 3, 64, 96)).shape == (2, 1, 64, 96)
    with pytest.raises(ConfigError, match="log_variance.*uncertainty"):
        ExportableDepth(net, log_variance=True)
    with pytest.raises(ConfigError, match="example_size"):
        export_program(net, (64,))
