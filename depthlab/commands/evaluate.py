"""``depthlab evaluate``: score saved predictions (any program's) against a config's test split,
with the protocols, metrics and report of ``depthlab test`` and no network at all
(:mod:`depthlab.eval.saved`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    from depthlab.eval.saved import SAVED_KINDS

    parser = argparse.ArgumentParser(
        prog="depthlab evaluate", allow_abbrev=False,
        description="Score saved predictions against the test split of a depthlab config: one <name>.npy "
                    "(float32, H x W) or 16-bit <name>.png per test image, named as 'depthlab predict' names its "
                    "outputs for that data (the image's own name for folder and manifest data, the index 000042 "
                    "for the built-in data sets). The protocol is the config's (model.eval_protocol, or the data "
                    "module's own); other options (--model.eval_protocol.align scale_shift, --data.*) are passed "
                    "to the config parser of 'depthlab fit'. Writes test_metrics.json as 'depthlab test' does.")
    parser.add_argument("--config", action="append", required=True, help="the YAML given to 'depthlab fit' (repeatable)")
    parser.add_argument("--predictions", required=True, help="the folder of prediction files")
    parser.add_argument("--predictions_kind", choices=SAVED_KINDS, default="depth",
                        help="depth (metres, default), inverse_depth (1/m) or relative_inverse_depth (known up to "
                             "scale and shift: needs --model.eval_protocol.align scale_shift)")
    parser.add_argument("--png_scale", type=float, default=256.0,
                        help="PNG units per metre of 16-bit PNG predictions (256 as KITTI, 1000 for millimetres)")
    parser.add_argument("--output_dir", default=None,
                        help="where test_metrics.json goes (default: the predictions folder)")
    return parser


def main(argv: list[str]) -> int:
    """evaluation: 'depthlab evaluate --config X.yaml --predictions DIR [--predictions_kind ...]'"""
    from depthlab.errors import ConfigError
    from depthlab.eval import build_protocol
    from depthlab.eval.evaluator import report_stage
    from depthlab.eval.saved import score_saved_predictions
    from depthlab.module import EmptySupervisionError
    from depthlab.parser import settings_from_config
    from depthlab.training.protocol import protocol_in_force

    args, rest = _parser().parse_known_args(argv)
    if not args.png_scale > 0:
        raise ConfigError(f"--png_scale: must be > 0, got {args.png_scale}")
    cli_args = [arg for path in args.config for arg in ("--config", path)] + rest
    settings, datamodule = settings_from_config(cli_args, "depthlab evaluate")
    if getattr(datamodule, "member_names", None):
        raise ConfigError("depthlab evaluate: a mixture's test split has several members; evaluate each member's "
                          "config on its own")
    lo, hi = settings.get("min_depth", 1e-3), settings.get("max_depth", 10.0)
    default = build_protocol(settings.get("eval_protocol", "none"), min_depth=lo, max_depth=hi)
    protocol, where = protocol_in_force(default, datamodule, "test", lo, hi)
    datamodule.prepare_data()
    datamodule.setup("test")
    loader = datamodule.test_dataloader()
    source = getattr(loader.dataset, "source", None)  # names a sample in errors (list.txt:LINENO)
    print(f"evaluate: {args.predictions} ({args.predictions_kind}) under {protocol.describe()} (from {where})")
    values = score_saved_predictions(loader, args.predictions, protocol, args.predictions_kind, args.png_scale, source)
    if float(values["images"]) == 0:
        raise EmptySupervisionError(
            "evaluate: no image was scored (none has a ground-truth pixel in the protocol's depth range); check the "
            "data's depth unit and model.min_depth/max_depth")
    report_stage(values, "test", protocol, str(Path(args.output_dir or args.predictions)), None, 1)
    return 0
