"""Result files are written whole or not at all.

A result (``history.json``, ``tune.json``, ``decision.json``, ...) is written to a temporary
file beside its target and renamed over it, so a process killed mid-write, or a disk that
fills up, leaves the previous file or none: never half a file that a later command would
read back as a result.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_text_atomic"]


def write_text_atomic(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (a temporary file in the same folder, flushed
    to disk, then renamed over ``path``). On any error the temporary file is removed and
    ``path`` is left as it was."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding=encoding) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
