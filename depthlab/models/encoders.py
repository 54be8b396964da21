"""The encoder every depthlab network uses: a timm feature pyramid behind depthlab's input convention.

:class:`Encoder` is the one place where an encoder is set up: it creates the timm
``features_only`` model (with depthlab's error messages and weight loading, below), holds the
input normalisation (:class:`Normalize`, the encoder's pretrained mean/std), normalises the
RGB [0, 1] image in ``forward`` and declares its feature maps' ``channels`` and ``reductions``
(strides), so any decoder can be built on any encoder.

``pretrained`` everywhere in depthlab's networks means:

- ``False``: random initialisation;
- ``True``: timm's pretrained weights, from the Hugging Face hub or its local cache (``HF_HOME``);
- a path: a local timm checkpoint (``.pth``/``.pt``/``.bin``, a plain state dict or one under
  ``state_dict``/``model``/``state_dict_ema``) or a ``.safetensors`` file. This works offline.
  The file holds the whole timm model (classifier included, as ``timm`` saves it) or only the
  encoder; every tensor of the encoder must be in it with the right shape, else it is an error
  (timm itself would only warn and keep the random weights).

Loading a trained depthlab checkpoint does not need the encoder weights at all: wrap the network's
construction in :func:`pretrained_weights_disabled` (or set ``DEPTHLAB_SKIP_PRETRAINED=1``), and the
checkpoint's state dict supplies every weight.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import socket
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator, Sequence
from urllib.parse import urlparse

import timm
import torch
from torch import Tensor, nn

from depthlab.errors import ConfigError
from depthlab.models.heads import DepthHead

__all__ = [
    "DepthHead",
    "Encoder",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Normalize",
    "create_encoder",
    "encoder_mean_std",
    "load_encoder_weights",
    "pretrained_disabled",
    "pretrained_weights_disabled",
    "resolve_pretrained",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SKIP_PRETRAINED_ENV = "DEPTHLAB_SKIP_PRETRAINED"
_skip_pretrained: ContextVar[bool] = ContextVar("depthlab_skip_pretrained", default=False)


@contextlib.contextmanager
def pretrained_weights_disabled() -> Iterator[None]:
    """Build networks without fetching or reading encoder weights (a checkpoint will overwrite them).

    For ``depthlab test``/``predict`` and ``DepthModule.load_from_checkpoint`` on a machine that
    has the depthlab checkpoint but not the encoder's original weights.
    """
    token = _skip_pretrained.set(True)
    try:
        yield
    finally:
        _skip_pretrained.reset(token)


def pretrained_disabled() -> bool:
    """True inside :func:`pretrained_weights_disabled` or with ``DEPTHLAB_SKIP_PRETRAINED=1``."""
    return _skip_pretrained.get() or os.environ.get(SKIP_PRETRAINED_ENV, "").lower() in ("1", "true", "yes")


def resolve_pretrained(pretrained: bool | str | None) -> bool | Path:
    """``pretrained`` as given in YAML -> False, True or a local file path (checked to exist).

    Returns False while :func:`pretrained_weights_disabled` is active.
    """
    if pretrained_disabled() or pretrained is None or pretrained is False:
        return False
    if pretrained is True:
        return True
    if isinstance(pretrained, str):
        if pretrained.strip().lower() in ("true", "yes", "1"):
            return True
        if pretrained.strip().lower() in ("false", "no", "0", "", "none"):
            return False
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"model.net.pretrained: weight file {str(path)!r} does not exist (expected true, false or "
                "the path of a timm checkpoint / .safetensors file)"
            )
        return path
    raise ConfigError(f"model.net.pretrained: expected true, false or a file path, got {pretrained!r}")


def _unknown_encoder(name: str) -> ConfigError:
    known = timm.list_models()
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(
        f"model.net.encoder: timm does not know an encoder named {name!r}.{hint} "
        "List them with: python -c \"import timm; print(timm.list_models('*resnet*'))\""
    )


def _offline_error(name: str, exc: BaseException) -> ConfigError:
    return ConfigError(
        f"model.net.pretrained: could not get timm's pretrained weights for {name!r} "
        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). This machine may be "
        "offline with no hub cache. Two ways out: (1) set `pretrained: /path/to/weights.safetensors` "
        "(a timm checkpoint or .safetensors file copied to this machine), or (2) on a machine with "
        f"network run `python -c \"import timm; timm.create_model('{name}', pretrained=True)\"` and copy "
        "its Hugging Face cache (HF_HOME, default ~/.cache/huggingface) here. "
        "`pretrained: false` trains from scratch."
    )


def create_encoder(
    name: str, pretrained: bool | str = False, out_indices: tuple[int, ...] | None = None
) -> nn.Module:
    """``timm.create_model(name, features_only=True)`` with clear failures and strict local loading.

    The result is called as ``encoder(x) -> list[Tensor]`` (shallow to deep) and declares its
    ``feature_info.channels()`` and ``feature_info.reduction()``. See the module docstring for
    ``pretrained``.
    """
    if not timm.is_model(name):
        raise _unknown_encoder(name)
    kwargs: dict = {"features_only": True}
    if out_indices is not None:
        kwargs["out_indices"] = tuple(out_indices)
    if fixed_input_size(name) is not None:
        # ViT-style encoders are built for one size (224x224); timm can resample their position
        # embeddings to any size and pad to the patch grid, so depth networks keep any input size.
        kwargs.update(dynamic_img_size=True, dynamic_img_pad=True)
    try:
        return _create_encoder(name, pretrained, kwargs)
    except TypeError as exc:
        if "dynamic_img" not in str(exc):
            raise
        h, w = fixed_input_size(name)
        raise ConfigError(
            f"model.net.encoder: {name!r} takes only {h}x{w} inputs (timm's fixed_input_size) and timm cannot "
            "make it take other sizes (no dynamic_img_size); depth networks need any input size: choose an "
            "encoder without a fixed size (a resnet, convnext or pvt_v2, or a ViT such as vit_small_patch16_224)"
        ) from None


def _create_encoder(name: str, pretrained: bool | str, kwargs: dict) -> nn.Module:
    source = resolve_pretrained(pretrained)
    if isinstance(source, Path):
        encoder = timm.create_model(name, pretrained=False, **kwargs)
        load_encoder_weights(encoder, source)
        return encoder
    if source is False:
        return timm.create_model(name, pretrained=False, **kwargs)
    cached = cached_pretrained_file(name)
    if cached is not None:  # from the local cache, with no network request at all
        kwargs["pretrained_cfg_overlay"] = {"file": cached}
    elif not hub_reachable():
        # Fail in seconds: offline, the hub client retries for about a minute before it gives up.
        raise _offline_error(name, ConnectionError(f"{hub_endpoint()} cannot be reached and no cached weights exist"))
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except (ConfigError, TypeError):  # TypeError: a wrong argument, not the network
        raise
    except Exception as exc:  # hub errors differ by huggingface_hub/httpx/requests version
        raise _offline_error(name, exc) from exc


def fixed_input_size(name: str) -> tuple[int, int] | None:
    """(H, W) that timm's pretrained config of ``name`` fixes the input to (ViTs), else None."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None or not getattr(cfg, "fixed_input_size", False):
        return None
    return tuple(cfg.input_size[-2:])


