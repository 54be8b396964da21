"""depthlab/experiments/spec.py: the spec's validation, its scales and the shipped experiments' configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from depthlab.errors import ConfigError
from depthlab.experiments import load_experiment
from depthlab.experiments.runner import fit_command
from experiment_specs import BASE, write_spec


def test_spec_errors_name_the_file_and_the_key(tmp_path):
    folder = write_spec(tmp_path / "e1", {**BASE, "colour": 1}, {"a.yaml": "{}"})
    with pytest.raises(ConfigError, match=r"e1/experiment.yaml: unknown key\(s\) \['colour'\]"):
        load_experiment(folder)
    folder = write_spec(tmp_path / "e2", BASE)  # a.yaml missing
    with pytest.raises(ConfigError, match=r"experiment e2: config 'a.yaml' .* does not exist"):
        load_experiment(folder)
    spec = {**BASE, "variants": [{"name": "b", "configs": ["a.yaml"], "args": {"model.net.coarse_weights": "{ckpt:a}"}},
                                 {"name": "a", "configs": ["a.yaml"]}]}
    folder = write_spec(tmp_path / "e3", spec, {"a.yaml": "{}"})
    with pytest.raises(ConfigError, match=r"variant 'b' uses \{ckpt:a\}: 'a' must be a variant listed before it"):
        load_experiment(folder)
    folder = write_spec(tmp_path / "e4", {**BASE, "primary": "rmse", "metrics": ["abs_rel"]}, {"a.yaml": "{}"})
    with pytest.raises(ConfigError, match="primary 'rmse' is not one of metrics"):
        load_experiment(folder)
    folder = write_spec(tmp_path / "e5", {**BASE, "scales": {"small": {"variant_args": {"zz": {}}}}}, {"a.yaml": "{}"})
    with pytest.raises(ConfigError, match="variant_args names no variant 'zz'"):
        load_experiment(folder)
    with pytest.raises(ConfigError, match="no scale 'huge'"):
        load_experiment(write_spec(tmp_path / "e6", BASE, {"a.yaml": "{}"})).scale("huge")
    folder = write_spec(tmp_path / "e7", {**BASE, "scales": {"tiny": {"variants": ["a", "zz"]}}}, {"a.yaml": "{}"})
    with pytest.raises(ConfigError, match=r"e7/experiment.yaml: scales.tiny.variants names no variant 'zz'"):
        load_experiment(folder)
    two = [{"name": "a", "configs": ["a.yaml"]}, {"name": "b", "configs": ["a.yaml"], "args": {"model.net.coarse_weights": "{ckpt:a}"}}]
    folder = write_spec(tmp_path / "e8", {**BASE, "variants": two, "scales": {"tiny": {"variants": ["b"]}}}, {"a.yaml": "{}"})
    with pytest.raises(ConfigError, match=r"scales.tiny.variants: 'b' uses \{ckpt:a\}: list 'a' too"):
        load_experiment(folder)


def test_a_scale_runs_its_own_variants_and_prepare_steps(tmp_path):
    two = [{"name": "a", "configs": ["a.yaml"]}, {"name": "b", "configs": ["a.yaml"]}, {"name": "c", "configs": ["a.yaml"]}]
    scales = {"small": {}, "tiny": {"variants": ["c", "a"], "prepare": ["hints precompute --workers 1"]}}
    exp = load_experiment(write_spec(tmp_path / "e", {**BASE, "variants": two, "scales": scales, "prepare": ["hints precompute"]},
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
            overrides = {**overrides, **dict(_leaves(overrides))}  # a mapping stated whole sets each of its leaves
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
