"""The output folder's guard (`disciplined.outdir.guard_out`), from Python: the marker, the
lock (a second holder refused, released on exit even after an exception, a link at its name
refused), the --force check, a refusal that leaves no trace, and `disciplined.tune(out=...)`
guarded as the command line is."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import disciplined.cli.common as common
from disciplined import tune
from disciplined.errors import UsageError
from disciplined.outdir import LOCK, MARKER, check_out, guard_out, lock_out

OWNER = {"command": "tune", "task": "digits-mlp", "task_options": {}}


def _enter(guard) -> None:
    with guard:
        pass


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_the_guard_writes_the_marker_and_holds_the_lock(tmp_path):
    out = tmp_path / "run"
    with guard_out(out, OWNER) as folder:
        assert folder == out and folder.is_dir()
        assert json.loads((out / MARKER).read_text()) == OWNER
        assert "`disciplined tune` (pid " in (out / LOCK).read_text()
        with pytest.raises(UsageError, match=r"is in use by `disciplined tune` \(pid \d+, since"):
            lock_out(out, OWNER)  # a second open of the lock, as another process would
        (folder / "hparams.json").write_text("{}")
    lock_out(out, OWNER).release()  # released on exit
    assert _names(out) == {MARKER, LOCK, "hparams.json"}


def test_the_lock_is_released_when_the_block_raises(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with pytest.raises(RuntimeError, match="boom"), guard_out(out, OWNER):
        (out / "tune.json").write_text("{}")  # something written: the marker stays
        raise RuntimeError("boom")
    with lock_out(out, OWNER) as again:
        assert again.held
    assert json.loads((out / MARKER).read_text()) == OWNER


def test_a_block_that_raises_before_writing_leaves_no_trace(tmp_path):
    made = tmp_path / "a" / "b"
    with pytest.raises(UsageError, match="refused"), guard_out(made, OWNER):
        raise UsageError("refused")
    assert not (tmp_path / "a").exists()  # the folders it made, gone again
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(UsageError), guard_out(kept, OWNER):
        raise UsageError("refused")
    assert _names(kept) == {"notes.txt"}
    other = {**OWNER, "task": "mnist1d-cnn"}
    with guard_out(kept, other):
        pass
    with pytest.raises(UsageError), guard_out(kept, OWNER, force=True):
        raise UsageError("refused")
    assert json.loads((kept / MARKER).read_text()) == other  # the old marker, put back


def test_a_second_holder_in_another_process_is_refused_naming_it(tmp_path):
    out = tmp_path / "busy"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from disciplined.outdir import guard_out\n"
            "with guard_out(sys.argv[1], {'command': 'tune', 'task': 'digits-mlp', "
            "'task_options': {}}):\n"
            "    print('held', flush=True); time.sleep(60)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        with pytest.raises(UsageError) as info, guard_out(out, OWNER):
            pass
        assert f"is in use by `disciplined tune` (pid {holder.pid}, since " in str(info.value)
        assert len(str(info.value).splitlines()) == 1
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    finally:
        holder.kill()
        holder.wait()
    with guard_out(out, OWNER):  # the lock went with the process
        pass


def test_a_link_at_the_locks_name_is_refused_and_not_followed(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    target = tmp_path / "elsewhere.txt"
    target.write_text("not yours")
    (out / LOCK).symlink_to(target)
    with pytest.raises(UsageError, match=r"cannot open the lock .*remove it"), guard_out(
        out, OWNER
    ):
        pass
    assert target.read_text() == "not yours"
    assert _names(out) == {LOCK}  # no marker left behind


def test_a_foreign_folder_is_refused_unless_forced(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "report.html").write_text("my own report")
    with pytest.raises(UsageError, match=r"holds report\.html, not written by disciplined"):
        _enter(guard_out(out, OWNER))
    assert _names(out) == {"report.html"}
    with guard_out(out, OWNER, force=True):
        pass
    assert json.loads((out / MARKER).read_text()) == OWNER
    with pytest.raises(UsageError, match="was written by `disciplined tune` on task 'digits"):
        check_out(out, {**OWNER, "command": "train"})


def test_an_empty_folder_name_is_refused(tmp_path):
    with pytest.raises(UsageError, match=r"the output folder must be named, got ''"):
        _enter(guard_out("", OWNER))


def test_the_clis_old_names_still_work(tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    assert (common.MARKER, common.LOCK) == (MARKER, LOCK)
    assert common.claim_out(out, OWNER) is True
    with pytest.raises(UsageError, match="is in use by"):
        lock_out(out, OWNER)
    common.release_out()
    lock_out(out, OWNER).release()
    with pytest.raises(UsageError, match="was written by"):
        common.check_out(str(out), {**OWNER, "task": "other"})


# ------------------------------------------------------------------- disciplined.tune


def test_tune_from_python_is_refused_while_another_thread_holds_the_folder(tmp_path):
    out = tmp_path / "run"
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with guard_out(out, OWNER):
            held.set()
            done.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(30)
        before = _names(out)
        with pytest.raises(UsageError, match=r"is in use by `disciplined tune` \(pid"):
            tune("digits-mlp", epochs=1, out=out, progress=False)
        assert _names(out) == before  # no store, no files
    finally:
        done.set()
        thread.join()


def test_tune_from_python_refuses_a_folder_of_another_task_or_foreign_files(tmp_path):
    other = tmp_path / "other"
    with guard_out(other, {**OWNER, "task": "mnist1d-cnn"}):
        pass
    before = {p.name: p.read_bytes() for p in other.iterdir()}
    with pytest.raises(UsageError, match="was written by `disciplined tune` on task 'mnist1d"):
        tune("digits-mlp", epochs=1, out=other, progress=False)
    assert {p.name: p.read_bytes() for p in other.iterdir()} == before
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "hparams.json").write_text('{"mine": true}')
    with pytest.raises(UsageError, match=r"holds hparams\.json, not written by disciplined"):
        tune("digits-mlp", epochs=1, out=foreign, progress=False)
    assert _names(foreign) == {"hparams.json"}


def test_tune_refused_by_its_plan_leaves_no_folder(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(UsageError, match="is too small"):
        tune("digits-mlp", epochs=2, budget=1, out=out, progress=False)
    assert not out.exists()
