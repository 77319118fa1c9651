"""Wall time of `lr_range_test` against the same number of bare training steps, and against
torch-lr-finder's ``LRFinder.range_test`` (+ ``reset``), same model, data and process.

The sweep runs from 1e-5 to 0.1 so that no tool stops early: all three take exactly
``--steps`` steps. The bare loop is a plain hand-written loop (shuffled index batches,
forward, backward, SGD step, ``loss.item()``) at a constant LR. Ours includes taking and
restoring the model and optimizer state and the suggestion; torch-lr-finder's includes its
state cache and ``reset()``. Both tools get the same data path, on two rows per task:
"in-memory", where ours reads the tensors by shuffled index batches and torch-lr-finder gets
the very same batches (`InMemoryBatches`, wrapped in its ``TrainDataLoaderIter``); and
"DataLoader", where both get the same ``DataLoader(TensorDataset)``. The three are timed in
turn, ``--repeats`` rounds; medians, and
each ratio is the median of the rounds' ratios (robust to slow spells of a shared machine).
Targets (issue 4): ours <= 1.03x the bare steps, and faster than torch-lr-finder.

    python benchmarks/range_test_overhead.py [--quick] [--repeats 11] [--steps 300]
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import torch
from torch.utils.data import DataLoader, TensorDataset

from disciplined import load_task
from disciplined.measure.range_test import lr_range_test

PATHS = ("in-memory", "DataLoader")

try:
    from _common import header, median, quiet
except ImportError:  # pragma: no cover
    from benchmarks._common import header, median, quiet


def _model_opt(task):
    torch.manual_seed(0)
    model = task.model()
    return model, torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9)


def bare(task, steps: int, bs: int) -> None:
    """``steps`` plain training steps."""
    model, opt = _model_opt(task)
    x, y = task.train_data
    n = len(x)
    g = torch.Generator().manual_seed(0)
    done = 0
    while done < steps:
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            loss = task.loss_fn(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()
            done += 1
            if done == steps:
                return


class InMemoryBatches:
    """Shuffled index batches of in-memory tensors, reshuffled on every pass: the data path
    of our range test, as an iterable any tool can read."""

    def __init__(self, data: tuple[torch.Tensor, torch.Tensor], bs: int, seed: int = 0) -> None:
        self.x, self.y = data
        self.bs = bs
        self.g = torch.Generator().manual_seed(seed)

    def __iter__(self):
        perm = torch.randperm(len(self.x), generator=self.g)
        for i in range(0, len(perm), self.bs):
            idx = perm[i : i + self.bs]
            yield self.x[idx], self.y[idx]


def _loader(task, bs: int) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(*task.train_data), batch_size=bs, shuffle=True, generator=g)


def ours(task, steps: int, bs: int, path: str = "in-memory") -> None:
    """Our range test, state restore included, on ``path`` ("in-memory" or "DataLoader")."""
    model, opt = _model_opt(task)
    data = task.train_data if path == "in-memory" else _loader(task, bs)
    t = lr_range_test(
        model,
        opt,
        task.loss_fn,
        data,
        start_lr=1e-5,
        end_lr=0.1,
        num_steps=steps,
        batch_size=bs,
    )
    assert len(t.lrs) == steps, "the sweep stopped early; lower end_lr"


def theirs(task, steps: int, bs: int, path: str = "in-memory") -> None:
    """torch-lr-finder's range test, with its reset, on the same ``path`` as `ours`."""
    from torch_lr_finder import LRFinder, TrainDataLoaderIter

    model, opt = _model_opt(task)
    if path == "in-memory":
        loader = TrainDataLoaderIter(InMemoryBatches(task.train_data, bs))
    else:
        loader = _loader(task, bs)
    finder = LRFinder(model, opt, task.loss_fn, device="cpu")
    quiet(finder.range_test, loader, end_lr=0.1, num_iter=steps, step_mode="exp", diverge_th=1e9)
    finder.reset()
    assert len(finder.history["lr"]) == steps


def main() -> None:
    """Run the comparison and print a markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    repeats, steps = (2, 60) if args.quick else (args.repeats, args.steps)
    try:
        import torch_lr_finder  # noqa: F401

        have_theirs = True
    except ImportError:
        have_theirs = False
    rows = []
    for name, path in [(n, p) for n in ("mnist1d-cnn", "digits-mlp") for p in PATHS]:
        task = load_task(name)
        bs = task.default_batch_size
        fns = [("bare", bare), ("ours", partial(ours, path=path))] + (
            [("theirs", partial(theirs, path=path))] if have_theirs else []
        )
        times: dict[str, list[float]] = {k: [] for k, _ in fns}
        for _, fn in fns:
            fn(task, 20, bs)  # warm-up
        for r in range(repeats):
            order = fns if r % 2 == 0 else fns[::-1]
            for key, fn in order:
                t0 = time.perf_counter()
                fn(task, steps, bs)
                times[key].append(time.perf_counter() - t0)
        med = {k: median(v) for k, v in times.items()}
        # ratios within each round (the three ran back to back), then their median
        for other in ("bare", "theirs"):
            if other in times:
                med[f"ours/{other}"] = median(
                    [o / t for o, t in zip(times["ours"], times[other], strict=True)]
                )
        rows.append((name, path, bs, med))
    print(header("Range-test overhead (CPU)"))
    print(
        f"- {steps} steps per test, {repeats} rounds of the three in turn; medians, each "
        "ratio the median of the rounds' ratios"
        + (
            ""
            if have_theirs
            else "; torch-lr-finder not installed (pip install "
            "torch-lr-finder), its column is empty"
        )
        + "\n"
    )
    print(
        "| task | data path | batch | bare steps (s) | ours (s) | torch-lr-finder (s) "
        "| ours / bare | target <= 1.03 | ours / torch-lr-finder |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, path, bs, t in rows:
        r_bare = t["ours/bare"]
        theirs_s = f"{t['theirs']:.3f}" if "theirs" in t else "-"
        r_theirs = f"{t['ours/theirs']:.3f}" if "theirs" in t else "-"
        ok = "met" if r_bare <= 1.03 else "MISSED"
        print(
            f"| {name} | {path} | {bs} | {t['bare']:.3f} | {t['ours']:.3f} | {theirs_s} | "
            f"{r_bare:.3f} | {ok} | {r_theirs} |"
        )


if __name__ == "__main__":
    main()
