"""Evaluation protocols of the papers: caps, crops, resizing, clamping, median scaling, flip TTA.

A protocol turns a batch into what the metrics see, running the network once per view::

    protocol = build_protocol("kitti")          # or {"name": "kitti", "crop": "eigen", ...}
    p = protocol.predict(net, image, gt.shape[-2:])   # p.out: the plain forward (reuse it for the loss)
    ev = protocol.prepare(p.depth, gt, valid, window, p.predicts_inverse_depth)  # ev.pred, .gt, .mask, .ratios
    DepthMetrics(protocol.min_depth, protocol.max_depth, protocol.averaging).update(ev.pred, ev.gt, ev.mask)

``window`` = (top, left, full_h, full_w) when ``gt`` is a window of a larger frame (KB-cropped KITTI
samples: their ``crop_offset`` and ``full_size``), else None.

Presets (every field can be overridden from YAML):

- ``none``: the model's own depth range as caps, no crop.
- ``nyu``: caps 1e-3..10 m, the Eigen crop of the 480x640 frame (rows 45..470, cols 41..600).
- ``kitti``: caps 1e-3..80 m, the Garg crop (``crop: eigen`` for the Eigen crop), optional KB crop.

Settings of the published tables (sources: ``cleinc/bts pytorch/bts_eval.py``, ``shariqfarooq123/AdaBins
evaluate.py``, ``isl-org/ZoeDepth zoedepth/utils/misc.py``, ``nianticlabs/monodepth2 evaluate_depth.py``):
BTS ``kitti`` + ``kb_crop: true``; AdaBins and ZoeDepth ``kitti`` + ``kb_crop: true``,
``crop_frame: kb_window``, ``flip: mean``; monodepth2 ``kitti`` + ``align_corners: false``,
``flip: monodepth`` (its ``--post_process``), ``median_scaling: true`` (or ``pred_scale: 5.4`` for
stereo models), on an inverse-depth network (``resize: auto`` then resizes inverse depth).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from depthlab.depth_ops import KB_CROP, kb_crop_box, resize_depth, resize_map
from depthlab.errors import ConfigError
from depthlab.metrics.functional import valid_depth_mask

if TYPE_CHECKING:  # typing only: the protocol reads a DepthOutput's fields, it never builds one
    from depthlab.models.output import DepthOutput

Crop = Literal["none", "nyu", "garg", "eigen"]
CropFrame = Literal["full", "kb_window"]
Flip = Literal["none", "mean", "monodepth"]
Resize = Literal["auto", "depth", "inverse_depth"]
Align = Literal["none", "median", "scale_shift"]
AlignSpace = Literal["inverse_depth", "depth"]
# What a prediction map holds: metres, 1/m, or an affine-invariant (relative) inverse depth or depth.
PredictionKind = Literal["depth", "inverse_depth", "relative_inverse_depth", "relative_depth"]
PREDICTION_KINDS = ("depth", "inverse_depth", "relative_inverse_depth", "relative_depth")
INVERSE_KINDS = ("inverse_depth", "relative_inverse_depth")  # resized and aligned as they are, not as depth
Box = tuple[int, int, int, int]  # four ints; each use says which

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
KB_CROP_HW = KB_CROP  # the KB crop (depthlab.depth_ops): 352x1216 at the bottom, centred horizontally
# Monodepth post-processing ramp: L(x) = 1 - clip(MONODEPTH_PP_SLOPE (x - MONODEPTH_PP_START), 0, 1)
# (monodepth2 evaluate_depth.py batch_post_process_disparity).
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
    return kb_crop_box(h, w)


def resize_prediction(
    pred_depth: Tensor, hw: tuple[int, int], inverse: bool = False, align_corners: bool = True
) -> Tensor:
    """Bilinear resize of a (B, 1, h, w) depth map (metres) to ``hw``; returned as is when equal.

    ``inverse``: interpolate 1/depth and invert back, as monodepth2 resizes its disparity before
    taking 1/disparity. Between pixels the two differ (a harmonic against an arithmetic mean of the
    neighbours' depths). ``align_corners=True`` is ``F.interpolate``'s, which AdaBins and ZoeDepth
    call; ``False`` is OpenCV's ``cv2.resize`` (half-pixel centres), which monodepth2 calls, computed
    with OpenCV's float64 source coordinates.
    """
    if tuple(pred_depth.shape[-2:]) == tuple(hw):
        return pred_depth
    # Depth heads give > 0; a zero still becomes a finite (huge) inverse instead of inf, whose
    # interpolation would turn neighbours into NaN (resize_depth clamps).
    size = (int(hw[0]), int(hw[1]))
    return resize_depth(pred_depth, size, inverse, "align_corners" if align_corners else "opencv")[0]


def monodepth_post_process(disp: Tensor, disp_flipped_back: Tensor) -> Tensor:
    """Monodepth's flip post-processing on inverse depth, (B, 1, H, W) each.

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


def scale_shift_fit(pred: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per image, the least-squares (s, t) of ``s * pred + t ~ target`` over ``mask``; (B,) float64 each.

    The 2x2 normal equations of MiDaS' ``compute_scale_and_shift`` (its evaluation gist; SPEC
    section 7): a00 = sum p^2, a01 = sum p, a11 = n, b0 = sum p t, b1 = sum t, det = a00 a11 - a01^2,
    s = (a11 b0 - a01 b1) / det, t = (a00 b1 - a01 b0) / det, solved in float64. Where det <= 0 (no
    valid pixel, one, or a constant prediction) the fit is undefined and MiDaS leaves s = t = 0.
    Marigold solves the same problem with ``np.linalg.lstsq`` (``src/util/alignment.py``).
    """
    keep = mask.flatten(1)
    # masked pixels add nothing: zeros there (not 0 * value, which keeps a NaN)
    p = torch.where(keep, pred.double().flatten(1), 0.0)
    g = torch.where(keep, target.double().flatten(1), 0.0)
    m = keep.double()
    a00, a01, a11 = (p * p).sum(1), p.sum(1), m.sum(1)
    b0, b1 = (p * g).sum(1), g.sum(1)
    det = a00 * a11 - a01 * a01
    ok = det > 0
    safe = torch.where(ok, det, torch.ones_like(det))
    s = torch.where(ok, (a11 * b0 - a01 * b1) / safe, torch.zeros_like(det))
    t = torch.where(ok, (a00 * b1 - a01 * b0) / safe, torch.zeros_like(det))
    return s, t


def align_scale_shift(
    pred: Tensor, gt: Tensor, mask: Tensor, space: AlignSpace, kind: PredictionKind, max_depth: float
) -> tuple[Tensor, Tensor]:
    """Per-image least-squares alignment of ``pred`` (B, 1, H, W) to ``gt`` metres; returns (depth, scales).

    ``space: inverse_depth`` (MiDaS and Depth Anything zero-shot tables; Marigold's
    ``least_square_disparity``): p is the predicted (relative or metric) inverse depth (1 / depth for
    depth kinds), the target 1 / gt; the aligned inverse depth s p + t is clamped below at
    1 / max_depth, and depth = 1 / it. ``space: depth`` (Marigold's ``least_square``): p is depth,
    the target gt, depth = s p + t (the metrics clamp it into the caps, as Marigold clips). A
    relative inverse depth cannot be aligned in depth space (its reciprocal is not affine in depth).
    The fit runs in float64 on the valid pixels; the result has ``pred``'s dtype.
    """
    tiny = torch.finfo(torch.float64).tiny
    inverse_kind = kind in INVERSE_KINDS
    if space == "inverse_depth":
        p = pred.double() if inverse_kind else 1 / pred.double().clamp_min(tiny)
        target = 1 / gt.double().clamp_min(tiny)
    else:
        if kind == "relative_inverse_depth":
            raise ConfigError(
                "eval protocol align_space: depth fits depth, but the prediction is relative inverse depth, whose "
                "reciprocal is not an affine function of depth; use align_space: inverse_depth (MiDaS, Depth Anything)"
            )
        p = 1 / pred.double().clamp_min(tiny) if inverse_kind else pred.double()
        target = gt.double()
    s, t = scale_shift_fit(p, target, mask)
    aligned = s.view(-1, 1, 1, 1) * p + t.view(-1, 1, 1, 1)
    if space == "inverse_depth":
        aligned = 1 / aligned.clamp_min(1 / max_depth)
    return aligned.to(pred.dtype), s


class Predicted(NamedTuple):
    """The protocol's prediction for a batch (:meth:`EvalProtocol.predict`)."""

    out: DepthOutput  # the plain (un-flipped) forward on the network input: the KB window with kb_crop
    window: Box | None  # (top, left, height, width) of the KB window in image coordinates; None without kb_crop
    depth: Tensor  # (B, 1, h, w) for prepare(): metres, or relative inverse depth (see kind); flip TTA merged
    predicts_inverse_depth: bool  # out's native quantity is inverse depth (for resize: auto)
    kind: PredictionKind = "depth"  # "relative_inverse_depth" for a relative network: ``depth`` is then no metres


class Prepared(NamedTuple):
    """What the metrics see: prediction and ground truth at the same size, and the mask."""

    pred: Tensor  # (B, 1, H, W) metres, scaled, not yet clamped (the metric clamps)
    gt: Tensor  # (B, 1, H, W) metres (cut to the KB window with crop_frame: kb_window)
    mask: Tensor  # (B, 1, H, W) bool: valid, finite, inside the caps and the crop
    ratios: Tensor  # (n,) median-scaling ratios (align: median) or fitted scales (scale_shift) of the images
    #                 with a valid pixel; empty without alignment


@dataclass(frozen=True)
class EvalProtocol:
    """One evaluation protocol. Depths in metres.

    Args:
        name: the preset it came from (``none``, ``nyu``, ``kitti``), for reports.
        min_depth, max_depth: caps; ground truth counts strictly inside, predictions are clamped
            (NaN and < min -> min, +inf and > max -> max).
        crop: ``none``, ``nyu`` (Eigen crop of NYU), ``garg`` or ``eigen`` (KITTI).
        kb_crop: run the network on the 352x1216 KB window of the input (BTS, AdaBins, ZoeDepth).
        crop_frame: the frame whose height and width the Garg/Eigen fractions are taken of:
            ``full`` (BTS): the window's prediction is pasted into a full-size zero frame and the
            crop is taken of the full frame (pixels of the mask outside the window would count at
            ``min_depth``, as in BTS; Garg/Eigen lie inside it). ``kb_window`` (AdaBins, ZoeDepth,
            whose loaders cut the ground truth to the window): the ground truth is cut to the KB
            window and the fractions are taken of 352x1216 (0.2-1 % apart from ``full``). Needs
            ``kb_crop``.
        align: per-image alignment of the prediction to the ground truth before scoring:
            ``none``; ``median`` (p *= median(g) / median(p): monocular self-supervised models,
            monodepth2 ``--eval_mono``; the ratios are summarised as ``ratio_median`` and
            ``ratio_std``); ``scale_shift`` (least squares, :func:`align_scale_shift`: relative
            depth, the MiDaS / Depth Anything zero-shot protocol in ``align_space: inverse_depth``,
            Marigold's in ``align_space: depth``; the fitted scales are summarised the same way).
            A relative prediction (``relative_inverse_depth``) is refused without ``scale_shift``.
        align_space: ``inverse_depth`` or ``depth``: where ``scale_shift`` fits (see ``align``).
        median_scaling: the older spelling of ``align: median`` (checkpoints keep it); true sets it.
        pred_scale: a fixed factor applied to predictions before median scaling (monodepth2 uses
            5.4 for its stereo models trained with a 0.1 baseline).
        flip: horizontal-flip TTA: ``mean`` (average of the two depth predictions, AdaBins and
            ZoeDepth) or ``monodepth`` (Monodepth's post-processing on inverse depth).
        resize: what is interpolated when a prediction is resized: ``depth``, ``inverse_depth``
            (1/depth, then inverted back: monodepth2 resizes its disparity), or ``auto``: inverse
            depth for networks that predict it (``DepthOutput.predicts_inverse_depth``), else depth.
        align_corners: of the bilinear resize (True as AdaBins and ZoeDepth; False is OpenCV's
            ``cv2.resize`` as in monodepth2).
        averaging: ``image`` (the standard) or ``pixel`` (FCRN); see :mod:`depthlab.metrics`.
        input_size: ``[height, width]`` the network sees (the image, or its KB window, is resized
            bilinearly with antialiasing), e.g. Monodepth2's 192x640; None: the image as it comes.
            The prediction is resized to the ground truth as always (``resize``, ``align_corners``).
    """

    name: str = "none"
    min_depth: float = 1e-3
    max_depth: float = 10.0
    crop: Crop = "none"
    kb_crop: bool = False
    crop_frame: CropFrame = "full"
    median_scaling: bool = False
    align: Align = "none"
    align_space: AlignSpace = "inverse_depth"
    pred_scale: float = 1.0
    flip: Flip = "none"
    resize: Resize = "auto"
    align_corners: bool = True
    averaging: Literal["image", "pixel"] = "image"
    input_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not 0 < self.min_depth < self.max_depth:
            raise ConfigError(f"eval protocol: need 0 < min_depth < max_depth, got {self.min_depth}, {self.max_depth}")
        crop_bounds(self.crop, 1, 1)  # validates the name
        if self.crop_frame not in ("full", "kb_window"):
            raise ConfigError(f"eval protocol crop_frame: expected full or kb_window, got {self.crop_frame!r}")
        if self.crop_frame == "kb_window" and not self.kb_crop:
            raise ConfigError("eval protocol crop_frame: kb_window crops the KB window, which needs kb_crop: true")
        if self.flip not in ("none", "mean", "monodepth"):
            raise ConfigError(f"eval protocol flip: expected none, mean or monodepth, got {self.flip!r}")
        if self.resize not in ("auto", "depth", "inverse_depth"):
            raise ConfigError(f"eval protocol resize: expected auto, depth or inverse_depth, got {self.resize!r}")
        if self.input_size is not None:
            size = tuple(int(v) for v in self.input_size)
            if len(size) != 2 or min(size) < 1:
                raise ConfigError(f"eval protocol input_size: expected [height, width], got {self.input_size!r}")
            object.__setattr__(self, "input_size", size)  # frozen: normalise a YAML list once
        if self.averaging not in ("image", "pixel"):
            raise ConfigError(f"eval protocol averaging: expected image or pixel, got {self.averaging!r}")
        if not (math.isfinite(self.pred_scale) and self.pred_scale > 0):
            raise ConfigError(f"eval protocol pred_scale: expected a positive number, got {self.pred_scale}")
        if self.align not in ("none", "median", "scale_shift"):
            raise ConfigError(f"eval protocol align: expected none, median or scale_shift, got {self.align!r}")
        if self.align_space not in ("inverse_depth", "depth"):
            raise ConfigError(f"eval protocol align_space: expected inverse_depth or depth, got {self.align_space!r}")
        if self.median_scaling and self.align == "scale_shift":
            raise ConfigError("eval protocol: median_scaling: true and align: scale_shift are two alignments; keep one")
        # one source of truth: align; median_scaling mirrors it (saved specs of either spelling rebuild the same)
        if self.median_scaling:
            object.__setattr__(self, "align", "median")
        object.__setattr__(self, "median_scaling", self.align == "median")

    @property
    def aligns(self) -> bool:
        """True when predictions are aligned per image (median or scale_shift): scale ratios are reported."""
        return self.align != "none"

    def check_kind(self, kind: str, what: str = "the prediction") -> None:
        """ConfigError when a prediction of ``kind`` cannot be scored under this protocol (one line)."""
        if kind not in PREDICTION_KINDS:
            raise ConfigError(f"prediction kind: expected one of {', '.join(PREDICTION_KINDS)}, got {kind!r}")
        if kind == "relative_inverse_depth" and self.align != "scale_shift":
            raise ConfigError(
                f"model.eval_protocol: {what} is relative inverse depth (known only up to a scale and a shift), which "
                f"cannot be scored as metres with align: {self.align}; set model.eval_protocol.align: scale_shift "
                "(MiDaS / Depth Anything zero-shot protocol, align_space: inverse_depth)"
            )
        if kind == "relative_depth" and self.align == "none":
            raise ConfigError(
                f"model.eval_protocol: {what} is relative depth (known only up to a scale and a shift); set "
                "model.eval_protocol.align: scale_shift (Marigold: align_space: depth) or median"
            )

    @property
    def needs_own_forward(self) -> bool:
        """True when the prediction differs from ``net(image).depth`` (KB crop or flip TTA).

        :meth:`predict` handles both cases; callers may call it always.
        """
        return self.kb_crop or self.flip != "none"

    def resizes_inverse_depth(self, predicts_inverse_depth: bool) -> bool:
        """Whether a prediction is resized as inverse depth (``resize``, with ``auto`` resolved)."""
        return self.resize == "inverse_depth" or (self.resize == "auto" and predicts_inverse_depth)

    def describe(self) -> str:
        parts = [f"{self.name}: caps {self.min_depth:g}..{self.max_depth:g} m", f"crop {self.crop}"]
        if self.kb_crop:
            parts.append("KB crop" + (", crop of the window" if self.crop_frame == "kb_window" else ""))
        if self.flip != "none":
            parts.append(f"flip TTA ({self.flip})")
        if self.input_size is not None:
            parts.append(f"network input {self.input_size[0]}x{self.input_size[1]}")
        if self.resize != "auto":
            parts.append(f"resize {self.resize}")
        if self.pred_scale != 1:
            parts.append(f"pred x {self.pred_scale:g}")
        if self.align == "median":
            parts.append("median scaling")
        elif self.align == "scale_shift":
            parts.append(f"least-squares scale and shift in {self.align_space.replace('_', ' ')}")
        parts.append(f"{self.averaging} averaging")
        return ", ".join(parts)

    def predict(self, net: Callable[[Tensor], DepthOutput], image: Tensor, gt_hw: tuple[int, int]) -> Predicted:
        """The protocol's prediction for ``image`` (B, 3, H, W), one forward per view.

        ``net`` returns a :class:`~depthlab.models.output.DepthOutput`; ``gt_hw`` is the ground
        truth's (H, W). With ``kb_crop`` the network sees the KB window (``image`` and ground truth
        must then be the same frame) and ``depth`` is, for ``crop_frame: full``, a zero frame of
        ``gt_hw`` with the window's prediction (resized to 352x1216) pasted in (BTS); for
        ``crop_frame: kb_window``, the window's prediction itself. Without ``kb_crop``, ``depth``
        is at the network's resolution. :meth:`prepare` resizes to the ground truth.
        """
        window = None
        if self.kb_crop:
            h, w = image.shape[-2:]
            if (h, w) != tuple(gt_hw):
                raise ValueError(f"kb_crop: image {h}x{w} and ground truth gt_hw {tuple(gt_hw)} must be the same frame")
            top, left = kb_window(h, w)
            window = (top, left, *KB_CROP_HW)
            image = image[..., top : top + KB_CROP_HW[0], left : left + KB_CROP_HW[1]]
        if self.input_size is not None and tuple(image.shape[-2:]) != self.input_size:
            # the size the network was trained at (Monodepth2 evaluates at 192x640); antialiased
            # like the PIL resize of its loader when shrinking
            image = F.interpolate(image, size=self.input_size, mode="bilinear", align_corners=False, antialias=True)
        out = net(image)
        depth = out.prediction  # metres, or a relative network's relative inverse depth (out.kind)
        if self.flip != "none":
            back = net(image.flip(-1))
            if self.flip == "mean":
                depth = 0.5 * (depth + back.prediction.flip(-1))
            elif out.is_relative:  # the ramp on the network's own (relative) inverse depth
                depth = monodepth_post_process(depth, back.prediction.flip(-1))
            else:
                inverse = monodepth_post_process(out.inverse(), back.inverse().flip(-1))
                depth = 1 / inverse.clamp_min(torch.finfo(inverse.dtype).tiny)
        if window is not None and self.crop_frame == "full":
            top, left, kh, kw = window
            canvas = depth.new_zeros(*depth.shape[:-2], *gt_hw)
            canvas[..., top : top + kh, left : left + kw] = self._resize(depth, (kh, kw), out.predicts_inverse_depth, out.kind)
            depth = canvas
        return Predicted(out, window, depth, out.predicts_inverse_depth, out.kind)

    def _resize(self, pred: Tensor, hw: tuple[int, int], predicts_inverse_depth: bool, kind: str) -> Tensor:
        """``pred`` resized to ``hw``: depth kinds by the ``resize`` rule, inverse kinds as they are."""
        if kind in INVERSE_KINDS:
            if tuple(pred.shape[-2:]) == tuple(hw):
                return pred
            return resize_map(pred, (int(hw[0]), int(hw[1])), "align_corners" if self.align_corners else "opencv")
        return resize_prediction(pred, hw, self.resizes_inverse_depth(predicts_inverse_depth), self.align_corners)

    def prepare(
        self,
        pred: Tensor,
        gt: Tensor,
        valid: Tensor | None = None,
        window: Box | None = None,
        predicts_inverse_depth: bool = False,
        kind: PredictionKind = "depth",
    ) -> Prepared:
        """Resize ``pred`` to ``gt`` (B, 1, H, W) metres, scale it, and build the evaluation mask.

        ``pred`` is ``Predicted.depth`` (or any (B, 1, h, w) depth); ``valid``: bool, ``gt``'s shape.
        ``window`` = (top, left, full_h, full_w) says that ``gt`` is a window of a larger frame
        (e.g. a KB-cropped KITTI sample with its ``crop_offset``/``full_size``). With
        ``crop_frame: full`` the crop mask is then taken on the full frame, where Garg/Eigen/NYU
        crops are defined, and cut to the window. With ``crop_frame: kb_window``, ``gt`` and
        ``valid`` are first cut to the KB window of the full frame (``window``'s, else ``gt``'s
        own: a no-op for 352x1216 samples) and the crop is taken of that window.
        ``predicts_inverse_depth``: the network's (``Predicted.predicts_inverse_depth``), for
        ``resize: auto``. ``kind``: what ``pred`` holds (``Predicted.kind``; ``depthlab evaluate
        --predictions_kind``): ``depth`` (metres), ``inverse_depth`` (1/m), ``relative_inverse_depth``
        or ``relative_depth`` (affine-invariant: they need ``align``, :meth:`check_kind`). Inverse
        kinds are resized as they are; the result is always depth in metres.
        """
        self.check_kind(kind)
        h, w = gt.shape[-2:]
        if window is not None:
            top, left, full_h, full_w = (int(v) for v in window)
            if top < 0 or left < 0 or top + h > full_h or left + w > full_w:
                raise ValueError(f"window {tuple(window)} does not hold a {h}x{w} ground truth")
        if self.crop_frame == "kb_window":
            # The KB window in gt's coordinates; the crop fractions then apply to the window alone.
            full_top, full_left, full_h, full_w = (0, 0, h, w) if window is None else (top, left, full_h, full_w)
            kb_top, kb_left = kb_window(full_h, full_w)
            r0, c0 = kb_top - full_top, kb_left - full_left
            kh, kw = KB_CROP_HW
            if r0 < 0 or c0 < 0 or r0 + kh > h or c0 + kw > w:
                raise ValueError(
                    f"crop_frame kb_window: the {h}x{w} ground truth (window {window}) does not hold the KB window"
                )
            gt = gt[..., r0 : r0 + kh, c0 : c0 + kw]
            valid = None if valid is None else valid[..., r0 : r0 + kh, c0 : c0 + kw]
            region = crop_mask(self.crop, kh, kw, device=gt.device)
        elif window is None:
            if self.crop in ("garg", "eigen") and (h, w) == KB_CROP_HW:
                warnings.warn(
                    f"the {self.crop} crop is defined on full KITTI frames (about 375x1242), but the ground truth "
                    "is KB-cropped to 352x1216 and carries no crop_offset/full_size: the crop mask is taken on the "
                    "cropped frame. Evaluate full frames (data eval_kb_crop: false), keep the samples' crop_offset "
                    "and full_size, or take the crop of the window on purpose (crop_frame: kb_window, as AdaBins "
                    "and ZoeDepth)",
                    stacklevel=2,
                )
            region = crop_mask(self.crop, h, w, device=gt.device)
        else:
            region = crop_mask(self.crop, full_h, full_w, device=gt.device)[top : top + h, left : left + w]
        pred = self._resize(pred, gt.shape[-2:], predicts_inverse_depth, kind)
        if self.pred_scale != 1:
            pred = pred * self.pred_scale
        mask = valid_depth_mask(gt, self.min_depth, self.max_depth, valid) & region  # finite, in caps and crop
        ratios = gt.new_zeros(0, dtype=torch.float64)
        if self.align == "scale_shift":
            pred, scales = align_scale_shift(pred, gt, mask, self.align_space, kind, self.max_depth)
            ratios = scales[mask.flatten(1).any(1)]
            kind = "depth"
        elif kind == "inverse_depth":  # metric 1/m: metres from here on
            pred = 1 / pred.clamp_min(torch.finfo(pred.dtype).tiny)
        if self.align == "median":
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
