"""depthlab's stereo loss against depth-hints' and monodepth2's ``trainer.py compute_losses``, restated.

The ``*_script`` functions restate, from the published code (nianticlabs/depth-hints and
nianticlabs/monodepth2 ``trainer.py``/``layers.py``), what it computes for a stereo pair
(``frame_ids [0, "s"]``, every scale's disparity upsampled to full size): pinhole back-projection and
projection with a 4x4 K and the stereo transform T (translation -baseline), ``grid_sample`` with border
padding on the (x / (W - 1) - 0.5) * 2 grid (align_corners=True, the PyTorch 0.4 behaviour the code
was written for), the 3x3 reflection-padded SSIM, the tie-break noise and the argmin over [warp,
identity, hint]. They are written from the formulas, not copied. With the peers' conventions set as
options (docs/hints.md, "Conventions"), depthlab equals them to float noise.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from depthlab import losses
from depthlab.data.synthetic import SceneConfig, render_sample
from depthlab.models.output import DepthOutput

DEPTH_HINTS = {"missing_hint_fill": 0.0, "inside_mask": False, "identity_noise": 1e-5, "automask_average": "kept"}
MONODEPTH2 = {"automask_average": "all", "inside_mask": False, "identity_noise": 1e-5}


def ssim_loss_script(x, y):
    pad = lambda t: F.pad(t, (1, 1, 1, 1), mode="reflect")  # noqa: E731
    x, y = pad(x), pad(y)
    mu_x, mu_y = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    sigma_x = F.avg_pool2d(x**2, 3, 1) - mu_x**2
    sigma_y = F.avg_pool2d(y**2, 3, 1) - mu_y**2
    sigma_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    n = (2 * mu_x * mu_y + 0.01**2) * (2 * sigma_xy + 0.03**2)
    d = (mu_x**2 + mu_y**2 + 0.01**2) * (sigma_x + sigma_y + 0.03**2)
    return torch.clamp((1 - n / d) / 2, 0, 1)


def reprojection_script(pred, target):
    return 0.85 * ssim_loss_script(pred, target).mean(1, True) + 0.15 * (target - pred).abs().mean(1, True)


def warp_script(source, depth, intrinsics, baseline):
    """BackprojectDepth then Project3D (eps 1e-7) then grid_sample(padding_mode="border")."""
    b, _, h, w = source.shape
    fx, fy, cx, cy = intrinsics.unbind(-1)
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    K = torch.stack([torch.stack(r, -1) for r in ((fx, zero, cx, zero), (zero, fy, cy, zero), (zero, zero, one, zero),
                                                  (zero, zero, zero, one))], -2)
    T = torch.eye(4, dtype=source.dtype).repeat(b, 1, 1)
    T[:, 0, 3] = -baseline  # the right camera sits baseline metres along +x
    ys, xs = torch.meshgrid(torch.arange(h, dtype=source.dtype), torch.arange(w, dtype=source.dtype), indexing="ij")
    pix = torch.stack([xs.flatten(), ys.flatten(), torch.ones(h * w, dtype=source.dtype)]).expand(b, 3, -1)
    cam = depth.view(b, 1, -1) * (torch.linalg.inv(K)[:, :3, :3] @ pix)
    cam = torch.cat([cam, torch.ones(b, 1, h * w, dtype=source.dtype)], 1)
    p = (K @ T)[:, :3, :] @ cam
    coords = (p[:, :2] / (p[:, 2:3] + 1e-7)).view(b, 2, h, w).permute(0, 2, 3, 1)
    coords = torch.stack([coords[..., 0] / (w - 1), coords[..., 1] / (h - 1)], -1)
    return F.grid_sample(source, (coords - 0.5) * 2, padding_mode="border", align_corners=True)


def depth_hints_script(batch, disps, hint, hint_mask, generator, smoothness=0.0):
    """depth-hints ``compute_losses`` (automasking, ``use_depth_hints``): ``disps`` are each scale's
    scaled disparity (1/m) at its own size; ``hint`` 0 where ``hint_mask`` is 0."""
    image, right, k, base = batch["image"], batch["image_right"], batch["intrinsics"], batch["baseline_m"]
    hint_loss = reprojection_script(warp_script(right, hint, k, base), image) + 1000 * (1 - hint_mask)
    total = 0
    for scale, disp in enumerate(disps):
        full = F.interpolate(disp, image.shape[-2:], mode="bilinear", align_corners=False)
        depth = 1 / full
        reprojection = reprojection_script(warp_script(right, depth, k, base), image)
        identity = reprojection_script(right, image)
        identity = identity + torch.randn(identity.shape, generator=generator, dtype=identity.dtype) * 0.00001
        if hint_loss is None:
            idxs = torch.argmin(torch.cat([reprojection, identity], 1), 1, keepdim=True)
        else:
            idxs = torch.argmin(torch.cat([reprojection, identity, hint_loss], 1), 1, keepdim=True)
        mask = (idxs != 1).to(image.dtype)
        loss = (reprojection * mask).sum() / (mask.sum() + 1e-7)
        if hint_loss is not None:
            use = (idxs == 2).to(image.dtype)
            loss = loss + (torch.log(torch.abs(hint - depth) + 1) * hint_mask * use).sum() / (use.sum() + 1e-7)
        loss = loss + smoothness * smooth_script(disp, image) / 2**scale
        total = total + loss
    return total / len(disps)


def smooth_script(disp, image):
    """layers.get_smooth_loss of disp / (mean + 1e-7) with the image at the scale's size (area-resized here)."""
    color = F.interpolate(image, disp.shape[-2:], mode="area") if disp.shape[-2:] != image.shape[-2:] else image
    disp = disp / (disp.mean(2, True).mean(3, True) + 1e-7)
    gx = (disp[..., :-1] - disp[..., 1:]).abs() * torch.exp(-(color[..., :-1] - color[..., 1:]).abs().mean(1, True))
    gy = (disp[..., :-1, :] - disp[..., 1:, :]).abs() * torch.exp(-(color[..., :-1, :] - color[..., 1:, :]).abs().mean(1, True))
    return gx.mean() + gy.mean()


