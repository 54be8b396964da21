"""Video files in and out, frame by frame, with PyAV (the optional extra ``video``).

Frames are decoded one at a time and written one at a time, so memory stays flat with a video's
length. Reading yields RGB ``uint8`` (H, W, 3) frames; writing takes the same and encodes H.264
(``libx264``, yuv420p: even sizes are padded by one edge row/column) at the input's frame rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from depthlab.errors import ConfigError

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


def _av():
    try:
        import av
    except ImportError:
        raise ConfigError("reading and writing video needs PyAV: pip install 'depthlab[video]'") from None
    return av


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    frames: int  # as the container states it (0 when it does not)
    fps: Fraction
    size: tuple[int, int]  # (H, W)


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def video_info(path: str | Path) -> VideoInfo:
    """Frame count, frame rate and size of the first video stream (one line naming the file if none)."""
    av = _av()
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ConfigError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.base_rate or Fraction(30)
            return VideoInfo(path, int(stream.frames or 0), Fraction(rate), (stream.height, stream.width))
    except av.error.FFmpegError as exc:
        raise ConfigError(f"{path}: not a readable video ({exc})") from None


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """The frames of the first video stream as RGB uint8 (H, W, 3), decoded one at a time."""
    av = _av()
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as exc:
        raise ConfigError(f"{path}: the video cannot be decoded further ({exc})") from None


class VideoWriter:
    """Append RGB uint8 frames to an H.264 video at ``fps`` (a context manager; :meth:`close` flushes)."""

    def __init__(self, path: str | Path, fps: Fraction | float, codec: str = "libx264") -> None:
        self.av = _av()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = Fraction(fps).limit_denominator(100_000)
        self.codec = codec
        self.container = self.av.open(str(self.path), mode="w")
        self.stream = None
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        if self.stream is None:
            self.stream = self.container.add_stream(self.codec, rate=self.fps)
            self.stream.height, self.stream.width = rgb.shape[0] + rgb.shape[0] % 2, rgb.shape[1] + rgb.shape[1] % 2
            self.stream.pix_fmt = "yuv420p"
        pad = ((0, self.stream.height - rgb.shape[0]), (0, self.stream.width - rgb.shape[1]), (0, 0))
        if any(p[1] for p in pad):
            rgb = np.pad(rgb, pad, mode="edge")
        frame = self.av.VideoFrame.from_ndarray(rgb, format="rgb24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self.container is None:
            return
        if self.stream is not None:
            for packet in self.stream.encode():
                self.container.mux(packet)
        self.container.close()
        self.container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
