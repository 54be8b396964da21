"""Edge-aware smoothness (Monodepth form): hand values, edge weighting, scale invariance, masking."""

import math

import pytest
import torch

from depthlab import losses
from depthlab.losses.smoothness import edge_aware_smoothness
from depthlab.models.output import DepthOutput
from loss_call import call_loss


def _row(disparity, image_row=None):
    """A 1-row map with the given disparities (depth = 1/disparity) and a grey image."""
    disp = torch.tensor(disparity, dtype=torch.float64).view(1, 1, 1, -1)
    pred = 1.0 / disp
    if image_row is None:
        image_row = [0.5] * len(disparity)
    image = torch.tensor(image_row, dtype=torch.float64).view(1, 1, 1, -1).expand(1, 3, 1, -1).clone()
    return pred, torch.ones_like(pred), torch.ones_like(pred, dtype=torch.bool), image


def test_hand_value_flat_image():
    # disparity [1, 2, 3], mean 2 -> normalised [0.5, 1, 1.5]; |dx| = [0.5, 0.5]; no vertical pairs
    pred, target, mask, image = _row([1.0, 2.0, 3.0])
    value = call_loss(losses.build("edge_smoothness"), pred, target, mask, image)
    assert value.item() == pytest.approx(0.5 * 2 / (2 + 1e-7), rel=1e-9)


def test_hand_value_image_edge_lowers_the_penalty():
    # an image step of 1 between pixels 1 and 2 (all channels): weights exp(-1) and 1
    pred, target, mask, image = _row([1.0, 2.0, 3.0], [0.0, 1.0, 1.0])
    value = call_loss(losses.build("edge_smoothness"), pred, target, mask, image)
    assert value.item() == pytest.approx((0.5 * math.exp(-1) + 0.5) / 2, rel=1e-6)


def test_channel_mean_of_image_gradient():
    disp = torch.tensor([[0.0, 1.0]], dtype=torch.float64).view(1, 1, 1, 2)
    image = torch.tensor([0.0, 0.0, 0.0, 0.9, 0.0, 0.0], dtype=torch.float64).view(1, 3, 1, 2)  # red steps 0.9
    assert edge_aware_smoothness(disp, image).item() == pytest.approx(math.exp(-0.3), rel=1e-12)


def test_constant_depth_costs_nothing_and_scale_does_not_matter():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 1, 5, 6, generator=g, dtype=torch.float64) + 0.5
    image = torch.rand(2, 3, 5, 6, generator=g, dtype=torch.float64)
    mask = torch.rand(2, 1, 5, 6, generator=g) > 0.2
    loss = losses.build("edge_smoothness")
    assert call_loss(loss, torch.full_like(pred, 3.0), pred, mask, image).item() == 0.0
    assert call_loss(loss, pred * 7.5, pred, mask, image).item() == pytest.approx(call_loss(loss, pred, pred, mask, image).item(), rel=1e-6)


def test_unmasked_is_monodepth2_form_over_every_pixel():
    g = torch.Generator().manual_seed(1)
    pred = torch.rand(2, 1, 5, 6, generator=g, dtype=torch.float64) + 0.5
    image = torch.rand(2, 3, 5, 6, generator=g, dtype=torch.float64)
    no_pixel = torch.zeros_like(pred, dtype=torch.bool)
    disp = 1 / pred
    d = disp / (disp.mean((2, 3), keepdim=True) + 1e-7)
    gx = (d[..., :, :-1] - d[..., :, 1:]).abs() * torch.exp(-(image[..., :, :-1] - image[..., :, 1:]).abs().mean(1, keepdim=True))
    gy = (d[..., :-1, :] - d[..., 1:, :]).abs() * torch.exp(-(image[..., :-1, :] - image[..., 1:, :]).abs().mean(1, keepdim=True))
    expected = gx.mean() + gy.mean()
    value = call_loss(losses.build("edge_smoothness", masked=False), pred, pred, no_pixel, image)
    assert value.item() == pytest.approx(expected.item(), rel=1e-12)
    # masked (the default), the same inputs with no valid pixel give 0
    assert call_loss(losses.build("edge_smoothness"), pred, pred, no_pixel, image).item() == 0.0


