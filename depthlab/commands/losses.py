"""``depthlab losses``: the registered losses."""

from __future__ import annotations


def main(argv: list[str]) -> int:
    """list registered losses (entry-point group depthlab.losses)"""
    from depthlab.losses import REGISTRY

    print(REGISTRY.table())
    return 0
