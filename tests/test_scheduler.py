"""Tests for the torch adapter ``disciplined.schedules.scheduler``.

The values written into the param groups are the policy's, exactly; momentum lands in
``momentum`` or ``betas[0]``; the step limit is enforced; and a run interrupted, saved,
rebuilt from fresh objects and resumed ends with bit-identical weights.
"""

from __future__ import annotations

import io
import json
import re

import pytest
import torch
from torch import nn

from disciplined.schedules.policies import (
    ConstantPolicy,
    OneCyclePolicy,
    RangeSweep,
    TriangularPolicy,
)
from disciplined.schedules.scheduler import OneCycleScheduler, PolicyScheduler

# Any warning torch raises (e.g. "lr_scheduler.step() before optimizer.step()") fails a test.
pytestmark = pytest.mark.filterwarnings("error")

POLICY = OneCyclePolicy(max_lr=0.5, total_steps=20)


def _params(n: int = 3) -> list[nn.Parameter]:
    return [nn.Parameter(torch.zeros(n))]


def _momentum_of(group: dict) -> float:
    return group["betas"][0] if "betas" in group else group["momentum"]


def test_is_an_lr_scheduler():
    optimizer = torch.optim.SGD(_params(), lr=0.1, momentum=0.9)
    scheduler = OneCycleScheduler(optimizer, POLICY)
    assert isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler)
    assert isinstance(scheduler, PolicyScheduler)
    assert scheduler.last_epoch == 0


def test_sgd_gets_lr_and_momentum_exactly():
    optimizer = torch.optim.SGD(_params(), lr=123.0, momentum=0.9)
    scheduler = OneCycleScheduler(optimizer, POLICY)
    group = optimizer.param_groups[0]
    for step in range(POLICY.total_steps):
        assert scheduler.last_epoch == step
        assert group["lr"] == POLICY.lr(step)
        assert group["momentum"] == POLICY.momentum(step)
        assert scheduler.get_last_lr() == [POLICY.lr(step)]
        optimizer.step()
        scheduler.step()


def test_adamw_gets_betas0_and_keeps_betas1():
    optimizer = torch.optim.AdamW(_params(), lr=1.0, betas=(0.5, 0.987))
    scheduler = OneCycleScheduler(optimizer, POLICY)
    group = optimizer.param_groups[0]
    for step in range(POLICY.total_steps):
        assert group["lr"] == POLICY.lr(step)
        assert group["betas"] == (POLICY.momentum(step), 0.987)
        assert "momentum" not in group
        optimizer.step()
        scheduler.step()


def test_rmsprop_with_momentum_gets_momentum():
    optimizer = torch.optim.RMSprop(_params(), lr=0.1, momentum=0.5)
    OneCycleScheduler(optimizer, POLICY)
    assert optimizer.param_groups[0]["momentum"] == POLICY.momentum(0)


def test_two_param_groups_with_lr_scales():
    optimizer = torch.optim.SGD(
        [{"params": _params()}, {"params": _params(2), "lr": 7.0}], lr=0.1, momentum=0.9
    )
    scheduler = OneCycleScheduler(optimizer, POLICY, lr_scales=(1.0, 0.1))
    for step in range(POLICY.total_steps):
        backbone, head = optimizer.param_groups
        assert backbone["lr"] == POLICY.lr(step) * 1.0
        assert head["lr"] == POLICY.lr(step) * 0.1
        assert backbone["momentum"] == head["momentum"] == POLICY.momentum(step)
        assert scheduler.get_last_lr() == [POLICY.lr(step), POLICY.lr(step) * 0.1]
        optimizer.step()
        scheduler.step()


def test_lr_scales_checked():
    optimizer = torch.optim.SGD([{"params": _params()}, {"params": _params()}], lr=0.1)
    with pytest.raises(ValueError, match=r"optimizer has 2 param groups, got 3 lr_scales"):
        PolicyScheduler(optimizer, ConstantPolicy(lr=0.1, total_steps=5), lr_scales=[1, 1, 1])
    with pytest.raises(
        ValueError, match=re.escape("lr_scales must all be finite numbers > 0, got [1.0, 0.0]")
    ):
        PolicyScheduler(optimizer, ConstantPolicy(lr=0.1, total_steps=5), lr_scales=[1.0, 0.0])


