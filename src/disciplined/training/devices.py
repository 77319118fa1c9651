"""Where a run goes: resolving a device name, its full name for records, mixed precision
(``device_and_amp``, the autocast context) and the device a model already sits on."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from disciplined.errors import UsageError

__all__ = ["autocast", "device_and_amp", "device_name", "model_device", "resolve_device"]


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


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without any)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def autocast(device: torch.device, amp: bool | str) -> AbstractContextManager[object]:
    """The autocast context for ``amp`` (``True``/``"bf16"`` or ``"fp16"``) on ``device``,
    or a no-op context when ``amp`` is off; `UsageError` for mixed precision off CUDA."""
    if not amp:
        return nullcontext()
    if device.type != "cuda":
        raise UsageError("amp (mixed precision) needs a CUDA device; drop it on the CPU")
    if amp not in (True, "bf16", "fp16"):
        raise UsageError(f"amp must be 'bf16' or 'fp16', got {amp!r}")
    dtype = torch.float16 if amp == "fp16" else torch.bfloat16
    return torch.autocast("cuda", dtype=dtype)
