"""The optimiser, learning-rate schedule and parameter groups of :class:`depthlab.module.DepthModule`.

``model.optimizer`` is a short name (``adamw``, ``sgd``: depthlab's own arguments ``lr``,
``weight_decay``, ``betas``, ``momentum``) or any optimizer by class path, LightningCLI's
``OptimizerCallable`` (``--model.optimizer torch.optim.SGD --model.optimizer.lr 0.01``). The
schedule is ``model.scheduler`` (``cosine``: linear warm-up then cosine decay, ``onecycle``,
``none``), or ``model.lr_scheduler``, any scheduler by class path (``LRSchedulerCallable``), which
then replaces it. Both are stepped after every optimizer step (``model.lr_scheduler_interval:
epoch`` steps a class-path scheduler once per epoch); a step the non-finite guard skipped does not
advance them. Parameter groups (:func:`parameter_groups`): a learning-rate multiple, a weight
decay and a number of frozen steps per parameter-name pattern; ``model.encoder_lr_mult`` and
``model.freeze_encoder_steps`` are the same for the network's pretrained encoder.

:func:`configure` is ``DepthModule.configure_optimizers``; it logs what is in force (rank zero).
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from depthlab.errors import ConfigError

SHORT_OPTIMIZERS = ("adamw", "sgd")
SHORT_SCHEDULERS = ("cosine", "onecycle", "none")
RULE_KEYS = ("pattern", "lr_mult", "weight_decay", "freeze_steps", "name")


# --- schedules ------------------------------------------------------------------------------------


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float):
    """LR factor: linear from 1/warmup to 1 over ``warmup_steps``, then cosine to ``min_ratio``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def warmup_steps(warmup: float, total: int) -> int:
    """``model.warmup``: a fraction of all steps (< 1) or a number of steps."""
    return int(warmup * total) if warmup < 1 else int(warmup)


# --- class paths (LightningCLI's OptimizerCallable / LRSchedulerCallable) ---------------------------


def from_spec(spec: Any, key: str) -> Any:
    """A short name or callable as given; ``{class_path, init_args}`` (a checkpoint's hyper-parameters,
    or a mapping written in Python) becomes ``partial(class, **init_args)``."""
    if not isinstance(spec, Mapping):
        return spec
    path = spec.get("class_path")
    if not isinstance(path, str) or "." not in path:
        raise ConfigError(f"{key}: expected a short name or a class path (e.g. torch.optim.SGD), got {dict(spec)!r}")
    module, _, name = path.rpartition(".")
    try:
        cls = getattr(import_module(module), name)
    except (ImportError, AttributeError):
        raise ConfigError(f"{key}: cannot import {path!r}") from None
    return functools.partial(cls, **dict(spec.get("init_args") or {}))


def target_class(fn: Any) -> type | None:
    """The class a callable builds: the class itself, or the class inside (nested) ``functools.partial``
    (jsonargparse's partial holds it among its positional arguments)."""
    if isinstance(fn, type):
        return fn
    if isinstance(fn, functools.partial):
        for arg in fn.args:
            if isinstance(arg, type):
                return arg
        return target_class(fn.func)
    return None


def given_args(fn: Any) -> dict[str, Any]:
    """The keyword arguments bound in (nested) partials; inner ones first, outer ones win."""
    if isinstance(fn, functools.partial):
        return {**given_args(fn.func), **fn.keywords}
    return {}


def _defaults(cls: type | None) -> dict[str, Any]:
    if cls is None:
        return {}
    params = inspect.signature(cls.__init__).parameters
    return {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}


def stated_args(fn: Any) -> dict[str, Any]:
    """The bound arguments that differ from the class's defaults (jsonargparse binds every default;
    as in depthlab's settings precedence rule, a value equal to its default counts as not stated)."""
    defaults = _defaults(target_class(fn))
    sentinel = object()
    return {k: v for k, v in given_args(fn).items() if defaults.get(k, sentinel) != v}


