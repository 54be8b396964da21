"""Hugging Face ``transformers`` depth networks as depthlab networks (the ``hf`` plugin).

:class:`HFDepthNetwork` wraps any ``AutoModelForDepthEstimation`` of the architectures below and
gives it depthlab's network contract: ``net(image)`` with ``image`` (B, 3, H, W) RGB in [0, 1], any
size, returns a :class:`~depthlab.models.output.DepthOutput` at (H, W), float32. The image
processor's work (resize, normalise, padding) and its ``post_process_depth_estimation`` (resize
back, padding removed, units) run inside ``forward`` in torch, so gradients flow through the whole
network, the result equals transformers' own pipeline on the same image (tests/models/test_hf.py
checks it to 1e-5 for every architecture) and the network exports as one graph.

==================  ==========================  ==========================  ==============================
architecture        output (``kind: auto``)     pretrained encoder(s)       preprocessing (the processor's)
==================  ==========================  ==========================  ==============================
``depth_anything``  its config's                ``model.backbone``          DPTImageProcessor: resize with
                    ``depth_estimation_type``:  (DINOv2)                    keep_aspect_ratio to a multiple
                    relative inverse depth or                               of 14, bicubic + antialias,
                    metres (``sigmoid *                                     ImageNet mean/std
                    max_depth``)
``dpt``             relative inverse depth      ``model.dpt`` (ViT) or      DPTImageProcessor (a fixed
                                                ``model.backbone``          square, 384 by default)
``glpn``            metres                      ``model.glpn``              GLPNImageProcessor: size
                                                                            floored to a multiple of 32
``zoedepth``        metres                      ``model.backbone``          ZoeDepthImageProcessor:
                                                                            reflect padding
                                                                            ``int(sqrt(h / 2) * 3)``, then
                                                                            resize (align_corners)
``depth_pro``       metres (inverse depth       its DINOv2 patch, image     DepthProImageProcessor:
                    scaled by the predicted     and field-of-view           normalise, then resize to
                    field of view)              encoders                    1536 x 1536
==================  ==========================  ==========================  ==============================

The processor settings come from the checkpoint's ``preprocessor_config.json``; a network built
from a config, or a folder without that file, uses the processor class's defaults, except Depth
Anything, whose published checkpoints (depth-anything/Depth-Anything-V2-*-hf) all use
``size 518, keep_aspect_ratio, ensure_multiple_of 14, bicubic, ImageNet mean/std`` and get those
(:data:`DEFAULT_PROCESSOR_KWARGS`). The input is already in [0, 1], so the processor's
``rescale`` (1/255, for 8-bit images) is left out: ``processor(images, do_rescale=False)`` is the
reference.

    net = HFDepthNetwork(pretrained="depth-anything/Depth-Anything-V2-Small-hf")    # relative
    net = HFDepthNetwork(pretrained="depth-anything/Depth-Anything-V2-Small-hf", kind="metric", max_depth=20)
    net = HFDepthNetwork(config={"model_type": "glpn", "depths": [1, 1, 1, 1]})     # random weights

Needs ``transformers`` >= 5 (``pip install 'depthlab[hf]'``; transformers 5 needs Python >= 3.11
and torch >= 2.6, its own floors).

Export (:mod:`depthlab.models.export`): the output is named ``relative_inverse_depth`` for a
relative network and ``depth`` for a metric one. The exported graph includes the pre- and
post-processing; which axes stay dynamic (:attr:`HFDepthNetwork.export_dynamic`) depends on what
the exporter can keep symbolic:

- ``dpt``, ``glpn``, and ``depth_anything`` with ``input_size: [h, w]``: batch, height and width
  dynamic (the model sees a fixed size, or GLPN's floor to 32, which the exporter keeps symbolic).
- ``depth_anything`` with its keep-aspect-ratio rule (the default, or an int ``input_size``):
  batch dynamic, height and width fixed at the traced size. The resize target is ``round()`` of a
  ratio of the input's sides with a branch on which side to fit, computed in Python; the exporter
  guards it to the traced value (``Guard failed: 14 * round(...) == 98``).
- ``zoedepth``: batch dynamic, size fixed (its padding ``int(sqrt(h / 2) * 3)`` and its size rule,
  which uses numpy, cannot be traced symbolically).
- ``depth_pro``: height and width dynamic, batch fixed at 1 (DepthPro's patch splitting turns the
  batch into a constant when traced).

A fixed axis takes only the traced value: the ONNX file then declares that size and refuses others.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from depthlab.errors import ConfigError
from depthlab.models.encoders import hub_endpoint, hub_reachable, pretrained_disabled
from depthlab.models.output import RELATIVE, DepthOutput

__all__ = ["DEFAULT_PROCESSOR_KWARGS", "HFDepthNetwork", "SUPPORTED"]

Kind = Literal["auto", "metric", "relative"]
SUPPORTED = ("depth_anything", "dpt", "glpn", "zoedepth", "depth_pro")
# What each architecture predicts: Depth Anything either (its config's depth_estimation_type).
METRIC_ONLY = ("glpn", "zoedepth", "depth_pro")
RELATIVE_ONLY = ("dpt",)
PROCESSOR_CLASSES = {
    "depth_anything": "DPTImageProcessor",
    "dpt": "DPTImageProcessor",
    "glpn": "GLPNImageProcessor",
    "zoedepth": "ZoeDepthImageProcessor",
    "depth_pro": "DepthProImageProcessor",
}
# transformers maps depth_anything to DPTImageProcessor, whose class defaults are DPT's (384 x 384
# square, mean/std 0.5); Depth Anything's published preprocessor_config.json (V1 and V2, every
# size) holds these instead.
DEFAULT_PROCESSOR_KWARGS: dict[str, dict[str, Any]] = {
    "depth_anything": {
        "size": {"height": 518, "width": 518},
        "keep_aspect_ratio": True,
        "ensure_multiple_of": 14,
        "resample": 3,  # PIL's BICUBIC
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "do_pad": False,
    },
}
# The pretrained backbones, relative to the network (for model.encoder_lr_mult / freeze_encoder_steps).
ENCODERS = {
    "depth_anything": ("model.backbone",),
    "zoedepth": ("model.backbone",),
    "dpt": ("model.dpt", "model.backbone"),
    "glpn": ("model.glpn",),
    "depth_pro": ("model.depth_pro.encoder.patch_encoder.model", "model.depth_pro.encoder.image_encoder.model",
                  "model.fov_model.fov_encoder.model"),
}
# Parameters transformers' depth models never use for depth (no gradient ever): DINOv2's masked-image-modelling
# token; the residual unit of the deepest fusion layer, which has no skip input (as in the original DPT);
# DPT's final layernorm, on a sequence output its neck does not read. They are frozen (requires_grad False,
# still loaded and saved), so that every trainable parameter gets a gradient: DDP's default
# find_unused_parameters=False would otherwise fail, and the network contract tests check it.
UNUSED_PARAMETERS = (
    r"\.embeddings\.mask_token$",
    r"^model\.neck\.fusion_stage\.layers\.0\.residual_layer1\.",
    r"^model\.fusion_stage\.intermediate\.0\.residual_layer1\.",  # depth_pro
    r"^model\.dpt\.layernorm\.",
)
# Hub files that say a model is in the local cache: its config and one form of its weights.
_HUB_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                     "pytorch_model.bin.index.json")
# DepthPro's post-processing clamps its inverse depth to this range before inverting it.
DEPTH_PRO_CLAMP = (1e-4, 1e4)


def _transformers() -> Any:
    """``import transformers``, or a one-line ConfigError saying how to install it."""
    try:
        import transformers
    except ImportError:
        raise ConfigError(
            "model.net: the hf network needs the `transformers` package (>= 5): pip install 'depthlab[hf]' "
            "(transformers 5 needs Python >= 3.11 and torch >= 2.6)"
        ) from None
    return transformers


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _offline_error(name: str, reason: str) -> ConfigError:
    return ConfigError(
        f"model.net.pretrained: could not get the Hugging Face model {name!r} ({reason}). This machine may be "
        "offline with no hub cache. Two ways out: (1) on a machine with network run "
        f"`hf download {name}` (huggingface_hub's CLI, formerly `huggingface-cli download`) and copy its "
        "Hugging Face cache (HF_HOME, default ~/.cache/huggingface) here, or set HF_HOME to a cache that has it; "
        f"or (2) set `pretrained: /path/to/folder`, a folder holding the model (`hf download {name} --local-dir "
        "DIR`, or HFDepthNetwork.save_pretrained) copied to this machine. `config:` instead builds the "
        "network with random weights."
    )


def _in_cache(repo_id: str, filename: str) -> bool:
    """Whether the hub cache (HF_HOME) holds ``filename`` of ``repo_id``."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, filename), str)
    except Exception:  # an id that is not a valid repository name
        return False


