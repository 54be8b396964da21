"""The suite's own guard: a disk too full to run it is one line before any test starts."""

from __future__ import annotations

import shutil
from collections import namedtuple

import disk_room

Usage = namedtuple("Usage", "total used free")


def test_a_nearly_full_temp_disk_is_one_line_naming_the_folder_and_the_way_out(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: Usage(100 * 2**30, 99.5 * 2**30, 0.5 * 2**30))
    problem = disk_room.free_space_problem(tmp_path)
    assert problem is not None and "\n" not in problem
    assert str(tmp_path) in problem and "0.5 GiB free" in problem and "TMPDIR" in problem


def test_a_disk_with_room_passes(monkeypatch, tmp_path):
    free = (disk_room.NEEDS_FREE_GIB + 0.1) * 2**30
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: Usage(100 * 2**30, 100 * 2**30 - free, free))
    assert disk_room.free_space_problem(tmp_path) is None
