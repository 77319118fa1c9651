"""Nothing the tool writes follows a symbolic link out of the output folder, and every file
(plots included) is written whole or not at all (issue 33)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from disciplined.cli import main
from disciplined.cli import train as cli_train
from disciplined.files import open_no_follow, write_bytes_atomic, write_text_atomic

SECRET = "the user's own file\n"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the output folder that a planted link points at."""
    path = tmp_path / "elsewhere" / "precious.txt"
    path.parent.mkdir()
    path.write_text(SECRET)
    return path


def test_a_link_at_the_target_is_replaced_never_written_through(tmp_path, outside):
    link = tmp_path / "hparams.json"
    link.symlink_to(outside)
    write_text_atomic(link, "{}")
    assert outside.read_text() == SECRET
    assert not link.is_symlink() and link.read_text() == "{}"


def test_a_link_at_the_temporary_name_is_not_followed(tmp_path, outside):
    target = tmp_path / "curves.png"
    planted = tmp_path / f".curves.png.{os.getpid()}.tmp"
    planted.symlink_to(outside)
    write_bytes_atomic(target, b"png")
    assert outside.read_text() == SECRET and target.read_bytes() == b"png"
    assert not planted.exists() and not planted.is_symlink()


def test_a_full_disk_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "curves.png"
    target.write_bytes(b"old plot")

    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        write_bytes_atomic(target, b"new plot")
    assert target.read_bytes() == b"old plot"
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]


def test_the_lock_is_never_opened_through_a_link(tmp_path, outside):
    link = tmp_path / ".disciplined.lock"
    link.symlink_to(outside)
    with pytest.raises(OSError):
        open_no_follow(link)
    with pytest.raises(ValueError, match="mode 'a\\+' only"):
        open_no_follow(tmp_path / "x", "w")
    assert outside.read_text() == SECRET


def test_train_replaces_a_linked_plot_and_leaves_its_target(tmp_path, outside, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "curves.png").symlink_to(outside)
    code = main(
        [
            "train",
            "--task",
            "digits-mlp",
            "--epochs",
            "1",
            "--max-lr",
            "0.1",
            "--out",
            str(out),
            "--force",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert outside.read_text() == SECRET
    png = out / "curves.png"
    assert not png.is_symlink() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_linked_lock_is_one_line_exit_2_and_nothing_written(tmp_path, outside, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".disciplined.lock").symlink_to(outside)
    code = main(["train", "--task", "digits-mlp", "--epochs", "1", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "lock" in err[0], err
    assert outside.read_text() == SECRET
    assert sorted(p.name for p in out.iterdir()) == [".disciplined.lock"]


def test_the_error_log_replaces_a_link(tmp_path, outside, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("an internal invariant failed")

    monkeypatch.setattr(cli_train, "train_task", broken)
    out = tmp_path / "run"
    out.mkdir()
    (out / "error.log").symlink_to(outside)
    code = main(["train", "--task", "digits-mlp", "--epochs", "1", "--out", str(out), "--force"])
    assert code == 1
    assert outside.read_text() == SECRET
    assert "an internal invariant failed" in (out / "error.log").read_text()
    capsys.readouterr()
