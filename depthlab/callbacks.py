"""Lightning callbacks for the depthlab CLI: prediction writing, performance options, summary.

Add them under ``trainer.callbacks`` in a YAML config::

    trainer:
      precision: bf16-mixed          # mixed precision is Lightning's own option
      callbacks:
        - class_path: depthlab.callbacks.PerformanceOptions
          init_args: {channels_last: true, compile: false}
        - class_path: depthlab.callbacks.NetworkSummaryCallback
        - class_path: depthlab.callbacks.DepthPredictionWriter   # acts in `depthlab predict` (added
          init_args: {output_dir: predictions, format: [png16, npy]}   # with its defaults when absent)

The performance callbacks act on ``pl_module.net`` (DepthModule's network), or on the whole
module if it has no ``net``. Networks themselves know nothing of Lightning.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Literal, Sequence

import cv2
import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from depthlab.data.batch import output_stem
from depthlab.errors import ConfigError
from depthlab.models.layers import resize_output
from depthlab.models.output import RELATIVE, DepthOutput
from depthlab.models.performance import (
    compile_network,
    compile_unavailable_reason,
    image_to_channels_last,
    summarize,
    to_channels_last,
)
from depthlab.visualize import turbo_rgb


PredictionFormat = Literal["png16", "color", "npy", "ply"]
PREDICTION_FORMATS = ("png16", "color", "npy", "ply")


class DepthPredictionWriter(BasePredictionWriter):
    """Writes every depth map of ``depthlab predict`` (which adds one with the defaults when the
    config has no prediction writer; see :func:`add_default_prediction_writer`).

    Files per image, by ``format``: ``<stem>.png`` (png16: uint16, depth * ``png_scale``, 0 = no
    depth: KITTI's convention with scale 256, NYU's millimetres with 1000; depths above
    65535 / png_scale metres are clipped), ``<stem>_color.png`` (color: 8-bit RGB turbo preview,
    near blue, far red), ``<stem>.npy`` (npy: float32 metres, (H, W)) and ``<stem>.ply`` (ply: the
    valid pixels as a binary PLY point cloud in metres, camera frame z forward, x right, y down,
    coloured by the image: :mod:`depthlab.pointcloud`; intrinsics from the batch (the data module's,
    rescaled to the image's own size) or from ``fx``/``hfov_deg``; the optional extra ``ply``).

    A video input (:class:`depthlab.data.ImageFolderDataModule` with a video file) is written as
    ``<video stem>_depth.mp4``: each frame's colour-mapped depth at the video's frame rate (colours
    up to ``color_max_depth``, else the model's ``max_depth``, the same for every frame), frame by
    frame; the per-frame files of ``format`` only with ``video_frames: true``.

    A relative network (``relative_inverse_depth``: no metres) is written as ``<stem>.npy`` (float32,
    the network's relative inverse depth) and ``<stem>_color.png`` (each image's own range, near
    blue, far red): the default formats for it; ``png16`` and ``ply`` hold metres and are refused.

    ``<stem>``: a batch with ``name`` (:class:`depthlab.data.ImageFolderDataModule`) names each
    file after its input, subfolders kept (``sub/a.jpg`` -> ``sub/a.png``); otherwise the sample's
    index in the predict data set (``000042.png``), which lines up with its file list on any number
    of devices. A batch with ``original_size`` (H, W per sample) has each prediction resized back to
    it, interpolating the network's native quantity (inverse depth for ``output: inverse_depth``
    networks, as :func:`depthlab.models.layers.resize_output`).

    Args:
        output_dir: folder to write to (created); None: ``predictions/`` in the run's log folder
            (``trainer.log_dir``, beside the ``config.yaml`` Lightning saves there).
        format: one of ``png16``, ``color``, ``npy``, ``ply``, or a list of them; None (default):
            ``png16`` and ``color`` for a metric network, ``npy`` and ``color`` for a relative one.
        png_scale: metres -> PNG units for ``png16``.
        color_max_depth: metres at the far end of the preview's colour map; None: each image's
            own maximum (the full range of every image; colours then differ between images).
        fx: focal length in pixels of the images as stored (square pixels, principal point at the
            centre), for ``ply`` when the data carries no intrinsics.
        hfov_deg: the horizontal field of view instead of ``fx``.
        video_frames: for a video input, also write every frame's files in ``format``.
    """

    def __init__(
        self,
        output_dir: str | None = None,
        format: PredictionFormat | Sequence[PredictionFormat] | None = None,
        png_scale: float = 256.0,
        color_max_depth: float | None = None,
        fx: float | None = None,
        hfov_deg: float | None = None,
        video_frames: bool = False,
    ) -> None:
        super().__init__(write_interval="batch")
        self._format_given = format is not None
        format = ("png16", "color") if format is None else format
        formats = [format] if isinstance(format, str) else list(format)
        unknown = [f for f in formats if f not in PREDICTION_FORMATS]
        if unknown or not formats:
            raise ConfigError(
                f"DepthPredictionWriter.format: expected any of {list(PREDICTION_FORMATS)}, got {format!r}"
            )
        if not png_scale > 0:
            raise ConfigError(f"DepthPredictionWriter.png_scale: must be > 0, got {png_scale}")
        if color_max_depth is not None and not color_max_depth > 0:
            raise ConfigError(f"DepthPredictionWriter.color_max_depth: must be > 0, got {color_max_depth}")
        if fx is not None and hfov_deg is not None:
            raise ConfigError("DepthPredictionWriter: give fx or hfov_deg, not both")
        if fx is not None and not fx > 0:
            raise ConfigError(f"DepthPredictionWriter.fx: must be > 0 pixels, got {fx}")
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.formats = tuple(dict.fromkeys(formats))
        self.png_scale = png_scale
        self.color_max_depth = color_max_depth
        self.fx, self.hfov_deg, self.video_frames = fx, hfov_deg, video_frames
        self.written = 0  # images written by this process in the current predict run
        self._video: Any = None  # depthlab.video.VideoWriter of a video input
        self._video_vmax = 1.0

    def setup(self, trainer, pl_module, stage: str) -> None:  # noqa: ANN001
        if stage != "predict":
            return
        if self.output_dir is None:
            # log_dir on every rank: under DDP it is broadcast from rank 0, so all ranks agree.
            self.output_dir = Path(trainer.log_dir or trainer.default_root_dir) / "predictions"
        self.written = 0
        from depthlab.models import provides

        self._relative(RELATIVE in (provides(_network(pl_module)) or ()))
        datamodule = getattr(trainer, "datamodule", None)
        if "ply" in self.formats and self.fx is None and self.hfov_deg is None and \
                "intrinsics" not in (getattr(datamodule, "provides", None) or ()):
            raise ConfigError(f"predict: format ply needs the camera: the data module {type(datamodule).__name__} has no "
                              "intrinsics; give the writer fx (pixels) or hfov_deg, e.g. "
                              "--trainer.callbacks+=depthlab.callbacks.DepthPredictionWriter ... fx: 720")
        if "ply" in self.formats:
            from depthlab.pointcloud import write_ply  # noqa: F401  (the extra is missing: one line now)

            try:
                import plyfile  # noqa: F401
            except ImportError:
                raise ConfigError("predict: format ply needs plyfile: pip install 'depthlab[ply]'") from None
        video = getattr(datamodule, "video", None) if hasattr(type(datamodule), "video") else None
        if video is not None:
            from depthlab.video import VideoWriter

            self._video_vmax = self.color_max_depth or float(pl_module.hparams.get("max_depth", 10.0))
            path = self.output_dir / f"{video.path.stem}_depth.mp4"
            self._video = VideoWriter(path, video.info.fps) if trainer.is_global_zero else None
        if trainer.is_global_zero:
            what = self._describe() if video is None or self.video_frames else ""
            if video is not None:
                what = f"{video.path.stem}_depth.mp4 ({float(video.info.fps):g} fps)" + (f" and {what}" if what else "")
            print(f"predict: writing {what} to {self.output_dir.resolve()}", flush=True)

    def _relative(self, relative: bool) -> None:
        """Formats for a relative network: npy and color by default; metres-only formats refused."""
        if not relative or getattr(self, "_is_relative", False):
            return
        metric = [f for f in self.formats if f in ("png16", "ply")]
        if metric and self._format_given:
            raise ConfigError(
                f"DepthPredictionWriter.format: {metric[0]} holds metres, but the network predicts relative inverse "
                "depth (no unit); write npy (float32) and color instead, or make the network metric")
        if not self._format_given:
            self.formats = ("npy", "color")
        self._is_relative = True

    def _describe(self) -> str:
        unit = "relative inverse depth" if getattr(self, "_is_relative", False) else "metres"
        parts = {"png16": f"<name>.png (uint16, depth x {self.png_scale:g})", "color": "<name>_color.png (turbo)",
                 "npy": f"<name>.npy (float32 {unit})", "ply": "<name>.ply (point cloud, metres)"}
        return ", ".join(parts[f] for f in self.formats)

    def write_on_batch_end(
        self, trainer, pl_module, prediction: DepthOutput, batch_indices: Sequence[int] | None, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:
        self._relative(prediction.is_relative)  # a network that declared nothing: known from its output
        out = DepthOutput(prediction.depth, prediction.inverse_depth,  # the fields resized and written
                          relative_inverse_depth=prediction.relative_inverse_depth)
        out = out.map(lambda t: t.detach().float())
        count = out.prediction.shape[0]
        batch = batch if isinstance(batch, dict) else {}
        names, sizes = batch.get("name"), batch.get("original_size")
        if names is None and batch_indices is None:  # a sampler that does not report indices: number by batch
            batch_indices = [batch_idx * count + i for i in range(count)]
        for i in range(count):
            one = out.select(slice(i, i + 1))
            if sizes is not None and tuple(one.prediction.shape[-2:]) != tuple(int(s) for s in sizes[i]):
                one = resize_output(one, [int(s) for s in sizes[i]])
            stem = output_stem(names[i], None) if names is not None else output_stem(None, batch_indices[i])
            if one.is_relative:
                relative = one.prediction[0, 0].cpu().numpy()
                if self._video is not None:
                    self._video.write(relative_rgb(relative))
                    if not self.video_frames:
                        self.written += 1
                        continue
                self.write_relative(stem, relative)
                continue
            depth = one.depth[0, 0].cpu().numpy()
            if self._video is not None:
                self._video.write(turbo_rgb(depth, self._video_vmax))
                if not self.video_frames:
                    self.written += 1
                    continue
            self.write(stem, depth)
            if "ply" in self.formats:
                self._write_ply(stem, depth, batch, i)

    def _write_ply(self, stem: str, depth_m: np.ndarray, batch: dict, i: int) -> None:
        """The point cloud of one prediction (at the image's own size, ``depth_m``'s)."""
        from depthlab.depth_ops import scale_intrinsics
        from depthlab.pointcloud import depth_to_ply, intrinsics_from_fov

        height, width = depth_m.shape
        image = batch.get("image")
        rgb = None
        if image is not None:
            pixels = image[i : i + 1].detach().float()
            if tuple(pixels.shape[-2:]) != (height, width):
                pixels = torch.nn.functional.interpolate(pixels, size=(height, width), mode="bilinear", align_corners=False)
            rgb = (pixels[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        k = batch.get("intrinsics")
        if k is not None:
            in_h, in_w = image.shape[-2:] if image is not None else (height, width)
            camera = scale_intrinsics(k[i].tolist(), width / in_w, height / in_h)  # batch pixels -> the image's own
        elif self.fx is not None:
            camera = (self.fx, self.fx, (width - 1) / 2, (height - 1) / 2)
        else:
            camera = intrinsics_from_fov(height, width, float(self.hfov_deg))
        depth_to_ply(self.output_dir / f"{stem}.ply", depth_m, camera, rgb)

    def write(self, stem: str, depth_m: np.ndarray) -> None:
        """Write one (H, W) depth map in metres as ``output_dir/<stem>`` + each format's suffix."""
        base = self.output_dir / stem
        base.parent.mkdir(parents=True, exist_ok=True)
        if "png16" in self.formats:
            units = np.nan_to_num(np.round(depth_m * self.png_scale), nan=0.0)
            _write_png(base.with_name(base.name + ".png"), np.clip(units, 0, np.iinfo(np.uint16).max).astype(np.uint16))
        if "color" in self.formats:
            finite = depth_m[np.isfinite(depth_m)]
            vmax = self.color_max_depth or (float(finite.max()) if finite.size else 1.0)
            _write_png(base.with_name(base.name + "_color.png"), turbo_rgb(depth_m, vmax)[:, :, ::-1])  # RGB -> BGR
        if "npy" in self.formats:
            path = base.with_name(base.name + ".npy")
            with _atomic(path) as f:
                np.save(f, depth_m.astype(np.float32))
        self.written += 1

    def write_relative(self, stem: str, relative: np.ndarray) -> None:
        """One (H, W) relative inverse depth: ``<stem>.npy`` float32 as predicted, ``<stem>_color.png``
        coloured over the image's own range (large inverse depth = near = blue, as for depth)."""
        base = self.output_dir / stem
        base.parent.mkdir(parents=True, exist_ok=True)
        if "npy" in self.formats:
            with _atomic(base.with_name(base.name + ".npy")) as f:
                np.save(f, relative.astype(np.float32))
        if "color" in self.formats:
            _write_png(base.with_name(base.name + "_color.png"), relative_rgb(relative)[:, :, ::-1])  # RGB -> BGR
        self.written += 1

    def on_predict_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        if self._video is not None:
            self._video.close()
            self._video = None
        written = torch.tensor(float(self.written), device=pl_module.device)
        total = int(trainer.strategy.reduce(written, reduce_op="sum"))
        if trainer.is_global_zero:
            print(f"predict: wrote {total} depth map{'s' * (total != 1)} to {self.output_dir.resolve()}", flush=True)


def relative_rgb(relative: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB turbo map of a relative inverse depth over its own range: the largest
    (nearest) blue, the smallest (farthest) red, as depth is coloured."""
    finite = relative[np.isfinite(relative)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return turbo_rgb((hi - relative) / (hi - lo if hi > lo else 1.0), 1.0)


@contextlib.contextmanager
def _atomic(path: Path):
    """A file object for ``path`` that appears under its name only once complete (os.replace):
    an interrupted run leaves no truncated file, and two DDP ranks writing a repeated sample do not
    interleave."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_png(path: Path, array: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(array))
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode a {array.dtype} {array.shape} PNG")
    with _atomic(path) as f:
        f.write(encoded.tobytes())


def add_default_prediction_writer(trainer: L.Trainer, output_dir: str | Path | None = None) -> BasePredictionWriter:
    """The trainer's prediction writer; a :class:`DepthPredictionWriter` with the defaults is added
    when the config has none, so that ``depthlab predict`` always writes its predictions (Lightning
    alone would only return them).

    ``output_dir`` (``depthlab predict --output_dir DIR``): the folder the writer writes to, replacing
    the configured writer's; ConfigError if the configured writer is not a :class:`DepthPredictionWriter`.
    """
    writer = next((cb for cb in trainer.callbacks if isinstance(cb, BasePredictionWriter)), None)
    if writer is None:
        writer = DepthPredictionWriter()
        trainer.callbacks.append(writer)
    if output_dir is not None:
        if not isinstance(writer, DepthPredictionWriter):
            raise ConfigError(f"--output_dir: the config's prediction writer {type(writer).__name__} is not a "
                              "depthlab.callbacks.DepthPredictionWriter; set its own output folder in the config")
        writer.output_dir = Path(output_dir)
    return writer


def _network(pl_module: L.LightningModule) -> nn.Module:
    net = getattr(pl_module, "net", None)
    return net if isinstance(net, nn.Module) else pl_module


class PerformanceOptions(L.Callback):
    """channels_last memory format and optional ``torch.compile`` for the network.

    Args:
        channels_last: convert the network's weights and every batch's ``image`` to NHWC.
        compile: ``torch.compile`` the network (in place, checkpoint keys unchanged) at setup.
        compile_backend, compile_mode, compile_dynamic: passed to ``torch.compile``.
    """

    def __init__(
        self,
        channels_last: bool = False,
        compile: bool = False,
        compile_backend: str = "inductor",
        compile_mode: str | None = None,
        compile_dynamic: bool | None = None,
    ) -> None:
        self.channels_last = channels_last
        self.compile = compile
        self.compile_backend = compile_backend
        self.compile_mode = compile_mode
        self.compile_dynamic = compile_dynamic
        self._applied = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._applied:
            return
        net = _network(pl_module)
        if self.channels_last:
            to_channels_last(net)
        if self.compile:
            reason = compile_unavailable_reason(self.compile_backend, trainer.strategy.root_device.type)
            if reason is not None:
                raise ConfigError(f"PerformanceOptions(compile=true): {reason}")
            compile_network(net, self.compile_backend, self.compile_mode, self.compile_dynamic)
        self._applied = True

    def _convert(self, batch: Any) -> None:
        if self.channels_last and isinstance(batch, dict) and "image" in batch:
            batch["image"] = image_to_channels_last(batch["image"])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        self._convert(batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: ANN001
        self._convert(batch)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: ANN001
        self._convert(batch)

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: ANN001
        self._convert(batch)


class NetworkSummaryCallback(L.Callback):
    """At the first training batch, log the network's parameters, input/output sizes and forward FLOPs.

    Lightning's own ``ModelSummary`` prints layer parameter counts at fit start but knows no input
    size. This runs one extra forward pass, in eval mode without gradients (the training mode is
    restored), on the first image of the first training batch, eagerly even when the network was
    compiled, and logs one line (``rank_zero_info``) such as ``network UNet: 14.33 M parameters
    (14.33 M trainable), input (3, 96, 128) -> depth (1, 96, 128), 2.02 GFLOPs/image (forward)``,
    naming the extra :class:`~depthlab.models.output.DepthOutput` fields and scales the network
    returns, and the metrics ``net/parameters_M``, ``net/trainable_M`` and ``net/gflops_per_image``
    to every logger. The result stays in :attr:`summary`.

    Args:
        flops: count FLOPs (``torch.utils.flop_counter``, 2 per multiply-add); false reports
            parameters and sizes only (the FLOP counter slows that one forward pass down).
    """

    def __init__(self, flops: bool = True) -> None:
        self.flops = flops
        self.summary = None
        self._done = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if self._done or not isinstance(batch, dict) or "image" not in batch:
            return
        self._done = True
        self.summary = summarize(_network(pl_module), batch["image"], flops=self.flops)
        rank_zero_info(str(self.summary))
        for logger in trainer.loggers:
            logger.log_metrics(self.summary.as_metrics(), step=trainer.global_step)


class OutputGradientNorm(L.Callback):
    """Log the norm of the loss gradient at the network's output, ``train/grad_norm_output``.

    The quantity that separates a loss from its square root: with L = sqrt(x), dL/d(pred) =
    dx/d(pred) / (2 sqrt(x)), which grows as x falls towards 0. A tensor hook on the training
    forward's ``depth`` (metres) records ||dL/d depth||_2 over the whole batch during backward
    (summed over accumulated batches; under ``16-mixed`` divided by the GradScaler's scale, so it is
    the loss's own gradient); Lightning writes it at the trainer's ``log_every_n_steps``,
    as every training value. Evaluation forwards (no gradient) are left alone.

    Args:
        field: the :class:`~depthlab.models.output.DepthOutput` field to watch: ``depth`` or
            ``inverse_depth`` (the latter only for networks that predict it).
    """

    def __init__(self, field: Literal["depth", "inverse_depth"] = "depth") -> None:
        if field not in ("depth", "inverse_depth"):
            raise ConfigError(f"OutputGradientNorm.field: expected depth or inverse_depth, got {field!r}")
        self.field = field
        self.last: float | None = None
        self._squares: list[torch.Tensor] = []
        self._handle = None

    def on_train_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self._handle = _network(pl_module).register_forward_hook(self._watch)

    def on_train_end(self, trainer, pl_module) -> None:  # noqa: ANN001
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _watch(self, module: nn.Module, inputs: Any, output: Any) -> None:
        value = getattr(output, self.field, None)
        if value is None and isinstance(output, DepthOutput):
            raise ConfigError(f"OutputGradientNorm: the network's output has no {self.field!r} field")
        if isinstance(value, torch.Tensor) and value.requires_grad:
            value.register_hook(lambda grad: self._squares.append(grad.detach().float().square().sum()))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:  # noqa: ANN001
        if not self._squares:
            return
        norm = torch.stack(self._squares).sum().sqrt()
        self._squares.clear()
        # Under 16-mixed the hooks saw the GradScaler's scaled gradients: report the loss's own
        scaler = getattr(getattr(trainer, "precision_plugin", None), "scaler", None)
        if scaler is not None and scaler.is_enabled():
            norm = norm / scaler.get_scale()
        self.last = float(norm)
        # Lightning writes it at its own logging steps (trainer.log_every_n_steps), as every train/ value
        pl_module.log("train/grad_norm_output", norm, on_step=True, on_epoch=False, batch_size=1)
