"""The procedural stereo generator: deterministic, disjoint splits, geometrically consistent views."""

import math

import numpy as np
import pytest
import torch

from depthlab.data.synthetic import SceneConfig, SyntheticDataModule, render_sample
from depthlab.errors import ConfigError
from depthlab.geometry import depth_to_disparity, warp_horizontal

CFG = SceneConfig(height=48, width=64)


def test_same_seed_split_index_gives_identical_sample():
    a, b = render_sample(CFG, 3, "train", 7), render_sample(CFG, 3, "train", 7)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_splits_seeds_and_indices_give_different_scenes():
    ref = render_sample(CFG, 0, "train", 0)["image"]
    for other in (render_sample(CFG, 0, "val", 0), render_sample(CFG, 0, "test", 0),
                  render_sample(CFG, 1, "train", 0), render_sample(CFG, 0, "train", 1)):
        assert (other["image"] - ref).abs().mean() > 0.01


def test_train_val_test_share_no_image():
    dm = SyntheticDataModule(height=24, width=32, train_size=30, val_size=10, test_size=10)
    hashes = {}
    for split in ("train", "val", "test"):
        for i, sample in enumerate(dm.dataset(split)):
            key = hash(sample["image"].numpy().tobytes())
            assert key not in hashes, f"{split}[{i}] equals {hashes[key]}"
            hashes[key] = f"{split}[{i}]"


def test_intrinsics_follow_the_field_of_view():
    fx, fy, cx, cy = SceneConfig(height=48, width=64, hfov_deg=90).intrinsics
    assert fx == pytest.approx(32.0) and fy == fx  # tan(45 deg) = 1: fx = W / 2
    assert (cx, cy) == (31.5, 23.5)


def test_depth_valid_mask_and_range():
    s = render_sample(SceneConfig(height=48, width=64, min_depth=0.5, max_depth=6.0), 0, "train", 2)
    d, v = s["depth"], s["valid"]
    assert d.shape == (1, 48, 64) and v.dtype == torch.bool
    assert (d[v] > 0.5).all() and (d[v] < 6.0).all()
    assert (d[~v] == 0).all()


def test_sparse_ground_truth_keeps_the_requested_fraction():
    dense = render_sample(SceneConfig(height=64, width=96), 0, "train", 4)
    sparse = render_sample(SceneConfig(height=64, width=96, gt_density=0.1), 0, "train", 4)
    frac = sparse["valid"].float().sum() / dense["valid"].float().sum()
    assert 0.08 < frac < 0.12
    assert (sparse["valid"] <= dense["valid"]).all()  # sparse is a subset of the dense mask
    v = sparse["valid"]
    assert torch.equal(sparse["depth"][v], dense["depth"][v])  # same scene, same depth


@pytest.mark.parametrize("index", [0, 1, 2])
def test_views_agree_under_the_true_disparity_only(index):
    cfg = SceneConfig(height=96, width=128, baseline_m=0.3)
    s = {key: value[None] for key, value in render_sample(cfg, 0, "test", index).items()}
    disparity = depth_to_disparity(s["depth"], s["intrinsics"][:, 0], s["baseline_m"])

    def error(disp):
        left_hat, inside = warp_horizontal(s["image_right"], disp)  # left(x) = right(x - d)
        in_view = s["valid"] & inside
        return (left_hat - s["image"]).abs().mean(1, keepdim=True)[in_view].mean()

    true_err = error(disparity)
    assert true_err < 0.03  # residual: occlusions and bilinear resampling only
    assert error(disparity * 1.5) > 3 * true_err
    assert error(disparity + 3) > 3 * true_err
    assert error(torch.zeros_like(disparity)) > 3 * true_err


