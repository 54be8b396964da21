"""Checkpoint files (depthlab.checkpointing.io): atomic saves, and one clear error for a bad checkpoint."""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from depthlab.checkpointing import AtomicCheckpointIO, check_checkpoint
from depthlab.cli import main
from depthlab.errors import ConfigError


def lightning_like(step: int) -> dict:
    """The entries of a Lightning checkpoint that matter here, with a tensor big enough to cut in two."""
    return {"state_dict": {"w": torch.full((4096,), float(step))}, "pytorch-lightning_version": "2.6",
            "global_step": step, "optimizer_states": [], "loops": {}}


def test_a_crash_in_the_middle_of_a_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    ckpt_io = AtomicCheckpointIO()
    ckpt_io.save_checkpoint(lightning_like(1), path)
    real_save = torch.save

    def write_half_then_crash(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        f.write(buffer.getvalue()[: buffer.tell() // 2])
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", write_half_then_crash)
    with pytest.raises(OSError, match="No space"):
        ckpt_io.save_checkpoint(lightning_like(2), path)
    monkeypatch.undo()
    assert ckpt_io.load_checkpoint(path)["global_step"] == 1
    assert os.listdir(tmp_path) == ["last.ckpt"]  # the half-written temporary file is gone


def test_a_save_writes_beside_the_checkpoint_not_in_the_system_temp_dir(tmp_path, monkeypatch):
    # Lightning's save stages the whole file in /tmp: a compute node's small /tmp fails it, and a /tmp
    # on another file system makes the final move a copy that a kill can cut short at the real path.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no_such_tmp"))
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(lightning_like(3), path)
    assert torch.load(path, weights_only=True)["global_step"] == 3
    assert sorted(os.listdir(path.parent)) == ["last.ckpt"]


def _truncated(path: Path) -> None:
    torch.save(lightning_like(5), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_CHECKPOINTS = {  # kind -> (how to make it, what the message must say)
    "missing": (lambda path: None, "no such file"),
    "empty": (lambda path: path.write_bytes(b""), "empty"),
    "truncated": (_truncated, "truncated"),
    "text file": (lambda path: path.write_text("not a checkpoint\n"), "not a PyTorch checkpoint"),
    "bare state_dict": (lambda path: torch.save({"net.w": torch.zeros(2)}, path), "not a Lightning checkpoint"),
}


@pytest.mark.parametrize("kind", BAD_CHECKPOINTS)
def test_a_bad_checkpoint_is_one_error_naming_the_file_and_its_defect(kind, tmp_path):
    make, says = BAD_CHECKPOINTS[kind]
    path = tmp_path / "bad.ckpt"
    make(path)
    with pytest.raises(ConfigError) as before_lightning:
        check_checkpoint(path)
    with pytest.raises(ConfigError) as through_lightning:  # e.g. a "last"/"hpc" path Lightning resolved
        AtomicCheckpointIO().load_checkpoint(path)
    for error in (before_lightning.value, through_lightning.value):
        message = str(error)
        assert str(path) in message and says in message and "\n" not in message


def test_a_weights_only_checkpoint_cannot_resume_training_but_can_be_evaluated(tmp_path):
    path = tmp_path / "weights.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "pytorch-lightning_version": "2.6"}, path)
    check_checkpoint(path)  # validate/test/predict
    with pytest.raises(ConfigError, match="weights only.*cannot resume"):
        check_checkpoint(path, resume=True)


@pytest.mark.parametrize("subcommand", ["fit", "validate", "test", "predict"])
@pytest.mark.parametrize("kind", ["missing", "truncated", "bare state_dict"])
def test_every_command_stops_on_a_bad_ckpt_path_with_one_line_and_status_2(subcommand, kind, tiny_config,
                                                                          tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["depthlab"])  # main() is given its arguments; pytest's are not for it
    monkeypatch.delenv("DEPTHLAB_TRACEBACK", raising=False)
    make, says = BAD_CHECKPOINTS[kind]
    path = tmp_path / "bad.ckpt"
    make(path)
    assert main([subcommand, "--config", str(tiny_config), "--ckpt_path", str(path)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith(f"depthlab: error: checkpoint {path}: "), errors
    assert says in errors[0]


def test_the_one_reader_loads_weights_only_and_reads_bare_state_dicts_on_request(tmp_path):
    from depthlab.checkpointing import read_checkpoint

    bare = tmp_path / "bare.pt"
    torch.save({"coarse.w": torch.ones(2)}, bare)
    assert torch.equal(read_checkpoint(bare, lightning=False)["coarse.w"], torch.ones(2))
    with pytest.raises(ConfigError, match="not a Lightning checkpoint"):
        read_checkpoint(bare)
    pickled = tmp_path / "pickled.ckpt"  # a checkpoint holding an arbitrary Python object: never unpickled
    torch.save({"state_dict": {}, "hyper_parameters": {"x": Path("p")}}, pickled)
    with pytest.raises(ConfigError, match=rf"checkpoint {pickled}: not a readable checkpoint"):
        read_checkpoint(pickled)
