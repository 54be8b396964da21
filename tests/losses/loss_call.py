"""Call any registered loss through the one loss contract ``loss(out, batch, mask)`` on plain tensors."""

import torch

from depthlab.models.output import DepthOutput


def call_loss(loss, pred, target, mask, image=None, log_variance=None):
    """``pred``/``target`` (B, 1, H, W) metres, ``mask`` bool, ``image`` (B, 3, H, W) in [0, 1].

    Losses that read ``out.log_variance`` get a fixed map (0.3, unless given) so that every
    registered loss can be checked by the same tests; ground truth at masked pixels is replaced by
    1 m exactly as DepthModule does before any loss sees it.
    """
    if log_variance is None and "log_variance" in getattr(loss, "requires_output", ()):
        log_variance = torch.full_like(pred, 0.3)
    out = DepthOutput(depth=pred, log_variance=log_variance)
    batch = {"depth": torch.where(mask, target, torch.ones_like(target))}
    if image is not None:
        batch["image"] = image
    return loss(out, batch, mask)