def _cached(repo_id: str, need_weights: bool) -> bool:
    """Whether the hub cache holds ``repo_id``'s config (and, with ``need_weights``, its weights)."""
    return _in_cache(repo_id, "config.json") and (
        not need_weights or any(_in_cache(repo_id, f) for f in _HUB_WEIGHT_FILES))


def _resolve_source(pretrained: str, need_weights: bool) -> tuple[str, dict[str, Any]]:
    """``pretrained`` -> (name or path, extra ``from_pretrained`` kwargs), failing fast when offline.

    A folder loads with ``local_files_only`` (no network request at all); a hub id in the cache
    likewise; a hub id neither cached nor reachable is an error in seconds (offline, the hub client
    would retry for about a minute).
    """
    if not isinstance(pretrained, str) or not pretrained.strip():
        raise ConfigError(f"model.net.pretrained: expected a hub id or a folder, got {pretrained!r}")
    path = Path(pretrained).expanduser()
    if path.is_dir():
        return str(path), {"local_files_only": True}
    if path.exists() or pretrained.startswith(("/", ".", "~")) or pretrained.count("/") > 1:
        raise ConfigError(
            f"model.net.pretrained: {pretrained!r} is not a folder (expected a Hugging Face hub id such as "
            "depth-anything/Depth-Anything-V2-Small-hf, or a folder written by save_pretrained / `hf download "
            "--local-dir`)"
        )
    if _cached(pretrained, need_weights):
        return pretrained, {"local_files_only": True}
    if not hub_reachable():
        raise _offline_error(pretrained, f"{hub_endpoint()} cannot be reached and the hub cache does not hold it")
    return pretrained, {}


