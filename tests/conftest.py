"""Shared fixtures. Torch runs single-threaded in tests so timings and results stay steady on
the 2-core CI machine."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(1)
# the subprocesses the tests start (commands, benchmarks' quick modes, worker pools) too: two
# xdist workers each running a 2-thread child would ask 4 threads of 2 cores
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def digits():
    from disciplined.tasks import load_task

    return load_task("digits-mlp")


@pytest.fixture(scope="session")
def mnist1d_cnn():
    from disciplined.tasks import load_task

    return load_task("mnist1d-cnn")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first (whole tunes, subprocesses, benchmarks), the rest after in their
    order: pytest-xdist hands tests out in this order, so the long ones start while every
    worker is free and the short ones fill the gaps at the end (longest first, not a long
    test starting last and running alone)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
