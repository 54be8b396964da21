"""depthlab's one parser: how a run's settings are decided, for every command.

- :class:`DepthCLI`: Lightning's CLI for ``fit``/``validate``/``test``/``predict`` with depthlab's
  defaults (``configs/base.yaml`` first, TensorBoard under ``<default_root_dir>/<config name>``,
  depthlab's checkpointing, the prediction writer, the checks below).
- **One config path.** Every command that reads a depthlab config (the four above, ``data check``,
  ``hints precompute``, ``export``) parses it with :class:`DepthCLI`, so ``--config`` files,
  ``--data.*``/``--model.*`` overrides and validation are the same everywhere
  (:func:`datamodule_from_config`, :func:`model_from_config`, :func:`modules_from_config`).
- **Settings precedence with a checkpoint** (:func:`resolve_model_settings`), for every command that
  takes ``--ckpt_path`` (``export`` included). The checkpoint supplies the weights. For the model's
  settings: what the user stated (in a config file or on the command line) wins; what the user did
  not state comes from the checkpoint. A stated *network* setting (``model.net.*``,
  ``model.min_depth``, ``model.max_depth``: the shapes and ranges the weights were trained for) that
  contradicts the checkpoint is an error naming both values, never silently replaced either way.
  The rule runs in :meth:`DepthCLI.parse_arguments`, depthlab's own parsing step (Lightning's own
  rule, ``_parse_ckpt_path`` in Lightning >= 2.5.5, where the checkpoint wins, is switched off).

Nothing below the command layer imports this module (``tests/test_imports.py``).
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

from jsonargparse import DefaultHelpFormatter, Namespace
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from depthlab.errors import ConfigError, unwrap_config_error

# Model settings that define the network the checkpoint's weights belong to.
NETWORK_SETTINGS = ("net", "min_depth", "max_depth")
# Network arguments that may differ from the checkpoint's: where the initial weights came from.
NETWORK_ARGS_FREE = ("pretrained",)
# Trainer arguments where an integer is a number of batches and a float a fraction (of an epoch).
INT_OR_FRACTION = ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches",
                   "val_check_interval", "overfit_batches")
SUBCOMMANDS = ("fit", "validate", "test", "predict")


# --- settings precedence with a checkpoint ----------------------------------------------------------


def model_defaults(model_class: type) -> dict[str, Any]:
    """The defaults of ``model_class.__init__`` (what an unstated setting parses to)."""
    params = inspect.signature(model_class.__init__).parameters
    return {name: p.default for name, p in params.items() if p.default is not inspect.Parameter.empty}


def _net_spec(spec: Any) -> dict[str, Any]:
    if isinstance(spec, str):
        return {"name": spec}
    if isinstance(spec, Mapping) and "class_path" in spec:
        return {"class_path": spec["class_path"], **(spec.get("init_args") or {})}
    return dict(spec or {})


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def resolve_model_settings(
    stated: Mapping[str, Any], defaults: Mapping[str, Any], checkpoint: Mapping[str, Any], ckpt_path: str
) -> dict[str, Any]:
    """The model settings of a run with ``--ckpt_path`` (see the module docstring).

    ``stated``: the model section as parsed (config files and command line, defaults filled in);
    ``defaults``: what each setting parses to when nobody states it; ``checkpoint``: the
    hyper-parameters saved in the checkpoint. A setting counts as stated when it differs from its
    default (a network spec: each key written). Raises :class:`ConfigError` naming the setting, the
    stated value and the checkpoint's.
    """
    resolved = dict(stated)
    for key, saved in checkpoint.items():
        if key.startswith("_"):
            continue
        value = stated.get(key, defaults.get(key))
        is_stated = key in stated and not _same(value, defaults.get(key, inspect.Parameter.empty))
        if key == "net":
            resolved[key] = _resolve_net(value if is_stated else None, saved, ckpt_path)
        elif not is_stated:
            resolved[key] = saved
        elif key in NETWORK_SETTINGS and not _same(value, saved):
            raise ConfigError(
                f"model.{key}: {value!r} is stated, but checkpoint {ckpt_path} was trained with {saved!r}; "
                f"remove it from the config/command line (or state {saved!r})"
            )
    return resolved


def _resolve_net(stated: Any, saved: Any, ckpt_path: str) -> Any:
    if stated is None:
        return saved
    mine, theirs = _net_spec(stated), _net_spec(saved)
    for key in sorted(set(mine) & set(theirs)):
        if key in NETWORK_ARGS_FREE or _same(mine[key], theirs[key]):
            continue
        raise ConfigError(
            f"model.net.{key}: {mine[key]!r} is stated, but checkpoint {ckpt_path} was trained with "
            f"{theirs[key]!r}; remove it from the config/command line (or state {theirs[key]!r})"
        )
    merged = {**theirs, **mine}  # equal where both have a key, but a stated `pretrained` is the user's
    if isinstance(saved, Mapping) and "class_path" in saved:
        return {"class_path": merged.pop("class_path"), "init_args": merged}
    return merged


# --- the LightningCLI subclass ----------------------------------------------------------------------


class _KeepEpilogLines(DefaultHelpFormatter):
    """jsonargparse's help formatter, but descriptions/epilogs keep their line breaks."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "".join(indent + line for line in text.splitlines(keepends=True))