def _config_from(tf: Any, config: Any, overrides: Mapping[str, Any]) -> Any:
    """A transformers config from a folder, a JSON file or a mapping with ``model_type``."""
    if isinstance(config, Mapping):
        fields = dict(config)
        model_type = fields.pop("model_type", None)
        if not isinstance(model_type, str):
            raise ConfigError(
                f"model.net.config: a mapping needs `model_type` (one of {', '.join(SUPPORTED)}), got keys "
                f"{sorted(fields)}"
            )
        try:
            return tf.AutoConfig.for_model(model_type, **{**fields, **overrides})
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"model.net.config: transformers cannot build it ({_first_line(exc)})") from None
    if isinstance(config, (str, os.PathLike)):
        path = Path(config).expanduser()
        if not path.exists():
            raise ConfigError(
                f"model.net.config: {str(path)!r} does not exist (expected a folder or JSON file of a transformers "
                "config, or a mapping with model_type)"
            )
        try:
            return tf.AutoConfig.from_pretrained(str(path), local_files_only=True, **overrides)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"model.net.config: cannot read {str(path)!r} ({_first_line(exc)})") from None
    raise ConfigError(f"model.net.config: expected a folder, a JSON file or a mapping, got {config!r}")


def _processor_overrides(model_type: str, input_size: int | Sequence[int] | None) -> dict[str, Any]:
    """``input_size`` as image-processor arguments (see :class:`HFDepthNetwork`)."""
    if input_size is None:
        return {}
    if model_type == "glpn":
        raise ConfigError(
            "model.net.input_size: glpn's processor keeps the input's size (floored to a multiple of 32) and has no "
            "target size; resize the images in the data instead"
        )
    if isinstance(input_size, int) and not isinstance(input_size, bool) and input_size > 0:
        return {"size": {"height": input_size, "width": input_size}}
    if (isinstance(input_size, Sequence) and not isinstance(input_size, str) and len(input_size) == 2
            and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in input_size)):
        overrides: dict[str, Any] = {"size": {"height": int(input_size[0]), "width": int(input_size[1])}}
        if model_type in ("depth_anything", "dpt", "zoedepth"):
            overrides["keep_aspect_ratio"] = False
        return overrides
    raise ConfigError(f"model.net.input_size: expected a positive integer or [height, width], got {input_size!r}")


