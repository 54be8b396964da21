"""Evaluation protocols of the papers: caps, crops, resizing, clamping, median scaling, flip TTA.

``../shared/SPEC.md`` section 2 gives each rule with its source. A protocol turns a batch's
prediction into what the metrics see::

    protocol = build_protocol("kitti")          # or {"name": "kitti", "crop": "eigen", ...}
    pred = protocol.predict(net, image, gt.shape[-2:])   # only if protocol.needs_own_forward
    ev = protocol.prepare(pred, gt, valid)               # ev.pred, ev.gt, ev.mask, ev.ratios
    DepthMetrics(protocol.min_depth, protocol.max_depth, protocol.averaging).update(ev.pred, ev.gt, ev.mask)

Presets (every field can be overridden from YAML):

- ``none``: the model's own depth range as caps, no crop.
- ``nyu``: caps 1e-3..10 m, the Eigen crop of the 480x640 frame (rows 45..470, cols 41..600).
- ``kitti``: caps 1e-3..80 m, the Garg crop (``crop: eigen`` for the Eigen crop), optional KB crop.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from depthlab.errors import ConfigError
from depthlab.metrics.functional import valid_depth_mask

Crop = Literal["none", "nyu", "garg", "eigen"]
Flip = Literal["none", "mean", "monodepth"]

# Caps in metres (BTS arguments_test_*.txt, ZoeDepth config, monodepth2 evaluate_depth.py).
NYU_CAPS_M = (1e-3, 10.0)
KITTI_CAPS_M = (1e-3, 80.0)
# NYU Eigen crop, [row0, row1) x [col0, col1) on the 480x640 frame (BTS bts_eval.py eval_mask[45:471, 41:601]).
NYU_FRAME_HW = (480, 640)
NYU_EIGEN_CROP = (45, 471, 41, 601)
# KITTI crops as fractions of the ground truth's (h, h, w, w), bounds truncated to int
# (monodepth2 evaluate_depth.py for Garg; BTS bts_eval.py for both).
GARG_CROP_FRACTIONS = (0.40810811, 0.99189189, 0.03594771, 0.96405229)
EIGEN_CROP_FRACTIONS = (0.3324324, 0.91351351, 0.0359477, 0.96405229)
# KB crop (Uhrig et al. benchmark size): a 352x1216 window at the bottom, centred horizontally (BTS).
KB_CROP_HW = (352, 1216)
# Monodepth post-processing ramp: L(x) = 1 - clip(MONODEPTH_PP_SLOPE (x - MONODEPTH_PP_START), 0, 1)
# (monodepth2 layers.py batch_post_process_disparity).
MONODEPTH_PP_SLOPE, MONODEPTH_PP_START = 20.0, 0.05


def crop_bounds(crop: Crop, h: int, w: int) -> tuple[int, int, int, int]:
    """``(row0, row1, col0, col1)`` of a crop on an h x w ground truth (rows row0..row1-1).

    ``nyu`` is defined on the 480x640 frame; on another size it is scaled with integer floor
    division (depthlab's choice: the published code only runs at 480x640). ``garg``/``eigen``
    follow the published fractions with int truncation; ``none`` is the whole frame.
    """
    if crop == "none":
        return 0, h, 0, w
    if crop == "nyu":
        (fh, fw), (r0, r1, c0, c1) = NYU_FRAME_HW, NYU_EIGEN_CROP
        return r0 * h // fh, r1 * h // fh, c0 * w // fw, c1 * w // fw
    if crop in ("garg", "eigen"):
        a, b, c, d = GARG_CROP_FRACTIONS if crop == "garg" else EIGEN_CROP_FRACTIONS
        return int(a * h), int(b * h), int(c * w), int(d * w)
    raise ConfigError(f"eval protocol crop: expected one of none, nyu, garg, eigen, got {crop!r}")


def crop_mask(crop: Crop, h: int, w: int, device: torch.device | str | None = None) -> Tensor:
    """(h, w) bool mask, True inside the crop."""
    r0, r1, c0, c1 = crop_bounds(crop, h, w)
    mask = torch.zeros(h, w, dtype=torch.bool, device=device)
    mask[r0:r1, c0:c1] = True
    return mask


def kb_window(h: int, w: int) -> tuple[int, int]:
    """``(top, left)`` of the KB crop: top = h - 352, left = (w - 1216) // 2 (375x1242: 23, 13)."""
    kh, kw = KB_CROP_HW
    if h < kh or w < kw:
        raise ConfigError(f"eval protocol kb_crop: needs ground truth of at least {kh}x{kw}, got {h}x{w}")
    return h - kh, (w - kw) // 2


def resize_to(pred: Tensor, hw: tuple[int, int], align_corners: bool = True) -> Tensor:
    """Bilinear resize of (B, 1, h, w) to ``hw`` (no-op when equal)."""
    if tuple(pred.shape[-2:]) == tuple(hw):
        return pred
    return F.interpolate(pred, size=tuple(hw), mode="bilinear", align_corners=align_corners)


def monodepth_post_process(disp: Tensor, disp_flipped_back: Tensor) -> Tensor:
    """Monodepth's flip post-processing on disparity, (B, 1, H, W) each.

    ``disp`` = l, ``disp_flipped_back`` = r (prediction of the flipped image, flipped back); with
    x in [0, 1] across columns, L(x) = 1 - clip(20 (x - 0.05), 0, 1), R(x) = L(1 - x):
    out = R l + L r + (1 - L - R) (l + r) / 2. The left border comes from r, the right border
    from l (the side where each view saw the image edge's occlusions), the middle is the mean.
    """
    w = disp.shape[-1]
    x = torch.linspace(0, 1, w, device=disp.device, dtype=disp.dtype)
    left = 1 - ((x - MONODEPTH_PP_START) * MONODEPTH_PP_SLOPE).clamp(0, 1)
    right = left.flip(0)  # R(x) = L(1 - x) on the symmetric grid
    return right * disp + left * disp_flipped_back + (1 - left - right) * 0.5 * (disp + disp_flipped_back)


def median_scale(pred: Tensor, gt: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per image p *= median(g) / median(p) over its valid pixels (monodepth2 ``--eval_mono``).

    Returns the scaled prediction and the ratios of the images that have a valid pixel (the
    others are left unscaled). Medians of even counts average the two middle values (np.median).
    """
    scaled, ratios = pred.clone(), []
    for i in range(pred.shape[0]):
        m = mask[i]
        if not m.any():
            continue
        ratio = gt[i][m].double().quantile(0.5) / pred[i][m].double().quantile(0.5)
        scaled[i] = pred[i] * ratio.to(pred.dtype)
        ratios.append(ratio)
    return scaled, torch.stack(ratios) if ratios else pred.new_zeros(0, dtype=torch.float64)


class Prepared(NamedTuple):
    """What the metrics see: prediction and ground truth at the same size, and the mask."""

    pred: Tensor  # (B, 1, H, W) metres, scaled, not yet clamped (the metric clamps)
    gt: Tensor  # (B, 1, H, W) metres
    mask: Tensor  # (B, 1, H, W) bool: valid, finite, inside the caps and the crop
    ratios: Tensor  # (n,) median-scaling ratios of the images with a valid pixel; empty if unused


@dataclass(frozen=True)
class EvalProtocol:
    """One evaluation protocol. Depths in metres.

    Args:
        name: the preset it came from (``none``, ``nyu``, ``kitti``), for reports.
        min_depth, max_depth: caps; ground truth counts strictly inside, predictions are clamped
            (NaN and < min -> min, +inf and > max -> max).
        crop: ``none``, ``nyu`` (Eigen crop of NYU), ``garg`` or ``eigen`` (KITTI).
        kb_crop: run the network on the 352x1216 KB window of the input and paste its prediction
            back into a full-size zero frame before the crop mask (BTS). Pixels of the mask outside
            the window then count at ``min_depth``, as in BTS (with Garg/Eigen they are all inside).
        median_scaling: per-image median scaling (relative-depth and monocular self-supervised
            models, monodepth2); the ratios are summarised as ``ratio_median`` and ``ratio_std``.
        pred_scale: a fixed factor applied to predictions before median scaling (monodepth2 uses
            5.4 for its stereo models trained with a 0.1 baseline).
        flip: horizontal-flip TTA: ``mean`` (average of the two depth predictions, AdaBins and
            ZoeDepth) or ``monodepth`` (Monodepth's post-processing on disparity = 1 / depth).
        align_corners: of the bilinear resize to the ground truth size (True as ZoeDepth; False
            is OpenCV's ``cv2.resize`` as in monodepth2).
        averaging: ``image`` (the standard) or ``pixel`` (FCRN); see :mod:`depthlab.metrics`.
    """

    name: str = "none"
    min_depth: float = 1e-3
    max_depth: float = 10.0
    crop: Crop = "none"
    kb_crop: bool = False
    median_scaling: bool = False
    pred_scale: float = 1.0
    flip: Flip = "none"
    align_corners: bool = True
    averaging: Literal["image", "pixel"] = "image"

    def __post_init__(self) -> None:
        if not 0 < self.min_depth < self.max_depth:
            raise ConfigError(f"eval protocol: need 0 < min_depth < max_depth, got {self.min_depth}, {self.max_depth}")
        crop_bounds(self.crop, 1, 1)  # validates the name
        if self.flip not in ("none", "mean", "monodepth"):
            raise ConfigError(f"eval protocol flip: expected none, mean or monodepth, got {self.flip!r}")
        if self.averaging not in ("image", "pixel"):
            raise ConfigError(f"eval protocol averaging: expected image or pixel, got {self.averaging!r}")
        if not (math.isfinite(self.pred_scale) and self.pred_scale > 0):
            raise ConfigError(f"eval protocol pred_scale: expected a positive number, got {self.pred_scale}")

    @property
    def needs_own_forward(self) -> bool:
        """True when the prediction differs from ``net(image)`` (KB crop or flip TTA)."""
        return self.kb_crop or self.flip != "none"

    def describe(self) -> str:
        parts = [f"{self.name}: caps {self.min_depth:g}..{self.max_depth:g} m", f"crop {self.crop}"]
        if self.kb_crop:
            parts.append("KB crop")
        if self.flip != "none":
            parts.append(f"flip TTA ({self.flip})")
        if self.pred_scale != 1:
            parts.append(f"pred x {self.pred_scale:g}")
        if self.median_scaling:
            parts.append("median scaling")
        parts.append(f"{self.averaging} averaging")
        return ", ".join(parts)

    def predict(self, net: Callable[[Tensor], Tensor], image: Tensor, gt_hw: tuple[int, int]) -> Tensor:
        """The protocol's prediction for ``image`` (B, 3, H, W): KB crop and flip TTA applied.

        With ``kb_crop`` the result is the full ``gt_hw`` frame (zeros outside the window);
        otherwise it is the network's resolution (:meth:`prepare` resizes).
        """
        if self.kb_crop:
            top, left = kb_window(*image.shape[-2:])
            image = image[..., top : top + KB_CROP_HW[0], left : left + KB_CROP_HW[1]]
        pred = net(image)
        if self.flip != "none":
            pred_flip = net(image.flip(-1)).flip(-1)
            if self.flip == "mean":
                pred = 0.5 * (pred + pred_flip)
            else:
                tiny = torch.finfo(pred.dtype).tiny  # depth heads give > 0; guard 1 / 0 anyway
                disp = monodepth_post_process(1 / pred.clamp_min(tiny), 1 / pred_flip.clamp_min(tiny))
                pred = 1 / disp.clamp_min(tiny)
        if not self.kb_crop:
            return pred
        h, w = gt_hw
        top, left = kb_window(h, w)
        canvas = pred.new_zeros(pred.shape[0], pred.shape[1], h, w)
        window = resize_to(pred, KB_CROP_HW, self.align_corners)
        canvas[..., top : top + KB_CROP_HW[0], left : left + KB_CROP_HW[1]] = window
        return canvas

    def prepare(
        self, pred: Tensor, gt: Tensor, valid: Tensor | None = None, window: tuple[int, int, int, int] | None = None
    ) -> Prepared:
        """Resize ``pred`` to ``gt`` (B, 1, H, W), scale it, and build the evaluation mask.

        ``window`` = (top, left, full_h, full_w) says that ``gt`` is a window of a larger frame
        (e.g. a KB-cropped KITTI sample with its ``crop_offset``/``full_size``): the crop mask is
        then taken on the full frame, where Garg/Eigen/NYU crops are defined, and cut to the window.
        """
        if window is None and self.crop in ("garg", "eigen") and tuple(gt.shape[-2:]) == KB_CROP_HW:
            warnings.warn(
                f"the {self.crop} crop is defined on full KITTI frames (about 375x1242), but the ground truth is "
                "KB-cropped to 352x1216 and carries no crop_offset/full_size: the crop mask is taken on the cropped frame. "
                "Evaluate full frames (data eval_kb_crop: false) or keep the samples' crop_offset and full_size",
                stacklevel=2,
            )
        pred = resize_to(pred, gt.shape[-2:], self.align_corners)
        if self.pred_scale != 1:
            pred = pred * self.pred_scale
        mask = valid_depth_mask(gt, self.min_depth, self.max_depth, valid)  # finite, strictly inside the caps
        if window is None:
            mask &= crop_mask(self.crop, *gt.shape[-2:], device=gt.device)
        else:
            top, left, full_h, full_w = (int(v) for v in window)
            h, w = gt.shape[-2:]
            if top < 0 or left < 0 or top + h > full_h or left + w > full_w:
                raise ValueError(f"window {window} does not hold a {h}x{w} ground truth")
            mask &= crop_mask(self.crop, full_h, full_w, device=gt.device)[top : top + h, left : left + w]
        ratios = gt.new_zeros(0, dtype=torch.float64)
        if self.median_scaling:
            # Only non-finite values are mapped (NaN -> min, inf -> max) before the medians; the
            # range clamp comes after scaling, as monodepth2 does.
            pred = torch.nan_to_num(pred, nan=self.min_depth, posinf=self.max_depth, neginf=self.min_depth)
            pred, ratios = median_scale(pred, gt, mask)
        return Prepared(pred, gt, mask, ratios)


PRESETS: dict[str, dict[str, Any]] = {
    "none": {},
    "nyu": {"min_depth": NYU_CAPS_M[0], "max_depth": NYU_CAPS_M[1], "crop": "nyu"},
    "kitti": {"min_depth": KITTI_CAPS_M[0], "max_depth": KITTI_CAPS_M[1], "crop": "garg"},
}
_FIELDS = {f.name for f in dataclasses.fields(EvalProtocol)}


def build_protocol(
    spec: str | dict[str, Any] | EvalProtocol | None = "none", min_depth: float = 1e-3, max_depth: float = 10.0
) -> EvalProtocol:
    """An :class:`EvalProtocol` from a preset name or ``{name: preset, <field>: value, ...}``.

    ``min_depth``/``max_depth`` (the model's range) are the caps of the ``none`` preset.
    """
    if isinstance(spec, EvalProtocol):
        return spec
    options = {"name": spec or "none"} if spec is None or isinstance(spec, str) else dict(spec)
    name = options.pop("name", "none")
    if name not in PRESETS:
        close = difflib.get_close_matches(str(name), list(PRESETS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"model.eval_protocol: unknown protocol {name!r}{hint}; available: {', '.join(PRESETS)}")
    unknown = sorted(set(options) - _FIELDS)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(_FIELDS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        options_list = ", ".join(sorted(_FIELDS - {"name"}))
        raise ConfigError(f"model.eval_protocol: unknown option {unknown[0]!r}{hint}; options: {options_list}")
    fields = {"min_depth": max(min_depth, 1e-3), "max_depth": max_depth, **PRESETS[name], **options}
    return EvalProtocol(name=name, **fields)