def _accepts(fn: Any, name: str) -> bool:
    cls = target_class(fn)
    try:
        params = inspect.signature(cls.__init__ if cls is not None else fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def class_name(fn: Any) -> str:
    cls = target_class(fn)
    return cls.__name__ if cls is not None else getattr(fn, "__name__", type(fn).__name__)


def _call_text(fn: Any, extra: Mapping[str, Any] = ()) -> str:
    args = {**stated_args(fn), **dict(extra)}
    return f"{class_name(fn)}({', '.join(f'{k}={v!r}' for k, v in args.items())})"


def check_settings(
    *, optimizer: Any, lr: float, weight_decay: float, betas: Sequence[float], momentum: float, scheduler: str,
    warmup: float, min_lr_ratio: float, lr_scheduler: Any, lr_scheduler_interval: str, lr_scaling: str,
    base_batch_size: int | None,
) -> None:
    """The model's optimisation settings, checked when the model is built: one line naming the bad key
    (not a traceback from torch at the first optimizer step, after minutes of set-up)."""
    optimizer_fn = from_spec(optimizer, "model.optimizer")
    if optimizer_fn not in SHORT_OPTIMIZERS and (isinstance(optimizer_fn, str) or not callable(optimizer_fn)):
        raise ConfigError(f"model.optimizer: expected adamw or sgd, got {optimizer!r} "
                          "(or an optimizer's class path, e.g. torch.optim.SGD)")
    if not (lr_scheduler is None or callable(from_spec(lr_scheduler, "model.lr_scheduler"))):
        raise ConfigError(f"model.lr_scheduler: expected a class path (torch.optim.lr_scheduler.StepLR), got {lr_scheduler!r}")
    if lr_scheduler_interval not in ("step", "epoch"):
        raise ConfigError(f"model.lr_scheduler_interval: expected step or epoch, got {lr_scheduler_interval!r}")
    if not 0 <= momentum < 1:
        raise ConfigError(f"model.momentum: expected a value in [0, 1) (sgd only), got {momentum}")
    if scheduler not in SHORT_SCHEDULERS:
        raise ConfigError(f"model.scheduler: expected cosine, onecycle or none, got {scheduler!r}")
    if lr_scaling not in ("none", "linear"):
        raise ConfigError(f"model.lr_scaling: expected none or linear, got {lr_scaling!r}")
    if lr_scaling == "linear" and not (isinstance(base_batch_size, int) and base_batch_size >= 1):
        raise ConfigError(f"model.base_batch_size: lr_scaling linear needs the batch size lr was tuned for, got {base_batch_size!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"model.lr: expected a learning rate > 0, got {lr}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ConfigError(f"model.weight_decay: expected a value >= 0, got {weight_decay}")
    if not all(0 <= b < 1 for b in betas) or len(betas) != 2:
        raise ConfigError(f"model.betas: expected two values in [0, 1), got {tuple(betas)}")
    if not 0 <= warmup or not 0 < min_lr_ratio <= 1:
        raise ConfigError(f"model: need warmup >= 0 and 0 < min_lr_ratio <= 1, got {warmup} and {min_lr_ratio}")


# --- the learning rate ------------------------------------------------------------------------------


def base_lr(optimizer: Any, model_lr: float) -> tuple[float, str]:
    """The learning rate before scaling: a class path's stated ``lr`` wins over ``model.lr``."""
    if not isinstance(optimizer, str):
        lr = stated_args(optimizer).get("lr")
        if lr is not None:
            return float(lr), "model.optimizer.lr"
    return float(model_lr), "model.lr"


def effective_lr(trainer: Any, hp: Mapping[str, Any], optimizer: Any) -> tuple[float, str]:
    """The learning rate this run uses and a one-line account of it (batch sizes, where lr comes from, scaling)."""
    datamodule = getattr(trainer, "datamodule", None)
    per_device = getattr(datamodule, "batch_size", None) if datamodule is not None else None
    accumulate = trainer.accumulate_grad_batches
    devices = trainer.world_size  # devices x nodes
    if per_device is None:
        batch_line = f"{devices} devices x {accumulate} accumulation (per-device batch unknown)"
        effective = None
    else:
        effective = per_device * devices * accumulate
        batch_line = f"effective batch {effective} = {per_device} per device x {devices} devices x {accumulate} accumulation"
    lr, source = base_lr(optimizer, hp["lr"])
    origin = "" if source == "model.lr" else f" from {source}"
    if hp.get("lr_scaling", "none") == "linear":
        if effective is None:
            raise ConfigError("model.lr_scaling: linear needs the data module's batch_size to compute the effective batch")
        scaled = lr * effective / hp["base_batch_size"]
        return scaled, f"{batch_line}; lr {scaled:g} (linear scaling: {lr:g}{origin} x {effective} / {hp['base_batch_size']})"
    return lr, f"{batch_line}; lr {lr:g}{' (' + source + ')' if origin else ''}"


# --- parameter groups -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupRule:
    """Parameters whose name matches ``pattern`` (``re.search``): lr x ``lr_mult``, their own weight
    decay (None: the optimizer's), frozen (no update) for the first ``freeze_steps`` optimizer steps."""

    pattern: str
    lr_mult: float = 1.0
    weight_decay: float | None = None
    freeze_steps: int = 0
    name: str | None = None


@dataclass
class ParamGroup:
    name: str
    pattern: str | None
    lr_mult: float = 1.0
    weight_decay: float | None = None
    freeze_steps: int = 0
    names: list[str] = field(default_factory=list)
    params: list[nn.Parameter] = field(default_factory=list)


def encoder_prefixes(module: nn.Module) -> list[str]:
    """Names of the network's pretrained encoders, outermost only: its
    :class:`depthlab.models.encoders.Encoder` submodules (``net.encoder`` of unet and glpn,
    ``net.coarse.layers.backbone`` of eigen2014 with a ``coarse_encoder``), and for every submodule
    with a callable ``encoder_names()`` (e.g. :class:`depthlab.models.hf.HFDepthNetwork`: ``net.model.backbone``
    of Depth Anything) the names it gives, relative to that submodule."""
    from depthlab.models.encoders import Encoder

    candidates: list[str] = []
    for name, sub in module.named_modules():
        if isinstance(sub, Encoder):
            candidates.append(name)
        names = getattr(sub, "encoder_names", None)
        if callable(names):
            candidates.extend(f"{name}.{n}" if name else n for n in names())
    found: list[str] = []
    for name in sorted(set(candidates), key=lambda n: (n.count("."), n)):  # outer before inner
        if not any(name.startswith(f + ".") for f in found):
            found.append(name)
    return found


def _number(value: Any, key: str, low: float, *, integer: bool = False, above: bool = False) -> Any:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if above else value >= low) and (not integer or float(value).is_integer())
    if not ok:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{key}: expected {kind} {'>' if above else '>='} {low:g}, got {value!r}")
    return int(value) if integer else float(value)


def group_rules(
    module: nn.Module,
    param_groups: Sequence[Mapping[str, Any]] | None,
    encoder_lr_mult: float = 1.0,
    freeze_encoder_steps: int = 0,
) -> list[GroupRule]:
    """``model.param_groups`` then the encoder's rule (from ``encoder_lr_mult``/``freeze_encoder_steps``),
    checked: every key known, every pattern a regular expression that names some parameter."""
    rules: list[GroupRule] = []
    names = [n for n, _ in module.named_parameters()]
    for i, spec in enumerate(param_groups or []):
        key = f"model.param_groups[{i}]"
        if not isinstance(spec, Mapping) or "pattern" not in spec:
            raise ConfigError(f"{key}: expected a mapping with a 'pattern' (a regular expression on parameter names), got {spec!r}")
        unknown = sorted(set(spec) - set(RULE_KEYS))
        if unknown:
            raise ConfigError(f"{key}: unknown key {unknown[0]!r}; keys: {', '.join(RULE_KEYS)}")
        try:
            compiled = re.compile(str(spec["pattern"]))
        except re.error as exc:
            raise ConfigError(f"{key}.pattern: {spec['pattern']!r} is not a regular expression ({exc})") from None
        if not any(compiled.search(n) for n in names):
            raise ConfigError(f"{key}.pattern: {spec['pattern']!r} matches no parameter of this model "
                              f"(names look like {names[0]!r})")
        wd = spec.get("weight_decay")
        rules.append(GroupRule(
            pattern=str(spec["pattern"]),
            lr_mult=_number(spec.get("lr_mult", 1.0), f"{key}.lr_mult", 0),
            weight_decay=None if wd is None else _number(wd, f"{key}.weight_decay", 0),
            freeze_steps=_number(spec.get("freeze_steps", 0), f"{key}.freeze_steps", 0, integer=True),
            name=str(spec["name"]) if spec.get("name") is not None else None,
        ))
    encoder_lr_mult = _number(encoder_lr_mult, "model.encoder_lr_mult", 0, above=True)
    freeze_encoder_steps = _number(freeze_encoder_steps, "model.freeze_encoder_steps", 0, integer=True)
    if encoder_lr_mult != 1.0 or freeze_encoder_steps > 0:
        prefixes = encoder_prefixes(module)
        if not prefixes:
            what = "model.encoder_lr_mult" if encoder_lr_mult != 1.0 else "model.freeze_encoder_steps"
            net = getattr(module, "net", module)
            raise ConfigError(f"{what}: network {type(net).__name__} has no pretrained encoder (no "
                              "depthlab.models.encoders.Encoder inside and no encoder_names()); use model.param_groups "
                              "with a name pattern")
        pattern = "^(" + "|".join(re.escape(p) for p in prefixes) + r")\."
        rules.append(GroupRule(pattern, encoder_lr_mult, None, freeze_encoder_steps, "encoder"))
    return rules


def parameter_groups(module: nn.Module, rules: Sequence[GroupRule]) -> list[ParamGroup]:
    """The module's parameters split by ``rules`` (the first matching rule wins), the rest last.
    Every parameter is in one group, also those with ``requires_grad`` False (as before: the
    optimizer skips them while they get no gradient)."""
    groups = [ParamGroup(r.name or f"group{i}", r.pattern, r.lr_mult, r.weight_decay, r.freeze_steps)
              for i, r in enumerate(rules)]
    rest = ParamGroup("rest", None)
    compiled = [re.compile(r.pattern) for r in rules]
    for name, param in module.named_parameters():
        group = next((g for g, c in zip(groups, compiled) if c.search(name)), rest)
        group.names.append(name)
        group.params.append(param)
    return [g for g in groups + [rest] if g.params]


def drop_frozen_grads(groups: Iterable[ParamGroup], step: int) -> None:
    """Before the optimizer step ``step`` (0-based): the gradients of groups frozen until a later step are
    dropped, so the optimizer leaves those weights alone entirely (no update, no weight decay, no moments)."""
    for group in groups:
        if step < group.freeze_steps:
            for p in group.params:
                p.grad = None


# --- construction -----------------------------------------------------------------------------------


def build_optimizer(spec: Any, params: Any, lr: float, hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    if spec == "sgd":  # Eigen et al. 2014; the update size follows the gradient's scale
        return torch.optim.SGD(params, lr=lr, momentum=hp["momentum"], weight_decay=hp["weight_decay"])
    if spec == "adamw":  # BTS, GLPDepth, AdaBins: Adam's update size is nearly independent of the gradient's scale
        return torch.optim.AdamW(params, lr=lr, weight_decay=hp["weight_decay"], betas=tuple(hp["betas"]))
    return spec(params, lr=lr) if _accepts(spec, "lr") else spec(params)


def build_scheduler(
    hp: Mapping[str, Any], optimizer: torch.optim.Optimizer, total: int, epochs: int | None, mults: Sequence[float],
    lr_scheduler: Any = None,
) -> tuple[dict[str, Any] | None, str]:
    """Lightning's scheduler config (or None) and the schedule in words."""
    if lr_scheduler is not None:
        interval = hp.get("lr_scheduler_interval", "step")
        cls = target_class(lr_scheduler)
        if cls is not None and issubclass(cls, torch.optim.lr_scheduler.ReduceLROnPlateau):
            interval = "epoch"
        steps = total if interval == "step" else max(int(epochs or 1), 1)
        given, extra = given_args(lr_scheduler), {}
        if _accepts(lr_scheduler, "total_steps") and given.get("total_steps") is None and given.get("epochs") is None:
            extra["total_steps"] = steps  # OneCycleLR: the run's length, as the short name does
        if cls is not None and issubclass(cls, torch.optim.lr_scheduler.PolynomialLR) and \
                stated_args(lr_scheduler).get("total_iters") is None:
            # poly decay over the run (Depth Anything V2: (1 - it / total)^0.9 per step). jsonargparse fills
            # in the class default (5), so a total_iters equal to it counts as not stated
            extra["total_iters"] = steps
        max_lr = given.get("max_lr")
        if isinstance(max_lr, (int, float)) and any(m != 1.0 for m in mults):
            extra["max_lr"] = [max_lr * m for m in mults]  # each group keeps its multiple
        scheduler = functools.partial(lr_scheduler, **extra)(optimizer)
        config = {"scheduler": scheduler, "interval": interval}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = "val/loss"
            return config, f"{_call_text(lr_scheduler, extra)} on val/loss, stepped per epoch"
        return config, f"{_call_text(lr_scheduler, extra)}, stepped per {interval}"
    name = hp.get("scheduler", "cosine")
    if name == "none":
        return None, "constant (scheduler none)"
    warmup = warmup_steps(hp["warmup"], total)
    if name == "onecycle":
        lrs = [g["lr"] for g in optimizer.param_groups]
        # OneCycleLR divides by (warm-up steps - 1): fewer than 2 would fail with ZeroDivisionError
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lrs if len(lrs) > 1 else lrs[0], total_steps=total, pct_start=max(warmup, 2) / total
        )
        text = f"onecycle (OneCycleLR, {max(warmup, 2)} steps up, {total} steps), stepped per step"
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, warmup, hp["min_lr_ratio"]))
        text = f"cosine (linear warm-up {warmup} steps, cosine to {hp['min_lr_ratio']:g} x lr at step {total}), stepped per step"
    return {"scheduler": scheduler, "interval": "step"}, text


