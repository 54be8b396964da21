"""timm encoders as feature pyramids, with depthlab's error messages and weight loading."""

from __future__ import annotations

import difflib
from pathlib import Path

import timm
import torch
from torch import Tensor, nn

from depthlab.errors import ConfigError


def _unknown_encoder(name: str) -> ConfigError:
    known = timm.list_models()
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(
        f"model.net.encoder: timm does not know an encoder named {name!r}.{hint} "
        "List them with: python -c \"import timm; print(timm.list_models('*resnet*'))\""
    )


def create_encoder(name: str, pretrained: bool | str = False, out_indices: tuple[int, ...] | None = None) -> nn.Module:
    """``timm.create_model(name, features_only=True)`` with clear failures.

    ``pretrained``: False (random init), True (timm's weights from the hub or its local cache), or
    a path to a local timm checkpoint / ``.safetensors`` file (works offline).
    """
    if name not in timm.list_models() and not timm.is_model(name):
        raise _unknown_encoder(name)
    kwargs: dict = {"features_only": True}
    if out_indices is not None:
        kwargs["out_indices"] = out_indices
    if isinstance(pretrained, str) and pretrained.lower() not in ("true", "false"):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise ConfigError(f"model.net.pretrained: weight file {str(path)!r} does not exist")
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)
    use_hub = pretrained is True or (isinstance(pretrained, str) and pretrained.lower() == "true")
    try:
        return timm.create_model(name, pretrained=use_hub, **kwargs)
    except (OSError, RuntimeError, ValueError) as exc:
        if not use_hub:
            raise
        raise ConfigError(
            f"model.net.pretrained: could not get timm's pretrained weights for {name!r} "
            f"({type(exc).__name__}: {exc}). This machine may be offline with no hub cache. Either "
            "set `pretrained: /path/to/weights.safetensors` (a timm checkpoint you copied here), or "
            "populate the Hugging Face cache on a machine with network (HF_HOME) and copy it over; "
            "`pretrained: false` trains from scratch."
        ) from exc


def encoder_mean_std(encoder: nn.Module) -> tuple[Tensor, Tensor]:
    """Input mean/std from timm's pretrained config of the encoder, shaped (1, 3, 1, 1)."""
    cfg = timm.data.resolve_data_config({}, model=encoder)
    mean = torch.tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1)
    return mean, std


class DepthHead(nn.Module):
    """Maps logits to depth in [min_depth, max_depth] metres: min + (max - min) * sigmoid(x).

    Positive by construction; bounded so that an untrained network cannot emit inf/0.
    """

    def __init__(self, min_depth: float, max_depth: float) -> None:
        super().__init__()
        if not 0 < min_depth < max_depth:
            raise ConfigError(f"need 0 < min_depth < max_depth, got min_depth={min_depth}, max_depth={max_depth}")
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)

    def forward(self, logits: Tensor) -> Tensor:
        return self.min_depth + (self.max_depth - self.min_depth) * torch.sigmoid(logits)
