"""The README's three quick starts (files under examples/) run as a user would run them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from disciplined.integrations import require

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(name: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, text
    return float(found.group(1))


def test_plain_pytorch(tmp_path):
    out = _run("quickstart_pytorch.py", tmp_path)
    assert 1e-3 < _number(r"max LR ([\d.e-]+)", out) < 3
    assert _number(r"validation accuracy ([\d.]+)", out) > 0.85  # chance is 0.1


def test_lightning(tmp_path):
    pytest.importorskip("lightning")
    out = _run("quickstart_lightning.py", tmp_path)
    assert 1e-3 < _number(r"max LR ([\d.e-]+)", out) < 3
    assert _number(r"validation accuracy ([\d.]+)", out) > 0.85


def test_hugging_face(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    out = _run("quickstart_transformers.py", tmp_path)
    assert 1e-5 < _number(r"max LR ([\d.e-]+)", out) < 1
    assert _number(r"evaluation loss ([\d.]+)", out) < 0.35  # ln 2 = 0.69 is chance


def test_the_integrations_are_imported_only_when_asked_for():
    code = (
        "import sys, disciplined; "
        "print(sorted(m for m in ('lightning', 'transformers', 'optuna') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr
    # nor matplotlib: the names that draw are imported on first use
    code = (
        "import sys, disciplined; a = 'matplotlib' in sys.modules; "
        "from disciplined import tune, plot_range_test; "
        "print(a, 'matplotlib' in sys.modules, tune.__module__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["False", "True", "disciplined.api"], done.stderr
    with pytest.raises(ImportError, match=r"pip install 'disciplined\[ray\]'"):
        require("no_such_module_for_disciplined", "ray")
