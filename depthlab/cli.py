"""The ``depthlab`` command: Lightning's CLI (fit/validate/test/predict) plus plugin listings.

    depthlab fit --config configs/synthetic.yaml [--model.lr 1e-4] [--trainer.strategy ddp]
    depthlab test --config configs/synthetic.yaml --ckpt_path last.ckpt [--model.eval_protocol kitti]
    depthlab losses | depthlab models     # registered plugins with one-line descriptions
    depthlab hints precompute --config configs/kitti.yaml   # Depth Hints proxy labels (docs/hints.md)
    depthlab export --config configs/synthetic.yaml --ckpt_path last.ckpt --format onnx --output net.onnx
    depthlab experiment run silog_sqrt          # an experiment with its report (docs/experiments/)
"""

from __future__ import annotations

import os
import sys
import warnings

from jsonargparse import ArgumentError, DefaultHelpFormatter
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException

from depthlab.config import unwrap_config_error
from depthlab.errors import ConfigError

EXTRA_COMMANDS = {
    "losses": "list registered losses (entry-point group depthlab.losses)",
    "models": "list registered networks (entry-point group depthlab.models)",
    "data": "data set tools: 'depthlab data check --config X.yaml' validates every file of a split list",
    "hints": "Depth Hints: 'depthlab hints precompute --config X.yaml' computes the SGM proxy labels",
    "export": "deployment: 'depthlab export --config X.yaml --ckpt_path Y.ckpt --format onnx|torchscript|pt2'",
    "experiment": "experiments with reports and plots: 'depthlab experiment list', 'depthlab experiment run NAME'",
}


