"""How a run's settings are decided: the config as ``fit`` parses it, and what a checkpoint supplies.

Two rules live here, once, for every command:

- **One config path.** Every command that reads a depthlab config (``fit``/``validate``/``test``/
  ``predict``, ``data check``, ``hints precompute``, ``export``) parses it with depthlab's
  LightningCLI parser, so ``--config`` files, ``--data.*``/``--model.*`` overrides and validation
  are the same everywhere (:func:`datamodule_from_config`).
- **Settings precedence with a checkpoint** (:func:`resolve_model_settings`). With ``--ckpt_path``
  the checkpoint supplies the weights. For the model's settings: what the user stated (in a config
  file or on the command line) wins; what the user did not state comes from the checkpoint. A stated
  *network* setting (``model.net.*``, ``model.min_depth``, ``model.max_depth``: the shapes and
  ranges the weights were trained for) that contradicts the checkpoint is an error naming both
  values, never silently replaced either way.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from typing import Any

from depthlab.errors import ConfigError

# Model settings that define the network the checkpoint's weights belong to.
NETWORK_SETTINGS = ("net", "min_depth", "max_depth")
# Network arguments that may differ from the checkpoint's: where the initial weights came from.
NETWORK_ARGS_FREE = ("pretrained",)


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


def datamodule_from_config(cli_args: list[str], prog: str) -> Any:
    """The data module of a depthlab config, parsed by depthlab's LightningCLI exactly as for
    ``fit`` (``--config``, ``--data.*`` overrides, the same validation); only the data module is
    instantiated: no network (no pretrained download), no trainer (a GPU config works on a CPU box)."""
    import lightning as L
    from jsonargparse import Namespace

    from depthlab.cli import DepthCLI
    from depthlab.module import DepthModule

    class _DataOnlyCLI(DepthCLI):
        def _parse_ckpt_path(self) -> None:  # no checkpoint: only the data is built
            return

        def instantiate_classes(self) -> None:
            data = self.parser.instantiate(Namespace(data=self.config.data), instantiate_groups=False)
            self.datamodule = data.data

    with warnings.catch_warnings():
        # The arguments are this command's own, not a second copy of sys.argv as Lightning fears.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        try:
            cli = _DataOnlyCLI(DepthModule, L.LightningDataModule, subclass_mode_data=True, run=False, args=cli_args,
                               seed_everything_default=False, parser_kwargs={"prog": prog})
        except ValueError as exc:
            raise unwrap_config_error(exc) from None
    return cli.datamodule


def unwrap_config_error(exc: BaseException) -> BaseException:
    """The :class:`ConfigError` that jsonargparse wrapped (with its long traceback) in ``exc``, else ``exc``."""
    cause = exc
    while cause is not None and not isinstance(cause, ConfigError):
        cause = cause.__cause__ or cause.__context__
    return cause if cause is not None else exc