def _commands_epilog() -> str:
    from depthlab.commands import COMMANDS

    lines = []
    names = COMMANDS.available()
    width = max((len(name) for name in names), default=0)
    for name in names:
        try:
            text = COMMANDS.describe(name)
        except ConfigError as exc:  # one broken front end must not hide the others
            text = f"(cannot load: {exc.__cause__ or exc})"
        lines.append(f"  depthlab {name:<{width}}  {text}")
    return "other commands:\n" + "\n".join(lines)


def _int_before_float(parser: Any) -> None:
    """``--trainer.limit_val_batches 1`` is one batch, not the fraction 1.0.

    Lightning annotates these ``Optional[Union[int, float]]``, but ``typing`` caches unions regardless
    of their order, so the annotation can come back as ``Union[float, int, None]`` (whichever order was
    built first in the process), and jsonargparse, trying float first, reads ``1`` as ``1.0``. Here
    the union is rebuilt with ``int`` first: an integer literal stays an int, ``0.5`` a fraction.
    """
    for key in INT_OR_FRACTION:
        action = parser._option_string_actions.get(f"--trainer.{key}")
        typehint = getattr(action, "_typehint", None)
        args = getattr(typehint, "__args__", ())
        if int in args and float in args and args.index(float) < args.index(int):
            reordered = (int, float) + tuple(a for a in args if a not in (int, float))
            # built as jsonargparse does, not with Union[...], whose cache would hand back the old order
            action._typehint = type(typehint)(Union, reordered, name=getattr(typehint, "_name", None))


# LightningCLI's own --optimizer/--lr_scheduler would replace depthlab's optimiser set-up (parameter
# groups, warm-up, per-step schedules) by one group stepped per epoch: refused, naming depthlab's.
TOP_LEVEL_REFUSED = ("optimizer", "lr_scheduler")


def _top_level_refused(key: str) -> ConfigError:
    return ConfigError(f"--{key} (top-level '{key}:') is not used by depthlab, which builds its own optimiser and "
                       f"schedule: give it as --model.{key} (e.g. --model.optimizer torch.optim.SGD "
                       "--model.optimizer.lr 0.01; docs/training.md)")


def _refuse_top_level_optimizer_args(args: Any) -> None:
    """Before parsing (whose own error for an incomplete ``--lr_scheduler X`` would not say why): the
    command line and the top level of each ``--config`` file."""
    if not isinstance(args, (list, tuple)):
        return
    args = [str(a) for a in args]
    for i, arg in enumerate(args):
        for key in TOP_LEVEL_REFUSED:
            if arg == f"--{key}" or arg.startswith((f"--{key}.", f"--{key}=")):
                raise _top_level_refused(key)
        path = args[i + 1] if arg == "--config" and i + 1 < len(args) else arg[9:] if arg.startswith("--config=") else None
        if path and Path(path).is_file():
            import yaml

            try:
                top = yaml.safe_load(Path(path).read_text())
            except (OSError, yaml.YAMLError):
                continue  # the parser reports it
            for key in TOP_LEVEL_REFUSED:
                if isinstance(top, dict) and top.get(key) is not None:
                    raise _top_level_refused(key)


