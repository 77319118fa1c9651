"""The one training loop every feature runs on, and the `History` it returns.

`fit` trains a model for a number of optimizer steps or epochs, evaluates on validation data
every N steps (or each epoch), and records per step the learning rate, momentum and training
loss, and per evaluation the validation loss and metric. A NaN or infinite loss, or a loss that
climbs far above where it started, ends the run with ``History.diverged`` set; it does not raise.

In-memory tensors ``(inputs, targets)`` take a fast path: the tensors move to the device once
and each epoch draws shuffled index batches, with no per-sample ``DataLoader`` work. Any torch
``Dataset`` or ``DataLoader`` works too.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from disciplined.errors import UsageError
from disciplined.files import write_text_atomic

Data = Any  # (inputs, targets) tensors, a Dataset, or a DataLoader
StopRule = Callable[[int, float], "str | None"]
LossFn = Any  # loss_fn(outputs, targets) -> loss, or a `BatchLoss` (fn(model, batch) -> loss)

__all__ = [
    "BatchLoss",
    "EvalRecord",
    "History",
    "LoaderDataset",
    "batches_per_epoch",
    "device_and_amp",
    "device_name",
    "evaluate",
    "fit",
    "group_momentum",
    "resolve_device",
]


# --------------------------------------------------------------------------- records


def _enc(x: float | None) -> float | str | None:
    """JSON has no NaN or infinity; write them as strings so they survive a round trip."""
    if x is None or math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def _dec(x: float | str | None) -> float | None:
    return float(x) if isinstance(x, str) else x


@dataclass(frozen=True)
class EvalRecord:
    """One evaluation: where in training it happened and what it measured.

    ``train_loss`` is the mean training loss over the steps since the previous evaluation;
    ``seconds`` is wall-clock time since training started, evaluation time excluded.
    """

    epoch: float
    step: int
    val_loss: float
    val_metric: float
    train_loss: float
    seconds: float


@dataclass(frozen=True)
class History:
    """What a training run recorded: per-step values, evaluations, and whether it diverged.

    ``lrs``, ``momenta`` and ``train_losses`` have one entry per optimizer step taken (the
    values in force for that step; momentum is ``None`` for optimizers without one).
    """

    lrs: tuple[float, ...]
    momenta: tuple[float | None, ...]
    train_losses: tuple[float, ...]
    evals: tuple[EvalRecord, ...]
    steps_per_epoch: int
    metric_name: str = "metric"
    higher_is_better: bool = True
    diverged: bool = False
    diverged_step: int | None = None
    diverged_reason: str | None = None
    stopped_reason: str | None = None
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        """Number of optimizer steps taken."""
        return len(self.train_losses)

    @property
    def epochs(self) -> float:
        """Number of epochs taken (steps / steps per epoch)."""
        return self.steps / self.steps_per_epoch

    @property
    def final(self) -> EvalRecord | None:
        """The last evaluation, or ``None`` when there was none."""
        return self.evals[-1] if self.evals else None

    def best(self) -> EvalRecord | None:
        """The evaluation with the best metric (ties: the earliest)."""
        if not self.evals:
            return None
        sign = 1.0 if self.higher_is_better else -1.0
        finite = [e for e in self.evals if math.isfinite(e.val_metric)]
        return max(finite, key=lambda e: sign * e.val_metric) if finite else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (non-finite numbers become strings)."""
        d = asdict(self)
        d["train_losses"] = [_enc(x) for x in self.train_losses]
        d["lrs"] = list(self.lrs)
        d["momenta"] = list(self.momenta)
        d["evals"] = [{k: _enc(v) for k, v in asdict(e).items()} for e in self.evals]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        """Rebuild a `History` from `to_dict` output."""
        d = dict(d)
        d["lrs"] = tuple(d["lrs"])
        d["momenta"] = tuple(d["momenta"])
        d["train_losses"] = tuple(_dec(x) for x in d["train_losses"])
        d["evals"] = tuple(EvalRecord(**{k: _dec(v) for k, v in e.items()}) for e in d["evals"])
        return cls(**d)

    def to_json(self) -> str:
        """Serialize to a JSON string."""
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> History:
        """Parse `to_json` output."""
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        """Write the JSON to ``path``."""
        write_text_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> History:
        """Read a `History` written by `save`."""
        return cls.from_json(Path(path).read_text())


