"""Importing the DepthSample type has no side effects: no data module, renderer or Lightning, no exit handler."""

from __future__ import annotations

import atexit
import importlib
import sys


def test_importing_depth_sample_imports_no_data_module_and_registers_nothing(monkeypatch):
    # Import depthlab.data.batch afresh (the package's __init__ included) with atexit.register
    # recorded; the modules of this process are put back afterwards.
    saved = {name: module for name, module in sys.modules.items() if name == "depthlab.data" or name.startswith("depthlab.data.")}
    registered = []
    monkeypatch.setattr(atexit, "register", lambda fn, *a, **k: registered.append(fn) or fn)
    try:
        for name in saved:
            del sys.modules[name]
        before = set(sys.modules)
        batch = importlib.import_module("depthlab.data.batch")
        new = set(sys.modules) - before
        assert "DepthSample" in vars(batch)
    finally:
        for name in [n for n in sys.modules if n == "depthlab.data" or n.startswith("depthlab.data.")]:
            del sys.modules[name]
        sys.modules.update(saved)
    assert {n for n in new if n.startswith("depthlab")} <= {"depthlab", "depthlab.data", "depthlab.data.batch"}
    assert registered == []
    assert not any(n.split(".")[0] in {"lightning", "cv2", "albumentations", "h5py"} for n in new)
