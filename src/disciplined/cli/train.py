"""``disciplined train``: one training run with given hyper-parameters.

Under ``torchrun --nproc-per-node N`` the run is data-parallel over N processes (one per
GPU, or gloo on the CPU): ``--batch-size`` is each process's batch, the total batch is N
times it, and only rank 0 writes the output folder and prints."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from disciplined.cli.common import (
    RunProgress,
    add_device_args,
    add_force_arg,
    add_log_to_arg,
    add_task_args,
    add_threads_arg,
    batch_size_arg,
    build_hparams,
    check_batch_size,
    command_folder,
    device_from_args,
    div_arg,
    epochs_arg,
    fraction_arg,
    learning_rate_arg,
    metric_text,
    momentum_pair,
    positive_int,
    seed_arg,
    task_from_args,
    weight_decay_arg,
)
from disciplined.errors import UsageError
from disciplined.report.plots import plot_history
from disciplined.training import distributed
from disciplined.training.history import History
from disciplined.trials.bounds import check_value
from disciplined.trials.executor_base import torch_threads
from disciplined.trials.hparams import OPTIMIZERS, SCHEDULES, HParams, train_task


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``train`` sub-command."""
    p = sub.add_parser(
        "train",
        help="train a task with given hyper-parameters",
        description="Train a task once with 1cycle (or a constant / step "
        "schedule) and write history.json and curves.png.",
    )
    add_task_args(p)
    p.add_argument(
        "--hparams",
        default=None,
        metavar="FILE",
        help="the hparams.json a tune wrote: its values are the defaults of the options "
        "below (under torchrun its batch is the total one, split over the processes); "
        "default: none, the defaults named below",
    )
    p.add_argument("--epochs", type=epochs_arg, default=None, help="in (0, 10000] (default 10)")
    p.add_argument(
        "--batch-size",
        type=batch_size_arg,
        default=None,
        help="in [1, 16777216] (default: the task's own)",
    )
    p.add_argument(
        "--max-lr",
        type=learning_rate_arg,
        default=None,
        help="1cycle peak (or the constant / initial step LR), in (0, 10000] (default 0.1)",
    )
    p.add_argument(
        "--div",
        type=div_arg,
        default=None,
        help="min LR = max LR / div, in (1, 1e6] (default 10)",
    )
    p.add_argument("--schedule", choices=SCHEDULES, default=None, help="default one-cycle")
    p.add_argument(
        "--momentum",
        type=momentum_pair,
        default=None,
        metavar="MAX[,MIN]",
        help="cyclical momentum bounds (betas[0] for adamw), or one constant value "
        "(default 0.95,0.85)",
    )
    p.add_argument(
        "--weight-decay", type=weight_decay_arg, default=None, help="in [0, 10] (default 0)"
    )
    p.add_argument("--dropout", type=fraction_arg, default=None, help="in [0, 1) (default 0)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help="default sgd")
    p.add_argument(
        "--seed",
        type=seed_arg,
        default=0,
        help="seeds the initial weights, the data order and dropout; an integer >= 0 (default 0)",
    )
    add_device_args(p)
    add_threads_arg(p)
    add_log_to_arg(p, "the run's")
    p.add_argument(
        "--eval-every",
        type=positive_int,
        default=None,
        help="evaluate every N steps, N >= 1 (default: each epoch)",
    )
    p.add_argument(
        "--out",
        default="runs/train",
        help="output folder for history.json and curves.png (default runs/train)",
    )
    add_force_arg(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train, write ``history.json`` and ``curves.png``, print one summary line (under
    ``torchrun``, in every process; rank 0 writes and prints)."""
    with distributed.launched(args.device):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    task = task_from_args(args)
    device, amp = device_from_args(args)
    settings = _settings(args, task)
    epochs = settings.pop("epochs")
    if settings["dropout"] and not task.takes_dropout:
        raise UsageError(
            f"task {task.name!r} has no dropout to set (--dropout {settings['dropout']})"
        )
    check_batch_size(task, settings["batch_size"])
    hp = build_hparams(**settings)
    with command_folder("train", args, task, hp.batch_size) as folder:
        out = folder.out
        with torch_threads(folder.threads), RunProgress("train", _step_text(epochs)):
            _, history = train_task(
                task,
                hp,
                epochs=epochs,
                seed=args.seed,
                device=device,
                amp=amp or False,
                eval_every=args.eval_every,
                progress=True,
            )
        if folder.main:
            history.save(out / "history.json")
            title = f"{task.name}: {_what(hp, history)}"
            plot_history(history, out / "curves.png", title=title)
        if folder.logger is not None:
            params = {**hp.to_dict(), "task": task.name, "seed": args.seed, "epochs": epochs}
            folder.logger.log_history(f"train-{task.name}-{out.name}", history, params)
    if history.collapsed_step is not None:
        raise UsageError(
            f"training collapsed and was stopped early at epoch {history.epochs:.3g}: "
            f"{history.stopped_reason}; try a lower --max-lr "
            f"(history written to {out / 'history.json'})"
        )
    if history.diverged:
        raise UsageError(
            f"training diverged: {history.diverged_reason}; try a lower --max-lr "
            f"(history written to {out / 'history.json'})"
        )
    if folder.main:
        _summary(task.name, history, out)
    return 0


def _step_text(epochs: float) -> Callable[[int, int, float], str]:
    """What a progress line off a terminal says of a step (`RunProgress`): "epoch E of N,
    step S of T, loss L"."""

    def text(step: int, total: int, loss: float) -> str:
        epoch = epochs * step / total
        return f"epoch {epoch:.3g} of {epochs:g}, step {step} of {total}, loss {loss:.4g}"

    return text


def _what(hp: HParams, history: History) -> str:
    """The plot's title: schedule, max LR and batch (the total one under torchrun)."""
    batch = f"batch {hp.batch_size}"
    if "total_batch_size" in history.meta:
        batch = f"total batch {history.meta['total_batch_size']} ({_per_process(history)})"
    return f"{hp.schedule}, max LR {hp.max_lr:g}, {batch}"


def _per_process(history: History) -> str:
    m = history.meta
    return f"{m['batch_size_per_process']} x {m['world_size']} processes"


def _summary(name: str, history: History, out: Path) -> None:
    """Print the one summary line."""
    final = history.final
    metric = metric_text(final.val_metric) if final else "n/a"
    loss = f"{final.val_loss:.4f}" if final else "n/a"
    batch = ""
    if "total_batch_size" in history.meta:
        batch = f", total batch {history.meta['total_batch_size']} = {_per_process(history)}"
    print(
        f"{name}: {history.epochs:g} epochs ({history.steps} steps{batch}, "
        f"{history.seconds:.1f} s) -> validation {history.metric_name} {metric}, "
        f"loss {loss}; wrote {out / 'history.json'} and {out / 'curves.png'}"
    )


DEFAULTS: dict[str, Any] = {
    "epochs": 10.0,
    "max_lr": 0.1,
    "div": 10.0,
    "momentum": (0.95, 0.85),
    "weight_decay": 0.0,
    "dropout": 0.0,
    "optimizer": "sgd",
    "schedule": "one-cycle",
}
"""The values of the options neither the command line nor ``--hparams`` gives."""


def _settings(args: argparse.Namespace, task: Any) -> dict[str, Any]:
    """The run's hyper-parameters and epochs: each option as given, else the ``--hparams``
    file's value, else `DEFAULTS` (the batch size: the task's own)."""
    tuned = _read_hparams(args.hparams, task) if args.hparams else {}
    values = {k: getattr(args, k) for k in DEFAULTS}
    for key, default in DEFAULTS.items():
        if values[key] is None:
            values[key] = tuned.get(key, default)
    batch = args.batch_size
    if batch is None:
        batch = _split_batch(tuned["batch_size"]) if "batch_size" in tuned else None
    max_m, min_m = values.pop("momentum")
    return {
        **values,
        "max_momentum": max_m,
        "min_momentum": min_m,
        "batch_size": task.default_batch_size if batch is None else batch,
    }


def _read_hparams(path: str, task: Any) -> dict[str, Any]:
    """The settings of a tune's ``hparams.json`` (`recipe.run.TuneResult.hparams_json`),
    checked to belong to ``task`` and each against the range its option states
    (`trials.bounds.BOUNDS`); a missing or malformed file, or a value out of range, is a
    `UsageError` naming the file and the key."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"--hparams {path}: cannot read it ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"--hparams {path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"--hparams {path}: not a JSON text file ({exc.reason})") from None
    except RecursionError:
        raise UsageError(
            f"--hparams {path}: not a tune's hparams.json (its JSON is nested too deeply to read)"
        ) from None
    needed = ("max_lr", "min_lr", "max_momentum", "min_momentum", "weight_decay", "batch_size")
    if not isinstance(data, dict) or any(
        not isinstance(data.get(k), int | float) or isinstance(data.get(k), bool) for k in needed
    ):
        raise UsageError(
            f"--hparams {path}: not a tune's hparams.json (it needs numbers for "
            f"{', '.join(needed)})"
        )
    if data.get("task") not in (None, task.name):
        raise UsageError(f"--hparams {path} was tuned on task {data['task']!r}, not {task.name!r}")

    def checked(key: str, bound: str | None = None) -> Any:
        return check_value(bound or key, data[key], label=f"--hparams {path}: {key}")

    tuned = {
        k: checked(k)
        for k in ("max_lr", "weight_decay", "batch_size", "dropout", "epochs")
        if data.get(k) is not None
    }
    tuned["div"] = check_value(
        "div", data["max_lr"] / checked("min_lr"), label=f"--hparams {path}: max_lr / min_lr"
    )
    tuned["momentum"] = (checked("max_momentum"), checked("min_momentum"))
    if tuned["momentum"][1] > tuned["momentum"][0]:
        raise UsageError(
            f"--hparams {path}: min_momentum must be <= max_momentum, got "
            f"{tuned['momentum'][1]!r} > {tuned['momentum'][0]!r}"
        )
    for key, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
        if data.get(key) is not None:
            if data[key] not in choices:
                raise UsageError(
                    f"--hparams {path}: {key} must be one of {', '.join(choices)}, got "
                    f"{data[key]!r}"
                )
            tuned[key] = data[key]
    return tuned


def _split_batch(total: int) -> int:
    """A tuned batch (the total of one optimizer step) split over the processes of a
    ``torchrun``; it must divide evenly (Smith: total batch = per-device batch x devices)."""
    world = distributed.world_size()
    if total % world:
        raise UsageError(
            f"the tuned batch size {total} does not split over {world} processes; give "
            f"--batch-size (each process's batch) or use a process count that divides it"
        )
    return total // world
