"""depthlab's photometric loss with temporal and stereo sources beside Monodepth2's own
``generate_images_pred`` + ``compute_losses``, run on the same tensors.

    python benchmarks/peer_monodepth2_loss.py [--mirror /path/to/monodepth2/git/dir] [--seed 0]

Monodepth2's ``trainer.py`` methods and ``layers.py`` are read from a git copy of its repository and
executed as they are (the two methods are taken out of the Trainer class with ``ast`` and bound to a
stand-in ``self`` holding the options, its BackprojectDepth/Project3D/SSIM and the device), with
two settings changed and said here:

- ``grid_sample`` runs with ``align_corners=True``, the convention its pixel normalisation by
  (W - 1) was written for (PyTorch 0.4); today's default samples half a pixel off (SPEC section 7);
- its identity tie-break noise (``torch.randn * 1e-5``) is zero, depthlab's ``identity_noise`` too.

depthlab runs ``PhotometricLoss(frame_ids=[0, -1, 1, s], automask_average=all, inside_mask=false)``
(Monodepth2's conventions) on a DepthOutput with Monodepth2's four scales of disparity and its own
pose matrices; ``disparity_smoothness`` is 0 on Monodepth2's side (the smoothness term is another
depthlab loss). Printed: both totals and their relative difference, with auto-masking on and off,
for M ([0, -1, 1]) and MS ([0, -1, 1, s]).
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from depthlab.losses.photometric import PhotometricLoss  # noqa: E402
from depthlab.models.output import DepthOutput  # noqa: E402

DEFAULT_MIRROR = "/work/.mirror/nianticlabs+monodepth2/repo"


def _git_show(mirror: str, path: str) -> str:
    return subprocess.run(["git", "-C", mirror, "show", f"HEAD:{path}"], check=True, capture_output=True,
                          text=True).stdout


def monodepth2(mirror: str) -> dict:
    """A namespace with Monodepth2's layers and its two Trainer methods as plain functions."""
    namespace: dict = {"__name__": "monodepth2_layers"}
    exec(compile(_git_show(mirror, "layers.py"), "monodepth2/layers.py", "exec"), namespace)

    def grid_sample(*args, **kwargs):  # the PyTorch 0.4 behaviour its normalisation assumes
        kwargs.setdefault("align_corners", True)
        return F.grid_sample(*args, **kwargs)

    patched_f = types.SimpleNamespace(**{name: getattr(F, name) for name in dir(F) if not name.startswith("_")})
    patched_f.grid_sample = grid_sample
    patched_torch = types.SimpleNamespace(**{name: getattr(torch, name) for name in dir(torch) if not name.startswith("__")})
    patched_torch.randn = lambda *args, **kwargs: torch.zeros(*args, **{k: v for k, v in kwargs.items() if k != "device"})
    namespace.update(F=patched_f, torch=patched_torch)
    tree = ast.parse(_git_show(mirror, "trainer.py"))
    trainer = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Trainer")
    wanted = {"generate_images_pred", "compute_reprojection_loss", "compute_losses"}
    methods = [node for node in trainer.body if isinstance(node, ast.FunctionDef) and node.name in wanted]
    exec(compile(ast.Module(body=methods, type_ignores=[]), "monodepth2/trainer.py", "exec"), namespace)
    return namespace


