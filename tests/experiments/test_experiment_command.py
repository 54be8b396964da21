"""depthlab/experiments/__init__.py: `main(argv, run_command)`, the experiment command: its errors,
where the report goes, and no import of the command layer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from depthlab.errors import ConfigError
from experiment_specs import no_commands


def test_cli_errors_are_one_line_naming_the_experiment_or_scale(capsys):
    from depthlab.cli import main

    assert main(["experiment", "run", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "experiment 'nosuch': no " in err and "experiments: depth_hints, eigen_coarse_fine, losses" in err
    assert main(["experiment", "run", "losses", "--scale", "huge"]) == 2
    assert "experiment losses: no scale 'huge' (scales: small, full, tiny)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["experiment", "run", "losses", "--seeds", "0,x"])
    assert "expected comma-separated integers such as 0,1,2, got '0,x'" in capsys.readouterr().err


def test_the_experiments_package_does_not_import_the_command_layer():
    """The runner gets the command runner as an argument (`main(argv, run_command)`); no import of the CLI,
    its parser or the command front ends, function-level imports included."""
    import ast

    import depthlab.experiments as package

    forbidden = ("depthlab.cli", "depthlab.config", "depthlab.parser", "depthlab.commands")
    found = []
    for path in sorted(Path(package.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.name}: {n}" for n in names if n in forbidden or n.startswith(tuple(f + "." for f in forbidden))]
    assert found == []


def _files(root: Path) -> dict[str, tuple[int, str]]:
    import hashlib

    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_report_goes_beside_the_runs_and_the_committed_docs_only_on_request(tmp_path, monkeypatch):
    """`depthlab experiment run` from inside a clone left docs/experiments/ rewritten; now the report goes to
    `<out>/<scale>/report/` and only `--update-docs` replaces the committed one (toy_root_mae: no training)."""
    pytest.importorskip("matplotlib")
    import shutil

    from depthlab.experiments import main
    from depthlab.experiments.report import NOTES_END, NOTES_START

    committed = Path(__file__).resolve().parents[2] / "docs" / "experiments"
    monkeypatch.chdir(tmp_path)  # a copy of the clone's layout
    docs = tmp_path / "docs" / "experiments"
    shutil.copytree(committed, docs)
    before = _files(docs)

    assert main(["run", "toy_root_mae", "--scale", "tiny"], no_commands) == 0
    assert main(["report", "toy_root_mae", "--scale", "tiny"], no_commands) == 0
    assert _files(docs) == before  # not one file of docs/experiments/ touched
    folder = tmp_path / "lightning_logs" / "experiments" / "toy_root_mae" / "tiny" / "report"
    report = (folder / "toy_root_mae.md").read_text()
    assert "depthlab experiment run toy_root_mae --scale tiny" in report
    images = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", report)
    assert len(images) == 3 and all((folder / image).is_file() for image in images)

    old = (docs / "toy_root_mae.md").read_text()
    notes = old[old.index(NOTES_START):old.index(NOTES_END)]
    assert main(["report", "toy_root_mae", "--scale", "tiny", "--update-docs"], no_commands) == 0
    new = (docs / "toy_root_mae.md").read_text()
    assert "--scale small" in old and "--scale tiny" in new and notes in new  # replaced, the Notes kept
    after = _files(docs)
    assert all(after[f"toy_root_mae/{image.split('/', 1)[1]}"] != before[f"toy_root_mae/{image.split('/', 1)[1]}"]
               for image in images)
    assert {k: v for k, v in after.items() if not k.startswith("toy_root_mae")} == \
        {k: v for k, v in before.items() if not k.startswith("toy_root_mae")}  # the other reports untouched


def test_update_docs_outside_a_clone_is_one_line_before_any_run(tmp_path, monkeypatch):
    from depthlab.experiments import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^--update-docs: no docs/experiments/ in .* \(run it from the root of a depthlab clone\)$"):
        main(["run", "toy_root_mae", "--scale", "tiny", "--update-docs"], no_commands)
    assert list(tmp_path.iterdir()) == []  # nothing ran
    with pytest.raises(SystemExit):  # argparse: the two destinations exclude each other
        main(["run", "toy_root_mae", "--docs", "x", "--update-docs"], no_commands)