def test_masked_counts_only_pairs_of_valid_pixels():
    pred, target, _, image = _row([1.0, 2.0, 3.0, 100.0])
    mask = torch.tensor([True, True, True, False]).view(1, 1, 1, 4)
    # the invalid 4th pixel changes neither the normalising mean nor the pairs
    value = call_loss(losses.build("edge_smoothness"), pred, target, mask, image)
    assert value.item() == pytest.approx(0.5 * 2 / (2 + 1e-7), rel=1e-9)


def test_reads_the_image_and_the_networks_own_inverse_depth():
    loss = losses.build("edge_smoothness")
    assert loss.requires == {"image"}
    pred, _, mask, image = _row([1.0, 2.0, 3.0])
    # an inverse-depth network's own output is what is regularised (here 2x the 1/depth of `pred`:
    # the mean normalisation makes that the same value), and a different map gives another value
    same = loss(DepthOutput(depth=torch.full_like(pred, 5.0), inverse_depth=2.0 / pred), {"image": image}, mask)
    assert same.item() == pytest.approx(0.5 * 2 / (2 + 1e-7 / 2), rel=1e-9)
    flat = loss(DepthOutput(depth=pred, inverse_depth=torch.ones_like(pred)), {"image": image}, mask)
    assert flat.item() == 0.0


def test_multi_scale_form_equals_a_hand_computation_of_two_scales():
    # 1x1x4x4 inverse depth and a 2x2 coarser scale; a 1-channel image (mean over channels = itself)
    # monodepth2: (1/S) sum_s smooth(disp_s / mean(disp_s), image at scale s) / 2^s, S = 2
    np = pytest.importorskip("numpy")
    fine = np.array([[1, 2, 4, 4], [1, 3, 3, 5], [2, 2, 6, 1], [4, 1, 2, 2]], dtype=np.float64)
    coarse = np.array([[1, 3], [2, 5]], dtype=np.float64)
    image = np.array([[0, 0, 1, 1], [0, 0.5, 1, 1], [0.2, 0.2, 0, 0], [0.2, 0.2, 0, 0.4]], dtype=np.float64)
    small = image.reshape(2, 2, 2, 2).mean(axis=(1, 3))  # area: the mean of each 2x2 block

    def smooth(disp, img):
        d = disp / (disp.mean() + 1e-7)
        gx = np.abs(np.diff(d, axis=1)) * np.exp(-np.abs(np.diff(img, axis=1)))
        gy = np.abs(np.diff(d, axis=0)) * np.exp(-np.abs(np.diff(img, axis=0)))
        return gx.mean() + gy.mean()

    expected = (smooth(fine, image) / 1 + smooth(coarse, small) / 2) / 2
    t = lambda a: torch.tensor(a).view(1, 1, *a.shape)  # noqa: E731
    out = DepthOutput(depth=1 / t(fine), inverse_depth=t(fine), scales=[DepthOutput(depth=1 / t(coarse), inverse_depth=t(coarse))])
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    value = losses.build("edge_smoothness", masked=False, scales="all")(out, {"image": t(image)}, mask)
    assert value.item() == pytest.approx(expected, rel=1e-12)
    # the default form is the finest scale's term alone (today's behaviour)
    finest = losses.build("edge_smoothness", masked=False)(out, {"image": t(image)}, mask)
    assert finest.item() == pytest.approx(smooth(fine, image), rel=1e-12)
    # without coarser scales both forms agree
    alone = DepthOutput(depth=1 / t(fine), inverse_depth=t(fine))
    assert losses.build("edge_smoothness", masked=False, scales="all")(alone, {"image": t(image)}, mask).item() == pytest.approx(
        smooth(fine, image), rel=1e-12)


def test_multi_scale_form_needs_masked_false_and_a_known_name():
    from depthlab.errors import ConfigError

    with pytest.raises(ConfigError, match="set masked: false"):
        losses.build("edge_smoothness", scales="all")
    with pytest.raises(ConfigError, match="scales must be 'finest' or 'all'"):
        losses.build("edge_smoothness", masked=False, scales="coarse")
