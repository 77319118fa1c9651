"""The one exception type that means "the user asked for something we cannot do", and the
interrupt a SIGTERM becomes."""

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
