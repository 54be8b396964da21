"""Export a trained network as one self-contained file for deployment (``depthlab export``, whose front
end is :mod:`depthlab.commands.export`).

    depthlab export --config configs/synthetic.yaml --ckpt_path last.ckpt --format onnx --output depth.onnx
    depthlab export --config configs/synthetic.yaml --ckpt_path last.ckpt --format torchscript  # -> last.torchscript.pt

Every format has one input, ``image`` (B, 3, H, W) float32 RGB in [0, 1] (the network normalises
it itself), and returns ``depth`` (B, 1, H, W) in metres at the input's size (``relative_inverse_depth``
for a relative network; and ``log_variance`` second for networks built with ``uncertainty: true``):
the network wrapped in :class:`depthlab.models.export.ExportableDepth`. Batch, height and width are
dynamic (above the minimum size the network has, see :mod:`depthlab.models.export`), except the
axes a network declares fixed (``export_dynamic``; some ``hf`` networks, :mod:`depthlab.models.hf`):
those are exported at ``--size`` (and batch 1 when the batch is fixed) and the file accepts only that.

- ``onnx``: torch's dynamo exporter (:func:`depthlab.models.export.export_onnx`); axes named
  ``batch``, ``height``, ``width``. Runs in onnxruntime, TensorRT, OpenVINO, ...
- ``torchscript``: ``torch.jit.trace`` of the wrapper, saved with ``torch.jit.save``; read by
  ``torch.jit.load`` and LibTorch's ``torch::jit::load`` (C++), Triton's PyTorch backend. A trace
  records the operations run on one example: sizes taken from tensor shapes stay symbolic, but a
  Python branch on a size, or a size turned into a Python number, is frozen at the example's. The
  depthlab networks have neither (they export with dynamic sizes through ``torch.export``, which
  refuses such branches), and every export here is checked at a second batch and size (below).
  torch deprecates TorchScript in favour of ``torch.export``; hence also
- ``pt2``: the ``torch.export`` program (:func:`depthlab.models.export.export_program`) saved with
  ``torch.export.save``; read by ``torch.export.load(path).module()`` and AOTInductor.

The functions here take a built network (:func:`export_network`, :func:`check_export`). The command
builds it as ``depthlab test --ckpt_path`` does (:func:`depthlab.parser.model_from_config`): the
config parsed exactly as ``depthlab fit`` parses it, the model settings by the one precedence rule
of every ``--ckpt_path`` command (stated settings win, unstated ones come from the checkpoint, a
stated network setting that contradicts the checkpoint is an error), the network built without
fetching pretrained encoder weights (the checkpoint supplies every weight) and its weights loaded
strictly. After writing, the file is run by its own runtime at the export shape (batch 2, ``--size``)
and at a second one (batch 1, 40 and 24 pixels larger) and compared with PyTorch; a relative
difference above :data:`CHECK_RTOL` is an error (exit status 1).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from depthlab.errors import ConfigError
from depthlab.models.output import RELATIVE
from depthlab.models.export import (
    DEFAULT_EXAMPLE_SIZE, ExportableDepth, dynamic_axes, example_batch, export_onnx, export_program,
)

FORMATS = ("onnx", "torchscript", "pt2")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "pt2": ".pt2"}
# A deployment check, not a numerical test: runtimes fuse and reorder float32 arithmetic (~1e-6
# apart); a size frozen into a trace or a wrong graph is off by far more.
CHECK_RTOL = 1e-3


def export_network(net: nn.Module, fmt: str, output: str | Path, size: Sequence[int] = DEFAULT_EXAMPLE_SIZE) -> Path:
    """Write ``net`` (a depthlab network) to ``output`` in format ``fmt`` (see the module docstring)."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    output = Path(output).expanduser()
    output.parent.mkdir(parents=True, exist_ok=True)
    net = net.eval()
    if fmt == "onnx":
        return export_onnx(net, output, size)
    if fmt == "pt2":
        torch.export.save(export_program(net, size), str(output))
        return output
    example = torch.rand(example_batch(net), 3, int(size[0]), int(size[1]))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r"`torch\.jit")  # chosen knowingly
        # check_trace off: check_export below runs the saved file at two shapes, which says more.
        traced = torch.jit.trace(ExportableDepth(net).eval(), example, check_trace=False)
        torch.jit.save(traced, str(output))
    return output


def load_exported(path: str | Path, fmt: str) -> Callable[[Tensor], Tensor]:
    """The exported file as a function ``image -> depth``, run by the format's own runtime."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda image: torch.from_numpy(session.run(None, {"image": image.numpy()})[0])
    if fmt == "pt2":
        module = torch.export.load(str(path)).module()
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, message=r"`torch\.jit")
            module = torch.jit.load(str(path), map_location="cpu")

    def run(image: Tensor) -> Tensor:
        with torch.no_grad():
            out = module(image)
        return out[0] if isinstance(out, (tuple, list)) else out

    return run


def check_shapes(size: Sequence[int], axes: frozenset[str] = frozenset({"batch", "size"})) -> list[tuple[int, int, int]]:
    """(batch, H, W): the traced shape, then a batch and size the tracer never saw, on the dynamic ``axes``
    (:func:`depthlab.models.export.dynamic_axes`; a network with both fixed is checked at its one shape)."""
    h, w = int(size[0]), int(size[1])
    batch = 2 if "batch" in axes else 1
    shapes = [(batch, h, w)]
    if axes:
        shapes.append((1 if "batch" in axes else batch, *((h + 40, w + 24) if "size" in axes else (h, w))))
    return shapes


def check_export(net: nn.Module, path: str | Path, fmt: str, size: Sequence[int] = DEFAULT_EXAMPLE_SIZE,
                 seed: int = 0) -> tuple[float, list[tuple[int, int, int]]]:
    """Max relative difference between the exported file and ``net`` over :func:`check_shapes` of ``size``
    (per pixel for depth; relative to each map's largest value for a relative network's output)."""
    run = load_exported(path, fmt)
    generator = torch.Generator().manual_seed(seed)
    shapes = check_shapes(size, dynamic_axes(net))
    relative = ExportableDepth(net).output_name == RELATIVE
    worst = 0.0
    for batch, h, w in shapes:
        image = torch.rand(batch, 3, h, w, generator=generator)
        with torch.no_grad():
            want = net.eval()(image).prediction
        got = run(image)
        if got.shape != want.shape:
            return float("inf"), shapes
        if relative:  # no unit, affine-invariant: the error relative to the map's largest value (it has zeros)
            rel = (got - want).abs() / want.abs().max().clamp_min(torch.finfo(want.dtype).tiny)
        else:
            rel = (got - want).abs() / want.abs().clamp_min(torch.finfo(want.dtype).tiny)
        worst = max(worst, float(rel.max()))
    return worst, shapes
