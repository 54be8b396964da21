"""Which evaluation protocol a stage uses: the data module's own, else the model's ``eval_protocol``.

A data module may carry ``eval_protocol`` (a preset name, a mapping as ``model.eval_protocol``, an
:class:`~depthlab.eval.EvalProtocol`, or a method taking the stage, ``"val"`` or ``"test"``, for data
modules whose splits differ, e.g. a mixture of data sets); it is then used for its validation and
test splits. ``model.eval_protocol`` is the one default.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from depthlab.eval import EvalProtocol, build_protocol

Stage = Literal["val", "test"]


def datamodule_protocol(datamodule: Any, stage: Stage) -> Any:
    """The data module's own protocol spec for ``stage``, or None when it carries none."""
    spec = getattr(datamodule, "eval_protocol", None)
    if callable(spec):
        spec = spec(stage)
    return spec


def protocol_in_force(default: EvalProtocol, datamodule: Any, stage: Stage, min_depth: float, max_depth: float
                      ) -> tuple[EvalProtocol, str]:
    """``(protocol, where it came from)`` for ``stage``: the data module's, else ``default``."""
    spec = datamodule_protocol(datamodule, stage)
    if spec is None:
        return default, "model.eval_protocol"
    return build_protocol(spec, min_depth=min_depth, max_depth=max_depth), f"data module {type(datamodule).__name__}"


def protocol_spec(protocol: EvalProtocol) -> dict[str, Any]:
    """A mapping ``build_protocol`` turns back into ``protocol`` (plain values: a checkpoint's hyper-parameters)."""
    spec = dataclasses.asdict(protocol)
    if spec.get("input_size") is not None:
        spec["input_size"] = list(spec["input_size"])
    return spec
