"""Performance options and a network summary, as plain functions on an ``nn.Module`` (no Lightning).

The Lightning side (callbacks that apply these during ``depthlab fit``) is in
:mod:`depthlab.callbacks`; mixed precision is Lightning's own ``trainer.precision``
(``bf16-mixed`` on CPU and recent GPUs, ``16-mixed`` on GPUs): every depthlab network returns
a :class:`~depthlab.models.output.DepthOutput` of float32 tensors from its head, also under autocast.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from depthlab.models.output import OUTPUT_FIELDS, DepthOutput


def to_channels_last(net: nn.Module) -> nn.Module:
    """Store the network's 4-D weights as NHWC (``torch.channels_last``); in place, returns ``net``.

    Convolutions then run in NHWC, usually faster with oneDNN on CPU and with tensor cores on GPU.
    Inputs may stay NCHW; feeding NHWC images avoids one conversion per layer.
    """
    return net.to(memory_format=torch.channels_last)


def image_to_channels_last(image: Tensor) -> Tensor:
    return image.contiguous(memory_format=torch.channels_last) if image.dim() == 4 else image


def compile_unavailable_reason(backend: str = "inductor", device: str = "cpu") -> str | None:
    """Why ``torch.compile`` cannot run here, or None when it should (no compile is attempted)."""
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        return "torch.compile (dynamo) is not supported on this Python/platform"
    if backend == "inductor" and device == "cpu":
        compilers = [c for c in ("g++", "c++", "clang++") if shutil.which(c)]
        if not compilers:
            return "torch.compile's inductor backend needs a C++ compiler (g++/clang++) on CPU; none found"
    return None


def compile_network(
    net: nn.Module, backend: str = "inductor", mode: str | None = None, dynamic: bool | None = None
) -> nn.Module:
    """``torch.compile`` the network in place (``nn.Module.compile``: state-dict keys unchanged).

    Compilation happens at the first forward; a new input shape recompiles (``dynamic=True``
    asks for shape-generic kernels instead).
    """
    kwargs: dict[str, Any] = {"backend": backend, "dynamic": dynamic}
    if mode is not None:
        kwargs["mode"] = mode
    net.compile(**kwargs)
    return net


def count_parameters(net: nn.Module) -> tuple[int, int]:
    """(all, trainable) parameter counts."""
    total = sum(p.numel() for p in net.parameters())
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    return total, trainable


def _eval_forward(net: nn.Module, image: Tensor, flops: bool) -> tuple[Any, int | None]:
    """One forward in eval mode without gradients, training mode restored; FLOPs counted if asked.

    Calls ``net.forward`` directly, bypassing a ``torch.compile`` wrapper (the counter needs eager ops).
    """
    from torch.utils.flop_counter import FlopCounterMode

    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            if not flops:
                return net.forward(image), None
            with FlopCounterMode(display=False) as counter:
                out = net.forward(image)
            return out, int(counter.get_total_flops())
    finally:
        net.train(was_training)


def count_flops(net: nn.Module, image: Tensor) -> int:
    """Floating-point operations of one forward pass on ``image`` (torch's FLOP counter: 2 per MAC)."""
    return _eval_forward(net, image, flops=True)[1]  # type: ignore[return-value]


@dataclass(frozen=True)
class NetworkSummary:
    """What :func:`summarize` measured.

    ``output_shape`` is the shape of ``depth`` (of the output itself for a network that returns a
    plain tensor); ``outputs`` names the DepthOutput fields the network filled, ``scales`` counts
    its coarser predictions.
    """

    name: str
    parameters: int
    trainable: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    gflops: float | None  # forward pass, per image
    outputs: tuple[str, ...] = ("depth",)
    scales: int = 0

    def __str__(self) -> str:
        flops = f"{self.gflops:.2f} GFLOPs/image (forward)" if self.gflops is not None else "FLOPs not counted"
        extras = [name for name in self.outputs if name != "depth"]
        if self.scales:
            extras.append(f"{self.scales} coarser scales")
        extra = f" (+ {', '.join(extras)})" if extras else ""
        return (
            f"network {self.name}: {self.parameters / 1e6:.2f} M parameters ({self.trainable / 1e6:.2f} M trainable), "
            f"input {tuple(self.input_shape[1:])} -> depth {tuple(self.output_shape[1:])}{extra}, {flops}"
        )

    def as_metrics(self) -> dict[str, float]:
        out = {"net/parameters_M": self.parameters / 1e6, "net/trainable_M": self.trainable / 1e6}
        if self.gflops is not None:
            out["net/gflops_per_image"] = self.gflops
        return out


def summarize(net: nn.Module, image: Tensor, flops: bool = True) -> NetworkSummary:
    """Parameters, input/output shapes and forward GFLOPs of ``net`` on ``image[:1]``.

    ``net`` returns a :class:`DepthOutput` (every depthlab network) or a depth tensor.
    """
    out, n_flops = _eval_forward(net, image[:1], flops)
    total, trainable = count_parameters(net)
    gflops = n_flops / 1e9 if n_flops is not None else None
    if isinstance(out, DepthOutput):
        outputs = tuple(name for name in OUTPUT_FIELDS if name in out.available())
        shape, scales = tuple(out.depth.shape), len(out.scales)
    else:
        outputs, shape, scales = ("depth",), tuple(out.shape), 0
    return NetworkSummary(type(net).__name__, total, trainable, tuple(image.shape), shape, gflops, outputs, scales)
