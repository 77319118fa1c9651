"""Where trial results live: a small abstract store with a written contract, and two backends.

A finished trial is an immutable record: `TrialStore.put` keeps the first result stored under a
key and hands that one back to every later writer, so a study that is interrupted and run
again reads what it already has instead of running it twice, and two processes that finish
the same trial agree on one answer.

Backends:

- `MemoryStore` — a dictionary, for tests and throw-away runs (``--store :memory:``);
- `SQLiteStore` — one SQLite file (the default, ``trials.sqlite`` in the output folder). Every
  write is one transaction, so a process killed at any moment leaves either the whole row or
  nothing, and several processes may write one file at once (WAL journal, 60 s busy timeout).

Both keep results as the JSON of `TrialResult.to_dict` (``allow_nan=False``), so what comes
back is the same, field for field, whichever backend held it.
"""

from __future__ import annotations

import abc
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from disciplined.errors import UsageError
from disciplined.trials.spec import TrialResult

__all__ = ["MemoryStore", "SQLiteStore", "TrialStore", "open_store"]

IDENTITY = "identity"
"""The meta entry `TrialStore.bind` records the store's identity under."""


def _encode(value: Any, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{what} must be JSON-serializable without NaN or infinity: {exc}"
        ) from exc


def _payload(result: TrialResult) -> str:
    if not isinstance(result, TrialResult):
        raise TypeError(f"put() takes a TrialResult, got {type(result).__name__}")
    return _encode(result.to_dict(), f"trial result {result.key}")


def _decode(payload: str, location: str) -> TrialResult:
    """The `TrialResult` a stored row holds; a row that is not one is a `UsageError` naming
    the store (it was written by something else, or damaged)."""
    try:
        return TrialResult.from_dict(json.loads(payload))
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise UsageError(
            f"store {location} holds a trial record that cannot be read "
            f"({type(exc).__name__}: {exc}); move the store away or give another --store"
        ) from exc


def _decode_meta(text: Any, name: str, location: str) -> Any:
    """The JSON value a stored meta row holds; a row that is not JSON (damaged, or written
    by something else) is a `UsageError` naming the store and the entry."""
    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError) as exc:
        detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        raise UsageError(
            f"store {location} holds a meta entry {name!r} that cannot be read ({detail}); "
            "move the store away or give another --store"
        ) from None


def _describe(identity: Any) -> str:
    """``task 'digits-mlp' ({...})`` for an identity dictionary, its JSON otherwise."""
    if isinstance(identity, dict) and "task" in identity:
        rest = {k: v for k, v in identity.items() if k != "task"}
        if set(rest) == {"task_options"}:
            rest = rest["task_options"]
        text = f"task {identity['task']!r}"
        return f"{text} ({json.dumps(rest, sort_keys=True)})" if rest else text
    return json.dumps(identity, sort_keys=True)


