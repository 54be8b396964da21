"""Image reading: JPEGs decode to OpenCV's pixels, and a broken image is one error line naming it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from depthlab.errors import DataError
from depthlab.data.readers import read_rgb


def _picture(height: int = 48, width: int = 64) -> np.ndarray:
    v, u = np.mgrid[0:height, 0:width]
    noise = np.random.default_rng(0).integers(0, 40, (height, width, 3))
    return np.stack([u * 4 % 256, v * 5 % 256, (u + v) * 2 % 256], axis=-1).astype(np.uint8) + noise.astype(np.uint8)


@pytest.mark.parametrize("quality", [75, 95])
def test_jpeg_pixels_are_opencvs(tmp_path: Path, quality):
    path = tmp_path / "a.jpg"
    assert cv2.imwrite(str(path), _picture(), [cv2.IMWRITE_JPEG_QUALITY, quality])
    expected = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    image = read_rgb(path, "list.txt:1")
    assert image.dtype == np.uint8 and image.flags.writeable
    np.testing.assert_array_equal(image, expected)


def test_jpeg_exif_orientation_is_applied_as_opencv_does(tmp_path: Path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(_picture()).save(path, quality=95, exif=exif)
    expected = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert expected.shape == (64, 48, 3)
    np.testing.assert_array_equal(read_rgb(path, "list.txt:1"), expected)


def test_truncated_jpeg_is_one_line_naming_the_file(tmp_path: Path):
    path = tmp_path / "cut.jpg"
    assert cv2.imwrite(str(path), _picture(), [cv2.IMWRITE_JPEG_QUALITY, 95])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert cv2.imread(str(path)) is not None  # what made it pass before: OpenCV fills the rest grey
    with pytest.raises(DataError) as caught:
        read_rgb(path, "list.txt:7")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: unreadable file: not a decodable image (image file is truncated")
    assert message.endswith("(listed at list.txt:7)")


def test_truncated_png_and_missing_file_are_errors(tmp_path: Path):
    path = tmp_path / "cut.png"
    assert cv2.imwrite(str(path), _picture())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.png: unreadable file: not a decodable image \(listed at l:1\)"):
        read_rgb(path, "l:1")
    with pytest.raises(DataError, match=r"none\.jpg: missing file: no such file \(listed at l:2\)"):
        read_rgb(tmp_path / "none.jpg", "l:2")