# Weight files timm looks for in a Hugging Face hub repository, in its order.
_HUB_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")
HUB_PROBE_TIMEOUT_S = 3.0


def hub_endpoint() -> str:
    """The Hugging Face hub URL timm's weights come from (``HF_ENDPOINT`` or the default)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def cached_pretrained_file(name: str) -> str | None:
    """The local file holding timm's default pretrained weights of ``name``, if already cached.

    Looks in the Hugging Face cache (``HF_HOME``) for the model's hub repository and in torch's hub
    cache for its URL; None when neither has it.
    """
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        names = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HUB_WEIGHT_FILES
        for filename in names:
            found = try_to_load_from_cache(cfg.hf_hub_id, filename)
            if isinstance(found, str):
                return found
    if cfg.url:
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(cfg.url).path)
        if path.is_file():
            return str(path)
    return None


def hub_reachable(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the hub's host accepts a TCP connection within ``timeout_s`` (False with ``HF_HUB_OFFLINE``,
    read at import by huggingface_hub or set in the environment since)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    url = urlparse(hub_endpoint())
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def _normalised_key(key: str) -> str:
    # features_only wrappers rename modules (``stages.0`` -> ``stages_0``; ``model.`` prefix for
    # getter wrappers); compare names with both spellings folded together.
    for prefix in ("module.", "model."):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key.replace("_", ".")


def load_encoder_weights(encoder: nn.Module, path: str | Path) -> None:
    """Load a timm checkpoint / safetensors file into a ``features_only`` encoder, strictly.

    Every tensor of ``encoder.state_dict()`` must be found in the file (by name, modulo the
    features_only renaming) with the same shape; extra tensors (the classifier) are ignored.
    """
    from timm.models import load_state_dict

    path = Path(path)
    try:
        state = load_state_dict(str(path), use_ema=True)
    except Exception as exc:
        raise ConfigError(
            f"model.net.pretrained: cannot read weight file {str(path)!r}: {type(exc).__name__}: {exc}"
        ) from exc
    by_name: dict[str, Tensor] = {}
    for key, value in state.items():
        if isinstance(value, Tensor):
            by_name.setdefault(_normalised_key(key), value)
    target = encoder.state_dict()
    loaded: dict[str, Tensor] = {}
    missing, wrong_shape = [], []
    for key, ref in target.items():
        value = by_name.get(_normalised_key(key))
        if value is None:
            missing.append(key)
        elif value.shape != ref.shape:
            wrong_shape.append(f"{key}: file {tuple(value.shape)} vs encoder {tuple(ref.shape)}")
        else:
            loaded[key] = value
    if missing or wrong_shape:
        detail = "; ".join(wrong_shape[:3]) if wrong_shape else "missing e.g. " + ", ".join(missing[:3])
        raise ConfigError(
            f"model.net.pretrained: {str(path)!r} does not fit this encoder: {len(missing)} of its "
            f"{len(target)} tensors missing, {len(wrong_shape)} of the wrong shape ({detail}). Is it a "
            "checkpoint of the same timm model?"
        )
    encoder.load_state_dict(loaded, strict=True)


def encoder_mean_std(encoder: nn.Module) -> tuple[Tensor, Tensor]:
    """Input mean/std from timm's pretrained config of a timm model, shaped (1, 3, 1, 1)."""
    cfg = timm.data.resolve_data_config({}, model=encoder)
    mean = torch.tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1)
    return mean, std