class TrialStore(abc.ABC):
    """Where trial results live. The contract every backend keeps:

    - `put` is atomic: after it returns the result is durably stored, and a process killed
      during it leaves either the whole result or nothing. If a result with the same key is
      already stored, the stored one is kept and returned (finished trials are immutable).
    - `get` returns a result equal (by `TrialResult.to_dict`) to the one stored, or ``None``.
    - `results` lists every stored result in insertion order.
    - ``key in store`` and ``len(store)`` count stored results.
    - `get_meta` / `set_meta` hold named JSON values (``set_meta`` overwrites);
      `setdefault_meta` sets a value only if none is stored, atomically.
    - `bind` records which task the store belongs to and refuses a different one.
    - `close` releases the backend; using a closed store raises ``RuntimeError``. A store is
      a context manager that closes on exit.

    Values go through JSON, so what comes back is the JSON form (tuples become lists).
    """

    location: str
    """Where the store lives, for messages (a path, or ``":memory:"``)."""

    @abc.abstractmethod
    def get(self, key: str) -> TrialResult | None:
        """The result stored under ``key``, or ``None``."""

    @abc.abstractmethod
    def put(self, result: TrialResult) -> TrialResult:
        """Store ``result`` under ``result.key`` unless that key is taken; return the stored one."""

    @abc.abstractmethod
    def results(self) -> list[TrialResult]:
        """Every stored result, in insertion order."""

    @abc.abstractmethod
    def __contains__(self, key: object) -> bool:
        """Whether a result is stored under ``key``."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """The number of stored results."""

    @abc.abstractmethod
    def get_meta(self, name: str) -> Any | None:
        """The JSON value stored under ``name``, or ``None``."""

    @abc.abstractmethod
    def set_meta(self, name: str, value: Any) -> None:
        """Store the JSON value ``value`` under ``name``, replacing any previous one."""

    @abc.abstractmethod
    def setdefault_meta(self, name: str, value: Any) -> Any:
        """Store ``value`` under ``name`` if nothing is stored there; return what is stored.

        Atomic: of several writers racing, exactly one value wins and all of them get it.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the backend. Closing twice is harmless."""

    def keys(self) -> list[str]:
        """The stored keys, in insertion order."""
        return [r.key for r in self.results()]

    def __iter__(self) -> Iterator[TrialResult]:
        """Iterate over `results`."""
        return iter(self.results())

    def bind(self, identity: dict[str, Any]) -> None:
        """Tie the store to one task: the first call records ``identity`` (for example
        ``{"task": "digits-mlp", "task_options": {...}}``) under the meta entry
        ``"identity"``; a later call with a different identity raises `UsageError`, so the
        trials of two tasks never mix in one store."""
        wanted = json.loads(_encode(identity, "identity"))
        held = self.setdefault_meta(IDENTITY, wanted)
        if held != wanted:
            raise UsageError(
                f"store {self.location} holds trials of {_describe(held)}; refusing to mix in "
                f"{_describe(wanted)} — use another --store"
            )

    def __enter__(self) -> TrialStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"


class MemoryStore(TrialStore):
    """A store in this process's memory; gone when the process ends. Thread-safe.

    Results are kept as their JSON, exactly as `SQLiteStore` keeps them, so both backends
    give back the same thing and a result that cannot be written fails here too.
    """

    def __init__(self) -> None:
        """An empty store."""
        self.location = ":memory:"
        self._trials: dict[str, str] = {}  # insertion-ordered: key -> payload
        self._meta: dict[str, str] = {}
        self._lock = threading.Lock()
        self._closed = False

    def _check(self) -> None:
        if self._closed:
            raise RuntimeError(f"store {self.location} is closed")

    def get(self, key: str) -> TrialResult | None:
        """The result stored under ``key``, or ``None``."""
        with self._lock:
            self._check()
            payload = self._trials.get(key)
        return None if payload is None else TrialResult.from_dict(json.loads(payload))

    def put(self, result: TrialResult) -> TrialResult:
        """Store ``result`` unless its key is taken; return the stored result."""
        payload = _payload(result)
        with self._lock:
            self._check()
            stored = self._trials.setdefault(result.key, payload)
        return result if stored == payload else TrialResult.from_dict(json.loads(stored))

    def results(self) -> list[TrialResult]:
        """Every stored result, in insertion order."""
        with self._lock:
            self._check()
            payloads = list(self._trials.values())
        return [TrialResult.from_dict(json.loads(p)) for p in payloads]

    def __contains__(self, key: object) -> bool:
        """Whether a result is stored under ``key``."""
        with self._lock:
            self._check()
            return key in self._trials

    def __len__(self) -> int:
        """The number of stored results."""
        with self._lock:
            self._check()
            return len(self._trials)

    def get_meta(self, name: str) -> Any | None:
        """The JSON value stored under ``name``, or ``None``."""
        with self._lock:
            self._check()
            text = self._meta.get(name)
        return None if text is None else json.loads(text)

    def set_meta(self, name: str, value: Any) -> None:
        """Store ``value`` under ``name``, replacing any previous one."""
        text = _encode(value, f"meta {name!r}")
        with self._lock:
            self._check()
            self._meta[name] = text

    def setdefault_meta(self, name: str, value: Any) -> Any:
        """Store ``value`` under ``name`` unless something is there; return what is stored."""
        text = _encode(value, f"meta {name!r}")
        with self._lock:
            self._check()
            text = self._meta.setdefault(name, text)
        return json.loads(text)

    def close(self) -> None:
        """Mark the store closed (its contents are dropped)."""
        with self._lock:
            self._closed = True
            self._trials.clear()
            self._meta.clear()


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS trials ("
    "seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT UNIQUE NOT NULL, status TEXT, "
    "payload TEXT NOT NULL, created REAL)",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)",
)
_COLUMNS = {
    "trials": {"seq", "key", "status", "payload", "created"},
    "meta": {"name", "value"},
}


class SQLiteStore(TrialStore):
    """A store in one SQLite file, safe to share between processes.

    The file (and its parent folder) is created if missing. WAL journal mode lets readers
    run beside a writer; every write is one ``BEGIN IMMEDIATE`` transaction, so a process
    killed at any moment leaves the whole row or nothing, and concurrent writers wait up to
    60 s for each other instead of failing. Opening is cheap.

    Each process uses its own connection: a store handed to a forked child opens a fresh
    one there on first use (the parent's is left alone). Within a process the store is
    thread-safe.

    Raises `UsageError` naming the path when the path cannot hold a store (a folder, a path
    under a regular file, a folder that cannot be created) or when the file exists but is not
    one of ours (not SQLite, or SQLite with other tables and not ours). An existing file
    without any tables (for example an empty one) is taken as a new store.
    """

    TIMEOUT = 60.0
    """Seconds a writer waits for another process's transaction before giving up."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Open (creating if needed) the store at ``path``."""
        self.path = Path(path)
        self.location = str(self.path)
        self._lock = threading.RLock()
        self._closed = False
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._inherited: list[sqlite3.Connection] = []  # forked parents' connections
        if self.path.is_dir():
            raise UsageError(f"store {self.location} is a folder, not a file")
        blocker = next((p for p in self.path.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise UsageError(f"cannot create store {self.location}: {blocker} is not a folder")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"cannot create the folder for store {self.location}: {exc.strerror or exc}"
            ) from None
        self._connection()  # open now, so a bad file is reported here

    # ----------------------------------------------------------------------- connection

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError(f"store {self.location} is closed")
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        if self._conn is not None:  # inherited across fork: never use or close it here
            self._inherited.append(self._conn)
        self._conn = None
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.TIMEOUT, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise UsageError(f"cannot open store {self.location}: {exc}") from None
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        try:
            tables = {
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        except sqlite3.DatabaseError as exc:
            if "malformed" in str(exc):
                raise UsageError(self._damaged(str(exc))) from None
            raise UsageError(
                f"store {self.location} is not a trial store (not an SQLite database: {exc})"
            ) from None
        user_tables = {t for t in tables if not t.startswith("sqlite_")}
        if user_tables:
            # A damaged page deep in the file passes the table listing above and fails at
            # the first read: check every page now, before anything is written.
            try:
                problems = [r[0] for r in conn.execute("PRAGMA quick_check(1)").fetchall()]
            except sqlite3.DatabaseError as exc:
                problems = [str(exc)]
            if problems != ["ok"]:
                raise UsageError(self._damaged(problems[0]))
        if user_tables and not set(_COLUMNS) <= user_tables:
            raise UsageError(
                f"store {self.location} is an SQLite database but not a trial store "
                f"(it has tables {sorted(user_tables)}, not {sorted(_COLUMNS)})"
            )
        try:
            if user_tables:  # checked before anything is written: a file refused is left as it is
                for table, wanted in _COLUMNS.items():
                    have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                    if not wanted <= have:
                        raise UsageError(
                            f"store {self.location} is not a trial store (table {table!r} "
                            f"lacks columns {sorted(wanted - have)})"
                        )
            else:
                self._write(conn, lambda c: [c.execute(sql) for sql in _SCHEMA])
            self._set_wal(conn)
        except sqlite3.Error as exc:
            raise UsageError(f"cannot use store {self.location}: {exc}") from None

    def _damaged(self, problem: str) -> str:
        detail = " ".join(problem.replace("*** in database main ***", "").split())
        return (
            f"store {self.location} is damaged ({detail}); it was left as it is: move it "
            "away or give another --store"
        )

    def _set_wal(self, conn: sqlite3.Connection) -> None:
        # The journal mode is a property of the file: set once, it persists. Switching needs
        # a moment with no other connection, so retry while a racing opener holds one.
        deadline = time.monotonic() + self.TIMEOUT
        while True:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() == "wal":
                return
            try:
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @staticmethod
    def _write(conn: sqlite3.Connection, body: Any) -> Any:
        """Run ``body(conn)`` inside one ``BEGIN IMMEDIATE`` transaction."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            out = body(conn)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return out

    # ----------------------------------------------------------------------- trials

    def get(self, key: str) -> TrialResult | None:
        """The result stored under ``key``, or ``None``."""
        with self._lock:
            row = (
                self._connection()
                .execute("SELECT payload FROM trials WHERE key = ?", (key,))
                .fetchone()
            )
        return None if row is None else _decode(row[0], self.location)

    def put(self, result: TrialResult) -> TrialResult:
        """Store ``result`` unless its key is taken (one transaction); return the stored one."""
        payload = _payload(result)

        def body(c: sqlite3.Connection) -> str:
            c.execute(
                "INSERT OR IGNORE INTO trials (key, status, payload, created) VALUES (?, ?, ?, ?)",
                (result.key, result.status, payload, time.time()),
            )
            row = c.execute("SELECT payload FROM trials WHERE key = ?", (result.key,))
            return row.fetchone()[0]

        with self._lock:
            stored = self._write(self._connection(), body)
        return result if stored == payload else _decode(stored, self.location)

    def results(self) -> list[TrialResult]:
        """Every stored result, in insertion order."""
        with self._lock:
            rows = self._connection().execute("SELECT payload FROM trials ORDER BY seq").fetchall()
        return [_decode(r[0], self.location) for r in rows]

    def keys(self) -> list[str]:
        """The stored keys, in insertion order."""
        with self._lock:
            rows = self._connection().execute("SELECT key FROM trials ORDER BY seq").fetchall()
        return [r[0] for r in rows]

    def __contains__(self, key: object) -> bool:
        """Whether a result is stored under ``key``."""
        if not isinstance(key, str):
            return False
        with self._lock:
            row = self._connection().execute("SELECT 1 FROM trials WHERE key = ?", (key,))
            return row.fetchone() is not None

    def __len__(self) -> int:
        """The number of stored results."""
        with self._lock:
            return self._connection().execute("SELECT COUNT(*) FROM trials").fetchone()[0]

    # ----------------------------------------------------------------------- meta

    def get_meta(self, name: str) -> Any | None:
        """The JSON value stored under ``name``, or ``None``."""
        with self._lock:
            row = (
                self._connection()
                .execute("SELECT value FROM meta WHERE name = ?", (name,))
                .fetchone()
            )
        return None if row is None else _decode_meta(row[0], name, self.location)

    def set_meta(self, name: str, value: Any) -> None:
        """Store ``value`` under ``name``, replacing any previous one (one transaction)."""
        text = _encode(value, f"meta {name!r}")
        with self._lock:
            self._write(
                self._connection(),
                lambda c: c.execute(
                    "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, text)
                ),
            )

    def setdefault_meta(self, name: str, value: Any) -> Any:
        """Store ``value`` under ``name`` unless something is there; return what is stored."""
        text = _encode(value, f"meta {name!r}")

        def body(c: sqlite3.Connection) -> str:
            c.execute("INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)", (name, text))
            return c.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()[0]

        with self._lock:
            return _decode_meta(self._write(self._connection(), body), name, self.location)

    def close(self) -> None:
        """Close this process's connection. Closing twice is harmless."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
            self._closed = True


def open_store(
    path_or_none: str | os.PathLike[str] | None, default_dir: str | os.PathLike[str]
) -> TrialStore:
    """The store a command asked for: ``None`` gives ``SQLiteStore(default_dir /
    "trials.sqlite")``, ``":memory:"`` a `MemoryStore`, anything else an `SQLiteStore` there."""
    if path_or_none is None:
        return SQLiteStore(Path(default_dir) / "trials.sqlite")
    if str(path_or_none) == ":memory:":
        return MemoryStore()
    return SQLiteStore(path_or_none)
