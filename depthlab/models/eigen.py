"""The multi-scale network of Eigen, Puhrsch & Fergus (NIPS 2014): a coarse global and a fine local stack.

"Depth Map Prediction from a Single Image using a Multi-Scale Deep Network". The coarse stack sees
the whole image (convolutions, then fully connected layers whose every output unit sees every
input pixel) and predicts a low-resolution depth map of the scene; the fine stack convolves the
image, concatenates the coarse prediction as an extra feature map and refines it locally.
The paper's NYU setting: input 304x228 (W x H), both stacks' outputs 74x55, a quarter of the input.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from depthlab.errors import ConfigError
from depthlab.models.encoders import Encoder, Normalize, pretrained_disabled, resolve_pretrained
from depthlab.models.heads import DepthHead, Output
from depthlab.models.layers import resize, resize_output
from depthlab.models.output import DepthOutput

Stage = Literal["joint", "coarse", "fine"]

NYU_INPUT_SIZE = (228, 304)  # (H, W), Eigen et al. 2014, NYU Depth v2 (the paper's 304x228)
_COARSE_CHANNELS = 256  # channels entering the fully connected layers (the paper's coarse5)


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


def fine_output_size(input_size: Sequence[int]) -> tuple[int, int]:
    """Output size of the fine stack's first layer: 9x9 conv stride 2 (no padding), 2x2 max-pool.

    (228, 304) -> (55, 74), the paper's NYU output size.
    """
    return tuple(_conv_out(s, 9, 2) // 2 for s in input_size)  # type: ignore[return-value]


def _original_grid(input_size: Sequence[int]) -> tuple[int, int]:
    # coarse1 11x11 stride 4 + pool 2, coarse2 + pool 2, coarse5 + pool 2
    return tuple(max(_conv_out(s, 11, 4) // 8, 1) for s in input_size)  # type: ignore[return-value]


class OriginalCoarseLayers(nn.Sequential):
    """The paper's coarse1-coarse5 (AlexNet-like): 11x11/4 96, 5x5 256, 3x3 384, 3x3 384, 3x3 256.

    Input: the image normalised with ImageNet's mean/std (:class:`Normalize`'s default).
    """

    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, _COARSE_CHANNELS, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )


class TimmCoarseLayers(nn.Module):
    """A timm backbone's deepest feature map, reduced to 256 channels by a 1x1 convolution.

    Input: the image normalised by ``backbone.normalize`` (Eigen2014 normalises once for both stacks).
    """

    def __init__(self, name: str, pretrained: bool | str) -> None:
        super().__init__()
        self.backbone = Encoder(name, pretrained)
        self.reduce = nn.Sequential(nn.Conv2d(self.backbone.channels[-1], _COARSE_CHANNELS, 1), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.reduce(self.backbone.forward_normalized(x)[-1])


class CoarseStack(nn.Module):
    """Global stack: conv layers -> (pool to a fixed grid) -> FC ``fc_width`` -> FC to the output map."""

    def __init__(
        self,
        layers: nn.Module,
        grid: tuple[int, int],
        output_size: tuple[int, int],
        out_channels: int,
        fc_width: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.layers = layers
        self.pool = nn.AdaptiveAvgPool2d(grid)  # identity at the configured input size
        self.output_size = tuple(output_size)
        self.out_channels = out_channels
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(_COARSE_CHANNELS * grid[0] * grid[1], fc_width),  # coarse6
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc_width, out_channels * output_size[0] * output_size[1]),  # coarse7, linear
        )

    def forward(self, x: Tensor) -> Tensor:
        """Normalised image at the configured input size -> logits (B, C, *output_size)."""
        y = self.fc(self.pool(self.layers(x)))
        return y.unflatten(1, (self.out_channels, *self.output_size))


class FineStack(nn.Module):
    """Local stack: fine1 9x9/2 conv 63 + pool, concat the coarse map, fine2 5x5 64, fine3 5x5 (linear)."""

    def __init__(self, output_size: tuple[int, int], out_channels: int) -> None:
        super().__init__()
        self.output_size = tuple(output_size)
        self.fine1 = nn.Sequential(nn.Conv2d(3, 63, 9, stride=2), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.fine2 = nn.Sequential(nn.Conv2d(64, 64, 5, padding=2), nn.ReLU(inplace=True))
        self.fine3 = nn.Conv2d(64, out_channels, 5, padding=2)

    def forward(self, x: Tensor, coarse_logits: Tensor) -> Tensor:
        local = resize(self.fine1(x), self.output_size)  # exact identity at the paper's sizes
        return self.fine3(self.fine2(torch.cat([local, coarse_logits[:, :1]], dim=1)))


class Eigen2014(nn.Module):
    """Eigen et al. 2014 coarse/fine network: global FC stack + local refining stack (NYU sizes default).

    The coarse stack's fully connected layers fix the working resolution: every image is resized
    (bilinear) to ``input_size``, both stacks predict at ``output_size`` and the result is
    upsampled (bilinear) back to the image's own size, so the output contract holds at any size.

    Training as in the paper, coarse then fine: train with ``stage: coarse`` (the output is the
    coarse map; the fine stack is frozen), then with ``stage: fine`` and ``coarse_weights:`` that
    run's checkpoint (the coarse stack is loaded, frozen and kept in eval mode; only the fine stack
    learns). ``stage: joint`` trains both at once through the fine output.

    Args:
        input_size: (H, W) the network works at; default the paper's NYU (228, 304).
        output_size: (H, W) of both stacks' predictions; default the fine stack's natural size,
            a quarter of the input ((55, 74) at NYU size, the paper's 74x55).
        stage: ``joint``, ``coarse`` or ``fine`` (see above).
        coarse_encoder: a timm model name to use as the coarse convolutional layers instead of
            the paper's (its deepest feature map, reduced to 256 channels, feeds the FC layers).
        pretrained: weights of ``coarse_encoder``: False, True (timm hub) or a local file.
        coarse_weights: a depthlab/Lightning checkpoint or state-dict file of an Eigen2014 network
            (e.g. from a ``stage: coarse`` run) whose coarse stack is loaded.
        fc_width: units of the first fully connected layer (paper: 4096).
        dropout: dropout after it (paper: 0.5).
        min_depth, max_depth: output range in metres.
        output: ``depth`` (the head predicts metres) or ``inverse_depth`` (it predicts 1/m;
            ``depth`` is still returned, in metres).
        uncertainty: add a ``log_variance`` output (see DepthHead).
    """

    def __init__(
        self,
        input_size: tuple[int, int] = NYU_INPUT_SIZE,
        output_size: tuple[int, int] | None = None,
        stage: Stage = "joint",
        coarse_encoder: str | None = None,
        pretrained: bool | str = False,
        coarse_weights: str | None = None,
        fc_width: int = 4096,
        dropout: float = 0.5,
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
        output: Output = "depth",
        uncertainty: bool = False,
    ) -> None:
        super().__init__()
        if stage not in ("joint", "coarse", "fine"):
            raise ConfigError(f"model.net.stage: expected 'joint', 'coarse' or 'fine', got {stage!r}")
        input_size = tuple(int(s) for s in input_size)
        if len(input_size) != 2 or min(input_size) < 40:  # coarse1-5 need >= 39 pixels
            raise ConfigError(f"model.net.input_size: expected (H, W) of at least 40 pixels each, got {input_size}")
        output_size = tuple(int(s) for s in output_size) if output_size is not None else fine_output_size(input_size)
        if len(output_size) != 2 or min(output_size) < 1:
            raise ConfigError(f"model.net.output_size: expected (H, W), got {output_size}")
        self.input_size, self.output_size, self.stage = input_size, output_size, stage
        self.head = DepthHead(min_depth, max_depth, output, uncertainty)

        if coarse_encoder is None:
            if resolve_pretrained(pretrained) is not False:
                raise ConfigError(
                    "model.net.pretrained: eigen2014's original coarse layers have no pretrained weights; "
                    "set coarse_encoder (a timm model name) to use pretrained ones"
                )
            layers: nn.Module = OriginalCoarseLayers()
            grid = _original_grid(input_size)
            self.normalize = Normalize()  # ImageNet statistics
        else:
            layers = TimmCoarseLayers(coarse_encoder, pretrained)
            grid = tuple(max(round(s / layers.backbone.reductions[-1]), 1) for s in input_size)
            # Both stacks see the image normalised as the backbone expects it: the same module.
            self.normalize = layers.backbone.normalize
        self.coarse = CoarseStack(layers, grid, output_size, self.head.out_channels, fc_width, dropout)
        self.fine = FineStack(output_size, self.head.out_channels)

        if coarse_weights is not None and not pretrained_disabled():
            self.load_coarse_weights(coarse_weights)
        elif stage == "fine" and not pretrained_disabled():
            warnings.warn(
                "eigen2014 stage 'fine' without coarse_weights: the frozen coarse stack keeps its random "
                "initialisation (set coarse_weights to the checkpoint of a 'coarse' run)",
                stacklevel=2,
            )
        frozen = {"coarse": self.fine, "fine": self.coarse}.get(stage)
        if frozen is not None:
            frozen.requires_grad_(False)

    def load_coarse_weights(self, path: str | Path) -> None:
        """Load the ``coarse.*`` tensors of a depthlab checkpoint or Eigen2014 state dict, strictly."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise ConfigError(f"model.net.coarse_weights: file {str(path)!r} does not exist")
        from depthlab.checkpointing.io import read_checkpoint

        try:
            state = read_checkpoint(path, lightning=False)  # a depthlab checkpoint or a bare state dict
        except ConfigError as exc:
            raise ConfigError(f"model.net.coarse_weights: {exc}") from None
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        if not isinstance(state, dict):
            raise ConfigError(f"model.net.coarse_weights: {str(path)!r} holds a {type(state).__name__}, "
                              "not a checkpoint or state dict")
        for prefix in ("net.coarse.", "coarse."):
            picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            if picked:
                break
        try:
            self.coarse.load_state_dict(picked, strict=True)
        except RuntimeError as exc:
            raise ConfigError(
                f"model.net.coarse_weights: {str(path)!r} does not hold a matching coarse stack "
                f"({len(picked)} coarse tensors found; same input_size, output_size, fc_width and "
                f"coarse_encoder needed): {str(exc).splitlines()[0]}"
            ) from exc

    def train(self, mode: bool = True) -> "Eigen2014":
        super().train(mode)
        if self.stage == "fine":  # the frozen coarse stack keeps its dropout off
            self.coarse.eval()
        return self

    def forward_stages(self, image: Tensor) -> dict[str, DepthOutput]:
        """Both stacks' outputs at ``output_size``, before upsampling: ``{"coarse": ..., "fine": ...}``.

        Each is a DepthOutput at (B, 1, *output_size); ``fine`` is absent at ``stage: coarse``.
        """
        x = resize(self.normalize(image), self.input_size)
        if self.stage == "fine":
            with torch.no_grad():
                coarse_logits = self.coarse(x)
        else:
            coarse_logits = self.coarse(x)
        out = {"coarse": self.head(coarse_logits)}
        if self.stage != "coarse":
            out["fine"] = self.head(self.fine(x, coarse_logits))
        return out

    def forward(self, image: Tensor) -> DepthOutput:
        """(B, 3, H, W) RGB in [0, 1] -> DepthOutput at (H, W): the fine (at ``stage: coarse``, the coarse) map.

        The map is upsampled bilinearly from ``output_size``; an ``inverse_depth`` network's
        inverse depth is the quantity interpolated (``layers.resize_output``).
        """
        stages = self.forward_stages(image)
        return resize_output(stages["coarse" if self.stage == "coarse" else "fine"], image.shape[-2:])