# --------------------------------------------------------------------------- data


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"`` picks CUDA when available, else the CPU; a bad name, or CUDA
    asked for where there is none, raises `UsageError`."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UsageError(
            f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}"
        ) from exc
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {device!r} was asked for but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(
                f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    return dev


def device_name(dev: torch.device) -> str:
    """A device's full name, ``cuda:0`` rather than ``cuda``: what a record says a run
    ran on."""
    if dev.type == "cuda" and dev.index is None:
        return f"cuda:{torch.cuda.current_device()}"
    return str(dev)


def device_and_amp(
    device: str | torch.device | None, amp: str | bool | None = None
) -> tuple[str, str | None]:
    """Where a run goes, by its full name (``auto`` resolved once, here), and its mixed
    precision (``None``, ``"bf16"`` or ``"fp16"``; ``True`` means bf16, ``"off"`` none).
    Bad input, or mixed precision off CUDA, raises `UsageError` before anything runs."""
    dev = resolve_device(device)
    if amp in (None, False, "off"):
        return device_name(dev), None
    if amp is True:
        amp = "bf16"
    if amp not in ("bf16", "fp16"):
        raise UsageError(f"amp must be 'bf16', 'fp16' or 'off', got {amp!r}")
    if dev.type != "cuda":
        raise UsageError(f"amp (mixed precision) needs a CUDA device, not {dev.type}")
    return device_name(dev), str(amp)


def _is_tensor_pair(data: Data) -> bool:
    return (
        isinstance(data, tuple | list)
        and len(data) >= 2
        and all(isinstance(t, torch.Tensor) for t in data)
    )


class BatchLoss:
    """A loss computed from the whole batch by the user's own code, ``fn(model, batch)``,
    for models whose batches are not ``(inputs, targets)`` pairs: a LightningModule's
    ``training_step``, a Hugging Face model fed a dict with ``labels``. Pass it where a
    ``loss_fn`` goes (`fit`, `evaluate`, `lr_range_test`); batches then reach ``fn`` as the
    loader built them (tensors, tuples, dicts, or anything with ``.to(device)``), moved to
    the device. No metric is computed from a `BatchLoss` (it gives no outputs)."""

    def __init__(self, fn: Callable[[nn.Module, Any], torch.Tensor]) -> None:
        """Wrap ``fn(model, batch) -> scalar loss tensor``."""
        if not callable(fn):
            raise TypeError(f"BatchLoss needs a callable fn(model, batch), got {fn!r}")
        self.fn = fn

    def __call__(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """The batch's loss."""
        return self.fn(model, batch)

    def __repr__(self) -> str:
        return f"BatchLoss({getattr(self.fn, '__qualname__', self.fn)!r})"


def _to_device(batch: Any, device: torch.device) -> Any:
    """A batch of any nesting of tensors, tuples, lists and dicts, moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple | list):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    to = getattr(batch, "to", None)  # e.g. a Hugging Face BatchEncoding
    return to(device) if callable(to) else batch


def _batch_len(batch: Any) -> int:
    """Samples in a batch: the length of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return len(batch) if batch.dim() else 1
    values = batch.values() if hasattr(batch, "values") else batch
    if isinstance(values, tuple | list) or hasattr(batch, "values"):
        for v in values:
            n = _batch_len(v)
            if n:
                return n
    return 0


def _batch_loss(model: nn.Module, loss_fn: Any, batch: Any) -> torch.Tensor:
    """The loss of one batch: ``loss_fn(model(x), y)``, or a `BatchLoss`'s own."""
    if isinstance(loss_fn, BatchLoss):
        return loss_fn(model, batch)
    x, y = batch
    return loss_fn(model(x), y)


class LoaderDataset(Dataset):
    """A user's `DataLoader` taken apart so it can be re-batched at any size: its dataset,
    its ``collate_fn``, worker count and pinning, and the batch size it had (a task's
    default). The batch-size study needs this; a `DataLoader` as such batches only at its
    own size. `from_loader` refuses an iterable dataset (no length, no indexing)."""

    def __init__(
        self,
        dataset: Dataset,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        *,
        num_workers: int = 0,
        pin_memory: bool = False,
        batch_size: int | None = None,
    ) -> None:
        """Wrap ``dataset`` (map-style, with a length) and how its batches are built."""
        self.dataset = dataset
        self.collate_fn = collate_fn
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.batch_size = batch_size

    @classmethod
    def from_loader(cls, loader: DataLoader, what: str = "data") -> LoaderDataset:
        """The loader's parts; `UsageError` for a loader without a map-style dataset."""
        dataset = loader.dataset
        if isinstance(dataset, torch.utils.data.IterableDataset) or not hasattr(dataset, "__len__"):
            raise UsageError(
                f"{what}: a DataLoader over an iterable dataset cannot be re-batched or "
                "counted; give a map-style Dataset (with __len__ and __getitem__)"
            )
        return cls(
            dataset,
            loader.collate_fn,
            num_workers=loader.num_workers,
            pin_memory=loader.pin_memory,
            batch_size=loader.batch_size,
        )

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]

    def collate(self, items: list[Any]) -> Any:
        """A batch of ``items`` the way the user's loader builds one."""
        from torch.utils.data import default_collate

        return (self.collate_fn or default_collate)(items)


def batches_per_epoch(data: Data, batch_size: int) -> int:
    """Number of mini-batches one pass over ``data`` gives (the last one may be short)."""
    if isinstance(data, DataLoader):
        return len(data)
    n = len(data[0]) if _is_tensor_pair(data) else len(data)
    return max(1, math.ceil(n / batch_size))


class _IndexBatches:
    """Batches of indices from one permutation per pass (or in order when not shuffling)."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, generator: torch.Generator):
        self.n, self.batch_size, self.shuffle, self.generator = n, batch_size, shuffle, generator

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else None
        for i in range(0, self.n, self.batch_size):
            if order is None:
                yield list(range(i, min(i + self.batch_size, self.n)))
            else:
                yield order[i : i + self.batch_size].tolist()


class _Batches:
    """Endless shuffled mini-batches, epoch after epoch, already on the device."""

    def __init__(
        self,
        data: Data,
        batch_size: int,
        device: torch.device,
        shuffle: bool,
        generator: torch.Generator,
        raw: bool = False,
    ) -> None:
        self.device = device
        self.raw = raw
        self.generator = generator
        self.shuffle = shuffle
        self.batch_size = batch_size
        if _is_tensor_pair(data):
            if len(data) != 2:
                raise UsageError(
                    f"a data tuple must be (inputs, targets), got {len(data)} tensors; "
                    "per-sample weights or extra fields need a custom loss over a Dataset"
                )
            self.tensors = tuple(t.to(device) for t in data)
            self.loader = None
            self.n = len(self.tensors[0])
            if any(len(t) != self.n for t in self.tensors):
                raise UsageError(
                    "the tensors of a data tuple must have the same length, got "
                    + " and ".join(str(len(t)) for t in self.tensors)
                )
        elif isinstance(data, DataLoader):
            self.tensors, self.loader = None, data
        elif isinstance(data, Dataset):
            # Index batches drawn exactly as the fast path draws them, so a Dataset of the
            # same tensors trains identically; the loader's own seed comes from a side
            # generator, never from torch's global one.
            self.tensors = None
            side = torch.Generator().manual_seed(int(generator.initial_seed()) + 1)
            parts = data if isinstance(data, LoaderDataset) else None
            self.loader = DataLoader(
                parts.dataset if parts else data,
                batch_sampler=_IndexBatches(len(data), batch_size, shuffle, generator),
                generator=side,
                collate_fn=parts.collate_fn if parts else None,
                num_workers=parts.num_workers if parts else 0,
                pin_memory=parts.pin_memory if parts else False,
            )
        else:
            raise TypeError(
                "data must be a (inputs, targets) tuple of tensors, a Dataset or a DataLoader, "
                f"got {type(data).__name__}"
            )
        self.per_epoch = batches_per_epoch(data, batch_size)

    def epoch(self) -> Iterator[tuple[torch.Tensor, ...]]:
        """One pass over the data."""
        if self.tensors is not None:
            if self.shuffle:
                order = torch.randperm(self.n, generator=self.generator).to(self.device)
                for i in range(0, self.n, self.batch_size):
                    idx = order[i : i + self.batch_size]
                    yield tuple(t[idx] for t in self.tensors)
            else:
                for i in range(0, self.n, self.batch_size):
                    yield tuple(t[i : i + self.batch_size] for t in self.tensors)
        else:
            for batch in self.loader:
                if self.raw:
                    yield _to_device(batch, self.device)
                    continue
                if not (isinstance(batch, tuple | list) and len(batch) == 2):
                    what = (
                        f"{len(batch)} items"
                        if isinstance(batch, tuple | list)
                        else type(batch).__name__
                    )
                    raise UsageError(
                        f"each batch must be (inputs, targets), got {what}: return a pair from "
                        "the dataset or the collate_fn (extra items such as sample weights "
                        "are not supported)"
                    )
                yield tuple(t.to(self.device, non_blocking=True) for t in batch)


def group_momentum(group: dict[str, Any]) -> float | None:
    """The momentum in force for a param group: ``momentum``, else ``betas[0]``, else None."""
    if "momentum" in group:
        return float(group["momentum"])
    if "betas" in group:
        return float(group["betas"][0])
    return None


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Data,
    loss_fn: LossFn,
    metric: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    *,
    batch_size: int = 1024,
    max_batches: int | None = None,
    device: str | torch.device | None = None,
    amp: bool | str = False,
) -> tuple[float, float]:
    """Mean loss and mean metric of ``model`` over ``data`` (or its first ``max_batches``).

    Means are weighted by batch size. The model is put in eval mode and back in the mode it
    was in. ``metric=None`` gives NaN for the metric.
    """
    dev = resolve_device(device) if device is not None else _model_device(model)
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), dtype=torch.float64, device=dev)
    total_metric = torch.zeros((), dtype=torch.float64, device=dev)
    count = 0
    raw = isinstance(loss_fn, BatchLoss)
    if raw:
        metric = None  # a BatchLoss gives the loss, not outputs to score
    batches = _Batches(data, batch_size, dev, shuffle=False, generator=torch.Generator(), raw=raw)
    cast = _autocast(dev, amp)
    try:
        for i, batch in enumerate(batches.epoch()):
            if max_batches is not None and i >= max_batches:
                break
            if raw:
                with cast:
                    loss = loss_fn(model, batch)
                n = max(1, _batch_len(batch))
                total_loss += loss.detach().double() * n
                count += n
                continue
            x, y = batch
            with cast:
                out = model(x)
                loss = loss_fn(out, y)
            n = len(y)
            total_loss += loss.double() * n
            if metric is not None:
                total_metric += metric(out.float(), y).double() * n
            count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("validation data is empty")
    loss_v = total_loss.item() / count
    metric_v = total_metric.item() / count if metric is not None else math.nan
    return loss_v, metric_v


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _autocast(device: torch.device, amp: bool | str):
    if not amp:
        return nullcontext()
    if device.type != "cuda":
        raise UsageError("amp (mixed precision) needs a CUDA device; drop it on the CPU")
    if amp not in (True, "bf16", "fp16"):
        raise UsageError(f"amp must be 'bf16' or 'fp16', got {amp!r}")
    dtype = torch.float16 if amp == "fp16" else torch.bfloat16
    return torch.autocast("cuda", dtype=dtype)


# --------------------------------------------------------------------------- the loop


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_data: Data,
    *,
    loss_fn: LossFn,
    val_data: Data | None = None,
    metric: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    metric_name: str = "metric",
    higher_is_better: bool = True,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    epochs: float | None = None,
    steps: int | None = None,
    batch_size: int = 64,
    eval_every: int | None = None,
    eval_batches: int | None = None,
    eval_batch_size: int = 1024,
    device: str | torch.device | None = None,
    amp: bool | str = False,
    accumulation_steps: int = 1,
    seed: int | None = None,
    diverge_factor: float | None = 4.0,
    stop: StopRule | None = None,
    max_seconds: float | None = None,
    sync_every: int | None = None,
    progress: bool | Callable[[int, int], None] = False,
    meta: dict[str, Any] | None = None,
) -> History:
    """Train ``model`` and return its `History`.

    Exactly one of ``epochs`` and ``steps`` sets the length; a step is one optimizer step
    (``accumulation_steps`` mini-batches of ``batch_size``). The data cycles as long as
    needed. ``scheduler.step()`` runs after every optimizer step. Evaluation runs every
    ``eval_every`` steps (default: each epoch) on ``val_data`` (its first ``eval_batches``
    batches when given) and once more at the end.

    The run stops early, without raising, when the loss is NaN or infinite or its running
    mean exceeds ``diverge_factor`` times the mean of the first steps (``diverged`` is set),
    when ``stop(step, loss)`` returns a reason, or after ``max_seconds`` of training.
    ``seed`` seeds torch's global generator (dropout, initial noise) and the shuffling.
    ``device`` is where to train (``None``: where the model's parameters already are; the
    model is moved there). ``amp`` is ``True``/``"bf16"`` or ``"fp16"`` (with loss
    scaling) and needs CUDA. ``progress`` is ``True`` for a tqdm bar or a callable
    ``(step, total)``.
    """
    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one of epochs and steps")
    if epochs is not None and not (math.isfinite(epochs) and epochs > 0):
        raise ValueError(f"epochs must be a finite number > 0, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if accumulation_steps < 1:
        raise ValueError(f"accumulation_steps must be >= 1, got {accumulation_steps}")
    if eval_every is not None and eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    if diverge_factor is not None and diverge_factor <= 1:
        raise ValueError(f"diverge_factor must be > 1, got {diverge_factor}")
    dev = resolve_device(device) if device is not None else _model_device(model)
    cast = _autocast(dev, amp)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None

    gen = torch.Generator()
    if seed is not None:
        torch.manual_seed(seed)
        gen.manual_seed(seed)
    else:
        gen.manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
    model.to(dev)
    model.train()
    batches = _Batches(
        train_data,
        batch_size,
        dev,
        shuffle=True,
        generator=gen,
        raw=isinstance(loss_fn, BatchLoss),
    )
    micro_per_epoch = batches.per_epoch
    steps_per_epoch = max(1, math.ceil(micro_per_epoch / accumulation_steps))
    total = int(steps) if steps is not None else round(float(epochs) * steps_per_epoch)
    if total < 1:
        raise ValueError(f"the run must take at least one step, got {total}")
    policy = getattr(scheduler, "policy", None)
    if policy is not None and policy.total_steps < total:
        raise ValueError(
            f"the schedule has {policy.total_steps} steps but the run takes {total}; "
            "build the policy with total_steps >= the run's steps"
        )
    every = eval_every or steps_per_epoch
    if sync_every is None:
        sync_every = 1 if (dev.type == "cpu" or stop is not None) else 25

    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="step", leave=False, dynamic_ncols=True, disable=None)
    report = progress if callable(progress) else None

    lrs: list[float] = []
    momenta: list[float | None] = []
    losses: list[float] = []
    pending: list[torch.Tensor] = []
    evals: list[EvalRecord] = []
    group0 = optimizer.param_groups[0]
    diverged, div_step, div_reason, stopped = False, None, None, None
    base_loss: float | None = None
    warm = min(10, max(1, total // 20))
    run_mean, beta = 0.0, 0.9
    since_eval: list[float] = []
    eval_seconds = 0.0
    start = time.perf_counter()

    def flush() -> str | None:
        """Move pending losses to the host and check each for divergence and stop rules."""
        nonlocal base_loss, run_mean, diverged, div_step, div_reason
        if not pending:
            return None
        values = torch.stack(pending).tolist() if len(pending) > 1 else [pending[0].item()]
        pending.clear()
        for v in values:
            step_i = len(losses)
            losses.append(v)
            since_eval.append(v)
            if not math.isfinite(v):
                diverged, div_step = True, step_i
                div_reason = f"training loss is {v} at step {step_i}"
                return "diverged"
            if step_i < warm:
                run_mean = v if step_i == 0 else run_mean + (v - run_mean) / (step_i + 1)
                if step_i == warm - 1:
                    # the lower of the first loss and the first steps' mean, so a blow-up
                    # within those steps cannot raise the bar it is measured against
                    base_loss = min(losses[0], run_mean)
            else:
                run_mean = beta * run_mean + (1 - beta) * v
                if (
                    diverge_factor is not None
                    and base_loss is not None
                    and base_loss > 0
                    and run_mean > diverge_factor * base_loss
                ):
                    diverged, div_step = True, step_i
                    div_reason = (
                        f"running training loss {run_mean:.4g} exceeded {diverge_factor:g}x its "
                        f"starting value {base_loss:.4g} at step {step_i}"
                    )
                    return "diverged"
            if stop is not None:
                why = stop(step_i, v)
                if why:
                    return why
        return None

    def do_eval(step_done: int) -> None:
        nonlocal eval_seconds
        if val_data is None:
            return
        t0 = time.perf_counter()
        train_seconds = t0 - start - eval_seconds
        vl, vm = evaluate(
            model,
            val_data,
            loss_fn,
            metric,
            batch_size=eval_batch_size,
            max_batches=eval_batches,
            device=dev,
            amp=amp,
        )
        eval_seconds += time.perf_counter() - t0
        finite = [x for x in since_eval if math.isfinite(x)]
        tl = sum(finite) / len(finite) if finite else math.nan
        since_eval.clear()
        evals.append(
            EvalRecord(
                epoch=step_done / steps_per_epoch,
                step=step_done,
                val_loss=vl,
                val_metric=vm,
                train_loss=tl,
                seconds=train_seconds,
            )
        )

    step = 0
    epoch_iter = batches.epoch()
    micro_left = micro_per_epoch  # micro-batches left in this epoch
    while step < total:
        n_micro = min(accumulation_steps, micro_left)
        lrs.append(float(group0["lr"]))
        momenta.append(group_momentum(group0))
        step_loss = None
        for _ in range(n_micro):
            try:
                batch = next(epoch_iter)
            except StopIteration:
                epoch_iter = batches.epoch()
                batch = next(epoch_iter)
            with cast:
                loss = _batch_loss(model, loss_fn, batch)
            scaled = loss / n_micro if n_micro > 1 else loss
            if scaler is not None:
                scaler.scale(scaled).backward()
            else:
                scaled.backward()
            d = scaled.detach()
            step_loss = d if step_loss is None else step_loss + d
        micro_left -= n_micro
        if micro_left == 0:
            micro_left = micro_per_epoch
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if scheduler is not None:
            scheduler.step()
        pending.append(step_loss.float())
        step += 1
        if len(pending) >= sync_every or step % every == 0 or step == total:
            stopped = flush()
            if stopped:
                break
        if step % every == 0:
            do_eval(step)
        if bar is not None:
            bar.update(1)
        if report is not None:
            report(step, total)
        if max_seconds is not None and time.perf_counter() - start - eval_seconds > max_seconds:
            stopped = f"time limit of {max_seconds:g} s reached"
            flush()
            break
    if bar is not None:
        bar.close()
    steps_taken = len(losses)
    del lrs[steps_taken:], momenta[steps_taken:]
    if not diverged and (not evals or evals[-1].step != steps_taken):
        do_eval(steps_taken)
    elapsed = time.perf_counter() - start - eval_seconds
    return History(
        lrs=tuple(lrs),
        momenta=tuple(momenta),
        train_losses=tuple(losses),
        evals=tuple(evals),
        steps_per_epoch=steps_per_epoch,
        metric_name=metric_name,
        higher_is_better=higher_is_better,
        diverged=diverged,
        diverged_step=div_step,
        diverged_reason=div_reason,
        stopped_reason=stopped,
        seconds=elapsed,
        meta=dict(meta or {}),
    )
