"""What an experiment is: a folder ``configs/experiments/<name>/`` with an ``experiment.yaml``.

The folder holds ordinary depthlab configs (each run can be repeated alone with ``depthlab fit
--config ...``) and ``experiment.yaml``, which says what to vary and what to show::

    title: Eigen's SiLog vs its square root
    question: Which converges faster, ...?
    claims:                              # what a paper says, and where (the report quotes them)
      - {text: "...", source: "Lee et al. 2019 (BTS), pytorch/bts_main.py"}
    configs: [../synthetic_small.yaml]   # every variant starts from these (paths relative to the folder)
    variants:                            # one training run per variant and seed
      - {name: eigen, configs: [eigen.yaml], label: "Eigen SiLog"}
      - {name: fine, configs: [fine.yaml], args: {model.net.coarse_weights: "{ckpt:coarse}"}}
    evaluations:                         # `depthlab test` runs of every final checkpoint
      - {name: metric}
      - {name: median, args: {model.eval_protocol: {name: none, median_scaling: true}}}
    metrics: [abs_rel, rmse, delta1]     # table columns (test/<metric> in the evaluation logs)
    primary: abs_rel                     # the metric the conclusion ranks by
    plots:                               # one PNG per tag: mean over seeds, min-max band
      - {tag: val/abs_rel, title: Validation abs_rel}
    scales:
      small: {seeds: [0, 1]}             # this machine's size: the committed reports
      full: {configs: [full.yaml], seeds: [0, 1, 2]}
      tiny: {args: {trainer.max_steps: 2}, seeds: [0], variants: [eigen]}   # the test suite's size
    # a scale's configs come after the variant's; ``variant_args: {variant: {key: value}}`` last of all;
    # ``variants`` (optional) runs and reports only those variants at that scale; ``prepare`` (optional)
    # replaces the experiment's prepare steps at that scale (e.g. ``["hints precompute --workers 1"]``)
    analysis: depthlab.experiments.analyses:silog_sqrt   # optional: paragraphs and plots of its own

``kind: script`` experiments (``script: module:function``) run a Python function per variant and
seed instead of ``depthlab fit``; it writes its log as ``metrics.csv`` (columns step, tag, value).
``extras`` are functions run once per experiment that write a CSV table (e.g. hint quality).
``prepare`` lists depthlab commands run once before the variants with the experiment's configs,
e.g. ``prepare: ["hints precompute"]`` runs ``depthlab hints precompute --config ...`` (which
computes only what is missing).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import yaml

from depthlab.errors import ConfigError

SPEC_FILE = "experiment.yaml"
_METRICS = ["abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3"]


def experiments_dir() -> Path:
    """``configs/experiments``: the installed copy (package ``depthlab._configs``), else the checkout's."""
    installed = resources.files("depthlab").joinpath("_configs", "experiments")
    if isinstance(installed, Path) and installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[2] / "configs" / "experiments"


@dataclass(frozen=True)
class Variant:
    name: str
    configs: tuple[str, ...] = ()
    args: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def after(self) -> list[str]:
        """Variants whose checkpoints this one's args name (``{ckpt:NAME}``)."""
        import re

        return re.findall(r"\{ckpt:([\w-]+)\}", str(self.args))


@dataclass(frozen=True)
class Evaluation:
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    label: str = ""


@dataclass(frozen=True)
class Plot:
    tag: str
    title: str = ""
    log_y: bool = False
    ylabel: str = ""
    variants: tuple[str, ...] = ()  # empty: all


@dataclass(frozen=True)
class Scale:
    configs: tuple[str, ...] = ()
    args: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    note: str = ""
    variant_args: dict[str, dict[str, Any]] = field(default_factory=dict)  # per variant, after args
    variants: tuple[str, ...] = ()  # the variants run at this scale (empty: all)
    prepare: tuple[tuple[str, ...], ...] | None = None  # replaces the experiment's prepare steps at this scale

    def args_for(self, variant: str) -> dict[str, Any]:
        return {**self.args, **self.variant_args.get(variant, {})}