def test_right_view_carries_its_own_ground_truth():
    cfg = SceneConfig(height=48, width=64, min_depth=0.5, max_depth=6.0)
    s = render_sample(cfg, 0, "val", 5)
    assert s["index"].item() == 5 and s["index"].dtype == torch.int64
    d, v = s["depth_right"], s["valid_right"]
    assert d.shape == (1, 48, 64) and torch.equal(v, d > 0)
    assert (d[v] > 0.5).all() and (d[v] < 6.0).all()
    assert not torch.equal(d, s["depth"])  # another viewpoint (its agreement with the left view under
    # the disparity is tested in tests/test_geometry.py)


def test_right_ground_truth_follows_the_density_and_leaves_the_left_unchanged():
    dense = render_sample(SceneConfig(height=64, width=96), 0, "train", 4)
    sparse = render_sample(SceneConfig(height=64, width=96, gt_density=0.1), 0, "train", 4)
    frac = sparse["valid_right"].float().sum() / dense["valid_right"].float().sum()
    assert 0.08 < frac < 0.12 and (sparse["valid_right"] <= dense["valid_right"]).all()
    assert not torch.equal(sparse["valid_right"], sparse["valid"])  # independent draws per view


def test_depth_is_z_depth_not_ray_length():
    """A fronto-parallel wall at z has constant depth across the image although ray lengths differ."""
    from depthlab.data.synthetic import Scene, render_view

    cfg = SceneConfig(height=16, width=16, hfov_deg=60, max_boxes=0, max_spheres=0)
    k = 6 + 0
    scene = Scene(
        room_lo=np.array([-100.0, -100.0, -1.0]), room_hi=np.array([100.0, 100.0, 4.0]),
        boxes=np.zeros((0, 2, 3)), spheres=np.zeros((0, 4)), rotation=np.eye(3),
        base_color=np.full((k, 3), 0.5), wave_vec=np.zeros((k, 4, 3)), wave_phase=np.zeros((k, 4)),
        checker_m=np.ones(k), checker_amp=np.zeros(k), light=np.array([0.0, 0.0, -1.0]),
    )
    _, depth = render_view(scene, cfg)
    np.testing.assert_allclose(depth, 4.0, rtol=1e-6)
    # Shifted by the baseline the wall is still at z = 4.
    _, depth_right = render_view(scene, cfg, 0.5)
    np.testing.assert_allclose(depth_right, 4.0, rtol=1e-6)
    assert math.isclose(cfg.intrinsics[0], 8 / math.tan(math.radians(30)), rel_tol=1e-9)


def test_bad_scene_config_is_rejected_with_the_field_name():
    with pytest.raises(ValueError, match="gt_density"):
        SceneConfig(gt_density=0)
    with pytest.raises(ValueError, match="min_depth"):
        SceneConfig(min_depth=5, max_depth=1)


def test_scale_range_scales_depth_and_baseline_but_not_the_images():
    import numpy as np

    from depthlab.data.synthetic import SyntheticDataModule, render_sample, scene_scale

    dm = SyntheticDataModule(height=24, width=32, train_size=6, scale_range=(0.5, 2.0))
    dataset = dm.dataset("train")
    scales = []
    for index in range(6):
        plain = render_sample(dm.scene, 0, "train", index)
        scaled = dataset[index]
        s = scene_scale((0.5, 2.0), 0, "train", index)
        scales.append(s)
        assert 0.5 <= s <= 2.0
        assert torch.equal(scaled["image"], plain["image"]) and torch.equal(scaled["image_right"], plain["image_right"])
        assert torch.allclose(scaled["depth"], plain["depth"] * s) and torch.equal(scaled["valid"], plain["valid"])
        assert float(scaled["baseline_m"]) == pytest.approx(dm.scene.baseline_m * s)
    assert len(set(np.round(scales, 6))) == 6  # one factor per scene, a function of (seed, split, index)
    assert scene_scale((0.5, 2.0), 0, "train", 3) == scales[3]
    assert scene_scale((1.0, 1.0), 0, "train", 3) == 1.0