def test_optimizer_without_momentum_or_betas():
    optimizer = torch.optim.Adagrad(_params(), lr=0.1)
    with pytest.raises(
        ValueError, match=r"Adagrad has neither a momentum nor a betas.*cycle_momentum=False"
    ):
        OneCycleScheduler(optimizer, POLICY)
    scheduler = OneCycleScheduler(optimizer, POLICY, cycle_momentum=False)
    for step in range(POLICY.total_steps):
        assert optimizer.param_groups[0]["lr"] == POLICY.lr(step)
        optimizer.step()
        scheduler.step()
    # A policy that sets no momentum needs no momentum setting.
    PolicyScheduler(torch.optim.Adagrad(_params(), lr=0.1), RangeSweep(1e-4, 1.0, 10))


def test_sgd_built_without_momentum():
    optimizer = torch.optim.SGD(_params(), lr=0.1)
    with pytest.raises(ValueError, match=r"SGD was built with momentum=0.*cycle_momentum=False"):
        OneCycleScheduler(optimizer, POLICY)
    OneCycleScheduler(optimizer, POLICY, cycle_momentum=False)
    assert optimizer.param_groups[0]["momentum"] == 0


def test_cycle_momentum_false_leaves_momentum_alone():
    optimizer = torch.optim.SGD(_params(), lr=0.1, momentum=0.7)
    scheduler = OneCycleScheduler(optimizer, POLICY, cycle_momentum=False)
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["momentum"] == 0.7


def test_policy_without_momentum_leaves_momentum_alone():
    optimizer = torch.optim.SGD(_params(), lr=0.1, momentum=0.7)
    policy = TriangularPolicy(0.01, 0.1, 3, 12)
    scheduler = PolicyScheduler(optimizer, policy)
    for step in range(12):
        assert optimizer.param_groups[0]["lr"] == policy.lr(step)
        assert optimizer.param_groups[0]["momentum"] == 0.7
        optimizer.step()
        scheduler.step()


def test_stepping_past_the_end():
    policy = OneCyclePolicy(max_lr=1.0, total_steps=10)
    optimizer = torch.optim.SGD(_params(), lr=0.1, momentum=0.9)
    scheduler = OneCycleScheduler(optimizer, policy)
    for _ in range(10):  # the 10th call follows the last optimizer step of the run
        optimizer.step()
        scheduler.step()
    assert scheduler.last_epoch == 10
    assert optimizer.param_groups[0]["lr"] == policy.lr(9)
    assert optimizer.param_groups[0]["momentum"] == policy.momentum(9)
    optimizer.step()
    with pytest.raises(
        RuntimeError, match=r"the policy has 10 steps and step\(\) was called 11 times"
    ):
        scheduler.step()
    assert scheduler.last_epoch == 10
    assert optimizer.param_groups[0]["lr"] == policy.lr(9)


def test_epoch_argument_refused():
    optimizer = torch.optim.SGD(_params(), lr=0.1, momentum=0.9)
    scheduler = OneCycleScheduler(optimizer, POLICY)
    optimizer.step()
    with pytest.raises(TypeError, match="no epoch argument"):
        scheduler.step(3)


def test_one_cycle_scheduler_wants_one_cycle_policy():
    optimizer = torch.optim.SGD(_params(), lr=0.1, momentum=0.9)
    with pytest.raises(TypeError, match="policy must be a OneCyclePolicy, got RangeSweep"):
        OneCycleScheduler(optimizer, RangeSweep(1e-4, 1.0, 10))


def test_get_lr_has_no_side_effects_and_groups_hold_nothing_extra():
    optimizer = torch.optim.SGD(_params(), lr=0.1, momentum=0.9)
    keys_before = set(optimizer.param_groups[0])
    scheduler = OneCycleScheduler(optimizer, POLICY)
    assert set(optimizer.param_groups[0]) - keys_before == {"initial_lr"}
    optimizer.step()
    scheduler.step()
    before = dict(optimizer.param_groups[0])
    assert scheduler.get_lr() == scheduler.get_lr() == [POLICY.lr(1)]
    assert scheduler.last_epoch == 1
    assert dict(optimizer.param_groups[0]) == before


