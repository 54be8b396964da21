"""Export a depthlab network for deployment: ``torch.export`` and ONNX, batch, height and width dynamic.

An exported graph takes a plain tensor and returns plain tensors, so the network is wrapped by
:class:`ExportableDepth`: ``image (B, 3, H, W) RGB in [0, 1] -> depth (B, 1, H, W) in metres``,
plus ``log_variance (B, 1, H, W)`` as a second output for networks built with
``uncertainty: true``. The networks normalise their input themselves, so the exported graph
needs no preprocessing besides scaling 8-bit RGB to [0, 1].

    from depthlab.models.export import export_onnx, export_program
    program = export_program(net)                 # torch.export.ExportedProgram
    program.module()(image).shape                 # (B, 1, H, W) for any B, H, W in range
    export_onnx(net, "net.onnx")                  # inputs ["image"], outputs ["depth"(, "log_variance")]

The exported graph accepts any batch and any H, W at or above a minimum that the tracer derives
from the network (e.g. 17 pixels for a resnet18 U-Net, whose deepest map has stride 32; about 61
for glpn's pvt_v2 encoder, whose spatial-reduction attention is traced assuming its 8x-reduced
map is larger than 1x1). The program checks these bounds when called (``Guard failed: ...``);
``program.range_constraints`` lists most of them. eigen2014 resizes every image to its
``input_size``, so it accepts any size.

ONNX export uses torch's dynamo-based exporter, which needs ``onnx`` and ``onnxscript``;
``onnxruntime`` runs the result. ``pip install 'depthlab[export]'`` installs the three.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from depthlab.errors import ConfigError
from depthlab.models.output import DepthOutput

__all__ = ["DEFAULT_EXAMPLE_SIZE", "ExportableDepth", "export_onnx", "export_program"]

# (H, W) of the example traced at export: large enough that no encoder's deepest map is 1x1 (a
# size-1 dimension would be specialised by the tracer), small enough to export in seconds on a CPU.
DEFAULT_EXAMPLE_SIZE = (128, 160)
# Batch of the example: 2, because the tracer specialises a dimension of size 1 to a constant.
EXAMPLE_BATCH = 2


class ExportableDepth(nn.Module):
    """``image -> net(image).depth`` (and ``log_variance``): a depthlab network with tensor outputs.

    Args:
        net: a network returning :class:`~depthlab.models.output.DepthOutput`.
        log_variance: also return ``log_variance``; None (default) returns it exactly when the
            network's head provides it (``net.head.provides``, which every depthlab network has).
    """

    def __init__(self, net: nn.Module, log_variance: bool | None = None) -> None:
        super().__init__()
        provides = getattr(getattr(net, "head", None), "provides", None)
        if log_variance is None:
            log_variance = provides is not None and "log_variance" in provides
        elif log_variance and provides is not None and "log_variance" not in provides:
            raise ConfigError(
                "export log_variance: this network predicts no log_variance (build it with `uncertainty: true`)"
            )
        self.net = net
        self.log_variance = bool(log_variance)

    def forward(self, image: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        out = self.net(image)
        if not isinstance(out, DepthOutput):
            raise TypeError(f"{type(self.net).__name__} returned {type(out).__name__}, expected a DepthOutput")
        if self.log_variance:
            if out.log_variance is None:
                raise ConfigError(
                    "export log_variance: the network returned no log_variance (build it with `uncertainty: true`)"
                )
            return out.depth, out.log_variance
        return out.depth


def _example(net: nn.Module, example_size: Sequence[int]) -> Tensor:
    size = tuple(int(s) for s in example_size)
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"export example_size: expected (H, W), got {tuple(example_size)}")
    param = next(iter(net.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    return torch.rand(EXAMPLE_BATCH, 3, *size, device=device)


def export_program(
    net: nn.Module,
    example_size: Sequence[int] = DEFAULT_EXAMPLE_SIZE,
    *,
    dynamic: bool = True,
    log_variance: bool | None = None,
) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``ExportableDepth(net)`` in eval mode.

    Args:
        net: a depthlab network (its training/eval mode is restored afterwards).
        example_size: (H, W) of the traced example image (batch 2, random RGB on the network's device).
        dynamic: batch, height and width dynamic (else the graph is fixed to the example's shape).
        log_variance: see :class:`ExportableDepth`.

    Returns the program; ``program.module()`` runs it as an ``nn.Module``.
    """
    wrapper = ExportableDepth(net, log_variance)
    image = _example(net, example_size)
    dynamic_shapes = None
    if dynamic:
        # DYNAMIC (not AUTO): if the network had a Python branch on H or W, the tracer would
        # specialise that size silently under AUTO; DYNAMIC makes it an error instead.
        axis = torch.export.Dim.DYNAMIC
        dynamic_shapes = {"image": {0: axis, 2: axis, 3: axis}}
    was_training = net.training
    net.eval()
    try:
        return torch.export.export(wrapper, (image,), dynamic_shapes=dynamic_shapes)
    finally:
        net.train(was_training)


def export_onnx(
    net: nn.Module | torch.export.ExportedProgram,
    path: str | Path,
    example_size: Sequence[int] = DEFAULT_EXAMPLE_SIZE,
    *,
    dynamic: bool = True,
    log_variance: bool | None = None,
    opset_version: int | None = None,
) -> Path:
    """Write ``net`` as an ONNX model: input ``image``, outputs ``depth`` (and ``log_variance``).

    ``net`` is a network, exported first by :func:`export_program` (with ``example_size``,
    ``dynamic`` and ``log_variance``), or a program :func:`export_program` returned (those three
    arguments are then ignored). ``torch.onnx.export`` (the dynamo exporter) translates it;
    dynamic axes are named ``batch``, ``height`` and ``width``. ``opset_version`` None is
    torch's default. Returns ``path``.
    """
    for module in ("onnx", "onnxscript"):
        try:
            __import__(module)
        except ImportError as exc:
            raise ModuleNotFoundError(
                f"ONNX export needs the {module!r} package: pip install 'depthlab[export]'"
            ) from exc
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(net, torch.export.ExportedProgram):
        program = net
    else:
        program = export_program(net, example_size, dynamic=dynamic, log_variance=log_variance)
    output_names = ["depth", "log_variance"][: len(program.graph_signature.user_outputs)]
    onnx_program = torch.onnx.export(
        program, f=None, input_names=["image"], output_names=output_names, opset_version=opset_version
    )
    shape = onnx_program.model.graph.inputs[0].shape
    names = {0: "batch", 2: "height", 3: "width"}
    symbolic = {axis: name for axis, name in names.items() if not isinstance(shape[axis], int)}
    if symbolic and hasattr(onnx_program, "rename_axes"):  # the tracer's s0, s1, ... -> readable names
        onnx_program.rename_axes({shape[axis]: name for axis, name in symbolic.items()})
    onnx_program.save(str(path))
    return path
