"""The sample/batch structure every depthlab data module yields."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import TypedDict

from torch import Tensor


class DepthSample(TypedDict, total=False):
    """One sample; the default collate stacks it into a batch with a leading B axis.

    Required: ``image``, ``depth``, ``valid``. The rest is present when the data set has it (a data
    module's ``provides`` lists the keys of its batches). The per-view maps and their masks are
    those of ``depthlab.data.keys.VIEW_KEYS``.
    """

    image: Tensor  # (3, H, W) float32 RGB in [0, 1] (networks normalise it themselves)
    depth: Tensor  # (1, H, W) float32 metres; 0 where there is no measurement
    valid: Tensor  # (1, H, W) bool, True where ``depth`` is a measurement
    image_right: Tensor  # (3, H, W) right view of a rectified stereo pair
    intrinsics: Tensor  # (4,) fx, fy, cx, cy in pixels of ``image``
    baseline_m: Tensor  # () stereo baseline in metres
    depth_right: Tensor  # (1, H, W) depth of the right view (zeros where it has no ground truth)
    valid_right: Tensor  # (1, H, W) bool
    hint: Tensor  # (1, H, W) float32 metres, Depth Hints' fused stereo depth; 0 where there is none
    hint_valid: Tensor  # (1, H, W) bool, hint > 0
    hint_right: Tensor  # (1, H, W) the right view's hint
    hint_valid_right: Tensor  # (1, H, W) bool
    crop_offset: Tensor  # (2,) int64 top, left of this sample's window in the original frame
    full_size: Tensor  # (2,) int64 H, W of the original frame (place the window back for eval crops)
    index: Tensor  # () int64 position in its data set (names the file in error reports)
    original_size: Tensor  # (2,) int64 H, W of a user's image file before resizing to the network's input
    # Video frames (data.frame_ids with temporal neighbours k, see depthlab.data.keys), e.g. k = -1:
    #   image_f-1: (3, H, W) frame k of the target's camera, pose_f-1: (4, 4) float32 target camera ->
    #   frame k's camera (procedural data only). Not declared here: the keys depend on k.
    name: str  # a user's image file, relative to its folder (names the prediction files)


def output_stem(name: str | None, index: int | None) -> str:
    """The file stem of one sample's outputs: what ``depthlab predict`` writes under and where
    ``depthlab evaluate`` looks. The sample's ``name`` without its suffix, subfolders kept
    (``sub/a.jpg`` -> ``sub/a``), else its index in the split, six digits (``000042``)."""
    if name is not None:
        return PurePosixPath(str(name)).with_suffix("").as_posix()
    if index is None:
        raise ValueError("output_stem: a sample without a name needs its index")
    return f"{int(index):06d}"
