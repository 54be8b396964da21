"""depthlab/experiments/runner.py: command lines and the reuse of finished runs."""

from __future__ import annotations


from depthlab.experiments import load_experiment
from depthlab.experiments.logs import read_csv_scalars
from depthlab.experiments.runner import cli_args, fit_command
from depthlab.experiments.spec import Experiment, Scale, Variant
from experiment_specs import BASE, no_commands, write_spec


def test_cli_args_and_the_fit_command(tmp_path):
    assert cli_args({"model.lr": 0.01, "model.eval_protocol": {"name": "none", "median_scaling": True},
                     "trainer.logger": False, "x": None}) == [
        "--model.lr", "0.01", "--model.eval_protocol", '{"name": "none", "median_scaling": true}',
        "--trainer.logger", "false", "--x", "null"]
    folder = write_spec(tmp_path / "e", BASE, {"a.yaml": "{}", "base.yaml": "{}"})
    exp = Experiment("e", folder, "t", "q", (Variant("a", ("a.yaml",), {"model.lr": 0.5}),
                                              Variant("b", ("a.yaml",), {"model.net.coarse_weights": "{ckpt:a}"})),
                     {"small": Scale(args={"model.lr": 0.1}, variant_args={"b": {"model.lr": 0.2}})}, configs=("base.yaml",))
    a = fit_command(exp, exp.variants[0], "small", 3, tmp_path / "run", {})
    assert a == ["fit", "--config", str(folder / "base.yaml"), "--config", str(folder / "a.yaml"), "--model.lr", "0.1",
                 "--seed_everything", "3", "--trainer.default_root_dir", str(tmp_path / "run")]
    b = fit_command(exp, exp.variants[1], "small", 0, tmp_path / "run", {"a": "/x/last.ckpt"})
    assert b[b.index("--model.net.coarse_weights") + 1] == "/x/last.ckpt"
    assert b[b.index("--model.lr") + 1] == "0.2"  # the scale's per-variant args win


def test_finished_runs_are_reused_until_their_settings_change(tmp_path):
    from depthlab.experiments.logs import read_csv_scalars
    from depthlab.experiments.runner import run_experiment

    spec = {"title": "t", "question": "q?", "kind": "script", "script": "depthlab.experiments.toy:run",
            "variants": [{"name": "mae", "args": {"loss": "mae", "steps": 3}}], "scales": {"small": {"seeds": [0]}},
            "metrics": ["final_error"]}
    exp = load_experiment(write_spec(tmp_path / "toy", spec))
    messages = []
    run_experiment(exp, "small", out=tmp_path / "runs", run_command=no_commands, log=messages.append)
    csv = tmp_path / "runs" / "small" / "mae" / "seed0" / "metrics.csv"
    assert max(s for s, _ in read_csv_scalars(csv)["train/m"]) == 3
    run_experiment(exp, "small", out=tmp_path / "runs", run_command=no_commands, log=messages.append)
    assert "done before" in messages[-1] and "reused" in messages[-1]
    spec["variants"][0]["args"]["steps"] = 5
    exp = load_experiment(write_spec(tmp_path / "toy", spec))
    run_experiment(exp, "small", out=tmp_path / "runs", run_command=no_commands, log=messages.append)
    assert any("changed since" in m for m in messages)
    assert max(s for s, _ in read_csv_scalars(csv)["train/m"]) == 5