class DepthCLI(LightningCLI):
    """Lightning's CLI with depthlab's defaults (module docstring). Built by :func:`run`."""

    # Set by the config helpers below for a run without subcommand (``export --ckpt_path``).
    _helper_ckpt_path: str | None = None

    def init_parser(self, **kwargs):
        parser = super().init_parser(**kwargs)
        parser.formatter_class = _KeepEpilogLines
        parser.epilog = _commands_epilog()
        return parser

    def add_arguments_to_parser(self, parser) -> None:
        # last.ckpt's options (docs/training.md); instantiate_trainer adds the callback itself, unless
        # trainer.enable_checkpointing is false.
        from depthlab.checkpointing import LastCheckpoint

        parser.add_class_arguments(LastCheckpoint, "last_checkpoint")
        _int_before_float(parser)

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
            parser.add_argument(
                "--output_dir", type=Union[str, None], default=None,
                help="write the depth maps to this folder (the DepthPredictionWriter of the config, or one "
                     "with its defaults; default: predictions/ in the run's log folder)")
        return parser

    def parse_arguments(self, parser, args) -> None:
        _refuse_top_level_optimizer_args(sys.argv[1:] if args is None else args)
        super().parse_arguments(parser, args)
        self._refuse_top_level_optimizer()
        self._default_logger(parser, evaluation_dir=False)
        # Before anything reads the checkpoint: a bad file is one line naming it, and "last" is this
        # config's latest last.ckpt (Lightning looks only in the new run's empty version directory).
        from depthlab.checkpointing import prepare_ckpt_path

        prepare_ckpt_path(self.config)
        self._apply_checkpoint_settings()
        self._default_logger(parser, evaluation_dir=True)

    def _parse_ckpt_path(self) -> None:
        """Lightning's rule (Lightning >= 2.5.5: the checkpoint's hyper-parameters override the stated
        ones) is replaced by depthlab's, which :meth:`parse_arguments` has applied already."""

    def _section(self) -> Any:
        subcommand = self.config.get("subcommand")
        return self.config[subcommand] if subcommand else self.config

    def _refuse_top_level_optimizer(self) -> None:
        section = self._section()
        for key in TOP_LEVEL_REFUSED:
            if section.get(key) is not None:
                raise _top_level_refused(key)

    def _apply_checkpoint_settings(self) -> None:
        """With ``--ckpt_path FILE``: unstated model settings come from the checkpoint, stated ones win,
        and a stated network setting that contradicts it is an error (:func:`resolve_model_settings`)."""
        from depthlab.checkpointing.io import read_checkpoint

        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else self._helper_ckpt_path
        if not ckpt_path or not Path(ckpt_path).is_file():  # "best"/"hpc"/remote: Lightning resolves it later
            return
        checkpoint = read_checkpoint(ckpt_path, mmap=True)
        saved = dict(checkpoint.get("hyper_parameters") or {})
        saved.pop("_instantiator", None)
        if not saved:
            return
        model = self._section()["model"]
        stated = model.as_dict() if hasattr(model, "as_dict") else dict(model)
        resolved = resolve_model_settings(stated, model_defaults(self._model_class), saved, str(ckpt_path))
        update = {subcommand: {"model": resolved}} if subcommand else {"model": resolved}
        self.config = self.parser.parse_object(update, self.config)

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

    def instantiate_classes(self) -> None:
        # With --ckpt_path the checkpoint supplies every weight: building the network must not
        # fetch (or need) the encoder's original pretrained weights, e.g. on an offline machine.
        if self.subcommand and self.config[self.subcommand].get("ckpt_path"):
            from depthlab.models.encoders import pretrained_weights_disabled

            with pretrained_weights_disabled():
                super().instantiate_classes()
        else:
            super().instantiate_classes()

    def instantiate_trainer(self, **kwargs):
        # depthlab's checkpointing for every config and command: atomic saves, last.ckpt, RNG states
        # in checkpoints, SIGINT handled like SIGTERM (depthlab.checkpointing).
        from depthlab.checkpointing import trainer_defaults

        trainer = self._get(self.config_init, "trainer", default={})
        defaults = trainer_defaults(trainer, self._get(self.config_init, "last_checkpoint"))
        try:
            return super().instantiate_trainer(**{**defaults, **kwargs})
        except MisconfigurationException as exc:  # e.g. --trainer.accelerator gpu on a machine without one
            raise ConfigError(f"trainer: {exc}") from None

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        except BaseException:
            _remove_run_without_checkpoint(self.trainer)
            raise

    def before_predict(self) -> None:
        # Without a writer Lightning's predict computes the maps and throws them away.
        from depthlab.callbacks import add_default_prediction_writer

        add_default_prediction_writer(self.trainer, self.config["predict"].get("output_dir"))

    def after_fit(self) -> None:
        """Where the run went: its folder and its ``last.ckpt`` (rank zero)."""
        from depthlab.checkpointing import LastCheckpoint

        folder = self.trainer.log_dir or self.trainer.default_root_dir  # a broadcast under DDP: every rank calls it
        if not self.trainer.is_global_zero:
            return
        print(f"depthlab: run folder {Path(folder).resolve()}", flush=True)
        last = [cb.path for cb in self.trainer.callbacks if isinstance(cb, LastCheckpoint)]
        if last and Path(last[0]).is_file():
            print(f"depthlab: last checkpoint {Path(last[0]).resolve()} (continue with --ckpt_path last)", flush=True)


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

    installed = resources.files("depthlab").joinpath("_configs", "base.yaml")
    if isinstance(installed, Path) and installed.is_file():
        return str(installed)
    return str(Path(__file__).resolve().parents[1] / "configs" / "base.yaml")


