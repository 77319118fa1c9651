"""The output folder, guarded: one writer at a time, and only into a folder that is its own.

A command (or `disciplined.tune` from Python) writes into an output folder inside
``with guard_out(out, owner, force=...)``:

- before anything is written, a folder that another command or task wrote (its `MARKER`
  says so), or that holds, without a marker, files of the names this command writes
  (`OUTPUTS`), is refused with a `UsageError` unless ``force`` (`check_out`);
- the folder is created if missing and checked writable;
- the `LOCK` file in it is locked (``flock``, opened without following a link): a second
  writer, in another process or another thread of this one, is refused with a `UsageError`
  naming the holder. The lock goes with the process however it ends, and is released when
  the ``with`` block exits, exception or not;
- the `MARKER` is written naming ``owner``.

If the block raises before anything else in the folder changed, the marker and lock this
guard added (and the folder, if the guard made it) are removed again: a refusal leaves no
trace.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from disciplined.errors import UsageError
from disciplined.files import open_no_follow, write_bytes_atomic, write_text_atomic

__all__ = [
    "LOCK",
    "MARKER",
    "OUTPUTS",
    "OutLock",
    "check_out",
    "guard_out",
    "lock_out",
    "out_path",
    "prepare_out",
    "write_marker",
]

MARKER = ".disciplined.json"
"""The file in an output folder that says which command, on which task, writes there."""

LOCK = ".disciplined.lock"
"""The file in an output folder that a running command holds locked (``flock``); it names
the holder (command, pid, start time). The lock goes with the process, however it ends."""

OUTPUTS: dict[str, tuple[str, ...]] = {
    "train": ("history.json", "curves.png"),
    "find-lr": ("range_test.json", "range_test.png"),
    "sweep": ("decision.json", "*.png"),
    "tune": ("hparams.json", "tune.json", "history.json", "report.html", "*.png"),
}
"""The files (glob patterns) each command writes into its output folder. The store,
``trials.sqlite``, is not listed: it guards itself (`TrialStore.bind` refuses another
task's trials, and a file that is not a store is refused)."""


def out_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a `Path`; an empty or blank name is a `UsageError` (``Path("")`` would
    be the current folder, never what was meant)."""
    if isinstance(path, str) and not path.strip():
        raise UsageError(
            f"the output folder must be named, got {path!r} (give '.' for the current folder)"
        )
    return Path(path)


def _describe_owner(owner: Mapping[str, Any]) -> str:
    options = owner.get("task_options") or {}
    text = f"`disciplined {owner.get('command')}` on task {owner.get('task')!r}"
    if options:
        text += " (" + ", ".join(f"{k}={v}" for k, v in sorted(options.items())) + ")"
    return text


def check_out(
    path: str | os.PathLike[str], owner: Mapping[str, Any], force: bool = False
) -> None:
    """Refuse (`UsageError`, nothing written) an output folder that another command or
    task wrote (its `MARKER` says so), or that holds, without a marker, files of the names
    ``owner["command"]`` writes (`OUTPUTS`): they are not the tool's to overwrite.
    ``force`` allows both. ``owner`` is ``{"command", "task", "task_options"}``."""
    folder = out_path(path)
    if force or not folder.is_dir():
        return
    marker = folder / MARKER
    if marker.is_file():
        try:
            held = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            held = None
        if not isinstance(held, dict):
            raise UsageError(
                f"output folder {str(path)!r} has an unreadable {MARKER}; use another --out, "
                "or --force to write into it anyway"
            )
        if held != json.loads(json.dumps(dict(owner))):
            raise UsageError(
                f"output folder {str(path)!r} was written by {_describe_owner(held)}; use "
                "another --out, or --force to write into it anyway"
            )
        return
    patterns = OUTPUTS.get(str(owner.get("command")), ())
    found = sorted({p.name for pattern in patterns for p in folder.glob(pattern)})
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise UsageError(
            f"output folder {str(path)!r} holds {found[0]}{more}, not written by disciplined; "
            "move it away, use another --out, or --force to replace it"
        )


def prepare_out(path: str | os.PathLike[str]) -> Path:
    """Create the output folder (or reuse it) and check it is writable, before any work
    (`UsageError` naming the folder otherwise)."""
    out = out_path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create output folder {str(path)!r}: {exc.strerror or exc}"
        ) from exc
    if not out.is_dir() or not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"output folder {str(path)!r} is not writable")
    return out


class OutLock:
    """The `LOCK` of one output folder, held by this process (`lock_out`); `release` (or
    leaving it as a context manager) lets go. The lock file stays, unlocked."""

    def __init__(self, path: Path, handle: Any) -> None:
        """``handle``: the open, locked file at ``path`` (None where there is no ``flock``)."""
        self.path = path
        self._handle = handle

    @property
    def held(self) -> bool:
        """Whether the lock is still held."""
        return self._handle is not None

    def release(self) -> None:
        """Unlock (closing the file). Releasing twice is harmless."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()

    def __enter__(self) -> OutLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_out(out: str | os.PathLike[str], owner: Mapping[str, Any]) -> OutLock:
    """Lock the output folder ``out`` for ``owner``: another holder (another process, or
    another open of the lock in this one) is refused with a `UsageError` naming it; a link
    at the lock's name is refused, never followed. The lock file names this holder."""
    path = Path(out) / LOCK
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return OutLock(path, None)
    try:
        f = open_no_follow(path)
    except OSError as exc:
        raise UsageError(
            f"cannot open the lock {str(path)!r}: {exc.strerror or exc}; remove it "
            "(it is not a file disciplined wrote) or use another --out"
        ) from None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "another disciplined process"
        f.close()
        raise UsageError(
            f"output folder {str(Path(out))!r} is in use by {holder}; wait for it to finish "
            "or use another --out"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(
        f"`disciplined {owner.get('command')}` (pid {os.getpid()}, since "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')})\n"
    )
    f.flush()
    return OutLock(path, f)


def write_marker(out: str | os.PathLike[str], owner: Mapping[str, Any]) -> bool:
    """Write the `MARKER` naming ``owner`` (atomically); return whether there was none."""
    marker = Path(out) / MARKER
    new = not marker.exists()
    write_text_atomic(marker, json.dumps(dict(owner), sort_keys=True) + "\n")
    return new


def _state(folder: Path) -> dict[str, tuple[int, int, int]]:
    """What is in ``folder``, enough to tell whether anything was written: each name's
    inode, size and modification time (an atomic write replaces the inode)."""
    found = {}
    for p in folder.iterdir():
        try:
            st = p.lstat()
        except OSError:
            continue
        found[p.name] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return found


def _missing_dirs(folder: Path) -> list[Path]:
    """The folders ``mkdir(parents=True)`` would create for ``folder``, deepest first."""
    missing = []
    for p in (folder, *folder.parents):
        if p.exists() or p.is_symlink():
            break
        missing.append(p)
    return missing


@contextmanager
def guard_out(
    out: str | os.PathLike[str], owner: Mapping[str, Any], *, force: bool = False
) -> Iterator[Path]:
    """``with guard_out(out, owner, force=...) as folder:`` write into ``folder``, which is
    the guarded output folder (see the module's docstring): checked (`check_out`), created
    (`prepare_out`), locked (`lock_out`) and marked (`write_marker`) on entry; unlocked on
    exit, exception or not. If the block raises before anything else in the folder changed,
    what the guard added is removed. ``owner`` is ``{"command", "task", "task_options"}``,
    the same for every run that may resume or rerun in the folder."""
    check_out(out, owner, force)
    created = _missing_dirs(out_path(out))
    folder = prepare_out(out)
    before = _state(folder)
    try:
        lock = lock_out(folder, owner)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        marker = folder / MARKER
        previous = marker.read_bytes() if marker.is_file() and not marker.is_symlink() else None
        write_marker(folder, owner)
        yield folder
    except BaseException:
        _undo(folder, before, created, previous)
        raise
    finally:
        lock.release()


def _undo(
    folder: Path,
    before: dict[str, tuple[int, int, int]],
    created: list[Path],
    previous: bytes | None,
) -> None:
    """After a block that raised: if nothing but the marker and lock changed in ``folder``,
    put the marker back as it was (``previous``; removed if there was none), remove a lock
    the guard added, and the folders it made if they are empty again."""
    mine = {MARKER, LOCK}
    try:
        now = _state(folder)
    except OSError:
        return
    if {k: v for k, v in now.items() if k not in mine} != {
        k: v for k, v in before.items() if k not in mine
    }:
        return  # something was written: the marker says whose it is
    if previous is not None:
        write_bytes_atomic(folder / MARKER, previous)
    for name in mine - set(before):
        (folder / name).unlink(missing_ok=True)
    _remove_empty(created)


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) while they are empty."""
    for path in folders:
        try:
            path.rmdir()
        except OSError:
            return
