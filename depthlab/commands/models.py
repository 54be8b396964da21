"""``depthlab models``: the registered networks."""

from __future__ import annotations


def main(argv: list[str]) -> int:
    """list registered networks (entry-point group depthlab.models)"""
    from depthlab.models import REGISTRY

    print(REGISTRY.table())
    return 0
