"""The split lists ship with the package: pyproject maps them in, resolve_path finds them from anywhere."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from depthlab.data import base
from depthlab.data.base import SHIPPED_SPLITS, SPLITS_PACKAGE_DIR, resolve_path

REPO = Path(__file__).resolve().parents[2]
SPLITS_PACKAGE = f"depthlab.{SPLITS_PACKAGE_DIR}"


def test_every_package_and_every_split_file_is_in_the_wheel():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    # Every folder with Python code, with or without __init__.py (find also took namespace packages).
    found = {".".join(py.parent.relative_to(REPO).parts) for py in (REPO / "depthlab").rglob("*.py")}
    assert set(setuptools["packages"]) == found | {SPLITS_PACKAGE, "depthlab._configs"}, "list new subpackages in pyproject.toml"
    assert setuptools["package-dir"] == {SPLITS_PACKAGE: SHIPPED_SPLITS.as_posix(), "depthlab._configs": "configs"}
    # the configs (base.yaml is read by every command) ship too
    config_patterns = setuptools["package-data"]["depthlab._configs"]
    configs = [p.relative_to(REPO / "configs").as_posix() for p in (REPO / "configs").rglob("*") if p.is_file()]
    assert "base.yaml" in configs and "experiments/silog_sqrt/experiment.yaml" in configs
    assert [n for n in configs if not any(fnmatch.fnmatch(n, p) for p in config_patterns)] == []
    patterns = setuptools["package-data"][SPLITS_PACKAGE]
    shipped = sorted(p.relative_to(REPO / SHIPPED_SPLITS).as_posix() for p in (REPO / SHIPPED_SPLITS).rglob("*")
                     if p.is_file())
    assert "eigen_test_files_with_gt.txt" in shipped and "splits.mat" in shipped
    assert "monodepth2/eigen_zhou/train_files.txt" in shipped
    # setuptools' package-data globs do not cross "/" with "*": each nested file needs its own pattern
    assert [name for name in shipped if not any(fnmatch.fnmatch(name, p) and name.count("/") == p.count("/")
                                                 for p in patterns)] == []


def test_a_config_path_resolves_from_outside_the_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = resolve_path("data/splits/eigen_test_files_with_gt.txt")
    assert path == REPO / "data/splits/eigen_test_files_with_gt.txt" and path.is_file()
    assert resolve_path("data/splits/no_such_list.txt") == Path("data/splits/no_such_list.txt")  # reported later


def test_an_installed_wheel_finds_its_package_data(tmp_path, monkeypatch):
    """A wheel install: depthlab/_splits/ beside the code and no checkout around it."""
    site = tmp_path / "site-packages"
    (site / "depthlab" / SPLITS_PACKAGE_DIR).mkdir(parents=True)
    installed = site / "depthlab" / SPLITS_PACKAGE_DIR / "eigen_test_files_with_gt.txt"
    installed.write_text("2011_09_26/x/image_02/data/0000000005.png None 721.5377\n")
    monkeypatch.setattr(base.resources, "files", lambda package: site / package)
    monkeypatch.setattr(base, "REPO_ROOT", site.parent)  # what parents[2] of base.py is in a wheel install
    monkeypatch.chdir(tmp_path)
    assert resolve_path("data/splits/eigen_test_files_with_gt.txt") == installed
    assert resolve_path("./data/splits/eigen_test_files_with_gt.txt") == installed
    assert resolve_path("other/eigen_test_files_with_gt.txt") == Path("other/eigen_test_files_with_gt.txt")
    local = tmp_path / "data" / "splits" / "eigen_test_files_with_gt.txt"  # a user's own copy wins
    local.parent.mkdir(parents=True)
    local.write_text("")
    assert resolve_path("data/splits/eigen_test_files_with_gt.txt") == Path("data/splits/eigen_test_files_with_gt.txt")


MONODEPTH2_LISTS = {  # data/splits/README.md (Monodepth2's splits/ at commit b676244)
    "eigen_zhou/train_files.txt": 39810, "eigen_zhou/val_files.txt": 4424,
    "eigen_full/train_files.txt": 45200, "eigen_full/val_files.txt": 1776,
    "eigen/test_files.txt": 697, "eigen_benchmark/test_files.txt": 652,
    "odom/train_files.txt": 36671, "odom/val_files.txt": 4075,
    "odom/test_files_09.txt": 1590, "odom/test_files_10.txt": 1200,
}


def test_monodepth2_lists_ship_whole_and_eigen_zhou_parses(tmp_path, monkeypatch):
    from depthlab.data.readers import is_monodepth2_list, read_monodepth2_list

    folder = REPO / SHIPPED_SPLITS / "monodepth2"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.txt")) == sorted(MONODEPTH2_LISTS)
    for name, count in MONODEPTH2_LISTS.items():
        assert len((folder / name).read_text().splitlines()) == count, name
    for name in ("eigen_zhou/train_files.txt", "eigen_zhou/val_files.txt"):
        path = folder / name
        assert is_monodepth2_list(path)
        entries = read_monodepth2_list(path)  # raises on any malformed line
        assert len(entries) == MONODEPTH2_LISTS[name]
        assert {e.rgb.split("/")[2] for e in entries} == {"image_02", "image_03"}
    monkeypatch.chdir(tmp_path)  # found from anywhere, as the other shipped lists
    assert resolve_path("data/splits/monodepth2/eigen_zhou/train_files.txt") == folder / "eigen_zhou/train_files.txt"
