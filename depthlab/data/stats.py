"""``depthlab data stats --config X.yaml``: what the data module actually reads, per split.

For each split: the image sizes, the share of pixels with valid depth, the depth percentiles (1, 50,
99 %) in metres over the valid pixels, and the intrinsics found. A wrong ``depth_scale`` shows at
once (a median depth of 3,000 m), as does a wrong folder (the wrong sizes or counts). Samples are read
as the files hold them: before augmentation, after the module's own unit conversion.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

# Depth values kept per image for the percentiles (a fixed-seed subsample: memory stays flat).
PIXELS_PER_IMAGE = 20_000
PERCENTILES = (1.0, 50.0, 99.0)


@dataclass
class SplitStats:
    """The statistics of one split (see the module docstring)."""

    name: str
    samples: int = 0
    sizes: Counter = field(default_factory=Counter)
    intrinsics: Counter = field(default_factory=Counter)
    valid_fraction: float = float("nan")
    percentiles: tuple[float, ...] = ()
    no_valid_depth: int = 0

    def lines(self) -> list[str]:
        sizes = ", ".join(f"{h}x{w} ({n})" for (h, w), n in self.sizes.most_common(5))
        if len(self.sizes) > 5:
            sizes += f", ... {len(self.sizes)} sizes"
        cameras = ", ".join(("none" if k is None else "[" + ", ".join(f"{v:.2f}" for v in k) + "]") + f" ({n})"
                            for k, n in self.intrinsics.most_common(3))
        if len(self.intrinsics) > 3:
            cameras += f", ... {len(self.intrinsics)} cameras"
        depth = ("no valid depth" if not self.percentiles else
                 ", ".join(f"p{p:g} {v:.3f}" for p, v in zip(PERCENTILES, self.percentiles)) + " m")
        return [f"{self.name}: {self.samples} samples",
                f"  image sizes (HxW): {sizes}",
                f"  valid depth: {100 * self.valid_fraction:.1f} % of pixels; {depth}"
                + (f"; {self.no_valid_depth} samples without any valid pixel" if self.no_valid_depth else ""),
                f"  intrinsics (fx, fy, cx, cy): {cameras}"]


def _raw_samples(dataset: Any, limit: int | None) -> Iterator[dict[str, Any]]:
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for index in range(count):  # every data set loads through the one pipeline: raw NumPy from load()
        yield dataset.load(index)


def split_stats(dataset: Any, name: str, limit: int | None = None) -> SplitStats:
    """Statistics of ``dataset`` (its first ``limit`` samples)."""
    stats = SplitStats(name)
    rng = np.random.default_rng(0)
    kept, valid_pixels, pixels = [], 0, 0
    for sample in _raw_samples(dataset, limit):
        stats.samples += 1
        image = sample["image"]
        stats.sizes[tuple(int(v) for v in image.shape[:2])] += 1
        k = sample.get("intrinsics")
        stats.intrinsics[None if k is None else tuple(round(float(v), 2) for v in np.asarray(k).ravel())] += 1
        if "depth" not in sample:
            continue
        depth = np.asarray(sample["depth"], dtype=np.float32)
        values = depth[np.isfinite(depth) & (depth > 0)]
        pixels += depth.size
        valid_pixels += values.size
        if values.size == 0:
            stats.no_valid_depth += 1
            continue
        if values.size > PIXELS_PER_IMAGE:
            values = rng.choice(values, PIXELS_PER_IMAGE, replace=False)
        kept.append(values)
    if pixels:
        stats.valid_fraction = valid_pixels / pixels
    if kept:
        stats.percentiles = tuple(float(v) for v in np.percentile(np.concatenate(kept), PERCENTILES))
    return stats


def member_modules(datamodule: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``[(name, data module)]``: the module itself, or each member of a mixture (named ``member/``)."""
    members = getattr(datamodule, "members", None)
    if isinstance(members, dict):
        return [pair for name, m in members.items() for pair in member_modules(m, f"{prefix}{name}/")]
    return [(prefix, datamodule)]


def stats(datamodule: Any, splits: list[str] | None = None, limit: int | None = None, out=None) -> list[SplitStats]:
    """Print the statistics of every split of ``datamodule`` (each member of a mixture); return them."""
    out = out or sys.stdout
    found = []
    for prefix, module in member_modules(datamodule):
        names = splits or (module.check_splits() if hasattr(module, "check_splits") else ["train", "val", "test"])
        for split in names:
            dataset = module.build(split, augment=None) if hasattr(module, "build") else module.dataset(split)
            result = split_stats(dataset, prefix + split, limit)
            print("\n".join(result.lines()), file=out)
            found.append(result)
    return found