def monodepth2_script(batch, disps, generator, smoothness=0.0):
    """monodepth2 ``compute_losses`` for a stereo pair: mean over all pixels of min(identity + noise, warp)."""
    image, right, k, base = batch["image"], batch["image_right"], batch["intrinsics"], batch["baseline_m"]
    total = 0
    for scale, disp in enumerate(disps):
        depth = 1 / F.interpolate(disp, image.shape[-2:], mode="bilinear", align_corners=False)
        reprojection = reprojection_script(warp_script(right, depth, k, base), image)
        identity = reprojection_script(right, image)
        identity = identity + torch.randn(identity.shape, generator=generator, dtype=identity.dtype) * 0.00001
        to_optimise, _ = torch.min(torch.cat((identity, reprojection), 1), 1)
        total = total + to_optimise.mean() + smoothness * smooth_script(disp, image) / 2**scale
    return total / len(disps)


@pytest.fixture(scope="module")
def pair():
    """Two synthetic stereo samples (48x64) in float64, a two-scale "prediction" near the truth, and
    SGM-like hints with 30 % missing."""
    cfg = SceneConfig(48, 64, 70.0, 0.25, 0.5, 10.0)
    samples = [render_sample(cfg, 0, "train", i) for i in range(2)]
    batch = {k: torch.stack([s[k] for s in samples]).double() for k in ("image", "image_right", "depth", "intrinsics", "baseline_m")}
    g = torch.Generator().manual_seed(0)
    true = batch["depth"].clamp_min(0.5)
    hint = true * torch.exp(0.05 * torch.randn(true.shape, generator=g, dtype=true.dtype))
    holes = torch.rand(hint.shape, generator=g) < 0.3
    # a hint that warps from outside reads the same border colour as a prediction that does: an exact
    # tie that float noise (the projection's eps) breaks either way; leave those pixels without a hint
    disparity = batch["intrinsics"][:, 0].view(-1, 1, 1, 1) * batch["baseline_m"].view(-1, 1, 1, 1) / hint
    holes |= torch.arange(hint.shape[-1], dtype=hint.dtype) - disparity < 1
    batch["hint"] = torch.where(holes, torch.zeros_like(hint), hint)
    batch["hint_valid"] = ~holes
    fine = 1 / (true * 1.15)
    disps = [fine, F.avg_pool2d(fine, 2) * 0.9]
    return batch, disps


def _out(disps):
    return DepthOutput(depth=1 / disps[0], inverse_depth=disps[0],
                       scales=[DepthOutput(depth=1 / d, inverse_depth=d) for d in disps[1:]])


def test_depth_hints_options_equal_the_published_depth_hints_loss(pair):
    batch, disps = pair
    expected = depth_hints_script(batch, disps, batch["hint"], batch["hint_valid"].double(), torch.Generator().manual_seed(5))
    loss = losses.build("depth_hints", mode="hint", seed=5, **DEPTH_HINTS)
    value, _ = loss(_out(disps), batch, torch.zeros_like(batch["hint_valid"]))
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    # depthlab's defaults differ from it (the fill, the inside mask, no noise)
    default, _ = losses.build("depth_hints", mode="hint")(_out(disps), batch, torch.zeros_like(batch["hint_valid"]))
    assert default.item() != pytest.approx(expected.item(), rel=1e-6)


def test_monodepth2_options_equal_the_published_monodepth2_stereo_loss_with_multi_scale_smoothness(pair):
    batch, disps = pair
    expected = monodepth2_script(batch, disps, torch.Generator().manual_seed(2), smoothness=1e-3)
    objective = losses.build_objective([{"name": "photometric", "seed": 2, **MONODEPTH2},
                                        {"name": "edge_smoothness", "weight": 1e-3, "masked": False, "scales": "all"}])
    total, _ = objective(_out(disps), batch, torch.zeros_like(batch["hint_valid"]))
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
