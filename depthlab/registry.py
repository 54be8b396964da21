"""One plugin registry for every depthlab plugin group (losses, models, ...).

Plugins are Python entry points. depthlab registers its own losses and models in its
``pyproject.toml`` exactly as a third-party package would::

    [project.entry-points."depthlab.losses"]
    silog = "depthlab.losses.silog:SiLogLoss"

Look-up is lazy: listing names reads distribution metadata only; a plugin's module is imported
when that plugin is first built. Two distributions claiming one name is an error naming both. A
distribution found twice on ``sys.path`` (an editable install's ``*.egg-info`` in the source tree
next to its ``*.dist-info`` in site-packages) counts once: the first copy wins, as for imports and
``importlib.metadata.entry_points()``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from dataclasses import dataclass
from importlib.metadata import EntryPoint, distributions
from collections.abc import Mapping
from typing import Any, Callable

from depthlab.errors import ConfigError


class PluginError(ConfigError, LookupError):
    """A plugin name is unknown, ambiguous, or its entry point cannot be loaded."""


@dataclass(frozen=True)
class _Plugin:
    name: str
    entry_point: EntryPoint
    distribution: str


class Registry:
    """Plugins of one entry-point group, e.g. ``Registry("depthlab.losses", "loss")``."""

    def __init__(self, group: str, kind: str) -> None:
        self.group = group
        self.kind = kind
        self._plugins: dict[str, _Plugin] | None = None
        self._loaded: dict[str, Callable[..., Any]] = {}

    def _scan(self) -> dict[str, _Plugin]:
        if self._plugins is not None:
            return self._plugins
        found: dict[str, _Plugin] = {}
        seen: set[str] = set()
        for dist in distributions():
            dist_name = _distribution_name(dist)
            key = re.sub(r"[-_.]+", "-", dist_name).lower()  # PEP 503 normalisation
            if key in seen:  # a second copy of one distribution further down sys.path
                continue
            seen.add(key)
            for ep in dist.entry_points:
                if ep.group != self.group:
                    continue
                previous = found.get(ep.name)
                if previous is not None:
                    raise PluginError(
                        f"{self.kind} plugin name {ep.name!r} is registered twice in entry-point "
                        f"group {self.group!r}: by {previous.distribution!r} "
                        f"({previous.entry_point.value}) and by {dist_name!r} ({ep.value}). "
                        "Uninstall one of the two packages or rename one plugin."
                    )
                found[ep.name] = _Plugin(ep.name, ep, dist_name)
        self._plugins = dict(sorted(found.items()))
        return self._plugins

    def refresh(self) -> None:
        """Forget the cached scan (after installing a plugin package at run time)."""
        self._plugins = None
        self._loaded.clear()

    def available(self) -> list[str]:
        """Sorted names of all registered plugins."""
        return list(self._scan())

    def distribution_of(self, name: str) -> str:
        """Name of the distribution (package) that registers ``name``."""
        return self._lookup(name).distribution

    def _lookup(self, name: str) -> _Plugin:
        plugins = self._scan()
        if name in plugins:
            return plugins[name]
        by_lower = {n.lower(): n for n in plugins}
        close = [by_lower[c] for c in difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.5)]
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise PluginError(
            f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(plugins) or '(none)'}."
        )

    def get(self, name: str) -> Callable[..., Any]:
        """The class or factory registered under ``name`` (imports its module on first use)."""
        if name not in self._loaded:
            plugin = self._lookup(name)
            try:
                self._loaded[name] = plugin.entry_point.load()
            except Exception as exc:  # an import error inside a plugin names the plugin
                raise PluginError(
                    f"{self.kind} plugin {name!r} ({plugin.entry_point.value}, from "
                    f"{plugin.distribution!r}) failed to load: {type(exc).__name__}: {exc}"
                ) from exc
        return self._loaded[name]

    def build(self, name: str, **kwargs: Any) -> Any:
        """Instantiate plugin ``name`` with ``kwargs``; a wrong argument names the plugin."""
        return _call_checked(self.get(name), kwargs, f"{self.kind} {name!r}")

    def describe(self, name: str) -> str:
        """First line of the plugin's docstring (imports the plugin)."""
        doc = inspect.getdoc(self.get(name)) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    def table(self) -> str:
        """``name  description`` lines for the CLI listing."""
        names = self.available()
        width = max((len(n) for n in names), default=0)
        lines = []
        for n in names:
            try:
                text = self.describe(n)
            except PluginError as exc:  # one broken plugin must not hide the others
                text = f"(cannot load: {exc.__cause__ or exc})"
            lines.append(f"{n:<{width}}  {text}")
        return "\n".join(lines)


def with_defaults(spec: Any, defaults: Mapping[str, Any]) -> Any:
    """``spec`` (a name, a ``{name: ..., **kwargs}`` mapping or a ``class_path``/``init_args`` mapping)
    with ``defaults`` filling the arguments it does not set; a name becomes ``{name: ...}``."""
    if isinstance(spec, str):
        spec = {"name": spec}
    if isinstance(spec, dict) and "class_path" in spec:
        return {**spec, "init_args": {**defaults, **(spec.get("init_args") or {})}}
    if isinstance(spec, dict):
        return {**defaults, **spec}
    return spec


def build_from_spec(registry: Registry, spec: Any, what: str) -> Any:
    """Build a plugin from a YAML-style spec.

    Accepted forms: ``"name"``; ``{"name": "silog", **kwargs}``; or jsonargparse's
    ``{"class_path": "pkg.mod.Class", "init_args": {...}}``.
    """
    if isinstance(spec, str):
        return registry.build(spec)
    if isinstance(spec, dict):
        spec = dict(spec)
        if "class_path" in spec:
            extra = sorted(set(spec) - {"class_path", "init_args"})
            if extra:
                raise PluginError(
                    f"{what}: with class_path, arguments go under init_args; unexpected keys {extra}"
                )
            module_name, _, attr = spec["class_path"].rpartition(".")
            try:
                cls = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError, ValueError) as exc:
                raise PluginError(f"{what}: cannot import class_path {spec['class_path']!r}: {exc}") from exc
            return _call_checked(cls, spec.get("init_args") or {}, f"{what}: {spec['class_path']}")
        if "name" not in spec:
            raise PluginError(
                f"{what}: a {registry.kind} spec needs a 'name' (one of "
                f"{', '.join(registry.available())}) or a 'class_path'; got keys {sorted(spec)}"
            )
        name = spec.pop("name")
        return registry.build(name, **spec)
    raise PluginError(f"{what}: expected a {registry.kind} name or mapping, got {type(spec).__name__}")


def _call_checked(factory: Callable[..., Any], kwargs: dict[str, Any], label: str) -> Any:
    """``factory(**kwargs)``, but a wrong or missing argument is a ConfigError naming ``label``."""
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{label}: {exc}") from None
    except ValueError:  # no signature to check (some builtins): let the call decide
        pass
    return factory(**kwargs)


def _distribution_name(dist: Any) -> str:
    try:
        name = dist.metadata["Name"]
    except (KeyError, OSError, TypeError):  # no METADATA/PKG-INFO: Python 3.14 raises instead of returning None
        name = None
    return name or f"<unnamed distribution at {getattr(dist, '_path', '?')}>"
