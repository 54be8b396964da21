"""Call any registered loss through the one loss contract ``loss(out, batch, mask)`` on plain tensors."""

import torch

from depthlab.losses import WeightedSum
from depthlab.models.output import DepthOutput


def call_loss(loss, pred, target, mask, image=None, log_variance=None):
    """``pred``/``target`` (B, 1, H, W) metres, ``mask`` bool, ``image`` (B, 3, H, W) in [0, 1].

    With an image the batch is a stereo batch (right view, intrinsics, baseline) whose Depth Hints
    proxy label is the ground truth, so that self-supervised losses run through the same tests.

    Losses that read ``out.log_variance`` get a fixed map (0.3, unless given) so that every
    registered loss can be checked by the same tests; ground truth at masked pixels is replaced by
    1 m exactly as DepthModule does before any loss sees it.
    """
    if log_variance is None and "log_variance" in getattr(loss, "requires_output", ()):
        log_variance = torch.full_like(pred, 0.3)
    out = DepthOutput(depth=pred, log_variance=log_variance)
    batch = {"depth": torch.where(mask, target, torch.ones_like(target))}
    if image is not None:  # a stereo batch too: the right view is the image shifted by 1 px
        b = image.shape[0]
        batch.update(
            image=image,
            image_right=image.roll(-1, dims=-1),
            intrinsics=torch.tensor([2.0, 2.0, 0.0, 0.0], dtype=image.dtype).repeat(b, 1),
            baseline_m=torch.ones(b, dtype=image.dtype),
            hint=torch.where(mask, target, torch.zeros_like(target)),
            hint_valid=mask,
        )
    value = loss(out, batch, mask)
    if isinstance(loss, WeightedSum):
        return value  # (total, parts)
    return value[0] if isinstance(value, tuple) else value  # a term's (value, diagnostics)