def test_state_dict_is_plain_data():
    optimizer = torch.optim.SGD(_params(), lr=0.1, momentum=0.9)
    scheduler = OneCycleScheduler(optimizer, POLICY, lr_scales=[0.5])
    optimizer.step()
    scheduler.step()
    state = scheduler.state_dict()
    assert json.loads(json.dumps(state)) == state
    assert state == {
        "step": 1,
        "policy": POLICY.to_dict(),
        "lr_scales": [0.5],
        "cycle_momentum": True,
    }


def test_load_state_dict_replaces_a_different_policy():
    optimizer = torch.optim.AdamW(_params(), lr=0.1)
    scheduler = OneCycleScheduler(optimizer, POLICY)
    for _ in range(7):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()

    fresh_optimizer = torch.optim.AdamW(_params(), lr=0.1)
    other = OneCyclePolicy(max_lr=9.0, total_steps=50, shape="cos")
    fresh = OneCycleScheduler(fresh_optimizer, other)
    fresh.load_state_dict(state)
    assert fresh.policy == POLICY
    assert fresh.last_epoch == 7
    assert fresh.get_last_lr() == [POLICY.lr(7)]
    assert fresh_optimizer.param_groups[0]["lr"] == POLICY.lr(7)
    assert fresh_optimizer.param_groups[0]["betas"][0] == POLICY.momentum(7)

    with pytest.raises(ValueError, match="state_dict is missing policy"):
        fresh.load_state_dict({"step": 3})
    with pytest.raises(
        ValueError, match=re.escape("step must be an integer in [0, 20] for this policy, got 21")
    ):
        fresh.load_state_dict({**state, "step": 21})


# --------------------------------------------------------------------------- resume

N_FIRST, N_SECOND = 7, 9
TOTAL = N_FIRST + N_SECOND


def _data():
    generator = torch.Generator().manual_seed(1234)
    inputs = torch.randn(64, 8, generator=generator)
    targets = torch.randint(0, 3, (64,), generator=generator)
    return inputs, targets


def _build(kind: str, seed: int, policy: OneCyclePolicy):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    if kind == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=1e-2)
    scheduler = OneCycleScheduler(optimizer, policy)
    return model, optimizer, scheduler


def _train(model, optimizer, scheduler, steps, start, seen):
    inputs, targets = _data()
    for step in range(start, start + steps):
        batch = slice((step % 4) * 16, (step % 4 + 1) * 16)
        group = optimizer.param_groups[0]
        seen.append((group["lr"], _momentum_of(group)))
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(inputs[batch]), targets[batch])
        loss.backward()
        optimizer.step()
        scheduler.step()


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
def test_resume_is_bit_identical(kind):
    policy = OneCyclePolicy(max_lr=0.05, total_steps=TOTAL, shape="cos")

    straight_model, optimizer, scheduler = _build(kind, seed=0, policy=policy)
    straight_seen: list = []
    _train(straight_model, optimizer, scheduler, TOTAL, 0, straight_seen)

    model, optimizer, scheduler = _build(kind, seed=0, policy=policy)
    resumed_seen: list = []
    _train(model, optimizer, scheduler, N_FIRST, 0, resumed_seen)
    buffer = io.BytesIO()
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
        },
        buffer,
    )
    del model, optimizer, scheduler
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)

    # Fresh objects, as after a restart: other initial weights, and a scheduler built
    # with a placeholder policy that the checkpoint replaces.
    placeholder = OneCyclePolicy(max_lr=1.0, total_steps=3)
    model, optimizer, scheduler = _build(kind, seed=99, policy=placeholder)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    _train(model, optimizer, scheduler, N_SECOND, N_FIRST, resumed_seen)

    assert straight_seen == [(policy.lr(s), policy.momentum(s)) for s in range(TOTAL)]
    assert resumed_seen == straight_seen
    assert scheduler.last_epoch == TOTAL
    for straight, resumed in zip(straight_model.parameters(), model.parameters(), strict=True):
        assert torch.equal(straight, resumed)


def test_stepping_the_scheduler_before_the_optimizer_warns() -> None:
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = OneCycleScheduler(opt, OneCyclePolicy(max_lr=0.1, total_steps=10))
    with pytest.warns(UserWarning, match="called before optimizer.step"):
        sched.step()