class Normalize(nn.Module):
    """``(image - mean) / std`` per channel, for (B, 3, H, W) RGB in [0, 1].

    The buffers are not saved in checkpoints: they follow from the encoder's name (timm's
    pretrained config), so a checkpoint stays loadable if timm's defaults are ever refined.
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: Tensor) -> Tensor:
        return (image - self.mean) / self.std

    def extra_repr(self) -> str:
        mean, std = ([round(v, 4) for v in t.flatten().tolist()] for t in (self.mean, self.std))
        return f"mean={mean}, std={std}"


class Encoder(nn.Module):
    """A timm ``features_only`` model that takes RGB in [0, 1]: ``encoder(image) -> list[Tensor]``.

    ``image`` (B, 3, H, W) is normalised with the encoder's pretrained mean/std, then the feature
    maps come shallow to deep, map ``i`` with ``channels[i]`` channels at about ``H / reductions[i]``
    (timm rounds odd sizes up or down depending on the encoder's first layers).

    Args:
        name: a timm model name that supports ``features_only``.
        pretrained: False, True (timm hub weights) or a local weight file (module docstring).
        out_indices: which of timm's feature maps to return (default: all).

    State-dict keys are ``model.<timm key>``. Checkpoints written before this wrapper existed
    held the timm keys directly under the network's encoder prefix; they still load (see
    :meth:`_load_from_state_dict`).
    """

    def __init__(
        self, name: str, pretrained: bool | str = False, out_indices: tuple[int, ...] | None = None
    ) -> None:
        super().__init__()
        self.name = name
        self.model = create_encoder(name, pretrained, out_indices)
        self.normalize = Normalize(*encoder_mean_std(self.model))

    @property
    def channels(self) -> list[int]:
        """Channels of each feature map, shallow to deep."""
        return list(self.model.feature_info.channels())

    @property
    def reductions(self) -> list[int]:
        """Nominal stride of each feature map relative to the input, shallow to deep."""
        return list(self.model.feature_info.reduction())

    def forward(self, image: Tensor) -> list[Tensor]:
        """(B, 3, H, W) RGB in [0, 1] -> feature maps, shallow to deep."""
        return self.model(self.normalize(image))

    def forward_normalized(self, x: Tensor) -> list[Tensor]:
        """Feature maps of an image already passed through :attr:`normalize` (shared with another stack)."""
        return self.model(x)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # noqa: ANN001
        # Older checkpoints: the timm tensors sat directly under the encoder's prefix (no "model.").
        # Moving them under "model." keeps those checkpoints loadable, strictly, with no user action.
        inner = prefix + "model."
        if not any(key.startswith(inner) for key in state_dict):
            for key in [k for k in state_dict if k.startswith(prefix)]:
                state_dict[inner + key[len(prefix):]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, channels={self.channels}, reductions={self.reductions}"
