"""The one exception type that means "the user asked for something we cannot do", its kind
that means "the task's own code failed" (`TaskCodeError`, raised through `task_code`), and
the interrupt a SIGTERM becomes."""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input from the user: an unknown task, a malformed value, a missing file.

    The command line turns it into one line on stderr and exit status 2. It subclasses
    ``ValueError`` so library callers can catch it the ordinary way.
    """


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the command line gets SIGTERM: it unwinds like Ctrl-C
    (the worker processes are stopped, the lock released, what finished kept) and the
    command exits 143 with one line."""


class TaskCodeError(UsageError):
    """The task's own code failed: its model, loss, metric, data or model factory raised
    while we ran it (not when the task was checked, `tasks.check`, which words its own
    errors). The message names the part and the exception in one line; ``details`` is the
    original traceback, kept as text so it survives a worker process (pickling). The
    command line prints the line, saves ``details`` in ``OUT/error.log`` and exits 2: the
    user's code failed, not ours (exit 1). A trial that raises it is not recorded as a
    result of its hyper-parameters."""

    def __init__(self, message: str, details: str = "") -> None:
        """``message``: one line; ``details``: the original traceback as text."""
        super().__init__(message)
        self.details = details

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return type(self), (str(self), self.details)


def _passes_through(exc: BaseException) -> bool:
    """Exceptions that say something about the hyper-parameters or the machine, not about
    the task's code, and are handled where they are: our own `UsageError`, arithmetic that
    overflows (a divergence), running out of memory."""
    if isinstance(exc, UsageError | FloatingPointError | OverflowError | MemoryError):
        return True
    if type(exc).__name__ == "OutOfMemoryError":  # torch's, without importing torch here
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("overflow" in text or "out of memory" in text)


class task_code:
    """``with task_code("the model (Net.forward)"):`` around a call into the task's own
    code: an exception raised there becomes a `TaskCodeError` naming ``what`` (those of
    `_passes_through` are left alone). A class, not a generator, so that entering it on
    every training step costs next to nothing."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        """``what``: the part of the task that runs, as the message names it."""
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or not isinstance(exc, Exception) or _passes_through(exc):
            return False
        import traceback

        text = str(exc).strip()
        line = text.splitlines()[0] if text else ""
        raise TaskCodeError(
            f"{self.what} raised {type(exc).__name__}" + (f": {line}" if line else ""),
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        ) from exc
