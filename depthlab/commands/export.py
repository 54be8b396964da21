"""``depthlab export``: a checkpoint's network as ONNX, TorchScript or a torch.export program
(:mod:`depthlab.export`; the model is built as ``depthlab test --ckpt_path`` builds it)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    from depthlab.export import FORMATS
    from depthlab.models.export import DEFAULT_EXAMPLE_SIZE

    parser = argparse.ArgumentParser(
        prog="depthlab export", allow_abbrev=False,
        description="Export a trained checkpoint's network: image (B, 3, H, W) RGB in [0, 1] -> depth (B, 1, H, W) "
                    "in metres, batch and size dynamic. Other options (--model.*, ...) are passed to the config "
                    "parser of 'depthlab fit'; with the checkpoint, the model settings follow the rule of "
                    "'depthlab test --ckpt_path': stated ones win, unstated ones come from the checkpoint, and a "
                    "stated network setting that contradicts it is an error.")
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
    """deployment: 'depthlab export --config X.yaml --ckpt_path Y.ckpt --format onnx|torchscript|pt2'"""
    from depthlab.errors import ConfigError
    from depthlab.export import CHECK_RTOL, SUFFIXES, check_export, export_network
    from depthlab.models.export import DYNAMIC_AXES, ExportableDepth, dynamic_axes
    from depthlab.parser import model_from_config

    args, rest = _parser().parse_known_args(argv)
    if min(args.size) < 1:
        raise ConfigError(f"--size: expected HEIGHT WIDTH of positive pixels, got {args.size}")
    cli_args = [arg for path in args.config for arg in ("--config", path)] + rest
    net = model_from_config(cli_args, "depthlab export", ckpt_path=args.ckpt_path).net
    ckpt_path = Path(args.ckpt_path).expanduser()
    output = Path(args.output) if args.output else ckpt_path.with_name(ckpt_path.stem + SUFFIXES[args.format])
    output = export_network(net, args.format, output, args.size)
    wrapper = ExportableDepth(net)
    unit = "metres" if wrapper.output_name == "depth" else "affine-invariant, no unit"
    outputs = f"{wrapper.output_name} (B, 1, H, W) {unit}" + (", log_variance" if wrapper.log_variance else "")
    axes = dynamic_axes(net)
    shape = ", ".join(
        (["batch dynamic"] if "batch" in axes else ["batch fixed at 1"])
        + (["height and width dynamic"] if "size" in axes else [f"height and width fixed at {args.size[0]}x{args.size[1]}"])
    )
    why = "" if axes == DYNAMIC_AXES else f" ({getattr(net, 'export_fixed_reason', 'the network fixes the others')})"
    print(f"export: wrote {output.resolve()} ({args.format}: image (B, 3, H, W) float32 RGB in [0, 1] -> {outputs}; "
          f"{shape}{why})")
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
