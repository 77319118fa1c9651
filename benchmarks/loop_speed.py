"""Steps per second of `disciplined.fit` against a plain hand-written PyTorch loop.

Both loops train the same model on the same in-memory data with the same batch size, SGD with
momentum and a 1cycle schedule (torch's ``OneCycleLR`` in the hand loop, ours in `fit`), and
read the loss of every step with ``.item()``. Neither evaluates. The two are timed alternately,
``--repeats`` times each, in one process, back to back in pairs; the table reports the
medians of each, and the ratio as the median of the pairs' ratios (a slow spell of a shared
machine that lasts longer than one pair slows both of its runs and cancels out).
Target (issue 3): fit >= 0.95x the hand-written loop.

    python benchmarks/loop_speed.py [--quick] [--repeats 11] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from disciplined import HParams, fit, load_task
from disciplined.schedules.scheduler import PolicyScheduler
from disciplined.trials.hparams import build_optimizer, build_policy, steps_for

try:  # run as a script or as a module
    from _common import header, median
except ImportError:  # pragma: no cover
    from benchmarks._common import header, median


def hand_loop(task, hp: HParams, epochs: int, seed: int) -> int:
    """The loop a user would write by hand; returns the number of steps taken."""
    torch.manual_seed(seed)
    model = task.model()
    opt = torch.optim.SGD(
        model.parameters(), lr=hp.max_lr, momentum=hp.max_momentum, weight_decay=hp.weight_decay
    )
    x, y = task.train_data
    n, bs = len(x), hp.batch_size
    total = steps_for(task, hp, epochs)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=hp.max_lr,
        total_steps=total,
        pct_start=0.45,
        three_phase=True,
        anneal_strategy="linear",
        div_factor=hp.div,
        final_div_factor=100.0,
        base_momentum=hp.min_momentum,
        max_momentum=hp.max_momentum,
    )
    g = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            loss = task.loss_fn(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
    return len(losses)


def ours(task, hp: HParams, epochs: int, seed: int) -> int:
    """The same training through `fit`."""
    torch.manual_seed(seed)
    model = task.model()
    opt = build_optimizer(model, hp)
    total = steps_for(task, hp, epochs)
    h = fit(
        model,
        opt,
        task.train_data,
        loss_fn=task.loss_fn,
        scheduler=PolicyScheduler(opt, build_policy(hp, total)),
        steps=total,
        batch_size=hp.batch_size,
        seed=seed,
    )
    return h.steps


def measure(fn, *args) -> float:
    """Steps per second of one call."""
    t0 = time.perf_counter()
    steps = fn(*args)
    return steps / (time.perf_counter() - t0)


def main() -> None:
    """Run the comparison and print a markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one epoch, 2 repeats")
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 2 if args.quick else args.repeats
    cases = [("mnist1d-cnn", 128, 3), ("mnist1d-cnn", 32, 1), ("digits-mlp", 32, 4)]
    rows = []
    for name, bs, epochs in cases:
        task = load_task(name)
        hp = HParams(max_lr=0.1, batch_size=bs)
        ep = 1 if args.quick else epochs
        measure(hand_loop, task, hp, 1, 0)  # warm-up both paths
        measure(ours, task, hp, 1, 0)
        a, b = [], []
        for r in range(repeats):
            pair = [(a, hand_loop), (b, ours)]
            if r % 2:
                pair.reverse()
            for store, fn in pair:
                store.append(measure(fn, task, hp, ep, r))
        paired = median([o / h for h, o in zip(a, b, strict=True)])
        rows.append((name, bs, steps_for(task, hp, ep), median(a), median(b), paired))
    print(header("Loop speed: `fit` against a hand-written loop (CPU)"))
    print(f"- {repeats} alternating pairs; medians, ratio = median of the pairs' ratios\n")
    print(
        "| task | batch | steps/run | hand loop (steps/s) | fit (steps/s) | ratio "
        "| target >= 0.95 |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, bs, steps, h, o, ratio in rows:
        ok = "met" if ratio >= 0.95 else "MISSED"
        print(f"| {name} | {bs} | {steps} | {h:.0f} | {o:.0f} | {ratio:.3f} | {ok} |")


if __name__ == "__main__":
    main()
