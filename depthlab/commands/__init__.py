"""depthlab's commands besides Lightning's four (``fit``/``validate``/``test``/``predict``).

Each is a front end ``main(argv: list[str]) -> int`` registered in the entry-point group
``depthlab.commands`` (``pyproject.toml``), found by :data:`COMMANDS` exactly as losses and models
are; the first line of its docstring is its line in ``depthlab --help``. A front end parses its own
options (and a depthlab config through :mod:`depthlab.parser`) and calls a library function that
knows nothing of the command line: ``depthlab.data.check.check``, ``depthlab.hints.precompute``,
``depthlab.export``, ``depthlab.experiments``. Another package adds a command the same way.
"""

from __future__ import annotations

from depthlab.registry import Registry

COMMANDS = Registry("depthlab.commands", "command")

__all__ = ["COMMANDS"]
