"""Export a depthlab network for deployment: ``torch.export`` and ONNX, batch, height and width dynamic.

An exported graph takes a plain tensor and returns plain tensors, so the network is wrapped by
:class:`ExportableDepth`: ``image (B, 3, H, W) RGB in [0, 1] -> depth (B, 1, H, W) in metres``
(``relative_inverse_depth`` for a relative network, e.g. ``hf`` Depth Anything: affine-invariant,
no unit), plus ``log_variance (B, 1, H, W)`` as a second output for networks built with
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

A network can declare which axes it can keep dynamic, ``net.export_dynamic`` (a subset of
``{"batch", "size"}``; default both): :class:`depthlab.models.hf.HFDepthNetwork` declares fewer
where its processor's resize target is computed from the input size in Python (Depth Anything's
keep-aspect-ratio rule, ZoeDepth's padding) or its model fixes the batch (DepthPro). A fixed axis
is exported at the example's value (batch 1 when the batch is fixed) and the file accepts only that.

ONNX export uses torch's dynamo-based exporter, which needs ``onnx`` and ``onnxscript``;
``onnxruntime`` runs the result. ``pip install 'depthlab[export]'`` installs the three.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from depthlab.errors import ConfigError
from depthlab.models import provides as network_provides
from depthlab.models.output import RELATIVE, DepthOutput

__all__ = ["DEFAULT_EXAMPLE_SIZE", "DYNAMIC_AXES", "ExportableDepth", "dynamic_axes", "example_batch", "export_onnx",
           "export_program"]

# (H, W) of the example traced at export: large enough that no encoder's deepest map is 1x1 (a
# size-1 dimension would be specialised by the tracer), small enough to export in seconds on a CPU.
DEFAULT_EXAMPLE_SIZE = (128, 160)
# Batch of the example: 2, because the tracer specialises a dimension of size 1 to a constant.
EXAMPLE_BATCH = 2
DYNAMIC_AXES = frozenset({"batch", "size"})


def dynamic_axes(net: nn.Module) -> frozenset[str]:
    """The axes ``net`` exports dynamic: its ``export_dynamic`` (see the module docstring), else batch and size."""
    axes = getattr(net, "export_dynamic", None)
    return DYNAMIC_AXES if axes is None else frozenset(axes) & DYNAMIC_AXES


def example_batch(net: nn.Module) -> int:
    """Batch of the traced example: :data:`EXAMPLE_BATCH`, or 1 for a network whose batch is fixed."""
    return EXAMPLE_BATCH if "batch" in dynamic_axes(net) else 1


class ExportableDepth(nn.Module):
    """``image -> net(image).prediction`` (and ``log_variance``): a depthlab network with tensor outputs.

    The first output is ``depth`` (metres), or ``relative_inverse_depth`` for a relative network
    (:attr:`output_name`).

    Args:
        net: a network returning :class:`~depthlab.models.output.DepthOutput`.
        log_variance: also return ``log_variance``; None (default) returns it exactly when the
            network provides it (:func:`depthlab.models.provides`: its head's ``provides``, which
            every depthlab network has, or its own).
    """

    def __init__(self, net: nn.Module, log_variance: bool | None = None) -> None:
        super().__init__()
        provides = network_provides(net)
        self.output_name = RELATIVE if provides is not None and RELATIVE in provides else "depth"
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
            return out.prediction, out.log_variance
        return out.prediction

    @property
    def output_names(self) -> list[str]:
        return [self.output_name] + (["log_variance"] if self.log_variance else [])


def _example(net: nn.Module, example_size: Sequence[int]) -> Tensor:
    size = tuple(int(s) for s in example_size)
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"export example_size: expected (H, W), got {tuple(example_size)}")
    param = next(iter(net.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    return torch.rand(example_batch(net), 3, *size, device=device)


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
        dynamic: batch, height and width dynamic, as far as the network allows (:func:`dynamic_axes`; a
            fixed axis keeps the example's value); False fixes the graph to the example's shape.
        log_variance: see :class:`ExportableDepth`.

    Returns the program; ``program.module()`` runs it as an ``nn.Module``.
    """
    wrapper = ExportableDepth(net, log_variance)
    image = _example(net, example_size)
    dynamic_shapes = None
    axes = dynamic_axes(net) if dynamic else frozenset()
    if axes:
        # DYNAMIC (not AUTO): if the network had a Python branch on H or W, the tracer would
        # specialise that size silently under AUTO; DYNAMIC makes it an error instead.
        axis = torch.export.Dim.DYNAMIC
        dims = ([0] if "batch" in axes else []) + ([2, 3] if "size" in axes else [])
        dynamic_shapes = {"image": {d: axis for d in dims}}
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
    output_names: Sequence[str] | None = None,
) -> Path:
    """Write ``net`` as an ONNX model: input ``image``, outputs ``depth`` or ``relative_inverse_depth``
    (and ``log_variance``).

    ``net`` is a network, exported first by :func:`export_program` (with ``example_size``,
    ``dynamic`` and ``log_variance``), or a program :func:`export_program` returned (those three
    arguments are then ignored). ``output_names`` None: :attr:`ExportableDepth.output_names` of the
    network; for a program, ``depth`` (and ``log_variance``): name a relative program's output here. ``torch.onnx.export`` (the dynamo exporter) translates it;
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
        names = list(output_names or ["depth", "log_variance"])
    else:
        program = export_program(net, example_size, dynamic=dynamic, log_variance=log_variance)
        names = list(output_names or ExportableDepth(net, log_variance).output_names)
    names = names[: len(program.graph_signature.user_outputs)]
    try:
        onnx_program = torch.onnx.export(
            program, f=None, input_names=["image"], output_names=names, opset_version=opset_version
        )
    except Exception as exc:
        if type(exc).__name__ != "PassError":
            raise
        # onnxscript's graph optimiser (run after the translation) fails on some graphs, e.g. hf ZoeDepth's:
        # "Error during constant folding for node 'node_split' (::SplitToSequence)". The translated graph
        # itself is right (checked against PyTorch by depthlab export); write it unoptimised.
        onnx_program = torch.onnx.export(
            program, f=None, input_names=["image"], output_names=names, opset_version=opset_version, optimize=False
        )
    shape = onnx_program.model.graph.inputs[0].shape
    names = {0: "batch", 2: "height", 3: "width"}
    symbolic = {axis: name for axis, name in names.items() if not isinstance(shape[axis], int)}
    if symbolic and hasattr(onnx_program, "rename_axes"):  # the tracer's s0, s1, ... -> readable names
        onnx_program.rename_axes({shape[axis]: name for axis, name in symbolic.items()})
    onnx_program.save(str(path))
    return path
