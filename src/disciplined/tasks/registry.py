"""Turn a task reference from the command line or a config into a `Task`."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from disciplined.errors import UsageError
from disciplined.tasks import builtins
from disciplined.tasks.base import Task
from disciplined.tasks.check import check_task

BUILTIN_TASKS: dict[str, Callable[..., Task]] = {
    "mnist1d-cnn": builtins.mnist1d_cnn,
    "mnist1d-mlp": builtins.mnist1d_mlp,
    "digits-mlp": builtins.digits_mlp,
    "synthetic-regression": builtins.synthetic_regression,
}


def load_task(ref: str | Task, options: Mapping[str, Any] | None = None) -> Task:
    """Return the task named by ``ref``.

    ``ref`` is a built-in name (see `BUILTIN_TASKS`), ``path/to/file.py:function`` or
    ``package.module:function``; the function is called with ``options`` as keyword
    arguments and must return a `Task`. The task is then checked once (`check_task`: one
    forward pass on a few samples, the data's shapes, values and labels). Anything wrong,
    including a task function that raises or calls ``sys.exit``, raises `UsageError` with
    one line naming the task.
    """
    if isinstance(ref, Task):
        check_task(ref)
        return ref
    options = dict(options or {})
    if ref in BUILTIN_TASKS:
        factory = BUILTIN_TASKS[ref]
    elif ":" in ref:
        factory = _import_factory(ref)
    else:
        raise UsageError(
            f"unknown task {ref!r}: use a built-in ({', '.join(BUILTIN_TASKS)}) "
            "or path/to/file.py:function or package.module:function"
        )
    _check_options(ref, factory, options)
    named = ref + "".join(f" {k}={v}" for k, v in options.items())
    try:
        task = factory(**options)
    except UsageError as exc:  # the task function refused its input: say which task
        raise UsageError(f"task {named!r}: {exc}") from exc
    except SystemExit as exc:
        raise UsageError(
            f"task {named!r} called sys.exit({exc.code!r}) instead of returning a Task"
        ) from None
    except Exception as exc:
        raise UsageError(f"task {named!r} could not be built: {_first_line(exc)}") from exc
    if not isinstance(task, Task):
        raise UsageError(
            f"task function {ref!r} returned {type(task).__name__}, expected disciplined.Task"
        )
    check_task(task, named)
    return task


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def _check_options(ref: str, factory: Callable[..., Any], options: Mapping[str, Any]) -> None:
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    for key in options:
        if key not in params:
            allowed = ", ".join(params) or "none"
            raise UsageError(f"task {ref!r} has no option {key!r} (options: {allowed})")


def _import_factory(ref: str) -> Callable[..., Any]:
    target, _, func_name = ref.rpartition(":")
    if not func_name:
        raise UsageError(f"task reference {ref!r} names no function after ':'")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise UsageError(f"task file not found: {target}")
        module_name = f"_disciplined_user_task_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise UsageError(f"cannot import task file {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except SystemExit as exc:
            del sys.modules[module_name]
            raise UsageError(f"importing {target} called sys.exit({exc.code!r})") from None
        except Exception as exc:
            del sys.modules[module_name]
            raise UsageError(f"importing {target} failed: {_first_line(exc)}") from exc
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise UsageError(f"cannot import module {target!r}: {exc}") from exc
        except SystemExit as exc:
            raise UsageError(f"importing module {target!r} called sys.exit({exc.code!r})") from None
        except Exception as exc:
            raise UsageError(f"importing module {target!r} failed: {_first_line(exc)}") from exc
    func = getattr(module, func_name, None)
    if func is None:
        raise UsageError(f"{target} has no function {func_name!r}")
    if not callable(func):
        raise UsageError(f"{target}:{func_name} is not callable")
    return func