class _QuietLightning(logging.Filter):
    """Lightning's advertisement for its cloud logger, printed by every Trainer: not for depthlab's users."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in str(record.msg)


def quiet_lightning() -> None:
    """Silence what Lightning prints on every run that says nothing about the run (once per process).

    - the "Tip: ... install litlogger" line of every ``Trainer``;
    - ``isinstance(treespec, LeafSpec) is deprecated``: torch's deprecation, raised inside Lightning's
      own ``_pytree`` helper (not depthlab's code; nothing a user can act on).
    - ``ModelCheckpoint(monitor=...) could not find the monitored key``: Lightning warns so only
      while no validation has run in this fit (a run stopped by ``max_steps`` before its first
      validation, ``limit_val_batches 0``): there is nothing to rank yet. Once validation has run, a
      monitored key that is missing (a real misconfiguration) stays Lightning's error.
    - "Using DistributedSampler with the dataloaders": DepthModule gives the repeats of Lightning's
      padding DistributedSampler zero weight (exact metrics under DDP), so the advice to evaluate on
      one device does not apply.
    """
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _QuietLightning) for f in rank_zero.filters):
        rank_zero.addFilter(_QuietLightning())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    warnings.filterwarnings("ignore", message="Using `DistributedSampler` with the dataloaders")
    warnings.filterwarnings("ignore", message=r"`ModelCheckpoint\(monitor=.*\)` could not find the monitored key")


def run(args: list[str] | None = None) -> DepthCLI:
    """Build and run the Lightning CLI (``args`` defaults to ``sys.argv[1:]``)."""
    import lightning as L

    from depthlab.module import DepthModule

    quiet_lightning()
    return DepthCLI(
        DepthModule,
        L.LightningDataModule,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=args,
        # parse errors raise (one line in depthlab.cli.main) instead of printing 60 lines of usage
        parser_kwargs={"prog": "depthlab", "exit_on_error": False,
                       **{sub: {"default_config_files": [base_config()]} for sub in SUBCOMMANDS}},
    )


# --- "parse a config exactly as fit": the tools' way to a data module or a model ------------------


def _parse_only(cli_class: type, cli_args: list[str], prog: str) -> Any:
    """``cli_class`` (a :class:`DepthCLI` whose ``instantiate_classes`` builds what its helper needs) on
    ``cli_args``, parsed as for ``fit``, run nothing; a config error is its own one line."""
    import lightning as L

    from depthlab.module import DepthModule

    quiet_lightning()
    with warnings.catch_warnings():
        # The arguments are this command's own, not a second copy of sys.argv as Lightning fears.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        try:
            return cli_class(DepthModule, L.LightningDataModule, subclass_mode_data=True, run=False, args=cli_args,
                             seed_everything_default=False, parser_kwargs={"prog": prog, "exit_on_error": False})
        except ValueError as exc:
            # jsonargparse wraps a class's own one-line ConfigError in a long ValueError.
            error = unwrap_config_error(exc)
            if not isinstance(error, ConfigError):
                raise
            raise error from None


def modules_from_config(cli_args: list[str], prog: str, *, model: bool = True, data: bool = True,
                        ckpt_path: str | Path | None = None) -> tuple[Any, Any]:
    """``(model, datamodule)`` of a depthlab config, parsed by :class:`DepthCLI` exactly as for ``fit``
    (``--config``, ``--data.*``/``--model.*`` overrides, the same validation and checks); ``None`` for
    a part not asked for. No trainer is built (a GPU config works on a CPU box).

    With ``ckpt_path`` (a file), the model's settings follow the precedence rule of every
    ``--ckpt_path`` command (:func:`resolve_model_settings`), the network is built without fetching
    pretrained encoder weights, the checkpoint's weights are loaded strictly, and the model is in eval
    mode: what ``depthlab test --ckpt_path`` evaluates.
    """
    class _PartsCLI(DepthCLI):
        _helper_ckpt_path = None if ckpt_path is None else str(ckpt_path)

        def instantiate_classes(self) -> None:
            keep = [key for key, wanted in (("model", model), ("data", data)) if wanted]
            config = Namespace({key: self.config[key] for key in keep})
            if self._helper_ckpt_path:
                from depthlab.models.encoders import pretrained_weights_disabled

                with pretrained_weights_disabled():
                    built = self.parser.instantiate_classes(config)
            else:
                built = self.parser.instantiate_classes(config)
            self.model = built.get("model")
            self.datamodule = built.get("data")

    if ckpt_path is not None:
        from depthlab.checkpointing.io import read_checkpoint

        checkpoint = read_checkpoint(ckpt_path)  # before the config: a bad file is the first error
    cli = _parse_only(_PartsCLI, cli_args, prog)
    module = cli.model
    if module is not None and ckpt_path is not None:
        try:
            module.load_state_dict(checkpoint["state_dict"], strict=True)
        except RuntimeError as exc:
            # torch lists every missing/unexpected/mis-shaped key; the first says enough.
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            detail = lines[1] if len(lines) > 1 else lines[0]
            raise ConfigError(f"--ckpt_path {ckpt_path}: its weights do not fit the configured network "
                              f"({detail})") from None
        module.eval()
    return module, cli.datamodule


def data_settings_from_config(cli_args: list[str], prog: str) -> tuple[dict[str, Any], Any]:
    """``(data settings, datamodule)`` of a depthlab config: the ``data`` section as parsed (``class_path``
    and ``init_args``, defaults included) and the data module built from it; no model is built. What
    ``depthlab data pack`` records as a pack's source."""
    captured: dict[str, Any] = {}

    class _DataCLI(DepthCLI):
        def instantiate_classes(self) -> None:
            data = self.config["data"]
            captured.update(data.as_dict() if hasattr(data, "as_dict") else dict(data))
            self.model = None
            self.datamodule = self.parser.instantiate_classes(Namespace({"data": data})).get("data")

    return captured, _parse_only(_DataCLI, cli_args, prog).datamodule


def settings_from_config(cli_args: list[str], prog: str) -> tuple[dict[str, Any], Any]:
    """``(model settings, datamodule)`` of a depthlab config: the model's arguments as parsed (for
    ``fit``, with its defaults) without building it (no network at all: ``depthlab evaluate``)."""
    captured: dict[str, Any] = {}

    class _SettingsCLI(DepthCLI):
        def instantiate_classes(self) -> None:
            model = self.config["model"]
            captured.update(model.as_dict() if hasattr(model, "as_dict") else dict(model))
            self.model = None
            self.datamodule = self.parser.instantiate_classes(Namespace({"data": self.config["data"]})).get("data")

    return captured, _parse_only(_SettingsCLI, cli_args, prog).datamodule


def datamodule_from_config(cli_args: list[str], prog: str) -> Any:
    """The data module of a depthlab config (:func:`modules_from_config`); no network is built (no
    pretrained download)."""
    return modules_from_config(cli_args, prog, model=False)[1]


def model_from_config(cli_args: list[str], prog: str, ckpt_path: str | Path | None = None) -> Any:
    """The DepthModule of a depthlab config (:func:`modules_from_config`; with ``ckpt_path``: its
    settings and weights, in eval mode); no data module is built."""
    return modules_from_config(cli_args, prog, data=False, ckpt_path=ckpt_path)[0]