class _KeepEpilogLines(DefaultHelpFormatter):
    """jsonargparse's help formatter, but descriptions/epilogs keep their line breaks."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "".join(indent + line for line in text.splitlines(keepends=True))


class DepthCLI(LightningCLI):
    def init_parser(self, **kwargs):
        parser = super().init_parser(**kwargs)
        parser.formatter_class = _KeepEpilogLines
        parser.epilog = "other commands:\n" + "\n".join(f"  depthlab {k:<7} {v}" for k, v in EXTRA_COMMANDS.items())
        return parser

    def add_arguments_to_parser(self, parser) -> None:
        # last.ckpt's options (docs/training.md); instantiate_trainer adds the callback itself, unless
        # trainer.enable_checkpointing is false.
        from depthlab.checkpointing import LastCheckpoint

        parser.add_class_arguments(LastCheckpoint, "last_checkpoint")

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        self._default_logger(parser, evaluation_dir=False)
        # Before anything reads the checkpoint: a bad file is one line naming it, and "last" is this
        # config's latest last.ckpt (Lightning looks only in the new run's empty version directory).
        from depthlab.checkpointing import prepare_ckpt_path

        prepare_ckpt_path(self.config)
        self._default_logger(parser, evaluation_dir=True)

    def _default_logger(self, parser, evaluation_dir: bool) -> None:
        """Without a configured logger: TensorBoard under ``<default_root_dir>/<config name>``.

        One knob, ``trainer.default_root_dir``, then moves logs and checkpoints. validate/test/
        predict runs log to ``<config name>/<command>`` (``evaluation_dir``, set once the
        checkpoint is found), so they never appear as ``version_N`` among the training runs.
        """
        subcommand = self.config.get("subcommand")
        trainer = self.config[subcommand].get("trainer") if subcommand else None
        if trainer is None:
            return
        logger = trainer.get("logger")
        ours = getattr(getattr(logger, "init_args", None), "name", None) == getattr(self, "_run_name", object())
        if logger not in (None, True) and not ours:
            return  # the user's own logger (or logger: false)
        if not ours:
            configs = self.config[subcommand].get("config") or []
            self._run_name = os.path.splitext(os.path.basename(str(configs[-1])))[0] if configs else "depthlab"
        name = self._run_name
        if evaluation_dir and subcommand != "fit":
            name = f"{name}/{subcommand}"
        spec = {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": str(trainer.get("default_root_dir") or "lightning_logs"), "name": name,
                              "default_hp_metric": False}}
        self.config = self.parser.parse_object({subcommand: {"trainer": {"logger": spec}}}, self.config)
        self._run_name = name

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        except BaseException:
            _remove_run_without_checkpoint(self.trainer)
            raise

    def instantiate_trainer(self, **kwargs):
        # depthlab's checkpointing for every config and command: atomic saves, last.ckpt, RNG states
        # in checkpoints, SIGINT handled like SIGTERM (depthlab.checkpointing).
        from depthlab.checkpointing import trainer_defaults

        trainer = self._get(self.config_init, "trainer", default={})
        defaults = trainer_defaults(trainer, self._get(self.config_init, "last_checkpoint"))
        return super().instantiate_trainer(**{**defaults, **kwargs})

    def _parse_ckpt_path(self) -> None:
        """With ``--ckpt_path FILE``: unstated model settings come from the checkpoint, stated ones win,
        and a stated network setting that contradicts it is an error (:mod:`depthlab.config`).

        Replaces Lightning's rule, under which the checkpoint's hyper-parameters silently override
        whatever the user wrote (``--model.max_depth 5`` would be ignored).
        """
        from pathlib import Path

        import torch

        from depthlab.config import model_defaults, resolve_model_settings

        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or not Path(ckpt_path).is_file():  # "last"/"best" or a missing file: resolved later
            return
        try:
            checkpoint = torch.load(ckpt_path, weights_only=True, map_location="cpu")
        except Exception as exc:
            raise ConfigError(f"--ckpt_path {ckpt_path}: not a readable checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        saved = dict(checkpoint.get("hyper_parameters") or {}) if isinstance(checkpoint, dict) else {}
        saved.pop("_instantiator", None)
        if not saved:
            return
        model = self.config[subcommand]["model"]
        stated = model.as_dict() if hasattr(model, "as_dict") else dict(model)
        resolved = resolve_model_settings(stated, model_defaults(self._model_class), saved, str(ckpt_path))
        self.config = self.parser.parse_object({subcommand: {"model": resolved}}, self.config)

    def instantiate_classes(self) -> None:
        # With --ckpt_path the checkpoint supplies every weight: building the network must not
        # fetch (or need) the encoder's original pretrained weights, e.g. on an offline machine.
        if self.subcommand and self.config[self.subcommand].get("ckpt_path"):
            from depthlab.models.encoders import pretrained_weights_disabled

            with pretrained_weights_disabled():
                super().instantiate_classes()
        else:
            super().instantiate_classes()

    def _prepare_subcommand_parser(self, klass, subcommand, **kwargs):
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand in ("validate", "test"):
            # DepthModule prints one table in the papers' column order (and writes it as JSON);
            # Lightning's alphabetical one stays available with --verbose true.
            parser.set_defaults(verbose=False)
        if subcommand == "predict":
            # The prediction writer saves every map; also returning them all would hold a whole
            # folder's predictions in memory.
            parser.set_defaults(return_predictions=False)
        return parser

    def before_predict(self) -> None:
        # Without a writer Lightning's predict computes the maps and throws them away.
        from depthlab.callbacks import add_default_prediction_writer

        add_default_prediction_writer(self.trainer)


def _remove_run_without_checkpoint(trainer) -> None:
    """A run that failed before writing any checkpoint leaves no ``version_N`` folder behind
    (only its config and a few events: nothing to resume or look at)."""
    import glob
    import shutil

    log_dir = getattr(trainer, "log_dir", None) if trainer is not None else None
    if not log_dir or not os.path.isdir(log_dir) or not trainer.is_global_zero:
        return
    if not glob.glob(os.path.join(log_dir, "**", "*.ckpt"), recursive=True):
        shutil.rmtree(log_dir, ignore_errors=True)


def base_config() -> str:
    """``configs/base.yaml``: the trainer settings every run starts from (installed copy, else the checkout's)."""
    from importlib import resources
    from pathlib import Path

    installed = resources.files("depthlab").joinpath("_configs", "base.yaml")
    if isinstance(installed, Path) and installed.is_file():
        return str(installed)
    return str(Path(__file__).resolve().parents[1] / "configs" / "base.yaml")


def _list_plugins(kind: str) -> int:
    if kind == "losses":
        from depthlab.losses import REGISTRY
    else:
        from depthlab.models import REGISTRY
    print(REGISTRY.table())
    return 0


def run(args: list[str] | None = None) -> DepthCLI:
    """Build and run the Lightning CLI (``args`` defaults to ``sys.argv[1:]``)."""
    from depthlab.module import DepthModule

    import lightning as L

    # DepthModule gives the repeats of Lightning's padding DistributedSampler zero weight (exact
    # metrics under DDP), so Lightning's advice to evaluate on one device does not apply.
    warnings.filterwarnings("ignore", message="Using `DistributedSampler` with the dataloaders")

    return DepthCLI(
        DepthModule,
        L.LightningDataModule,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=args,
        # parse errors raise (one line in main()) instead of printing 60 lines of usage
        parser_kwargs={"prog": "depthlab", "exit_on_error": False,
                       **{sub: {"default_config_files": [base_config()]} for sub in ("fit", "validate", "test", "predict")}},
    )


def main(args: list[str] | None = None) -> int:
    argv = sys.argv[1:] if args is None else args
    try:
        if argv and argv[0] == "data":
            from depthlab.data.check import main as data_main

            return data_main(argv[1:])
        if argv and argv[0] == "hints":
            from depthlab.hints.precompute import main as hints_main

            return hints_main(argv[1:])
        if argv and argv[0] == "export":
            from depthlab.export import main as export_main

            return export_main(argv[1:])
        if argv and argv[0] == "experiment":
            from depthlab.experiments import main as experiment_main

            return experiment_main(argv[1:], main)
        if argv and argv[0] in EXTRA_COMMANDS:
            return _list_plugins(argv[0])
        run(args)
    except (ConfigError, ArgumentError, ValueError) as exc:
        # jsonargparse wraps a class's own ConfigError (e.g. a data module's) in a ValueError
        error = unwrap_config_error(exc)
        if not isinstance(error, (ConfigError, ArgumentError)) or os.environ.get("DEPTHLAB_TRACEBACK"):
            raise
        message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        hint = f" (options: depthlab {argv[0]} --help)" if isinstance(error, ArgumentError) and argv else ""
        print(f"depthlab: error: {message}{hint}", file=sys.stderr)
        return 2
    except SIGTERMException:
        # How Lightning stops a run on SIGTERM (and depthlab on SIGINT): a SystemExit with status 0.
        # A scheduler must see an unfinished run.
        from depthlab.checkpointing import exit_status

        return exit_status()
    return 0


if __name__ == "__main__":
    sys.exit(main())
