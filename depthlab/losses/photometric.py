"""Stereo self-supervision: one photometric reprojection loss with Depth Hints (Watson et al., ICCV 2019).

A rectified stereo batch (``image``, ``image_right``, ``intrinsics``, ``baseline_m``) lets a
monocular network supervise itself: its depth d of the left view gives the disparity
``fx * baseline_m / d`` (pixels), warping the right image with it must reconstruct the left image,
and the per-pixel reprojection error (:func:`depthlab.geometry.reprojection_error`,
0.85 (1 - SSIM)/2 + 0.15 L1) is the loss (Godard et al. 2017; Monodepth2). The baseline is metric,
so the depth is too: a stereo-trained network needs no median scaling.

One loop serves every mode. Per scale s of the prediction (``out`` and each of ``out.scales``,
upsampled to the input size as inverse depth, as Monodepth2 does) the loss builds a list of
:class:`Candidate` source images of the left view, each with its per-pixel reprojection error:

- ``prediction``: the right image warped with the scale's depth (a later monocular-video loss adds
  its temporal source frames here; the per-pixel minimum over them is taken first, as Monodepth2);
- ``identity``: the unwarped right image (``automask``: Monodepth2's auto-masking; a pixel that the
  identity reconstructs better, e.g. at infinity or a view-independent texture, is left out);
- ``hint``: the right image warped with the Depth Hint (modes ``hint``), computed once at full size.

:func:`select_minimum` takes the per-pixel minimum over the three (ties: prediction, then identity,
then hint: the published code's ``argmin`` over [warp, identity, hint]), and
:func:`photometric_term` averages the prediction's error where it counts. The scales' terms are
averaged.

Depth Hints add a proxy label h from semi-global matching (``batch["hint"]`` in metres,
``hint_valid``; :mod:`depthlab.hints`). ``mode``:

- ``self``: the photometric term alone (the ``photometric`` loss is exactly this mode);
- ``hard``: ln(1 + |h - d|) over every valid hint pixel, no photometric term;
- ``sum``: photometric + ln(1 + |h - d|) over every valid hint pixel;
- ``hint`` (the paper's rule): photometric + ln(1 + |h - d|) over the pixels where the hint's
  candidate wins the minimum (beats the prediction and, with ``automask``, the identity); pixels
  with no hint (or, with ``inside_mask``, whose hint warps from outside the right image) lose
  (error + 1000, the published code's rule);
- ``hard_uncertainty``: the network predicts a log-variance (``uncertainty: true``); the hint term
  is the Laplacian negative log-likelihood of ln d - ln h (:func:`~depthlab.losses.uncertainty.log_depth_nll`)
  over every valid hint pixel, no photometric term (no code was published for this mode).

Each hint term is evaluated on every scale's upsampled depth and averaged over the scales (the
published code's per-scale rule). Diagnostics: ``hint_fraction`` (pixels where the hint was used),
``inside_fraction`` (pixels whose warp samples inside the right image: near 0, the depth range is
too near for the baseline and the photometric term has nothing to learn from) and, with
``automask``, ``automasked_fraction`` (pixels the identity wins).

Conventions where depthlab and the published code differ are options (docs/hints.md, "Conventions");
the defaults are depthlab's:

============================  ==========  ==============  =====================================
option                        depthlab    depth-hints     monodepth2
============================  ==========  ==============  =====================================
``missing_hint_fill`` (m)     1.0         0.0             (no hints)
``automask_average``          kept        kept            all
``inside_mask``               true        false           false
``identity_noise``            0.0         1e-5            1e-5
============================  ==========  ==============  =====================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from depthlab.errors import ConfigError
from depthlab.depth_ops import resize_depth
from depthlab.geometry import (
    WindowStats,
    depth_to_disparity,
    reprojection_error,
    stereo_calibration,
    warp_horizontal,
    warp_with_pose,
)
from depthlab.losses.base import DepthLoss, fill_invalid, masked_mean, safe_reciprocal
from depthlab.losses.uncertainty import log_depth_nll
from depthlab.models.output import DepthOutput

Mode = Literal["self", "hard", "sum", "hint", "hard_uncertainty"]
MODES = ("self", "hard", "sum", "hint", "hard_uncertainty")
Average = Literal["kept", "all"]
AVERAGES = ("kept", "all")
STEREO_KEYS = frozenset({"image", "image_right", "intrinsics", "baseline_m"})
DEPTH_NORMALIZATIONS = ("none", "mean")
LOSING_ERROR = 1000.0  # added to the hint's error where it has no value: it never wins (depth-hints trainer.py)

Role = Literal["prediction", "identity", "hint"]
ROLES: tuple[str, ...] = ("prediction", "identity", "hint")  # also the tie order of the minimum


def scale_depths(out: DepthOutput, size: tuple[int, int], use_scales: bool = True) -> list[Tensor]:
    """Depth (B, 1, H, W) metres of ``out`` and, with ``use_scales``, of each coarser scale upsampled
    to ``size`` bilinearly as inverse depth (Monodepth2 upsamples disparity before converting it)."""
    depths = [out.depth]
    for level in out.scales if use_scales else []:
        depths.append(resize_depth(level.depth, size, inverse=True, inverse_depth=level.inverse_depth)[0])
    return depths


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)  # half-precision images compared in float32


def warp_right(depth_m: Tensor, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
    """The left view rebuilt from the right image with the left view's ``depth_m`` (B, 1, H, W) metres,
    and where the warp sampled inside the right image (bool (B, 1, H, W); False where depth <= 0)."""
    fx, baseline_m = stereo_calibration(batch)
    dtype = _compute_dtype(depth_m.dtype)
    disparity = depth_to_disparity(depth_m.to(dtype), fx, baseline_m)
    warped, inside = warp_horizontal(batch["image_right"].to(dtype), disparity, source_view="right")
    return warped, inside & (depth_m > 0)


def warp_frame(depth_m: Tensor, batch: Mapping[str, Any], source: str, pose: Tensor) -> tuple[Tensor, Tensor]:
    """The target view rebuilt from the temporal frame ``batch[source]`` with the target's ``depth_m``,
    its ``intrinsics`` and ``pose`` (B, 4, 4, target camera -> the frame's), and where the warp
    sampled inside the frame (bool; False where depth <= 0)."""
    dtype = _compute_dtype(depth_m.dtype)
    warped, inside = warp_with_pose(batch[source].to(dtype), depth_m.to(dtype), batch["intrinsics"].to(dtype),
                                    pose.to(dtype))
    return warped, inside & (depth_m > 0)


def _target(batch: Mapping[str, Any], dtype: torch.dtype, target: WindowStats | None) -> WindowStats | Tensor:
    return target if target is not None else batch["image"].to(dtype)


def target_stats(batch: Mapping[str, Any], dtype: torch.dtype = torch.float32) -> WindowStats:
    """The target view's SSIM window statistics in the loss's compute dtype, once per batch for all
    its candidates and scales (the same errors as without them)."""
    return WindowStats(batch["image"].to(_compute_dtype(dtype)))


def warp_error(depth_m: Tensor, batch: Mapping[str, Any], source: str = "image_right",
               pose: Tensor | None = None, target: WindowStats | None = None) -> tuple[Tensor, Tensor]:
    """Reprojection error (B, 1, H, W) of the target rebuilt with ``depth_m`` from the right image (no
    ``pose``: along its rows) or from the temporal frame ``source`` with ``pose`` (:func:`warp_frame`),
    and where the warp sampled inside the source (bool, same shape; False where depth <= 0).
    ``target``: :func:`target_stats` of the batch, when computed already."""
    warped, inside = warp_right(depth_m, batch) if pose is None else warp_frame(depth_m, batch, source, pose)
    return reprojection_error(warped, _target(batch, warped.dtype, target)), inside


def identity_error(batch: Mapping[str, Any], dtype: torch.dtype = torch.float32, source: str = "image_right",
                   target: WindowStats | None = None) -> Tensor:
    """Reprojection error of the unwarped source view ``source`` (the right image, or a temporal
    frame ``image_f{k:+d}``) as the target (Monodepth2's auto-masking)."""
    dtype = _compute_dtype(dtype)
    return reprojection_error(batch[source].to(dtype), _target(batch, dtype, target))


def hint_error(batch: Mapping[str, Any], hint: Tensor, hint_valid: Tensor,
               target: WindowStats | None = None) -> tuple[Tensor, Tensor]:
    """Reprojection error of the left image rebuilt with the Depth Hint ``hint`` (metres; already
    filled with ``missing_hint_fill`` where ``hint_valid`` is False), and where its warp sampled inside.

    Where the fill is 0 the published code's projection sends the pixel (a point at the camera
    centre) to infinity on the row y = 0, and its ``grid_sample`` with border padding reads the right
    image's top-left pixel: a fill of 0 reproduces exactly that colour there (depthlab's own geometry
    would read the unwarped pixel, disparity 0).
    """
    warped, inside = warp_right(hint, batch)
    no_value = ~hint_valid & (hint == 0)
    if bool(no_value.any()):
        corner = batch["image_right"][..., :1, :1].to(warped.dtype)
        warped = torch.where(no_value, corner, warped)
    return reprojection_error(warped, _target(batch, warped.dtype, target)), inside


@dataclass(frozen=True)
class Candidate:
    """One source image of the target view, as its per-pixel reprojection error.

    ``role``: ``prediction`` (a source warped with the network's prediction: its error is the loss),
    ``identity`` (an unwarped source: auto-masking) or ``hint`` (a source warped with a proxy label).
    ``valid`` (bool, None = everywhere): for a prediction, the pixels whose error may be averaged
    (the warp sampled inside the source); for a hint, the pixels where it may win (elsewhere its
    error + ``LOSING_ERROR``); unused for an identity.
    """

    name: str
    role: Role
    error: Tensor
    valid: Tensor | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"Candidate {self.name!r}: role must be one of {', '.join(ROLES)}, got {self.role!r}")


@dataclass(frozen=True)
class Selection:
    """Monodepth2's per-pixel minimum over candidates (:func:`select_minimum`).

    ``error``: the prediction's error (the minimum over the prediction candidates); ``valid``: where
    it may be averaged (the winning prediction candidate's ``valid``); ``identity``: the minimum over
    the identity candidates (None without one); ``winner``: (B, 1, H, W) index into :data:`ROLES` of
    the role whose candidate has the lowest error.
    """

    error: Tensor
    valid: Tensor
    identity: Tensor | None
    winner: Tensor

    def wins(self, role: Role) -> Tensor:
        """Bool (B, 1, H, W): where a candidate of ``role`` has the lowest error."""
        return self.winner == ROLES.index(role)


def _group_minimum(candidates: Sequence[Candidate]) -> tuple[Tensor, Tensor]:
    errors = torch.cat([c.error for c in candidates], dim=1)
    if errors.shape[1] == 1:
        return errors, torch.zeros_like(errors, dtype=torch.long)
    return errors.min(dim=1, keepdim=True)


def select_minimum(candidates: Sequence[Candidate]) -> Selection:
    """The per-pixel minimum over ``candidates`` (Monodepth2; Depth Hints' three-way ``argmin``).

    The minimum is first taken within each role (several prediction or identity candidates, e.g.
    temporal source frames), then over the roles; ties go to the earlier role of :data:`ROLES`
    (prediction, identity, hint), as the published ``argmin`` over [warp, identity, hint].
    """
    groups = {role: [c for c in candidates if c.role == role] for role in ROLES}
    if not groups["prediction"]:
        raise ValueError("select_minimum: needs at least one prediction candidate")
    error, index = _group_minimum(groups["prediction"])
    valids = [c.valid if c.valid is not None else torch.ones_like(c.error, dtype=torch.bool) for c in groups["prediction"]]
    valid = valids[0] if len(valids) == 1 else torch.cat(valids, dim=1).gather(1, index)
    identity = _group_minimum(groups["identity"])[0] if groups["identity"] else None
    competing, roles = [error.detach()], [0]
    if identity is not None:
        competing.append(identity.detach())
        roles.append(1)
    if groups["hint"]:
        hints = [c.error if c.valid is None else torch.where(c.valid, c.error, c.error + LOSING_ERROR) for c in groups["hint"]]
        competing.append(torch.cat(hints, dim=1).detach().min(dim=1, keepdim=True)[0])
        roles.append(2)
    if len(competing) == 1:
        winner = torch.zeros_like(error, dtype=torch.long)
    else:
        # ties: the first minimum. ``min(dim).indices`` rather than ``argmin``: the same index (NaN
        # included), but torch's CPU argmin over a short dim 1 is about 15x slower (a tenth of a
        # synthetic_mono training step; benchmarks/bench_photometric.py)
        first = torch.cat(competing, dim=1).min(dim=1, keepdim=True).indices
        winner = torch.tensor(roles, device=error.device)[first]
    return Selection(error=error, valid=valid, identity=identity, winner=winner)


def photometric_term(selection: Selection, average: Average = "kept") -> Tensor:
    """The photometric term of one scale from its :class:`Selection`.

    ``kept`` (depthlab, depth-hints): the mean of the prediction's error over the valid pixels that
    the identity does not win. ``all`` (monodepth2): the mean over every valid pixel of the error
    of the winner, the identity's where it wins (for prediction and identity alone: the mean of
    min(identity, warp)).
    """
    identity_wins = selection.wins("identity")
    if average == "kept":
        return masked_mean(selection.error, selection.valid & ~identity_wins)
    if average != "all":
        raise ValueError(f"photometric_term: average must be one of {', '.join(AVERAGES)}, got {average!r}")
    value = selection.error
    if selection.identity is not None:
        value = torch.where(identity_wins, selection.identity.to(value.dtype), value)
    return masked_mean(value, selection.valid)


class DepthHintsLoss(DepthLoss):
    """Depth Hints (Watson et al. 2019): the photometric loss plus SGM proxy labels, five supervision modes.

    See the module docstring for ``mode`` and the loop. Needs a stereo batch with
    ``hint``/``hint_valid`` (``self`` needs no hint; ``hard``/``hard_uncertainty`` need no right view).

    Args:
        mode: ``self``, ``hard``, ``sum``, ``hint`` (default, the paper's) or ``hard_uncertainty``.
        automask: Monodepth2's auto-masking of the photometric term (and, in ``hint`` mode, of
            where the hint may win).
        use_scales: also use ``out.scales`` (multi-scale networks), each upsampled.
        missing_hint_fill: the depth (metres, >= 0) warped where a pixel has no hint. It never
            wins there, but the 3x3 SSIM window carries its colour into the valid neighbours' error.
            1.0 (depthlab's default); 0.0 reproduces depth-hints (whose projection of depth 0 reads
            the right image's top-left pixel).
        automask_average: ``kept`` (default; depthlab and depth-hints): the photometric term is the
            mean over the pixels the identity does not win; ``all`` (monodepth2): the mean of
            min(identity, warp) over every pixel.
        inside_mask: leave out pixels whose warp samples outside the right image (default True,
            depthlab); False as monodepth2 and depth-hints, whose border padding keeps them.
        identity_noise: standard deviation of the Gaussian noise added to the identity's error to
            break ties (0.0 default: ties go to the warp deterministically; monodepth2 and
            depth-hints add 1e-5). Drawn from a generator seeded with ``seed`` on the tensors' device.
        seed: the seed of that generator (its state advances with every draw).
        frame_ids: the views of the sample that rebuild the target (0): ``s`` the stereo view
            (default ``[0, s]``: stereo training), non-zero integers k the temporal neighbours
            ``image_f{k:+d}`` warped with the pose network's ``out.poses[k]`` and the target's
            ``intrinsics`` (:func:`depthlab.geometry.warp_with_pose`). Monodepth2's M is
            ``[0, -1, 1]``, its MS ``[0, -1, 1, s]``. All sources are candidates of one per-pixel
            minimum (their identities too, with ``automask``); the hint warps the stereo view.
        depth_normalization: ``none`` (default; Monodepth2) or ``mean``: the temporal warps use the
            depth whose inverse is divided per image by its spatial mean, ``d mean(1/d)`` (Wang et
            al., "Learning Depth from Monocular Videos using Direct Methods", CVPR 2018, section 3.2:
            the inverse depth normalised by its mean before warping). From video alone the depth's scale is unknown:
            without it the depth and the pose network's translations can drift smaller together
            until the depth lies on the network's ``min_depth`` floor and loses its structure; with it
            the loss no longer depends on the depth's scale at all (the translations are learnt in
            units of the mean depth). Not with the stereo view, whose baseline fixes the scale.
    """

    def __init__(
        self,
        mode: Mode = "hint",
        automask: bool = True,
        use_scales: bool = True,
        missing_hint_fill: float = 1.0,
        automask_average: Average = "kept",
        inside_mask: bool = True,
        identity_noise: float = 0.0,
        seed: int = 0,
        frame_ids: Sequence[int | str] = (0, "s"),
        depth_normalization: str = "none",
    ) -> None:
        super().__init__()
        from depthlab.data.keys import STEREO_FRAME, check_frame_ids, frame_suffix, temporal_ids

        frame_ids = check_frame_ids(list(frame_ids), f"{type(self).__name__} frame_ids")
        self.frame_ids = frame_ids
        self.temporal = temporal_ids(frame_ids)
        self.stereo = STEREO_FRAME in frame_ids
        self._frame_keys = {k: "image" + frame_suffix(k) for k in self.temporal}
        if mode not in MODES:
            raise ConfigError(f"depth_hints: mode must be one of {', '.join(MODES)}, got {mode!r}")
        if automask_average not in AVERAGES:
            raise ConfigError(f"depth_hints: automask_average must be one of {', '.join(AVERAGES)}, got {automask_average!r}")
        if not (math.isfinite(missing_hint_fill) and missing_hint_fill >= 0):
            raise ConfigError(f"depth_hints: missing_hint_fill must be a depth >= 0 in metres, got {missing_hint_fill!r}")
        if not (math.isfinite(identity_noise) and identity_noise >= 0):
            raise ConfigError(f"depth_hints: identity_noise must be >= 0, got {identity_noise!r}")
        if depth_normalization not in DEPTH_NORMALIZATIONS:
            raise ConfigError(f"{type(self).__name__}: depth_normalization must be one of "
                              f"{', '.join(DEPTH_NORMALIZATIONS)}, got {depth_normalization!r}")
        if depth_normalization != "none" and (self.stereo or not self.temporal):
            raise ConfigError(f"{type(self).__name__}: depth_normalization {depth_normalization} is for monocular video "
                              f"(temporal frame_ids without 's': the stereo baseline fixes the scale), got frame_ids "
                              f"{list(frame_ids)}")
        self.depth_normalization = depth_normalization
        self.mode = mode
        self.automask = automask
        self.use_scales = use_scales
        self.missing_hint_fill = float(missing_hint_fill)
        self.automask_average = automask_average
        self.inside_mask = inside_mask
        self.identity_noise = float(identity_noise)
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}
        photometric = mode in ("self", "sum", "hint")
        if photometric and not (self.temporal or self.stereo):
            raise ConfigError(f"depth_hints: frame_ids {list(frame_ids)} name no source view: add 's' (the stereo "
                              "view) or temporal neighbours such as -1, 1")
        if mode in ("sum", "hint") and not self.stereo:
            raise ConfigError(f"depth_hints: mode {mode} warps the stereo view with the hint: frame_ids needs 's'")
        keys = {"image"}
        if photometric:
            keys |= (STEREO_KEYS if self.stereo else set()) | set(self._frame_keys.values())
            keys |= {"intrinsics"} if self.temporal else set()
        self.requires = frozenset(keys | ({"hint", "hint_valid"} if mode != "self" else set()))
        outputs = {"depth", "log_variance"} if mode == "hard_uncertainty" else {"depth"}
        self.requires_output = frozenset(outputs | ({"poses"} if photometric and self.temporal else set()))

    def _noise(self, like: Tensor) -> Tensor:
        """identity_noise * N(0, 1) of ``like``'s shape, from this loss's seeded generator on its device."""
        generator = self._generators.get(like.device)
        if generator is None:
            generator = self._generators[like.device] = torch.Generator(device=like.device).manual_seed(self.seed)
        return self.identity_noise * torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)

    def forward(self, out: DepthOutput, batch: Mapping[str, Any], mask: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        depths = scale_depths(out, tuple(batch["image"].shape[-2:]), self.use_scales)
        stats: dict[str, Tensor] = {}
        hint = valid = None
        if self.mode != "self":  # the one place the hint is completed: the fill where it has no value
            valid = batch["hint_valid"].bool()
            hint = fill_invalid(batch["hint"], valid, self.missing_hint_fill)
            stats["hint_fraction"] = valid.float().mean()
        if self.mode == "hard":
            terms = [masked_mean(torch.log1p((hint - d).abs()), valid) for d in depths]
            return torch.stack(terms).mean(), stats
        if self.mode == "hard_uncertainty":
            if out.log_variance is None:
                raise ValueError("depth_hints mode hard_uncertainty needs out.log_variance: set uncertainty: true")
            return log_depth_nll(depths[0], hint, out.log_variance, valid, "laplace"), stats

        # the candidates that do not depend on the scale: computed once, at full resolution, as are
        # the target's SSIM window statistics that every candidate is compared with
        target = target_stats(batch, out.depth.dtype)
        identities = self._identities(batch, target) if self.automask else []
        fixed: list[Candidate] = []
        if self.mode == "hint":
            error, inside = hint_error(batch, hint, valid, target)
            fixed.append(Candidate("hint", "hint", error, valid & inside if self.inside_mask else valid))
        terms, used, insides, masked = [], [], [], []
        for depth in depths:
            candidates = []
            for name, error, inside in self._warps(depth, batch, out, target):
                insides.append(inside.float().mean())
                candidates.append(Candidate(name, "prediction", error, inside if self.inside_mask else None))
            candidates += fixed
            for name, identity in identities:  # Monodepth2 adds its tie-break noise to every identity error
                noisy = identity + self._noise(identity) if self.identity_noise else identity
                candidates.append(Candidate(name, "identity", noisy))
            selection = select_minimum(candidates)
            term = photometric_term(selection, self.automask_average)
            if identities:
                masked.append((selection.valid & selection.wins("identity")).float().mean())
            use = valid if self.mode == "sum" else selection.wins("hint") if self.mode == "hint" else None
            if use is not None:
                term = term + masked_mean(torch.log1p((hint - depth).abs()), use)
                used.append(use.float().mean())
            terms.append(term)
        stats["inside_fraction"] = torch.stack(insides).mean()
        if masked:
            stats["automasked_fraction"] = torch.stack(masked).mean()
        if used:
            stats["hint_fraction"] = torch.stack(used).mean().detach()
        return torch.stack(terms).mean(), stats

    def _sources(self) -> list[int | str]:
        """The source views in Monodepth2's order: the temporal frames as listed, then 's'."""
        return [*self.temporal, *(["s"] if self.stereo else [])]

    def _identities(self, batch: Mapping[str, Any], target: WindowStats) -> list[tuple[str, Tensor]]:
        """Each unwarped source's reprojection error as the target (auto-masking), once per batch."""
        dtype = target.image.dtype
        return [(f"identity_{k}" if k == "s" else f"identity_{k:+d}",
                 identity_error(batch, dtype, "image_right" if k == "s" else self._frame_keys[k], target))
                for k in self._sources()]

    def _warps(self, depth: Tensor, batch: Mapping[str, Any], out: DepthOutput,
               target: WindowStats | None = None) -> list[tuple[str, Tensor, Tensor]]:
        """(name, reprojection error, inside) of the target rebuilt from each source with ``depth``:
        the stereo view along its rows, each temporal frame with the pose network's pose."""
        warps, warped = [], depth
        for k in self._sources():
            if k == "s":
                warps.append(("warp_s", *warp_error(depth, batch, target=target)))
                continue
            if not out.poses or k not in out.poses:
                raise ValueError(f"{type(self).__name__}: frame {k:+d} needs out.poses[{k}] (a model.pose_net)")
            if self.depth_normalization == "mean" and warped is depth:
                warped = depth * safe_reciprocal(depth).mean((1, 2, 3), keepdim=True)
            warps.append((f"warp_{k:+d}", *warp_error(warped, batch, self._frame_keys[k], out.poses[k], target)))
        return warps

    def extra_repr(self) -> str:
        return (
            f"frame_ids={list(self.frame_ids)}, mode={self.mode}, automask={self.automask}, use_scales={self.use_scales}, "
            f"missing_hint_fill={self.missing_hint_fill}, automask_average={self.automask_average}, "
            f"inside_mask={self.inside_mask}, identity_noise={self.identity_noise}, seed={self.seed}"
            + (f", depth_normalization={self.depth_normalization}" if self.depth_normalization != "none" else "")
        )


class PhotometricLoss(DepthHintsLoss):
    """Stereo photometric reprojection error of the left view rebuilt from the right (Monodepth2).

    Exactly :class:`DepthHintsLoss` with ``mode: self`` (one code path); the arguments are its
    photometric ones. See the module docstring.

    Args:
        automask: leave out pixels that the unwarped right image reconstructs at least as well
            (Monodepth2's auto-masking; ties go to the warp, deterministically, unless
            ``identity_noise`` > 0).
        use_scales: also average over ``out.scales`` (multi-scale networks), each upsampled.
        automask_average, inside_mask, identity_noise, seed, frame_ids, depth_normalization: as
            :class:`DepthHintsLoss`.
        ``frame_ids: [0, -1, 1]`` is Monodepth2's M, ``[0, -1, 1, s]`` its MS, ``[0, s]`` (default) S.
    """

    def __init__(
        self,
        automask: bool = True,
        use_scales: bool = True,
        automask_average: Average = "kept",
        inside_mask: bool = True,
        identity_noise: float = 0.0,
        seed: int = 0,
        frame_ids: Sequence[int | str] = (0, "s"),
        depth_normalization: str = "none",
    ) -> None:
        super().__init__("self", automask, use_scales, automask_average=automask_average, inside_mask=inside_mask,
                         identity_noise=identity_noise, seed=seed, frame_ids=frame_ids,
                         depth_normalization=depth_normalization)