def test_scale_range_and_cache_reject_bad_settings():
    from depthlab.data.synthetic import SyntheticDataModule
    from depthlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data.scale_range: expected \[low, high\] with 0 < low <= high, got \[2.0, 1.0\]"):
        SyntheticDataModule(scale_range=(2.0, 1.0))
    with pytest.raises(ConfigError, match="data.scale_range: not with Depth Hints"):
        SyntheticDataModule(scale_range=(0.5, 2.0), hints_on_the_fly=True)


def test_cache_renders_each_sample_once(monkeypatch):
    from depthlab.data import synthetic

    calls = []
    real = synthetic.render_arrays  # what the data set's load() renders with
    monkeypatch.setattr(synthetic, "render_arrays", lambda *a, **kw: calls.append(a[3]) or real(*a, **kw))
    dataset = synthetic.SyntheticDataModule(height=16, width=24, train_size=3, cache=True).dataset("train")
    first = [dataset[i] for i in range(3)]
    again = [dataset[i] for i in range(3)]
    assert calls == [0, 1, 2]
    for a, b in zip(first, again):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- the sample pipeline: augmentations on procedural data ------------------------------------------
def _flipped(sample: dict, width: int) -> dict:
    """What a horizontal flip of a stereo pair gives: each view mirrored, the views swapped."""
    swap = {"image": "image_right", "image_right": "image", "depth": "depth_right", "depth_right": "depth",
            "valid": "valid_right", "valid_right": "valid"}
    out = {key: sample[swap[key]].flip(-1) for key in swap}
    fx, fy, cx, cy = sample["intrinsics"].tolist()
    out["intrinsics"] = torch.tensor([fx, fy, width - 1 - cx, cy])
    return out


def test_train_transforms_flip_swaps_the_views():
    dm = SyntheticDataModule(height=24, width=36, train_size=3, val_size=2,
                             train_transforms=[{"name": "HorizontalFlip", "p": 1.0}])
    for index in range(3):
        plain, flipped = render_sample(dm.scene, 0, "train", index), dm.dataset("train")[index]
        assert flipped.keys() == plain.keys()
        for key, value in _flipped(plain, 36).items():
            assert torch.equal(flipped[key], value), key
        assert torch.equal(flipped["baseline_m"], plain["baseline_m"]) and int(flipped["index"]) == index
        assert not torch.equal(flipped["image"], plain["image"])
    val = dm.dataset("val")[1]  # no eval_transforms: the rendered sample
    assert all(torch.equal(val[k], v) for k, v in render_sample(dm.scene, 0, "val", 1).items())


def test_augmented_sample_is_a_pure_function_of_seed_split_index():
    transforms = [{"name": "HorizontalFlip", "p": 0.5}, {"name": "ChannelScale", "scale_range": [0.5, 1.5], "p": 1.0},
                  {"name": "RandomCrop", "height": 16, "width": 16}]
    make = lambda seed=0: SyntheticDataModule(height=24, width=32, train_size=8, seed=seed,  # noqa: E731
                                               train_transforms=transforms).dataset("train")
    first = [make()[i] for i in range(8)]
    other_order = make()
    again = {i: other_order[i] for i in reversed(range(8))}  # another order, a fresh pipeline
    torch.manual_seed(123)  # the global streams play no part
    for i in range(8):
        assert first[i]["image"].shape == (3, 16, 16)
        assert all(torch.equal(first[i][k], again[i][k]) for k in first[i]), i
    dataset = make()
    assert all(torch.equal(dataset[5][k], dataset[5][k]) for k in first[5])  # the same at every access (epoch)
    assert not torch.equal(make(seed=1)[0]["image"], first[0]["image"])
    assert len({tuple(s["intrinsics"][2:].tolist()) for s in first}) > 1  # each sample its own crop...


