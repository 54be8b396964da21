"""The experiment mechanism's parts: spec validation, command lines, log reading, the conclusion's
arithmetic, the toy problem, where the report goes, against hand-computed values."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from depthlab.errors import ConfigError
from depthlab.experiments import load_experiment
from depthlab.experiments.logs import read_csv_scalars, write_csv_scalars
from depthlab.experiments.report import Results, Run, compare, mean_curve
from depthlab.experiments.runner import RunRecord, cli_args, fit_command
from depthlab.experiments.spec import Experiment, Scale, Variant


def _write_spec(folder: Path, spec: dict, configs: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "experiment.yaml").write_text(yaml.safe_dump(spec))
    for name, text in (configs or {}).items():
        (folder / name).write_text(text)
    return folder


BASE = {"title": "t", "question": "q?", "variants": [{"name": "a", "configs": ["a.yaml"]}], "scales": {"small": {"seeds": [0, 1]}}}


def test_spec_errors_name_the_file_and_the_key(tmp_path):
    folder = _write_spec(tmp_path / "e1", {**BASE, "colour": 1}, {"a.yaml": "{}"})
    with pytest.raises(ConfigError, match=r"e1/experiment.yaml: unknown key\(s\) \['colour'\]"):
        load_experiment(folder)
    folder = _write_spec(tmp_path / "e2", BASE)  # a.yaml missing
    with pytest.raises(ConfigError, match=r"experiment e2: config 'a.yaml' .* does not exist"):
        load_experiment(folder)
    spec = {**BASE, "variants": [{"name": "b", "configs": ["a.yaml"], "args": {"model.net.coarse_weights": "{ckpt:a}"}},
                                 {"name": "a", "configs": ["a.yaml"]}]}
    folder = _write_spec(tmp_path / "e3", spec, {"a.yaml": "{}"})
    with pytest.raises(ConfigError, match=r"variant 'b' uses \{ckpt:a\}: 'a' must be a variant listed before it"):
        load_experiment(folder)
    folder = _write_spec(tmp_path / "e4", {**BASE, "primary": "rmse", "metrics": ["abs_rel"]}, {"a.yaml": "{}"})
    with pytest.raises(ConfigError, match="primary 'rmse' is not one of metrics"):
        load_experiment(folder)
    folder = _write_spec(tmp_path / "e5", {**BASE, "scales": {"small": {"variant_args": {"zz": {}}}}}, {"a.yaml": "{}"})
    with pytest.raises(ConfigError, match="variant_args names no variant 'zz'"):
        load_experiment(folder)
    with pytest.raises(ConfigError, match="no scale 'huge'"):
        load_experiment(_write_spec(tmp_path / "e6", BASE, {"a.yaml": "{}"})).scale("huge")
    folder = _write_spec(tmp_path / "e7", {**BASE, "scales": {"tiny": {"variants": ["a", "zz"]}}}, {"a.yaml": "{}"})
    with pytest.raises(ConfigError, match=r"e7/experiment.yaml: scales.tiny.variants names no variant 'zz'"):
        load_experiment(folder)
    two = [{"name": "a", "configs": ["a.yaml"]}, {"name": "b", "configs": ["a.yaml"], "args": {"model.net.coarse_weights": "{ckpt:a}"}}]
    folder = _write_spec(tmp_path / "e8", {**BASE, "variants": two, "scales": {"tiny": {"variants": ["b"]}}}, {"a.yaml": "{}"})
    with pytest.raises(ConfigError, match=r"scales.tiny.variants: 'b' uses \{ckpt:a\}: list 'a' too"):
        load_experiment(folder)


def test_a_scale_runs_its_own_variants_and_prepare_steps(tmp_path):
    two = [{"name": "a", "configs": ["a.yaml"]}, {"name": "b", "configs": ["a.yaml"]}, {"name": "c", "configs": ["a.yaml"]}]
    scales = {"small": {}, "tiny": {"variants": ["c", "a"], "prepare": ["hints precompute --workers 1"]}}
    exp = load_experiment(_write_spec(tmp_path / "e", {**BASE, "variants": two, "scales": scales, "prepare": ["hints precompute"]},
                                      {"a.yaml": "{}"}))
    assert [v.name for v in exp.variants_at("small")] == ["a", "b", "c"]
    assert [v.name for v in exp.variants_at("tiny")] == ["a", "c"]  # spec order
    assert exp.prepare_at("small") == (("hints", "precompute"),)
    assert exp.prepare_at("tiny") == (("hints", "precompute", "--workers", "1"),)


def test_the_tiny_scale_trains_one_run_per_experiment():
    """The test suite runs every experiment at `tiny` (tests/experiments/test_experiments_run.py): one short
    fit each keeps it within its budget; the script experiments (no training) may run every variant."""
    from depthlab.experiments import list_experiments

    for name in list_experiments():
        exp = load_experiment(name)
        if exp.kind == "fit":
            assert len(exp.variants_at("tiny")) * len(exp.scale("tiny").seeds) == 1, name


def test_cli_args_and_the_fit_command(tmp_path):
    assert cli_args({"model.lr": 0.01, "model.eval_protocol": {"name": "none", "median_scaling": True},
                     "trainer.logger": False, "x": None}) == [
        "--model.lr", "0.01", "--model.eval_protocol", '{"name": "none", "median_scaling": true}',
        "--trainer.logger", "false", "--x", "null"]
    folder = _write_spec(tmp_path / "e", BASE, {"a.yaml": "{}", "base.yaml": "{}"})
    exp = Experiment("e", folder, "t", "q", (Variant("a", ("a.yaml",), {"model.lr": 0.5}),
                                              Variant("b", ("a.yaml",), {"model.net.coarse_weights": "{ckpt:a}"})),
                     {"small": Scale(args={"model.lr": 0.1}, variant_args={"b": {"model.lr": 0.2}})}, configs=("base.yaml",))
    a = fit_command(exp, exp.variants[0], "small", 3, tmp_path / "run", {})
    assert a == ["fit", "--config", str(folder / "base.yaml"), "--config", str(folder / "a.yaml"), "--model.lr", "0.1",
                 "--seed_everything", "3", "--trainer.default_root_dir", str(tmp_path / "run")]
    b = fit_command(exp, exp.variants[1], "small", 0, tmp_path / "run", {"a": "/x/last.ckpt"})
    assert b[b.index("--model.net.coarse_weights") + 1] == "/x/last.ckpt"
    assert b[b.index("--model.lr") + 1] == "0.2"  # the scale's per-variant args win


def test_csv_logs_both_layouts(tmp_path):
    write_csv_scalars(tmp_path / "m.csv", [(0, "train/m", 1.9), (1, "train/m", 1.903), (1, "final", 0.25)])
    assert read_csv_scalars(tmp_path / "m.csv") == {"train/m": [(0, 1.9), (1, 1.903)], "final": [(1, 0.25)]}
    (tmp_path / "wide.csv").write_text("epoch,step,train/loss,val/abs_rel\n0,9,0.5,\n0,19,0.4,0.3\n")
    assert read_csv_scalars(tmp_path / "wide.csv") == {"train/loss": [(9, 0.5), (19, 0.4)], "val/abs_rel": [(19, 0.3)]}
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="bad.csv: no 'step' column"):
        read_csv_scalars(tmp_path / "bad.csv")


def _results(values: dict[str, list[float]], tmp_path: Path) -> Results:
    folder = _write_spec(tmp_path / "r", {**BASE, "variants": [{"name": v, "configs": ["a.yaml"]} for v in values]},
                         {"a.yaml": "{}"})
    exp = load_experiment(folder)
    runs = {v: [Run(v, s, RunRecord(v, s, "small", [], 1.0, {"test": []}), {}, {"test": {"test/abs_rel": [(10, x)]}})
                for s, x in enumerate(xs)] for v, xs in values.items()}
    return Results(exp, "small", [0, 1, 2], runs)


def test_conclusion_compares_the_gap_with_the_seed_spread(tmp_path):
    # a: mean 0.2, std 0.01; b: mean 0.25 (gap 0.05 > 2 x 0.01); c: mean 0.205, within the spread
    r = _results({"a": [0.19, 0.2, 0.21], "b": [0.24, 0.25, 0.26], "c": [0.195, 0.205, 0.215]}, tmp_path)
    assert r.summary("a", "abs_rel") == pytest.approx((0.2, 0.01, 3))
    assert "a is better than b on abs_rel (0.2000 vs 0.2500; gap 0.0500, more than twice" in compare(r, "a", "b", "abs_rel")
    assert "within the seed spread (0.0100): no difference" in compare(r, "c", "a", "abs_rel")
    r = _results({"a": [0.2, 0.2, 0.2], "b": [0.215, 0.2, 0.23]}, tmp_path / "2")  # gap 0.015, spread 0.015: within
    assert "within the seed spread" in compare(r, "a", "b", "abs_rel")
    r = _results({"a": [0.2, 0.2, 0.2], "b": [0.225, 0.21, 0.24]}, tmp_path / "3")  # gap 0.025 in (0.015, 0.03]
    assert "a weak difference" in compare(r, "a", "b", "abs_rel")


def test_mean_curve_uses_the_steps_every_seed_logged():
    steps, mean, lo, hi = mean_curve([[(0, 1.0), (5, 3.0), (10, 5.0)], [(0, 3.0), (10, 7.0)]])
    assert steps == [0, 10] and mean == [2.0, 6.0] and lo == [1.0, 5.0] and hi == [3.0, 7.0]


def test_toy_first_steps_by_hand():
    from depthlab.experiments.toy import descend

    mae = descend("mae", steps=2)
    root = descend("root_mae", steps=1)
    # e = 1.9 * 3 - 6 = -0.3; MAE's gradient is x sign(e) = -3, so m moves up by lr x = 0.003
    assert mae[0]["error"] == pytest.approx(0.3) and mae[0]["grad"] == pytest.approx(3.0)
    assert mae[1]["m"] == pytest.approx(1.903) and mae[2]["m"] == pytest.approx(1.906)
    # root: |d sqrt(|e|)/dm| = x / (2 sqrt(|e|)) = 3 / (2 sqrt(0.3))
    assert root[0]["grad"] == pytest.approx(3 / (2 * math.sqrt(0.3)))
    assert root[1]["m"] == pytest.approx(1.9 + 1e-3 * 3 / (2 * math.sqrt(0.3)))
    with pytest.raises(ValueError, match="loss must be mae or root_mae"):
        descend("mse")


def test_sgd_optimizer_option():
    from depthlab.module import DepthModule

    with pytest.raises(ConfigError, match="model.optimizer: expected adamw or sgd, got 'adam'"):
        DepthModule(net={"name": "unet", "encoder": "resnet18", "pretrained": False}, optimizer="adam")
    with pytest.raises(ConfigError, match=r"model.momentum: expected a value in \[0, 1\)"):
        DepthModule(net={"name": "unet", "encoder": "resnet18", "pretrained": False}, optimizer="sgd", momentum=1.0)


def _no_commands(argv):
    raise AssertionError(f"a script experiment ran a depthlab command: {argv}")


def test_finished_runs_are_reused_until_their_settings_change(tmp_path):
    from depthlab.experiments.logs import read_csv_scalars
    from depthlab.experiments.runner import run_experiment

    spec = {"title": "t", "question": "q?", "kind": "script", "script": "depthlab.experiments.toy:run",
            "variants": [{"name": "mae", "args": {"loss": "mae", "steps": 3}}], "scales": {"small": {"seeds": [0]}},
            "metrics": ["final_error"]}
    exp = load_experiment(_write_spec(tmp_path / "toy", spec))
    messages = []
    run_experiment(exp, "small", out=tmp_path / "runs", run_command=_no_commands, log=messages.append)
    csv = tmp_path / "runs" / "small" / "mae" / "seed0" / "metrics.csv"
    assert max(s for s, _ in read_csv_scalars(csv)["train/m"]) == 3
    run_experiment(exp, "small", out=tmp_path / "runs", run_command=_no_commands, log=messages.append)
    assert "done before" in messages[-1] and "reused" in messages[-1]
    spec["variants"][0]["args"]["steps"] = 5
    exp = load_experiment(_write_spec(tmp_path / "toy", spec))
    run_experiment(exp, "small", out=tmp_path / "runs", run_command=_no_commands, log=messages.append)
    assert any("changed since" in m for m in messages)
    assert max(s for s, _ in read_csv_scalars(csv)["train/m"]) == 5


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


def _leaves(tree, prefix=""):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix, tree


@pytest.mark.slow  # importing the NYU data module's readers (h5py, scipy) starts a subprocess
def test_every_variant_parses_at_full_scale_and_keeps_what_it_varies(capsys):
    """`--scale full` is not run here, but each of its command lines must parse (jsonargparse checks every
    key against the classes), and the scale's configs must not undo what the variant sets."""
    from depthlab.cli import main
    from depthlab.experiments import list_experiments
    from depthlab.experiments.runner import fit_command

    checked = 0
    for name in list_experiments():
        exp = load_experiment(name)
        if exp.kind != "fit":
            continue
        for variant in exp.variants:
            args = fit_command(exp, variant, "full", 0, Path("unused"), {d: "coarse.ckpt" for d in variant.after})
            capsys.readouterr()
            with pytest.raises(SystemExit) as exit_:  # --print_config prints the resolved config and exits
                main([*args, "--print_config"])
            assert exit_.value.code in (0, None), (name, variant.name, capsys.readouterr().err)
            resolved = yaml.safe_load(capsys.readouterr().out)["model"]
            overrides = {k.removeprefix("model."): v for k, v in {**variant.args, **exp.scale("full").args_for(variant.name)}.items()}
            shared = {}
            for rel in exp.configs:
                shared.update(_leaves(yaml.safe_load(exp.config_path(rel).read_text()).get("model") or {}))
            for rel in variant.configs:
                own = yaml.safe_load(exp.config_path(rel).read_text()).get("model") or {}
                for key, value in _leaves(own):
                    if key in shared and shared[key] == value:
                        continue  # restated, not varied (a model.net mapping is replaced whole)
                    node = resolved
                    for part in key.split("."):
                        node = node[part]
                    expected = overrides.get(key, value)
                    assert node == expected or (isinstance(node, list) and list(node) == list(expected)), (name, variant.name, key)
            checked += 1
    assert checked >= 30


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

    assert main(["run", "toy_root_mae", "--scale", "tiny"], _no_commands) == 0
    assert main(["report", "toy_root_mae", "--scale", "tiny"], _no_commands) == 0
    assert _files(docs) == before  # not one file of docs/experiments/ touched
    folder = tmp_path / "lightning_logs" / "experiments" / "toy_root_mae" / "tiny" / "report"
    report = (folder / "toy_root_mae.md").read_text()
    assert "depthlab experiment run toy_root_mae --scale tiny" in report
    images = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", report)
    assert len(images) == 3 and all((folder / image).is_file() for image in images)

    old = (docs / "toy_root_mae.md").read_text()
    notes = old[old.index(NOTES_START):old.index(NOTES_END)]
    assert main(["report", "toy_root_mae", "--scale", "tiny", "--update-docs"], _no_commands) == 0
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
        main(["run", "toy_root_mae", "--scale", "tiny", "--update-docs"], _no_commands)
    assert list(tmp_path.iterdir()) == []  # nothing ran
    with pytest.raises(SystemExit):  # argparse: the two destinations exclude each other
        main(["run", "toy_root_mae", "--docs", "x", "--update-docs"], _no_commands)


