"""One process of the 2-process gloo run that tests/test_ddp.py starts (not a test itself).

Started with torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)
and run in its own working folder; ``disciplined.training.distributed.launched`` starts the
process group. It trains, runs a range test and the two commands, and writes what it saw to
``result.json`` in its folder for the test to compare across ranks and with one process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from disciplined.cli import main
from disciplined.measure.range_test import lr_range_test
from disciplined.training import distributed
from disciplined.training.fit import BatchLoss, fit


def linear_problem(n: int = 128) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """A noisy linear regression, the same on every process."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n, 5, generator=g)
    w = torch.tensor([[1.0], [-2.0], [0.5], [0.0], [3.0]])
    y = x @ w + 0.1 * torch.randn(n, 1, generator=g)
    vx = torch.randn(48, 5, generator=g)
    vy = vx @ w
    return (x, y), (vx, vy)


def train_linear(
    batch_size: int, accumulation_steps: int = 1, as_dataset: bool = False, batch_loss: bool = False
) -> dict:
    """A linear model trained with SGD and momentum; its final weights and its History."""
    (x, y), val = linear_problem()
    torch.manual_seed(100 + distributed.rank())  # each rank starts elsewhere: DDP copies rank 0
    model = nn.Linear(5, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    mse = nn.MSELoss()
    loss_fn = BatchLoss(lambda m, b: mse(m(b[0]), b[1])) if batch_loss else mse
    history = fit(
        model,
        opt,
        TensorDataset(x, y) if as_dataset else (x, y),
        loss_fn=loss_fn,
        val_data=val,
        epochs=3,
        batch_size=batch_size,
        accumulation_steps=accumulation_steps,
        eval_every=4,
        seed=3,
    )
    d = history.to_dict()
    for e in d["evals"]:
        e.pop("seconds")  # wall-clock, each rank's own
    return {
        "weight": model.weight.detach().flatten().tolist() + model.bias.detach().tolist(),
        "history": {k: v for k, v in d.items() if k != "seconds"},
        "eval_losses": [e["val_loss"] for e in d["evals"]],
    }


def range_test_and_restore() -> dict:
    """A range test on a small MLP whose weights differ per rank; whether every rank got
    its own model, optimizer and random generators back bit for bit."""
    (x, y), val = linear_problem(200)
    torch.manual_seed(10 + distributed.rank())
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    nn.MSELoss()(model(x), y).backward()
    opt.step()  # momentum buffers and gradients to restore
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [p.grad.clone() for p in model.parameters()]
    buffers = [opt.state[p]["momentum_buffer"].clone() for p in model.parameters()]
    lr_before, rng = opt.param_groups[0]["lr"], torch.get_rng_state()
    test = lr_range_test(
        model, opt, nn.MSELoss(), (x, y), val_data=val, num_steps=60, batch_size=16, end_lr=5.0
    )
    restored = {
        "weights": all(torch.equal(before[k], v) for k, v in model.state_dict().items()),
        "grads": all(
            torch.equal(g, p.grad) for g, p in zip(grads, model.parameters(), strict=True)
        ),
        "momentum": all(
            torch.equal(b, opt.state[p]["momentum_buffer"])
            for b, p in zip(buffers, model.parameters(), strict=True)
        ),
        "lr": opt.param_groups[0]["lr"] == lr_before,
        "rng": torch.equal(rng, torch.get_rng_state()),
    }
    d = test.to_dict()
    d.pop("seconds")
    return {"range_test": d, "restored": restored}


def data_loader_refused() -> str:
    """The error a DataLoader as training data gives under a process group."""
    from torch.utils.data import DataLoader

    from disciplined.errors import UsageError

    (x, y), _ = linear_problem()
    model = nn.Linear(5, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    try:
        fit(model, opt, loader, loss_fn=nn.MSELoss(), steps=2)
    except UsageError as exc:
        return str(exc)
    return "no error"


def run() -> None:
    """Everything one rank does; writes ``result.json`` in the working folder."""
    out: dict = {"rank": distributed.rank()}
    with distributed.launched("cpu"):
        out["world_size"] = distributed.world_size()
        out["per_rank_16"] = train_linear(16)
        out["per_rank_8_accumulate_2"] = train_linear(8, accumulation_steps=2)
        out["dataset_batch_loss"] = train_linear(16, as_dataset=True, batch_loss=True)
        out["uneven"] = train_linear(12)
        out.update(range_test_and_restore())
        out["data_loader"] = data_loader_refused()
        # the commands run in the group already started (under torchrun they start it)
        common = ["--task", "digits-mlp", "--batch-size", "16", "--device", "cpu"]
        train = ["train", *common, "--epochs", "1", "--seed", "1", "--out", "train"]
        out["train_exit"] = main(train)
        out["find_lr_exit"] = main(["find-lr", *common, "--steps", "40", "--out", "find-lr"])
        # a tune's choice at a total batch of 32, the train defaults otherwise: split over
        # the two processes it is the run above
        tuned = {"task": "digits-mlp", "max_lr": 0.1, "min_lr": 0.01, "max_momentum": 0.95,
                 "min_momentum": 0.85, "weight_decay": 0.0, "batch_size": 32, "epochs": 1.0}
        Path("hparams.json").write_text(json.dumps(tuned))
        out["tuned_exit"] = main(
            ["train", "--task", "digits-mlp", "--hparams", "hparams.json", "--device", "cpu",
             "--seed", "1", "--out", "tuned"]
        )
    Path("result.json").write_text(json.dumps(out))


if __name__ == "__main__":
    run()
    sys.exit(0)