def test_each_sample_draws_its_own_flip():
    dm = SyntheticDataModule(height=16, width=24, train_size=8, train_transforms=[{"name": "HorizontalFlip", "p": 0.5}])
    flipped = []
    for index in range(8):
        plain, sample = render_sample(dm.scene, 0, "train", index), dm.dataset("train")[index]
        if torch.equal(sample["image"], plain["image"]):
            flipped.append(False)
        else:
            assert torch.equal(sample["image"], _flipped(plain, 24)["image"])
            flipped.append(True)
    assert 0 < sum(flipped) < 8


def _plain_intersect(scene, origin, dirs):
    """The slab and sphere tests on whole (N, 3) arrays, as first written: the reference that
    ``synthetic._intersect`` (per-axis columns, hits written in place) must equal bit for bit."""
    n = dirs.shape[0]
    inv = 1.0 / np.where(np.abs(dirs) < 1e-12, 1e-12, dirs)
    t_exit = np.where(dirs > 0, (scene.room_hi - origin) * inv, (scene.room_lo - origin) * inv)
    axis = np.argmin(t_exit, axis=1)
    t_best = t_exit[np.arange(n), axis]
    positive = dirs[np.arange(n), axis] > 0
    surface = axis * 2 + positive
    normal = np.zeros((n, 3))
    normal[np.arange(n), axis] = np.where(positive, -1.0, 1.0)
    sid = 6
    for lo, hi in scene.boxes:
        t1, t2 = (lo - origin) * inv, (hi - origin) * inv
        t_near = np.minimum(t1, t2)
        t_enter, enter_axis = t_near.max(axis=1), t_near.argmax(axis=1)
        hit = (t_enter <= np.maximum(t1, t2).min(axis=1)) & (t_enter > 1e-6) & (t_enter < t_best)
        t_best, surface = np.where(hit, t_enter, t_best), np.where(hit, sid, surface)
        nrm = np.zeros((n, 3))
        nrm[np.arange(n), enter_axis] = -np.sign(dirs[np.arange(n), enter_axis])
        normal = np.where(hit[:, None], nrm, normal)
        sid += 1
    for cx, cy, cz, r in scene.spheres:
        oc = origin - np.array([cx, cy, cz])
        a, b, c = np.einsum("ij,ij->i", dirs, dirs), 2.0 * dirs @ oc, oc @ oc - r * r
        disc = b * b - 4 * a * c
        t = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2 * a)
        hit = (disc >= 0) & (t > 1e-6) & (t < t_best)
        t_best, surface = np.where(hit, t, t_best), np.where(hit, sid, surface)
        normal = np.where(hit[:, None], (origin + t[:, None] * dirs - np.array([cx, cy, cz])) / r, normal)
        sid += 1
    return t_best, surface, normal


def _plain_shade(scene, points, surface, normal):
    phase = np.einsum("nwk,nk->nw", scene.wave_vec[surface], points) + scene.wave_phase[surface]
    waves = 0.5 + 0.5 * np.sin(phase).mean(axis=1)
    cells = np.floor(points / scene.checker_m[surface][:, None]).sum(axis=1)
    checker = np.where(cells % 2 == 0, 1.0, -1.0) * scene.checker_amp[surface]
    albedo = scene.base_color[surface] * np.clip(0.45 + 0.55 * waves + 0.5 * checker, 0.05, 1.2)[:, None]
    return np.clip(albedo * (0.35 + 0.65 * np.clip(normal @ scene.light, 0.0, 1.0))[:, None], 0.0, 1.0)


@pytest.mark.parametrize("hfov", [70.0, 140.0])  # wide: rays nearly parallel to walls, more objects in view
def test_the_fast_renderer_equals_the_plain_array_form_bit_for_bit(hfov):
    from depthlab.data import synthetic

    cfg = SceneConfig(height=20, width=28, hfov_deg=hfov, max_boxes=6, max_spheres=5)
    for index in range(6):
        scene = synthetic.sample_scene(cfg, np.random.default_rng([0, 0, index]))
        dirs = synthetic._camera_rays(cfg) @ scene.rotation.T
        origin = scene.rotation @ np.array([cfg.baseline_m, 0.0, 0.0])
        fast, plain = synthetic._intersect(scene, origin, dirs), _plain_intersect(scene, origin, dirs)
        for a, b in zip(fast, plain):
            assert np.array_equal(a, b) and a.dtype == b.dtype
        points = origin + fast[0][:, None] * dirs
        assert np.array_equal(synthetic._shade(scene, points, fast[1], fast[2]),
                              _plain_shade(scene, points, fast[1], fast[2]))


