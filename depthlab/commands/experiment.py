"""``depthlab experiment``: the experiment runner's command line (:mod:`depthlab.experiments`)."""

from __future__ import annotations


def main(argv: list[str]) -> int:
    """experiments with reports and plots: 'depthlab experiment list', 'depthlab experiment run NAME'"""
    from depthlab import cli
    from depthlab.experiments import main as experiments_main

    # The runner runs `depthlab fit`/`test` through the command runner it is given: it never imports the CLI.
    return experiments_main(argv, run_command=cli.main)
