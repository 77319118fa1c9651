"""Result files are written whole or not at all.

A result (``history.json``, ``tune.json``, ``decision.json``, ...) is written to a temporary
file beside its target and renamed over it, so a process killed mid-write, or a disk that
fills up, leaves the previous file or none: never half a file that a later command would
read back as a result.

Nothing written follows a symbolic link out of the output folder: the temporary file is
created new (``O_CREAT | O_EXCL | O_NOFOLLOW``), and the rename replaces a link at the target
name by the file itself, leaving whatever the link pointed to untouched. A file that is kept
open under a fixed name (the lock) is opened with `open_no_follow`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["open_no_follow", "write_bytes_atomic", "write_text_atomic"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a new temporary file in the same folder
    (created exclusively, never through a link), flushed to disk, then renamed over ``path``
    (a link there is replaced, its target left alone). On any error the temporary file is
    removed and ``path`` is left as it was."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # a leftover of this pid (or a planted link): never followed
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically, as `write_bytes_atomic` does."""
    write_bytes_atomic(path, text.encode(encoding))


def open_no_follow(path: str | os.PathLike[str], mode: str = "a+") -> Any:
    """Open ``path`` as text for appending and reading (created when missing) without
    following a symbolic link at that name: a link raises `OSError` (``ELOOP``)."""
    if mode != "a+":
        raise ValueError(f"open_no_follow opens with mode 'a+' only, got {mode!r}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | _NOFOLLOW, 0o644)
    return os.fdopen(fd, "a+", encoding="utf-8")
