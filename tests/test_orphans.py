"""No process outlives its command (issue 33): a `tune --workers 2` killed with SIGKILL or
SIGTERM leaves no worker or helper process behind, and SIGTERM ends the command with exit
143 and one line. Linux only (descendants are read from /proc)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)"),
]

WAIT = 30.0
"""Seconds a killed command's descendants are given to end (the workers poll their parent
every half second)."""


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _descendants(pid: int) -> set[int]:
    kids, found, todo = _children(), set(), [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _start_tune(out: Path) -> tuple[subprocess.Popen, set[int]]:
    """A `--workers 2` tune, and its descendants once both workers run trials."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "disciplined",
            "tune",
            "--task",
            "digits-mlp",
            "--epochs",
            "20",
            "--workers",
            "2",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 300
    found: set[int] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        found = _descendants(proc.pid)
        if len(found) >= 2 and (out / "trials.sqlite").exists():
            time.sleep(2.0)  # the workers are busy with trials
            return proc, _descendants(proc.pid) | found
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"the tune never started its workers: {proc.communicate()[1][-2000:]}")


def _gone(pids: set[int]) -> set[int]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and _alive(pids):
        time.sleep(0.25)
    return _alive(pids)


def test_sigkill_leaves_no_worker_behind(tmp_path):
    proc, family = _start_tune(tmp_path / "out")
    assert len(family) >= 2
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    left = _gone(family)
    for pid in left:  # do not leak them into the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert not left, f"still running {WAIT:g} s after SIGKILL: {sorted(left)}"
    proc.stdout.close()
    proc.stderr.close()


def test_sigterm_exits_143_with_one_line_and_no_worker_behind(tmp_path):
    out = tmp_path / "out"
    proc, family = _start_tune(out)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith("disciplined:")]
    assert lines == [
        "disciplined: terminated (SIGTERM); what finished is kept: run the same command "
        "again to resume"
    ]
    assert "Traceback" not in err
    left = _gone(family)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"still running {WAIT:g} s after SIGTERM: {sorted(left)}"
    assert (out / "trials.sqlite").exists()  # what finished is kept
