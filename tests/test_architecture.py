"""The layer rule of docs/architecture.md, checked on the source: no module imports from a
layer below it in the data flow (imports inside functions included), no module imports a
private name (``_name``) of another, and no function is longer than the limit the
architecture page sets."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "disciplined"

# in the order data flows: a module may import from its own layer and those before it
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "files", "divergence", "records", "outdir", "rules"),
    ("schedules",),
    ("training",),
    ("tasks",),
    ("measure",),
    ("trials",),
    ("studies",),
    ("search",),
    ("recipe",),
    ("report",),
    ("api", "cli", "integrations", "__init__", "__main__"),
)
MAX_FUNCTION_LINES = 80


def _layer(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else "__init__"
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} is in no layer of LAYERS: add it to the table")


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 2:
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names)
    return [(n, m) for n, m in found if m == "disciplined" or m.startswith("disciplined.")]


def test_every_module_has_a_layer():
    for module, _ in _modules():
        _layer(module)


def test_no_module_imports_from_a_layer_after_its_own():
    bad = []
    for module, path in _modules():
        mine = _layer(module)
        for line, target in _imports(path):
            if target == "disciplined":
                if mine < len(LAYERS) - 1:
                    bad.append(f"{module}:{line} imports the package root")
                continue
            if _layer(target) > mine:
                bad.append(f"{module}:{line} imports {target}")
    assert not bad, "imports against the data flow:\n" + "\n".join(bad)


def test_the_rule_catches_an_upward_import(tmp_path):
    path = tmp_path / "x.py"
    path.write_text("def f():\n    from disciplined.report.plots import plot_history\n")
    assert _imports(path) == [(2, "disciplined.report.plots")]
    assert _layer("disciplined.report.plots") > _layer("disciplined.measure.range_test")


@pytest.mark.parametrize("module,path", _modules(), ids=[m for m, _ in _modules()])
def test_no_function_is_longer_than_the_limit(module, path):
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{module}: " + ", ".join(long)


def _module_names() -> set[str]:
    return {module for module, _ in _modules()}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_imports(module: str, path: Path, modules: set[str]) -> list[str]:
    """Where ``module`` reaches a private name of another module of the package: ``from
    disciplined.x import _name``, ``import disciplined.x._y``, or ``m._name`` on a module
    ``m`` bound by an import."""
    bad, bound = [], {}
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("disciplined"):
                continue
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                if target in modules:
                    bound[alias.asname or alias.name] = target
                elif _private(alias.name) and node.module != module:
                    line = getattr(alias, "lineno", node.lineno)  # the name's own line (3.10+)
                    bad.append(f"{module}:{line} imports {alias.name} from {node.module}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] != "disciplined":
                    continue
                if any(_private(p) for p in parts):
                    bad.append(f"{module}:{node.lineno} imports {alias.name}")
                elif alias.asname:
                    bound[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and bound[node.value.id] != module
            and _private(node.attr)
        ):
            bad.append(f"{module}:{node.lineno} reads {bound[node.value.id]}.{node.attr}")
    return bad


def test_no_module_imports_a_private_name_of_another():
    modules = _module_names()
    bad = [line for module, path in _modules() for line in _private_imports(module, path, modules)]
    assert not bad, "private names used across modules (make them public):\n" + "\n".join(bad)


def test_the_private_rule_catches_each_form(tmp_path):
    path = tmp_path / "x.py"
    path.write_text(
        "from disciplined.training.history import (\n    History,\n    _old,\n)\n"
        "from disciplined.training import batching\n"
        "import disciplined.trials.executors as ex\n"
        "import disciplined._hidden\n"
        "from disciplined.errors import __doc__\n"
        "def f():\n    return batching._x, ex._y, batching.public\n"
    )
    got = _private_imports("disciplined.search.grid", path, _module_names())
    assert got == [
        "disciplined.search.grid:3 imports _old from disciplined.training.history",
        "disciplined.search.grid:7 imports disciplined._hidden",
        "disciplined.search.grid:10 reads disciplined.training.batching._x",
        "disciplined.search.grid:10 reads disciplined.trials.executors._y",
    ]


def _dependencies(path: Path, modules: set[str]) -> set[str]:
    """The modules of the package that ``path`` imports, inside functions too: ``from a.b
    import c`` depends on the module ``a.b.c`` when there is one, else on ``a.b`` (the
    package root is ``disciplined.__init__``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                found.add(target if target in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    root = {"disciplined.__init__"} if "disciplined" in found else set()
    return (found | root) & modules


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    modules = _module_names()
    graph = {m: _dependencies(path, modules) - {m} for m, path in _modules()}
    cycles = _cycles(graph)
    assert not cycles, "modules that import each other (lazy imports count):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_the_cycle_rule_catches_a_lazy_cycle(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from disciplined.trials import b\n")
    b.write_text("def f():\n    from disciplined.trials.a import x\n")
    modules = {"disciplined.trials.a", "disciplined.trials.b", "disciplined.trials"}
    graph = {
        "disciplined.trials.a": _dependencies(a, modules),
        "disciplined.trials.b": _dependencies(b, modules),
    }
    assert graph["disciplined.trials.a"] == {"disciplined.trials.b"}
    assert _cycles(graph) == [["disciplined.trials.a", "disciplined.trials.b"]]
    assert _cycles({"x": {"y"}, "y": set()}) == []


def test_no_executor_imports_another():
    modules = _module_names()
    trials = SRC / "trials"
    executors = {
        "disciplined.trials.local_executors",
        "disciplined.trials.ray_executor",
        "disciplined.trials.executors",
    }
    for name in ("local_executors", "ray_executor"):
        deps = _dependencies(trials / f"{name}.py", modules)
        assert not deps & executors, f"{name} imports {sorted(deps & executors)}"


def test_the_old_home_of_the_executors_still_names_them():
    from disciplined.trials import executor_base, executors, factory, local_executors

    assert executors.make_executor is factory.make_executor
    assert executors.EXECUTORS == factory.EXECUTORS == ("inprocess", "process", "ray")
    assert executors.Executor is executor_base.Executor
    assert executors.ProcessExecutor is local_executors.ProcessExecutor
    assert executors.InProcessExecutor is local_executors.InProcessExecutor
    assert set(executors.__all__) >= {
        "EXECUTORS", "Executor", "InProcessExecutor", "ProcessExecutor", "Runner", "make_executor"
    }
