"""Scoring predictions another program saved (``depthlab evaluate --predictions DIR``).

The test split's samples are read as ``depthlab test`` reads them, each sample's prediction file is
found by the name ``depthlab predict`` gives it (``<name>.npy`` float32 (H, W), or a 16-bit
``<name>.png`` in ``png_scale`` units per metre; ``name`` is the sample's own for folder and
manifest data, its zero-padded index ``000042`` for the built-in data sets) and scored by the
same :class:`~depthlab.eval.evaluator.Evaluator` as a network's output: same protocol, same
metrics, same report. monodepth2 offers the same with ``--ext_disp_to_eval`` (one .npy of every
disparity); here it is one file per image, as prediction tools write them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from depthlab.data.batch import output_stem
from depthlab.errors import ConfigError
from depthlab.eval.evaluator import Evaluator
from depthlab.eval.protocols import EvalProtocol
from depthlab.models.output import DepthOutput

SAVED_KINDS = ("depth", "inverse_depth", "relative_inverse_depth")


def prediction_stem(batch: Mapping[str, Any], i: int, position: int) -> str:
    """The file stem ``depthlab predict`` writes sample ``i`` of ``batch`` under
    (:func:`~depthlab.data.batch.output_stem`; ``position``: its place in the split, when the batch
    carries no ``index``)."""
    names, index = batch.get("name"), batch.get("index")
    return output_stem(None if names is None else names[i], position if index is None else int(index[i]))


def read_prediction(folder: Path, stem: str, png_scale: float, source: str) -> np.ndarray:
    """``folder/<stem>.npy`` (float32) or ``folder/<stem>.png`` (uint16 / png_scale) as (H, W) float32."""
    npy, png = folder / f"{stem}.npy", folder / f"{stem}.png"
    if npy.is_file():
        try:
            values = np.load(npy, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{npy}: not a NumPy array file ({exc})") from None
        path = npy
    elif png.is_file():
        values = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        if values is None or values.dtype != np.uint16 or values.ndim != 2:
            what = "unreadable" if values is None else f"{values.dtype} with shape {values.shape}"
            raise ConfigError(f"{png}: expected a one-channel 16-bit PNG (depth x {png_scale:g}), got {what}")
        values = values.astype(np.float32) / np.float32(png_scale)
        path = png
    else:
        raise ConfigError(f"evaluate: no prediction for {source}: neither {npy} nor {png} exists")
    values = np.squeeze(np.asarray(values))
    if values.ndim != 2 or not np.issubdtype(values.dtype, np.floating):
        raise ConfigError(f"{path}: expected an (H, W) float array, got {values.dtype} with shape {values.shape}")
    return values.astype(np.float32)


def score_saved_predictions(
    batches: Iterable[Mapping[str, Any]],
    folder: str | Path,
    protocol: EvalProtocol,
    kind: str = "depth",
    png_scale: float = 256.0,
    source=None,
) -> dict[str, Tensor]:
    """The test metrics of the predictions in ``folder`` over ``batches`` (the test loader's).

    ``kind``: ``depth`` (metres), ``inverse_depth`` (1/m) or ``relative_inverse_depth`` (aligned
    per image: the protocol needs ``align: scale_shift``). Each prediction has the size of its
    sample's image or ground truth (``depthlab predict`` writes the image's own size). ``source(i)``
    names sample ``i`` in errors (the data set's ``list.txt:LINENO``). The protocol's network-side
    settings (flip TTA, KB crop, input_size) cannot apply to saved maps and are refused.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"--predictions {folder}: not a folder")
    if kind not in SAVED_KINDS:
        raise ConfigError(f"--predictions_kind: expected one of {', '.join(SAVED_KINDS)}, got {kind!r}")
    if protocol.flip != "none" or protocol.kb_crop or protocol.input_size is not None:
        raise ConfigError(
            "model.eval_protocol: flip, kb_crop and input_size describe how a network is run; saved predictions are "
            "scored as they are: set them to none/false/null (apply them when making the predictions)")
    protocol.check_kind(kind, f"--predictions_kind {kind}")
    evaluator = Evaluator(protocol)
    position = 0
    for batch in batches:
        gt = batch["depth"]
        maps = []
        for i in range(gt.shape[0]):
            stem = prediction_stem(batch, i, position + i)
            where = source(position + i) if source is not None else f"sample {stem}"
            values = read_prediction(folder, stem, png_scale, where)
            allowed = {tuple(gt.shape[-2:]), tuple(batch["image"].shape[-2:])}
            if "original_size" in batch:
                allowed.add(tuple(int(v) for v in batch["original_size"][i]))
            if values.shape not in allowed:
                sizes = " or ".join(f"{h}x{w}" for h, w in sorted(allowed))
                raise ConfigError(f"{folder / stem}: the prediction is {values.shape[0]}x{values.shape[1]}, but {where} "
                                  f"needs {sizes} (the image's or the ground truth's size)")
            maps.append(torch.from_numpy(values)[None, None])
        position += gt.shape[0]
        sizes = {tuple(m.shape[-2:]) for m in maps}
        if len(sizes) > 1:  # one batch, several sizes: score one sample at a time
            for i, one in enumerate(maps):
                _score(evaluator, {k: v[i : i + 1] if isinstance(v, Tensor) and v.ndim else v for k, v in batch.items()},
                       one, kind)
        else:
            _score(evaluator, batch, torch.cat(maps), kind)
    return evaluator.compute("test")


def _score(evaluator: Evaluator, batch: Mapping[str, Any], values: Tensor, kind: str) -> None:
    if kind == "depth":
        out = DepthOutput(values)
    elif kind == "inverse_depth":
        out = DepthOutput(1 / values.clamp_min(torch.finfo(values.dtype).tiny), inverse_depth=values)
    else:
        out = DepthOutput(None, relative_inverse_depth=values)
    evaluator.step("test", batch, lambda image: out)