# --- anti-aliasing: supersample ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3])
def test_supersampled_colour_is_the_box_filtered_render_at_n_times_the_size(n):
    """A supersampled pixel averages n x n rays over its area: exactly the pixels of the same camera
    rendered at n times the size, box-filtered back; the depth stays the one-ray render's."""
    from depthlab.data.synthetic import render_arrays

    small = SceneConfig(height=12, width=16, supersample=n)
    big = SceneConfig(height=12 * n, width=16 * n)
    for index in range(2):
        got = render_arrays(small, 0, "val", index, frame_ids=(0, -1, 1))
        ref = render_arrays(big, 0, "val", index, frame_ids=(0, -1, 1))
        one = render_arrays(SceneConfig(height=12, width=16), 0, "val", index, frame_ids=(0, -1, 1))
        for key in ("image", "image_f-1", "image_f+1"):
            pooled = ref[key].reshape(12, n, 16, n, 3).mean(axis=(1, 3))
            np.testing.assert_allclose(got[key], pooled, atol=1e-5, err_msg=key)
            assert np.abs(got[key] - one[key]).max() > 0.05  # the textures alias at one ray a pixel
        np.testing.assert_array_equal(got["depth"], one["depth"])
        np.testing.assert_array_equal(got["pose_f-1"], one["pose_f-1"])


def test_supersampled_video_frames_agree_better_under_the_true_motion():
    """What the option is for: with the true depth and motion, the photometric error of the warped
    neighbouring frames is far lower on anti-aliased frames, while a flat depth gains much less."""
    from depthlab.data.synthetic import render_arrays
    from depthlab.geometry import reprojection_error, warp_with_pose

    def errors(cfg):
        true, flat = [], []
        for index in range(4):
            s = {k: torch.as_tensor(np.asarray(v)) for k, v in
                 render_arrays(cfg, 0, "val", index, frame_ids=(0, -1, 1)).items() if k != "index"}
            target = s["image"].permute(2, 0, 1)[None]
            depth = s["depth"][None, None]
            depth = torch.where(depth > 0, depth, depth[depth > 0].median())
            for name, d in (("true", depth), ("flat", torch.full_like(depth, float(depth.median())))):
                e = torch.stack([reprojection_error(warp_with_pose(s[f"image_f{k:+d}"].permute(2, 0, 1)[None], d,
                                                                   s["intrinsics"][None], s[f"pose_f{k:+d}"][None])[0],
                                                    target) for k in (-1, 1)]).min(0).values.mean()
                (true if name == "true" else flat).append(float(e))
        return np.mean(true), np.mean(flat)

    true1, flat1 = errors(SceneConfig(height=48, width=64))
    true2, flat2 = errors(SceneConfig(height=48, width=64, supersample=2))
    assert true2 < 0.7 * true1
    assert flat2 / true2 > 1.1 * (flat1 / true1)  # the true depth stands out more (measured 1.13x at 48x64)


def test_supersample_is_checked_and_enters_the_hints_identity_only_when_used():
    from depthlab.data.synthetic import hints_data

    with pytest.raises(ValueError, match="supersample"):
        SceneConfig(supersample=0)
    with pytest.raises(ConfigError, match="data.supersample"):
        SyntheticDataModule(supersample=1.5)
    assert "supersample" not in hints_data(SceneConfig(), 0)["scene"]  # hints written before the option
    assert hints_data(SceneConfig(supersample=2), 0)["scene"]["supersample"] == 2