def _count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def describe_groups(groups: Sequence[ParamGroup], lr: float) -> str:
    parts = []
    for g in groups:
        numel = sum(p.numel() for p in g.params)
        text = f"{g.name} ({len(g.params)} tensors, {_count(numel)} parameters) lr {lr * g.lr_mult:g}"
        if g.lr_mult != 1.0:
            text += f" = {g.lr_mult:g} x lr"
        if g.weight_decay is not None:
            text += f", weight_decay {g.weight_decay:g}"
        if g.freeze_steps:
            text += f", frozen for the first {g.freeze_steps} steps"
        parts.append(text)
    return "; ".join(parts)


def describe_optimizer(spec: Any, hp: Mapping[str, Any]) -> str:
    if spec == "sgd":
        return f"SGD (momentum {hp['momentum']:g}, weight_decay {hp['weight_decay']:g})"
    if spec == "adamw":
        return f"AdamW (weight_decay {hp['weight_decay']:g}, betas {tuple(hp['betas'])})"
    return _call_text(spec, {})


@dataclass
class Setup:
    """What :func:`configure` built: Lightning's return value, the groups (frozen ones included) and the start-up lines."""

    config: Any
    groups: list[ParamGroup]
    lines: list[str]
    step_interval: bool


def configure(module: Any) -> Setup:
    """``DepthModule.configure_optimizers``: optimizer, parameter groups, schedule, and the start-up lines."""
    hp = module.hparams
    trainer = module.trainer
    spec = from_spec(hp.get("optimizer", "adamw"), "model.optimizer")
    lr_scheduler = from_spec(hp.get("lr_scheduler"), "model.lr_scheduler")
    lr, account = effective_lr(trainer, hp, spec)
    rules = group_rules(module, hp.get("param_groups"), hp.get("encoder_lr_mult", 1.0), hp.get("freeze_encoder_steps", 0))
    groups = parameter_groups(module, rules)
    if rules:
        params: Any = [{"params": g.params, "lr": lr * g.lr_mult, "name": g.name,
                        **({"weight_decay": g.weight_decay} if g.weight_decay is not None else {})} for g in groups]
    else:
        params = module.parameters()  # one group, exactly as before parameter groups existed
    optimizer = build_optimizer(spec, params, lr, hp)
    total = max(int(trainer.estimated_stepping_batches), 1)
    config, schedule = build_scheduler(hp, optimizer, total, trainer.max_epochs, [g.lr_mult for g in groups],
                                       lr_scheduler)
    lines = [f"{account}; optimizer {describe_optimizer(spec, hp)}; schedule {schedule}"]
    if rules:
        lines.append(f"parameter groups: {describe_groups(groups, lr)}")
    step_interval = config is None or config.get("interval") == "step"
    if config is None:
        return Setup(optimizer, groups, lines, step_interval)
    return Setup({"optimizer": optimizer, "lr_scheduler": config}, groups, lines, step_interval)


def log_setup(setup: Setup) -> None:
    for line in setup.lines:
        rank_zero_info(f"depthlab: {line}")


__all__ = [
    "GroupRule", "ParamGroup", "Setup", "SHORT_OPTIMIZERS", "SHORT_SCHEDULERS", "base_lr", "build_optimizer",
    "build_scheduler", "configure", "drop_frozen_grads", "effective_lr", "encoder_prefixes", "from_spec",
    "group_rules", "log_setup", "parameter_groups", "stated_args", "warmup_cosine", "warmup_steps",
]