@dataclass(frozen=True)
class Extra:
    name: str
    run: str
    args: dict[str, Any] = field(default_factory=dict)
    title: str = ""


@dataclass(frozen=True)
class Experiment:
    name: str
    folder: Path
    title: str
    question: str
    variants: tuple[Variant, ...]
    scales: dict[str, Scale]
    claims: tuple[dict[str, str], ...] = ()
    configs: tuple[str, ...] = ()
    evaluations: tuple[Evaluation, ...] = (Evaluation("test"),)
    metrics: tuple[str, ...] = tuple(_METRICS)
    primary: str = "abs_rel"
    plots: tuple[Plot, ...] = ()
    analysis: str | None = None
    kind: str = "fit"
    script: str | None = None
    extras: tuple[Extra, ...] = ()
    setup: str = ""
    prepare: tuple[tuple[str, ...], ...] = ()

    def config_path(self, relative: str) -> Path:
        path = (self.folder / relative).resolve()
        if not path.is_file():
            raise ConfigError(f"experiment {self.name}: config {relative!r} ({path}) does not exist")
        return path

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise ConfigError(f"experiment {self.name}: no variant {name!r} (variants: {', '.join(v.name for v in self.variants)})")

    def variants_at(self, scale: str) -> list[Variant]:
        """The variants run (and reported) at ``scale``, in spec order."""
        chosen = self.scale(scale).variants
        return [v for v in self.variants if not chosen or v.name in chosen]

    def prepare_at(self, scale: str) -> tuple[tuple[str, ...], ...]:
        """The prepare steps at ``scale``: the scale's own, else the experiment's."""
        own = self.scale(scale).prepare
        return self.prepare if own is None else own

    def scale(self, name: str) -> Scale:
        if name not in self.scales:
            raise ConfigError(f"experiment {self.name}: no scale {name!r} (scales: {', '.join(self.scales)})")
        return self.scales[name]

    def metric_higher_is_better(self, metric: str) -> bool:
        return metric.startswith("delta") or metric.startswith("accurate") or metric.startswith("coverage")


def resolve_callable(path: str, where: str) -> Callable:
    module, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{where}: cannot import {path!r} ({exc})") from None


def _items(raw: Any, key: str, where: str) -> list[dict]:
    value = raw.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{where}: {key!r} must be a list of mappings")
    return value


def _steps(steps: list) -> tuple[tuple[str, ...], ...]:
    """``["hints precompute --workers 1"]`` -> ``(("hints", "precompute", "--workers", "1"),)``."""
    return tuple(tuple(str(step).split()) for step in steps)


def _known(entry: dict, allowed: set[str], where: str) -> None:
    unknown = set(entry) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)} (allowed: {sorted(allowed)})")