def _build_processor(tf: Any, model_type: str, source: str | None, load_kwargs: dict[str, Any],
                     overrides: dict[str, Any]) -> Any:
    """The checkpoint's image processor (``preprocessor_config.json``) or the architecture's default."""
    expected = PROCESSOR_CLASSES[model_type]
    processor = None
    if source is not None:
        try:
            processor = tf.AutoImageProcessor.from_pretrained(source, **load_kwargs, **overrides)
        except OSError:  # no preprocessor_config.json: the architecture's defaults
            processor = None
    if processor is None:
        processor = getattr(tf, expected)(**{**DEFAULT_PROCESSOR_KWARGS.get(model_type, {}), **overrides})
    name = type(processor).__name__
    if name.removesuffix("Fast").removesuffix("Pil") != expected:
        raise ConfigError(
            f"model.net.pretrained: the checkpoint's image processor is {name}; depthlab reproduces {expected} for "
            f"{model_type} models"
        )
    if getattr(processor, "do_center_crop", None):
        raise ConfigError(f"model.net.pretrained: the checkpoint's {name} crops (do_center_crop), which depthlab does "
                          "not reproduce (the output must cover the whole input)")
    return processor


class HFDepthNetwork(nn.Module):
    """A Hugging Face ``transformers`` depth model (Depth Anything, DPT, GLPN, ZoeDepth, DepthPro) as a depthlab network.

    The processor's preprocessing and post-processing run in ``forward`` in torch (see the module
    docstring); the result equals ``processor.post_process_depth_estimation(model(**processor(image,
    do_rescale=False)), target_sizes=[(H, W)])`` and is returned as ``depth`` (metres, clamped below
    at ``min_depth``: bicubic resizing overshoots) or ``relative_inverse_depth`` (affine-invariant,
    not clamped).

    Args:
        pretrained: a hub id (``depth-anything/Depth-Anything-V2-Small-hf``) or a local folder (from
            :meth:`save_pretrained` or ``hf download ID --local-dir DIR``), loaded with
            ``AutoModelForDepthEstimation.from_pretrained`` and its processor settings with
            ``AutoImageProcessor.from_pretrained`` (a folder without ``preprocessor_config.json`` gets
            the architecture's defaults). A folder, or a hub id already in the cache (``HF_HOME``),
            loads with no network request; a hub id neither cached nor reachable is a one-line error
            within seconds. Inside :func:`~depthlab.models.encoders.pretrained_weights_disabled`
            (loading a depthlab checkpoint) only the config is read and the weights stay random.
        config: instead, a fresh network with random weights: a folder or JSON file of a transformers
            config, or a mapping with ``model_type`` and config fields (nested ``backbone_config``
            mappings allowed), built by ``AutoConfig.for_model``. Exactly one of the two.
        kind: ``auto`` (what the architecture predicts: Depth Anything its config's
            ``depth_estimation_type``, DPT relative, GLPN, ZoeDepth and DepthPro metric), ``metric`` or
            ``relative``. ``metric`` on a relative Depth Anything makes it metric as Depth Anything V2's
            metric models were made from the relative ones (same weights, the head's last activation
            ``sigmoid * max_depth`` instead of ReLU, depth_anything/metric_depth in the authors'
            repository): ``depth_estimation_type: metric`` and ``max_depth`` are set on the config
            before loading, so every pretrained weight loads. Asking an architecture for what it has
            no head for (DPT metric; GLPN, ZoeDepth, DepthPro relative) is an error.
        input_size: the processor's target size instead of the checkpoint's: an int ``n`` is its size
            dict ``{height: n, width: n}`` under the processor's own rule (Depth Anything: the side that
            needs the least scaling becomes ``n``, the other keeps the aspect ratio, both multiples of
            14; DPT, DepthPro: an n x n square); ``[h, w]`` resizes every image to exactly h x w (also
            for Depth Anything and ZoeDepth: keep_aspect_ratio off; still rounded to the processor's
            ensure_multiple_of). GLPN has no target size (an error).
        config_overrides: extra config fields set when loading (``from_pretrained(..., **overrides)``).
        load: with ``pretrained``: ``all`` (default) loads every weight; ``backbone`` only the
            backbone's (:meth:`encoder_names`), the neck and head start from transformers'
            initialisation, as Depth Anything V2's metric fine-tuning starts from the relative
            model's encoder (metric_depth/train.py loads the ``pretrained.*`` parameters only).
        min_depth, max_depth: metres, the module's (``model.min_depth``/``max_depth``). A fresh
            network's head, and a relative Depth Anything made metric, get ``max_depth``
            (``config.max_depth``; ZoeDepth's bin range); a pretrained metric model keeps its own
            (part of what it learned; a warning says when it differs from the module's).
    """

    def __init__(
        self,
        pretrained: str | None = None,
        config: str | dict[str, Any] | None = None,
        kind: Kind = "auto",
        input_size: int | list[int] | None = None,
        config_overrides: dict[str, Any] | None = None,
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
        load: Literal["all", "backbone"] = "all",
    ) -> None:
        super().__init__()
        tf = _transformers()
        if load not in ("all", "backbone"):
            raise ConfigError(f"model.net.load: expected all or backbone, got {load!r}")
        if load == "backbone" and pretrained is None:
            raise ConfigError("model.net.load: backbone keeps the pretrained backbone's weights; it needs `pretrained`")
        if (pretrained is None) == (config is None):
            raise ConfigError(
                "model.net: the hf network needs exactly one of `pretrained` (a hub id or a save_pretrained folder) "
                "and `config` (a transformers config: folder, JSON file or mapping with model_type), got "
                f"{'both' if pretrained is not None else 'neither'}"
            )
        if kind not in ("auto", "metric", "relative"):
            raise ConfigError(f"model.net.kind: expected auto, metric or relative, got {kind!r}")
        if not 0 < min_depth < max_depth:
            raise ConfigError(f"need 0 < min_depth < max_depth, got min_depth={min_depth}, max_depth={max_depth}")
        if config_overrides is not None and not isinstance(config_overrides, Mapping):
            raise ConfigError(f"model.net.config_overrides: expected a mapping of config fields, got {config_overrides!r}")
        overrides = dict(config_overrides or {})
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)

        source, load_kwargs = None, {}
        load_weights = pretrained is not None and not pretrained_disabled()
        if pretrained is not None:
            source, load_kwargs = _resolve_source(pretrained, need_weights=load_weights)
            try:
                cfg = tf.AutoConfig.from_pretrained(source, **load_kwargs, **overrides)
            except OSError as exc:
                raise _offline_error(pretrained, _first_line(exc)) from None
            except (ValueError, KeyError) as exc:
                raise ConfigError(f"model.net.pretrained: cannot read the config of {pretrained!r} "
                                  f"({_first_line(exc)})") from None
        else:
            cfg = _config_from(tf, config, overrides)
        model_type = getattr(cfg, "model_type", None)
        if model_type not in SUPPORTED:
            raise ConfigError(
                f"model.net: the hf network supports the depth models {', '.join(SUPPORTED)}; this one is "
                f"{model_type!r}"
            )
        self.model_type: str = model_type
        is_relative = self._resolve_kind(cfg, kind, fresh=pretrained is None, overrides=overrides)
        self.kind = RELATIVE if is_relative else "depth"

        if load_weights:
            try:
                self.model = tf.AutoModelForDepthEstimation.from_pretrained(
                    source, config=cfg, dtype=torch.float32, **load_kwargs)
            except OSError as exc:
                raise _offline_error(pretrained, _first_line(exc)) from None
        else:
            self.model = tf.AutoModelForDepthEstimation.from_config(cfg)
        if load_weights and load == "backbone":  # Depth Anything V2 metric_depth/train.py: a fresh head
            self._fresh_head(tf.AutoModelForDepthEstimation.from_config(cfg))
        self.model.train()  # from_pretrained returns eval mode; depthlab modules start in train mode like any nn.Module
        unused = re.compile("|".join(UNUSED_PARAMETERS))
        for name, param in self.named_parameters():
            if unused.search(name):
                param.requires_grad_(False)
        self.processor = _build_processor(tf, model_type, source, load_kwargs,
                                          _processor_overrides(model_type, input_size))
        self._read_processor()

    # --- construction helpers ---------------------------------------------------------------------

    def _resolve_kind(self, cfg: Any, kind: str, fresh: bool, overrides: Mapping[str, Any]) -> bool:
        """Checks ``kind`` against the architecture, edits ``cfg`` for a conversion; True when relative."""
        model_type = cfg.model_type
        if model_type == "depth_anything":
            native = cfg.depth_estimation_type
        else:
            native = "relative" if model_type in RELATIVE_ONLY else "metric"
        wanted = native if kind == "auto" else kind
        if wanted == "metric" and model_type in RELATIVE_ONLY:
            raise ConfigError(
                f"model.net.kind: metric: {model_type} has no metric head (it predicts relative inverse depth); use "
                "kind: relative (auto), align it in evaluation (model.eval_protocol.align: scale_shift), or a Depth "
                "Anything model, whose head can be made metric"
            )
        if wanted == "relative" and model_type in METRIC_ONLY:
            raise ConfigError(f"model.net.kind: relative: {model_type} has only a metric head (it predicts metres); "
                              "use kind: metric (auto)")
        set_max_depth = "max_depth" not in overrides
        if model_type == "depth_anything" and wanted != native:
            if wanted == "relative" and not fresh:
                raise ConfigError(
                    "model.net.kind: relative: this pretrained Depth Anything is metric (its weights predict metres, "
                    "sigmoid * max_depth); a relative head would read them as inverse depth. Use a relative "
                    "checkpoint (e.g. depth-anything/Depth-Anything-V2-Small-hf) or kind: metric"
                )
            cfg.depth_estimation_type = wanted
            if wanted == "metric" and set_max_depth:
                _set_max_depth(cfg, self.max_depth)
        elif fresh and wanted == "metric" and set_max_depth:
            if model_type in ("depth_anything", "glpn"):
                _set_max_depth(cfg, self.max_depth)
            elif model_type == "zoedepth":
                cfg.bin_configurations = [{**b, "min_depth": self.min_depth, "max_depth": self.max_depth}
                                          for b in cfg.bin_configurations]
        elif wanted == "metric" and set_max_depth:
            own = getattr(cfg, "max_depth", None)
            if own is not None and not math.isclose(float(own), self.max_depth):
                warnings.warn(
                    f"model.net: the pretrained {model_type} model predicts at most {own:g} m (its config's max_depth, "
                    f"kept: it is part of what it learned), model.max_depth is {self.max_depth:g} m",
                    stacklevel=3,
                )
        return wanted == "relative"

    def _read_processor(self) -> None:
        """The processor's settings as plain attributes for ``forward``."""
        from torchvision.transforms.v2 import InterpolationMode
        from transformers.image_utils import pil_torch_interpolation_mapping

        p = self.processor
        resample = p.resample
        self.interpolation = (resample if isinstance(resample, InterpolationMode)
                              else pil_torch_interpolation_mapping[resample])
        size = getattr(p, "size", None)
        self.target_size = None if size is None or not getattr(size, "height", None) else (size.height, size.width)
        self.do_resize = bool(p.do_resize)
        self.do_normalize = bool(getattr(p, "do_normalize", False))
        self.image_mean = list(p.image_mean) if self.do_normalize else None
        self.image_std = list(p.image_std) if self.do_normalize else None
        self.do_pad = bool(getattr(p, "do_pad", False))
        self.keep_aspect_ratio = bool(getattr(p, "keep_aspect_ratio", False))
        self.ensure_multiple_of = getattr(p, "ensure_multiple_of", None) or 1
        self.size_divisor = getattr(p, "size_divisor", None)
        if self.do_resize and self.target_size is None and self.model_type != "glpn":
            raise ConfigError(f"model.net: the {type(p).__name__} has no height/width size ({size}); set input_size")
        if self.model_type == "dpt" and self.do_pad and not self.size_divisor:
            raise ConfigError("model.net: the DPT processor pads (do_pad) without a size_divisor")

    # --- the contract -------------------------------------------------------------------------------

    @property
    def provides(self) -> frozenset[str]:
        """The :class:`DepthOutput` fields this network fills."""
        return frozenset({self.kind})

    @property
    def export_dynamic(self) -> frozenset[str]:
        """The axes an export keeps dynamic, of ``batch`` and ``size`` (module docstring, Export;
        :func:`depthlab.models.export.dynamic_axes`)."""
        if self.model_type == "depth_pro":
            return frozenset({"size"})
        if self.model_type == "zoedepth" or (self.model_type == "depth_anything" and self._size_from_input()):
            return frozenset({"batch"})
        return frozenset({"batch", "size"})

    @property
    def export_fixed_reason(self) -> str:
        """Why :attr:`export_dynamic` leaves an axis out (for ``depthlab export``'s message)."""
        if self.model_type == "depth_pro":
            return "DepthPro's model fixes the batch when traced"
        if self.model_type == "zoedepth":
            return "ZoeDepth's padding int(sqrt(h / 2) * 3) and resize target are computed from the input size in Python"
        if self._size_from_input():
            return ("Depth Anything's resize target follows the input's aspect ratio, computed in Python; "
                    "input_size: [h, w] resizes to a fixed size and exports with dynamic sizes")
        return ""

    def _size_from_input(self) -> bool:
        return self.do_pad or (self.do_resize and self.keep_aspect_ratio)

    def _fresh_head(self, fresh: nn.Module) -> None:
        """Every weight outside the backbone from ``fresh`` (transformers' initialisation): only the
        pretrained backbone is kept, as Depth Anything V2's metric fine-tuning loads its relative
        checkpoint (the parameters named ``pretrained``) into a new model."""
        prefixes = tuple(name[len("model."):] + "." for name in self.encoder_names())
        state = self.model.state_dict()
        state.update({k: v for k, v in fresh.state_dict().items() if not k.startswith(prefixes)})
        self.model.load_state_dict(state)

    def encoder_names(self) -> list[str]:
        """Names (relative to this network) of the pretrained backbones, for ``model.encoder_lr_mult`` and
        ``model.freeze_encoder_steps`` (:func:`depthlab.training.optim.encoder_prefixes`)."""
        modules = dict(self.named_modules())
        return [name for name in ENCODERS[self.model_type] if name in modules]

    def forward(self, image: Tensor) -> DepthOutput:
        """(B, 3, H, W) RGB in [0, 1] -> DepthOutput at (H, W): ``depth`` or ``relative_inverse_depth``."""
        height, width = image.shape[-2:]
        pixel_values = self.preprocess(image.float())
        outputs = self.model(pixel_values=pixel_values)
        prediction = self.postprocess(outputs, (height, width)).float()
        if self.kind == RELATIVE:
            return DepthOutput(depth=None, relative_inverse_depth=prediction)
        return DepthOutput(depth=prediction.clamp_min(self.min_depth))

    def preprocess(self, image: Tensor) -> Tensor:
        """What the processor's ``preprocess(image, do_rescale=False)`` gives as ``pixel_values``, in torch."""
        from torchvision.transforms.v2 import functional as tvF

        x = image
        if self.model_type in ("depth_anything", "dpt"):  # DPTImageProcessor._preprocess
            if self.do_resize:
                from transformers.models.dpt.image_processing_dpt import get_resize_output_image_size

                size = get_resize_output_image_size(self._size_reference(x), self.target_size,
                                                    self.keep_aspect_ratio, self.ensure_multiple_of)
                x = _resize(x, (size.height, size.width), self.interpolation, antialias=True)
            x = self._normalize(x)
            if self.do_pad:
                x = _center_pad(x, self.size_divisor)
        elif self.model_type == "glpn":  # GLPNImageProcessor: floor to a multiple of size_divisor
            if self.do_resize:
                div = self.size_divisor
                x = _resize(x, (x.shape[-2] // div * div, x.shape[-1] // div * div), self.interpolation,
                            antialias=True)
            x = self._normalize(x)
        elif self.model_type == "zoedepth":  # pad (reflect), resize with align_corners, normalise
            if self.do_pad:
                pad_h, pad_w = _zoedepth_padding(x.shape[-2], x.shape[-1])
                x = tvF.pad(x, padding=[pad_w, pad_h], padding_mode="reflect")
            if self.do_resize:
                from transformers.image_utils import ChannelDimension
                from transformers.models.zoedepth.image_processing_zoedepth import get_resize_output_image_size

                h, w = get_resize_output_image_size(x, self.target_size, self.keep_aspect_ratio,
                                                    self.ensure_multiple_of, input_data_format=ChannelDimension.FIRST)
                x = F.interpolate(x, (int(h), int(w)), mode=self.interpolation.value, align_corners=True)
            x = self._normalize(x)
        else:  # depth_pro: normalise first, then resize without antialias
            x = self._normalize(x)
            if self.do_resize:
                x = _resize(x, self.target_size, self.interpolation, antialias=False)
        return x

    def _size_reference(self, x: Tensor) -> Tensor:
        """The image the size rule reads the input size from: ``x``, or while exporting with
        keep_aspect_ratio off, a stand-in of the target size. The rule's result is then the target
        rounded to ensure_multiple_of whatever the input (``round(target / H * H / m) * m``); given the
        symbolic input size it would stay a ``round()`` in the graph, which ONNX cannot express. (It
        differs only if ``target / m`` were within float rounding of a half-integer, checked in
        tests/models/test_hf.py for the sizes used.)"""
        if self.keep_aspect_ratio or not torch.compiler.is_compiling():
            return x
        return x.new_empty((0, 0, *self.target_size))

    def _normalize(self, x: Tensor) -> Tensor:
        if not self.do_normalize:
            return x
        from torchvision.transforms.v2 import functional as tvF

        return tvF.normalize(x, self.image_mean, self.image_std)

    def postprocess(self, outputs: Any, size: tuple[int, int]) -> Tensor:
        """The processor's ``post_process_depth_estimation(outputs, target_sizes=[size] * B)``, batched: (B, 1, H, W)."""
        from torchvision.transforms.v2 import InterpolationMode

        height, width = size
        predicted = outputs.predicted_depth.unsqueeze(1).float()
        if self.model_type == "zoedepth":
            pad_h, pad_w = _zoedepth_padding(height, width) if self.do_pad else (0, 0)
            predicted = _resize(predicted, (height + 2 * pad_h, width + 2 * pad_w), InterpolationMode.BICUBIC,
                                antialias=False)
            predicted = predicted[..., pad_h:pad_h + height, pad_w:pad_w + width]
            return predicted
        if self.model_type == "depth_pro":
            fov = getattr(outputs, "field_of_view", None)
            if fov is not None:  # inverse depth relative to the focal length, from the predicted field of view
                focal_length = 0.5 * width / torch.tan(0.5 * torch.deg2rad(fov))
                predicted = predicted * width / focal_length.view(-1, 1, 1, 1)
            predicted = F.interpolate(predicted, size=(height, width), mode=self.interpolation.value)
            return 1.0 / torch.clamp(predicted, min=DEPTH_PRO_CLAMP[0], max=DEPTH_PRO_CLAMP[1])
        return F.interpolate(predicted, size=(height, width), mode="bicubic", align_corners=False)

    # --- saving ----------------------------------------------------------------------------------------

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write the model (config, weights) and the processor settings in use (``input_size`` included) to
        ``folder``; ``HFDepthNetwork(pretrained=folder)`` rebuilds this network with identical outputs."""
        folder = Path(folder).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(folder))
        self.processor.save_pretrained(str(folder))
        return folder

    def extra_repr(self) -> str:
        size = "input size" if self.target_size is None else f"{self.target_size[0]}x{self.target_size[1]}"
        return (f"model_type={self.model_type}, kind={self.kind}, processor={type(self.processor).__name__} "
                f"({size}, keep_aspect_ratio={self.keep_aspect_ratio})")


def _resize(x: Tensor, size: Sequence[int], interpolation: Any, antialias: bool) -> Tensor:
    """torchvision's ``transforms.v2.functional.resize`` of a float32 (B, C, H, W) tensor, the processors' resize.

    The same ``F.interpolate`` call (align_corners False for bilinear and bicubic, antialias only for
    those), without torchvision's early return for an unchanged size: that is a Python branch on the
    input's size, which an export would freeze, and interpolating to the same size gives the input
    back exactly (tests/models/test_hf.py checks both against torchvision).
    """
    mode = interpolation.value
    smooth = mode in ("bilinear", "bicubic")
    return F.interpolate(x, size=(size[0], size[1]), mode=mode, align_corners=False if smooth else None,
                         antialias=antialias and smooth)


def _set_max_depth(cfg: Any, max_depth: float) -> None:
    """``cfg.max_depth = max_depth``; some configs type it int (GLPNConfig), which then needs whole metres."""
    try:
        cfg.max_depth = max_depth
    except Exception:  # huggingface_hub's StrictDataclassFieldValidationError (an Exception only)
        if not float(max_depth).is_integer():
            raise ConfigError(
                f"model.max_depth: {cfg.model_type}'s config takes a whole number of metres as max_depth, got "
                f"{max_depth:g}"
            ) from None
        cfg.max_depth = int(max_depth)


def _zoedepth_padding(height: int, width: int) -> tuple[int, int]:
    """ZoeDepth's reflect padding ``int(sqrt(side / 2) * 3)`` per side (ZoeDepth's depth_model.py, fh = fw = 3)."""
    return int(math.sqrt(height / 2) * 3), int(math.sqrt(width / 2) * 3)


def _center_pad(x: Tensor, divisor: int) -> Tensor:
    """DPTImageProcessor.pad_image: zeros around the image up to multiples of ``divisor``, centred."""
    height, width = x.shape[-2:]
    pad_h = math.ceil(height / divisor) * divisor - height
    pad_w = math.ceil(width / divisor) * divisor - width
    return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
