"""``depthlab hints precompute --shard i/N`` and ``--launcher local|slurm --shards N``: shards write the
files of one run byte for byte, share one manifest (a shard with other settings is refused, also when
it races another to create it), and the command's options are checked in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from depthlab.cli import main as cli_main
from depthlab.data import SyntheticDataModule
from depthlab.errors import ConfigError
from depthlab.hints import PUBLISHED_GRID
from depthlab.hints.precompute import list_jobs, precompute
from depthlab.hints.store import MANIFEST_NAME, read_manifest
from depthlab.launch import Outcome

# As tests/hints/test_precompute.py: 32x96 pairs, 4 + 1 + 1 of them, a fraction of a second in all.
SYNTHETIC = dict(height=32, width=96, train_size=4, val_size=1, test_size=1, batch_size=2, num_workers=0)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and p.name != MANIFEST_NAME}


def test_two_shards_write_the_files_of_one_run_byte_for_byte(tmp_path):
    dm = SyntheticDataModule(**SYNTHETIC)
    one = precompute(dm, tmp_path / "one", workers=1, progress=False)
    assert one.computed == 6
    jobs = list_jobs(dm)
    first = precompute(dm, tmp_path / "shards", workers=1, progress=False, shard=(0, 2))
    # shard 0 of 2: the pairs at positions 0, 2, 4 of the job list
    assert (first.pairs, first.computed) == (3, 3)
    assert sorted(_files(tmp_path / "shards")) == sorted(o for job in jobs[0::2] for o in job.outputs)
    second = precompute(dm, tmp_path / "shards", workers=1, progress=False, shard=(1, 2))
    assert (second.pairs, second.computed, second.skipped) == (3, 3, 0)
    assert _files(tmp_path / "shards") == _files(tmp_path / "one")
    made = {k: v for k, v in read_manifest(tmp_path / "shards").items() if k != "created"}
    assert made == {k: v for k, v in read_manifest(tmp_path / "one").items() if k != "created"}
    again = precompute(dm, tmp_path / "shards", workers=1, progress=False, shard=(1, 2))
    assert (again.computed, again.skipped) == (0, 3)


def test_a_shard_with_other_settings_is_refused_by_the_shared_manifest(tmp_path, monkeypatch):
    from depthlab.hints import store

    dm = SyntheticDataModule(**SYNTHETIC)
    root = tmp_path / "hints"
    precompute(dm, root, workers=1, progress=False, shard=(0, 2))
    before = _files(root)
    with pytest.raises(ConfigError, match=r"made with other settings \(sgm_settings: folder 12 settings .*, now 4 settings"):
        precompute(dm, root, workers=1, progress=False, shard=(1, 2), settings=PUBLISHED_GRID[:4])
    assert _files(root) == before

    # Two shards starting at once: both find no manifest; the one that creates it second is refused.
    racing = tmp_path / "racing"
    precompute(dm, racing, workers=1, progress=False, shard=(0, 2), limit=0)  # the first one's manifest
    monkeypatch.setattr(store, "read_manifest", lambda root, real=store.read_manifest: monkeypatch.undo() or None)
    with pytest.raises(ConfigError, match=r"compute_size: folder native size, now \[16, 80\]"):
        precompute(dm, racing, workers=1, progress=False, shard=(1, 2), size=(16, 80))
    assert json.loads((racing / MANIFEST_NAME).read_text())["compute_size"] is None
    assert sorted(p.name for p in racing.iterdir()) == [MANIFEST_NAME]  # no partial manifest left behind


def test_shard_options_are_one_line_errors_naming_the_option(tmp_path, capsys):
    config = str(tmp_path / "never_read.yaml")
    for argv, message in (
            (["--shard", "3/2"], "--shard: expected I/N with 0 <= I < N (shards counted from 0, e.g. 0/4 ... 3/4), got '3/2'"),
            (["--shard", "a/b"], "--shard: expected I/N with 0 <= I < N (shards counted from 0, e.g. 0/4 ... 3/4), got 'a/b'"),
            (["--shards", "2"], "--shards: only with --launcher local or slurm (one shard alone: --shard I/N)"),
            (["--launcher", "local", "--shards", "2", "--shard", "0/2"],
             "--shard: one shard runs in this process; with --launcher local give --shards N"),
            (["--launcher", "slurm"], "--shards: --launcher slurm needs --shards N, the number of shards >= 1"),
            (["--slurm.partition", "gpu"], "--slurm.partition: only with --launcher slurm (got --launcher sequential)")):
        assert cli_main(["hints", "precompute", "--config", config, *argv]) == 2
        assert capsys.readouterr().err == f"depthlab: error: {message}\n"


def test_launched_shards_run_this_command_line_with_shard_i_of_n(tmp_path, monkeypatch, capsys):
    import depthlab.parser
    from depthlab.commands import hints

    tiny_config = tmp_path / "synthetic.yaml"  # not read: the data module comes from the stand-in below
    parsed = []
    monkeypatch.setattr(depthlab.parser, "datamodule_from_config",
                        lambda args, prog: parsed.append(args) or SyntheticDataModule(**SYNTHETIC))
    root = tmp_path / "hints"
    launched = []

    def fake_launch(jobs, options, folder, *, name):
        assert (root / MANIFEST_NAME).is_file()  # claimed before anything is submitted
        launched.append((jobs, options, folder))
        return [Outcome(job, 1 if job.name == "hints shard 1/3" else 0, "") for job in jobs]

    monkeypatch.setattr(hints, "launch", fake_launch)
    argv = ["hints", "precompute", "--config", str(tiny_config), "--hints_root", str(root), "--settings", "random",
            "--num_settings", "2", "--launcher", "local", "--jobs", "2", "--shards", "3"]
    assert cli_main(argv) == 1
    (jobs, options, folder), = launched
    assert parsed == [["--config", str(tiny_config)]]  # the launcher options are not the config parser's
    assert (options.launcher, options.jobs, folder) == ("local", 2, root / "logs" / "submitit")
    for i, job in enumerate(jobs):
        assert job.argv == ["hints", "precompute", "--config", str(tiny_config), "--hints_root", str(root), "--settings",
                            "random", "--num_settings", "2", "--no_progress", "--workers", job.argv[-3], "--shard", f"{i}/3"]
        assert int(job.argv[-3]) >= 1 and job.log == str(root / "logs" / f"shard-{i}-of-3.log")
    err = capsys.readouterr().err
    assert err == f"hints precompute: hints shard 1/3 failed (exit status 1): log {root / 'logs' / 'shard-1-of-3.log'}\n"
