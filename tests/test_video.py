"""depthlab.video: a short video written, its frames and rate read back."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

pytest.importorskip("av")

from depthlab.errors import ConfigError  # noqa: E402
from depthlab.video import VideoWriter, read_frames, video_info  # noqa: E402


def test_frames_in_equal_frames_out(tmp_path):
    frames = [np.full((15, 21, 3), 20 * i, dtype=np.uint8) for i in range(7)]
    with VideoWriter(tmp_path / "v.mp4", fps=12) as writer:
        for frame in frames:
            writer.write(frame)
    info = video_info(tmp_path / "v.mp4")
    assert info.fps == Fraction(12) and info.size == (16, 22)  # padded to even sizes for yuv420p
    back = list(read_frames(tmp_path / "v.mp4"))
    assert len(back) == 7
    # flat grey frames survive H.264 within a few levels
    assert [int(round(f[:15, :21].mean())) for f in back] == pytest.approx([20 * i for i in range(7)], abs=3)


def test_not_a_video_is_one_line(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"not a video")
    with pytest.raises(ConfigError, match="x.mp4"):
        video_info(tmp_path / "x.mp4")
