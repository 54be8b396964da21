"""How much room the test suite needs in its temp folder, and the line that says when it lacks it."""

from __future__ import annotations

import os
import shutil

# The suite writes checkpoints and logs under the temp folder, up to ~0.7 GiB at once (measured: peak of
# `du` over /tmp/pytest-of-$USER during a full run); pyproject's tmp_path_retention_policy removes what
# passed tests wrote. On a fuller disk every test that asks for tmp_path errors, and a run can hang.
NEEDS_FREE_GIB = 2.0


def free_space_problem(folder: str | os.PathLike) -> str | None:
    """One line saying why the suite cannot run in `folder`, or None when it has room."""
    free = shutil.disk_usage(folder).free / 2**30
    if free < NEEDS_FREE_GIB:
        return (f"tests: {folder} has {free:.1f} GiB free; the suite writes up to ~0.7 GiB there at once and "
                f"needs {NEEDS_FREE_GIB:.0f} GiB to be safe. Free some space, or set TMPDIR (or --basetemp) "
                "to a folder on a disk with room.")
    return None