def test_extras_build_the_data_module_the_runs_saved(tmp_path):
    """An extra's data module is the one in the `config.yaml` that the first variant's fit saved (fully
    resolved), not a second parse of the configs."""
    from depthlab.data.synthetic import SyntheticDataModule
    from depthlab.experiments.extras import experiment_datamodule

    exp = load_experiment(_write_spec(tmp_path / "e", {**BASE, "variants": [{"name": "a", "configs": ["a.yaml"]},
                                                                            {"name": "b", "configs": ["a.yaml"]}]}, {"a.yaml": "{}"}))
    runs = tmp_path / "runs" / "small"
    with pytest.raises(ConfigError, match=r"experiment e: no config.yaml of a finished fit run under .*runs/small"):
        experiment_datamodule(exp, runs)
    for variant, size in (("b", 5), ("a", 3)):
        folder = runs / variant / "seed0" / "lightning_logs" / "version_0"
        folder.mkdir(parents=True)
        data = {"class_path": "depthlab.data.SyntheticDataModule",
                "init_args": {"height": 32, "width": 48, "test_size": size, "seed": 7, "num_workers": 0}}
        (folder / "config.yaml").write_text(yaml.safe_dump({"model": {"lr": 0.1}, "data": data}))
    datamodule = experiment_datamodule(exp, runs)
    assert isinstance(datamodule, SyntheticDataModule)
    assert datamodule.sizes["test"] == 3 and datamodule.seed == 7  # variant a's: the first in spec order
