"""``depthlab export``: a trained checkpoint as one self-contained file for deployment.

    depthlab export --config configs/synthetic.yaml --ckpt_path last.ckpt --format onnx --output depth.onnx
    depthlab export --config configs/synthetic.yaml --ckpt_path last.ckpt --format torchscript  # -> last.torchscript.pt

Every format has one input, ``image`` (B, 3, H, W) float32 RGB in [0, 1] (the network normalises
it itself), and returns ``depth`` (B, 1, H, W) in metres at the input's size (and
``log_variance`` second for networks built with ``uncertainty: true``): the network wrapped in
:class:`depthlab.models.export.ExportableDepth`. Batch, height and width are dynamic (above the
minimum size the network has, see :mod:`depthlab.models.export`).

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

The config is parsed by depthlab's LightningCLI exactly as ``depthlab fit`` parses it (``--model.*``
overrides included); the checkpoint's saved hyper-parameters then override the model section, as
``depthlab test/predict --ckpt_path`` do. The network is built without fetching pretrained encoder
weights (the checkpoint supplies every weight) and its weights are loaded strictly. After writing,
the file is run by its own runtime at the export shape (batch 2, ``--size``) and at a second one
(batch 1, 40 and 24 pixels larger) and compared with PyTorch; a relative difference above
:data:`CHECK_RTOL` is an error (exit status 1).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from depthlab.errors import ConfigError
from depthlab.models.export import DEFAULT_EXAMPLE_SIZE, EXAMPLE_BATCH, ExportableDepth, export_onnx, export_program

FORMATS = ("onnx", "torchscript", "pt2")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "pt2": ".pt2"}
# A deployment check, not a numerical test: runtimes fuse and reorder float32 arithmetic (~1e-6
# apart); a size frozen into a trace or a wrong graph is off by far more.
CHECK_RTOL = 1e-3


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A Lightning checkpoint's contents (tensors only, no pickled code); ConfigError naming the file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"--ckpt_path: no such file {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load raises many kinds for a file that is not a checkpoint
        lines = str(exc).strip().splitlines()
        detail = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        raise ConfigError(f"--ckpt_path {path}: not a readable checkpoint ({detail})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ConfigError(f"--ckpt_path {path}: no 'state_dict' in it (not a Lightning checkpoint of depthlab fit)")
    return ckpt


def model_from_config(cli_args: list[str], ckpt: dict[str, Any], ckpt_path: str | Path) -> nn.Module:
    """The DepthModule of a depthlab config with the checkpoint's hyper-parameters and weights, in eval mode.

    Only the model is instantiated (no data module, no trainer: a GPU config works on a CPU box),
    inside :func:`~depthlab.models.encoders.pretrained_weights_disabled`.
    """
    import lightning as L

    from depthlab.cli import DepthCLI
    from depthlab.config import unwrap_config_error
    from depthlab.models.encoders import pretrained_weights_disabled
    from depthlab.module import DepthModule

    hparams = {k: v for k, v in (ckpt.get("hyper_parameters") or {}).items() if k != "_instantiator"}

    class _ModelOnlyCLI(DepthCLI):
        def instantiate_classes(self) -> None:
            if hparams:  # as LightningCLI._parse_ckpt_path does for test/predict --ckpt_path
                self.config = self.parser.parse_object({"model": hparams}, self.config)
            with pretrained_weights_disabled():
                self.model = DepthModule(**self.config.model.as_dict())

    with warnings.catch_warnings():
        # The arguments are this command's own, not a second copy of sys.argv as Lightning fears.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        try:
            cli = _ModelOnlyCLI(DepthModule, L.LightningDataModule, subclass_mode_data=True, run=False, args=cli_args,
                                seed_everything_default=False, parser_kwargs={"prog": "depthlab export"})
        except ValueError as exc:
            # jsonargparse wraps the model's own one-line ConfigError in a long ValueError.
            error = unwrap_config_error(exc)
            if not isinstance(error, ConfigError):
                raise
            raise error from None
    model = cli.model
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        # torch lists every missing/unexpected/mis-shaped key; the first says enough.
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise ConfigError(f"--ckpt_path {ckpt_path}: its weights do not fit the configured network "
                          f"({detail})") from None
    return model.eval()


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
    example = torch.rand(EXAMPLE_BATCH, 3, int(size[0]), int(size[1]))
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


def check_shapes(size: Sequence[int]) -> list[tuple[int, int, int]]:
    """(batch, H, W): the traced shape, then a batch and size the tracer never saw."""
    h, w = int(size[0]), int(size[1])
    return [(EXAMPLE_BATCH, h, w), (1, h + 40, w + 24)]


def check_export(net: nn.Module, path: str | Path, fmt: str, size: Sequence[int] = DEFAULT_EXAMPLE_SIZE,
                 seed: int = 0) -> tuple[float, list[tuple[int, int, int]]]:
    """Max relative difference between the exported file and ``net`` over :func:`check_shapes` of ``size``."""
    run = load_exported(path, fmt)
    generator = torch.Generator().manual_seed(seed)
    shapes = check_shapes(size)
    worst = 0.0
    for batch, h, w in shapes:
        image = torch.rand(batch, 3, h, w, generator=generator)
        with torch.no_grad():
            want = net.eval()(image).depth
        got = run(image)
        if got.shape != want.shape:
            return float("inf"), shapes
        rel = (got - want).abs() / want.abs().clamp_min(torch.finfo(want.dtype).tiny)
        worst = max(worst, float(rel.max()))
    return worst, shapes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depthlab export", allow_abbrev=False,
        description="Export a trained checkpoint's network: image (B, 3, H, W) RGB in [0, 1] -> depth (B, 1, H, W) "
                    "in metres, batch and size dynamic. Other options (--model.*, ...) are passed to the config "
                    "parser of 'depthlab fit'; the checkpoint's hyper-parameters override the model section.")
    parser.add_argument("--config", action="append", required=True,
                        help="the YAML given to 'depthlab fit' (repeatable)")
    parser.add_argument("--ckpt_path", required=True, help="the checkpoint whose weights are exported")
    parser.add_argument("--format", choices=FORMATS, default="onnx",
                        help="onnx (default), torchscript (torch.jit.trace) or pt2 (torch.export.save)")
    parser.add_argument("--output", default=None,
                        help="file to write (default: the checkpoint's path with .onnx, .torchscript.pt or .pt2)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), default=list(DEFAULT_EXAMPLE_SIZE),
                        help=f"size of the example image traced (default {DEFAULT_EXAMPLE_SIZE[0]} "
                             f"{DEFAULT_EXAMPLE_SIZE[1]}); other sizes work too")
    parser.add_argument("--no_check", action="store_true", help="skip running the file against PyTorch afterwards")
    return parser


def main(argv: list[str]) -> int:
    args, rest = _parser().parse_known_args(argv)
    if min(args.size) < 1:
        raise ConfigError(f"--size: expected HEIGHT WIDTH of positive pixels, got {args.size}")
    ckpt = read_checkpoint(args.ckpt_path)
    cli_args = [arg for path in args.config for arg in ("--config", path)] + rest
    net = model_from_config(cli_args, ckpt, args.ckpt_path).net
    ckpt_path = Path(args.ckpt_path).expanduser()
    output = Path(args.output) if args.output else ckpt_path.with_name(ckpt_path.stem + SUFFIXES[args.format])
    output = export_network(net, args.format, output, args.size)
    outputs = "depth (B, 1, H, W) metres" + (", log_variance" if ExportableDepth(net).log_variance else "")
    print(f"export: wrote {output.resolve()} ({args.format}: image (B, 3, H, W) float32 RGB in [0, 1] -> {outputs}; "
          "batch, height and width dynamic)")
    if args.no_check:
        return 0
    if args.format == "onnx" and importlib.util.find_spec("onnxruntime") is None:
        print("export: not checked: onnxruntime is not installed (pip install 'depthlab[export]')")
        return 0
    worst, shapes = check_export(net, output, args.format, args.size)
    where = " and ".join(f"{b}x3x{h}x{w}" for b, h, w in shapes)
    if not worst <= CHECK_RTOL:
        print(f"depthlab export: error: {output} differs from PyTorch by {worst:.3g} (relative) at {where}; "
              "the file is wrong for some shapes (please report it with the config)", file=sys.stderr)
        return 1
    print(f"export: checked against PyTorch at {where} (batch x channels x height x width): "
          f"max relative difference {worst:.2g}")
    return 0
