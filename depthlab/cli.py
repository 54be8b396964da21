"""The ``depthlab`` command: dispatches to Lightning's CLI or to a registered front end.

    depthlab fit --config configs/synthetic.yaml [--model.lr 1e-4] [--trainer.strategy ddp]
    depthlab test --config configs/synthetic.yaml --ckpt_path last.ckpt [--model.eval_protocol kitti]
    depthlab predict --config configs/synthetic.yaml --ckpt_path last.ckpt --output_dir predictions
    depthlab losses | depthlab models     # registered plugins with one-line descriptions
    depthlab hints precompute --config configs/kitti.yaml   # Depth Hints proxy labels (docs/hints.md)
    depthlab export --config configs/synthetic.yaml --ckpt_path last.ckpt --format onnx --output net.onnx
    depthlab experiment run silog_sqrt          # an experiment with its report (docs/experiments/)

``fit``/``validate``/``test``/``predict`` go to :class:`depthlab.parser.DepthCLI`; every other
command is a front end ``main(argv) -> int`` found in the plugin registry's entry-point group
``depthlab.commands`` (:mod:`depthlab.commands`). A bad setting is one line ``depthlab: error: ...``
with exit status 2 (``DEPTHLAB_TRACEBACK=1`` shows the traceback instead).

Lightning is imported only when a command needs it: ``depthlab losses`` or ``depthlab odometry``
start without its ~4 s import (``DepthCLI``, ``base_config`` and ``run`` are still importable from here).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from jsonargparse import ArgumentError

from depthlab.commands import COMMANDS
from depthlab.errors import ConfigError, unwrap_config_error

__all__ = ["DepthCLI", "base_config", "main", "run"]


def __getattr__(name: str) -> Any:  # the parser's names, imported (with Lightning) on first use
    if name in ("DepthCLI", "base_config", "run"):
        from depthlab import parser

        return getattr(parser, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _is_sigterm_stop(exc: SystemExit) -> bool:
    """Whether ``exc`` is how Lightning stops a run on SIGTERM (only possible once Lightning is loaded)."""
    if "lightning.pytorch" not in sys.modules:
        return False
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    return isinstance(exc, SIGTERMException)


def main(args: list[str] | None = None) -> int:
    argv = sys.argv[1:] if args is None else list(args)
    try:
        if argv and argv[0] in COMMANDS.available():
            return int(COMMANDS.get(argv[0])(argv[1:]) or 0)
        from depthlab.parser import run

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
    except SystemExit as exc:
        # How Lightning stops a run on SIGTERM (and depthlab on SIGINT): a SystemExit with status 0.
        # A scheduler must see an unfinished run.
        if not _is_sigterm_stop(exc):
            raise
        from depthlab.checkpointing import exit_status

        return exit_status()
    return 0


if __name__ == "__main__":
    sys.exit(main())