def compare(ns: dict, frame_ids: list, automask: bool, seed: int, batch=2, height=96, width=320) -> tuple[float, float]:
    g = torch.Generator().manual_seed(seed)
    scales = [0, 1, 2, 3]
    opt = types.SimpleNamespace(scales=scales, frame_ids=frame_ids, height=height, width=width, min_depth=0.1,
                                max_depth=100.0, v1_multiscale=False, disable_automasking=not automask,
                                avg_reprojection=False, predictive_mask=False, pose_model_type="separate_resnet",
                                no_ssim=False, disparity_smoothness=0.0)
    me = types.SimpleNamespace(opt=opt, device="cpu", num_scales=len(scales), ssim=ns["SSIM"](),
                               backproject_depth={0: ns["BackprojectDepth"](batch, height, width)},
                               project_3d={0: ns["Project3D"](batch, height, width)})
    for name in ("generate_images_pred", "compute_reprojection_loss", "compute_losses"):
        setattr(me, name, types.MethodType(ns[name], me))
    fx, fy, cx, cy = 0.58 * width, 1.92 * height, 0.5 * width, 0.5 * height
    k = torch.tensor([[fx, 0, cx, 0], [0, fy, cy, 0], [0, 0, 1, 0], [0, 0, 0, 1]]).expand(batch, 4, 4).contiguous()
    target = torch.rand(batch, 3, height, width, generator=g)
    inputs = {("color", 0, 0): target, ("K", 0): k, ("inv_K", 0): torch.linalg.inv(k)}
    for s in scales[1:]:
        inputs[("color", 0, s)] = F.interpolate(target, scale_factor=0.5**s, mode="area")
    outputs, poses = {}, {}
    for fid in frame_ids[1:]:
        # a source image that is the target seen from elsewhere plus noise: warps compete with identities
        inputs[("color", fid, 0)] = (target.roll(3 if fid == "s" else fid * 2, dims=-1)
                                     + 0.05 * torch.rand(batch, 3, height, width, generator=g)).clamp(0, 1)
        if fid != "s":
            axis_angle = 0.02 * torch.randn(batch, 1, 3, generator=g)
            translation = 0.3 * torch.randn(batch, 1, 3, generator=g)
            poses[fid] = ns["transformation_from_parameters"](axis_angle, translation, fid < 0)  # (B, 1, 3) each
            outputs[("cam_T_cam", 0, fid)] = poses[fid]
    stereo_t = torch.eye(4).expand(batch, 4, 4).clone()
    stereo_t[:, 0, 3] = -0.1  # left target, right source: side_sign -1 x baseline 0.1 (mono_dataset.py)
    inputs["stereo_T"] = stereo_t
    disps = [torch.rand(batch, 1, height // 2**s, width // 2**s, generator=g) * 0.5 + 0.1 for s in scales]
    for s, disp in enumerate(disps):
        outputs[("disp", s)] = disp
    me.generate_images_pred(inputs, outputs)
    theirs = float(me.compute_losses(inputs, outputs)["loss"])

    def level(disp):  # depthlab's inverse-depth head: scaled disparity (1/m) and depth
        inverse = 1 / opt.max_depth + (1 / opt.min_depth - 1 / opt.max_depth) * disp
        return DepthOutput(1 / inverse, inverse_depth=inverse)

    finest = level(disps[0])
    out = DepthOutput(finest.depth, finest.inverse_depth, scales=[level(d) for d in disps[1:]],
                      poses={fid: p for fid, p in poses.items()})
    batch_dict = {"image": target, "intrinsics": torch.tensor([fx, fy, cx, cy]).expand(batch, 4),
                  "baseline_m": torch.full((batch,), 0.1)}
    for fid in frame_ids[1:]:
        key = "image_right" if fid == "s" else f"image_f{fid:+d}"
        batch_dict[key] = inputs[("color", fid, 0)]
    loss = PhotometricLoss(automask=automask, automask_average="all", inside_mask=False, frame_ids=frame_ids)
    ours = float(loss(out, batch_dict, torch.zeros_like(target[:, :1], dtype=torch.bool))[0])
    return theirs, ours


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", default=DEFAULT_MIRROR, help="git directory of nianticlabs/monodepth2")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    ns = monodepth2(args.mirror)
    print(f"{'frames':<16} {'automask':<9} {'monodepth2':>12} {'depthlab':>12} {'rel. diff':>10}")
    for frame_ids in ([0, -1, 1], [0, -1, 1, "s"]):
        for automask in (True, False):
            theirs, ours = compare(ns, frame_ids, automask, args.seed)
            print(f"{str(frame_ids):<16} {str(automask):<9} {theirs:>12.8f} {ours:>12.8f} {abs(ours - theirs) / theirs:>10.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