def load_experiment(name: str | Path, root: Path | None = None) -> Experiment:
    """The experiment ``name`` (a folder under :func:`experiments_dir`, or a folder path)."""
    folder = Path(name) if Path(name).is_dir() and Path(name, SPEC_FILE).is_file() else (root or experiments_dir()) / str(name)
    spec_path = folder / SPEC_FILE
    if not spec_path.is_file():
        available = ", ".join(list_experiments(root)) or "none"
        raise ConfigError(f"experiment {name!r}: no {spec_path} (experiments: {available})")
    where = str(spec_path)
    try:
        raw = yaml.safe_load(spec_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc})") from None
    _known(raw, {"title", "question", "claims", "configs", "variants", "evaluations", "metrics", "primary", "plots",
                 "scales", "analysis", "kind", "script", "extras", "setup", "prepare"}, where)
    for key in ("title", "question", "variants", "scales"):
        if not raw.get(key):
            raise ConfigError(f"{where}: {key!r} is required")
    variants = []
    for i, v in enumerate(_items(raw, "variants", where)):
        _known(v, {"name", "configs", "args", "label"}, f"{where}: variants[{i}]")
        if "name" not in v:
            raise ConfigError(f"{where}: variants[{i}] has no name")
        variants.append(Variant(str(v["name"]), tuple(v.get("configs") or ()), dict(v.get("args") or {}), v.get("label", "")))
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: variant names must be unique, got {names}")
    for i, v in enumerate(variants):
        for dep in v.after:
            if dep not in names[:i]:
                raise ConfigError(f"{where}: variant {v.name!r} uses {{ckpt:{dep}}}: {dep!r} must be a variant listed before it")
    scales = {}
    for scale_name, s in (raw.get("scales") or {}).items():
        s = s or {}
        _known(s, {"configs", "args", "seeds", "note", "variant_args", "variants", "prepare"}, f"{where}: scales.{scale_name}")
        seeds = tuple(int(x) for x in (s.get("seeds") or [0]))
        per_variant = {str(k): dict(v or {}) for k, v in (s.get("variant_args") or {}).items()}
        scales[str(scale_name)] = Scale(tuple(s.get("configs") or ()), dict(s.get("args") or {}), seeds, s.get("note", ""), per_variant,
                                        tuple(str(v) for v in (s.get("variants") or ())),
                                        None if s.get("prepare") is None else _steps(s["prepare"]))
    for scale_name, scale in scales.items():
        for key, named in (("variant_args", scale.variant_args), ("variants", scale.variants)):
            for unknown in sorted(set(named) - set(names)):
                raise ConfigError(f"{where}: scales.{scale_name}.{key} names no variant {unknown!r} (variants: {', '.join(names)})")
        for v in variants if scale.variants else ():
            for dep in v.after if v.name in scale.variants else ():
                if dep not in scale.variants:
                    raise ConfigError(f"{where}: scales.{scale_name}.variants: {v.name!r} uses {{ckpt:{dep}}}: list {dep!r} too")
    evaluations = tuple(Evaluation(str(e["name"]), dict(e.get("args") or {}), e.get("label", ""))
                        for e in _items(raw, "evaluations", where)) or (Evaluation("test"),)
    plots = []
    for i, p in enumerate(_items(raw, "plots", where)):
        _known(p, {"tag", "title", "log_y", "ylabel", "variants"}, f"{where}: plots[{i}]")
        plots.append(Plot(p["tag"], p.get("title", p["tag"]), bool(p.get("log_y", False)), p.get("ylabel", ""),
                          tuple(p.get("variants") or ())))
    extras = tuple(Extra(str(e["name"]), str(e["run"]), dict(e.get("args") or {}), e.get("title", ""))
                   for e in _items(raw, "extras", where))
    kind = raw.get("kind", "fit")
    if kind not in ("fit", "script"):
        raise ConfigError(f"{where}: kind must be fit or script, got {kind!r}")
    if kind == "script" and not raw.get("script"):
        raise ConfigError(f"{where}: kind script needs 'script: module:function'")
    metrics = tuple(raw.get("metrics") or _METRICS)
    primary = raw.get("primary", metrics[0])
    if primary not in metrics:
        raise ConfigError(f"{where}: primary {primary!r} is not one of metrics {list(metrics)}")
    exp = Experiment(
        name=folder.name, folder=folder, title=raw["title"], question=str(raw["question"]).strip(),
        variants=tuple(variants), scales=scales, claims=tuple(raw.get("claims") or ()),
        configs=tuple(raw.get("configs") or ()), evaluations=evaluations, metrics=metrics, primary=primary,
        plots=tuple(plots), analysis=raw.get("analysis"), kind=kind, script=raw.get("script"), extras=extras,
        setup=str(raw.get("setup", "")).strip(),
        prepare=_steps(raw.get("prepare") or []),
    )
    if kind == "fit":  # every config named must exist now, not after an hour of runs
        for rel in [*exp.configs, *(c for v in variants for c in v.configs), *(c for s in scales.values() for c in s.configs)]:
            exp.config_path(rel)
    return exp


def list_experiments(root: Path | None = None) -> list[str]:
    folder = root or experiments_dir()
    return sorted(p.parent.name for p in folder.glob(f"*/{SPEC_FILE}")) if folder.is_dir() else []
