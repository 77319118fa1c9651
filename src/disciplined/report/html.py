"""The HTML report of a ``tune`` output folder: one self-contained page.

Everything on the page comes from the files ``tune`` wrote: ``tune.json`` (the choices, their
evidence, the diagnosis, compute and provenance), ``history.json`` (the final run) and the
PNG plots. Images are embedded as ``data:image/png`` URIs and the CSS is inline, so the file
stands alone (mail it, archive it); the page holds no script and names no URL, and its
Content-Security-Policy tells the browser so. Every string that comes from the user or the
data is HTML-escaped. Rendering is a pure function of the folder's files: rebuilding gives
the same bytes.
"""

from __future__ import annotations

import base64
import html
import json
import math
import shlex
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

from disciplined.errors import UsageError
from disciplined.files import write_text_atomic
from disciplined.recipe.final import Correction, LrBracket
from disciplined.recipe.race import RaceRecord
from disciplined.studies.batch import BatchSizeCap, BatchSizeComparison, MemoryProbe
from disciplined.studies.decide import Payload, payload_type, read_payload
from disciplined.studies.dropout import DropoutChoice
from disciplined.studies.learning_rate import LearningRateReading
from disciplined.studies.momentum import MomentumChoice
from disciplined.studies.weight_decay import WeightDecayChoice

__all__ = ["REPORT_FILE", "render_report", "write_report"]

REPORT_FILE = "report.html"
"""The report's file name inside the output folder."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_DASH = "–"

# --------------------------------------------------------------------------- wording

# What each step does is its rule's explanation, defined beside the rule (`rules.Rule`): the
# record types of the decisions below name their study's rules, and the report reads them.
_RECORDS: tuple[type[Payload], ...] = (
    MemoryProbe,
    LearningRateReading,
    WeightDecayChoice,
    DropoutChoice,
    MomentumChoice,
    BatchSizeCap,
    BatchSizeComparison,
    RaceRecord,
    LrBracket,
    Correction,
)
"""Every decision's typed record, as `tune.json` names them (a first match wins)."""

_FINAL_RUN_HOW_TO_READ = (
    "Smith reads the validation loss: still falling steeply with no gap to the training loss "
    "means underfitting (less regularization, or a longer cycle); turning up while the gap to "
    "the training loss grows means overfitting (more regularization); a validation loss that "
    "flattens at its lowest value means the regularizers are balanced."
)

_TITLES = {
    "memory": "Memory: the largest batch that fits",
    "learning_rate": "Learning-rate range test",
    "final_learning_rate": "Final learning rate, at the chosen settings",
    "lr_bracket": "The max LR checked by full runs",
    "race_learning_rate": "Max LR at a candidate batch size",
    "race": "The race: batch size, max LR and weight decay by full runs",
    "weight_decay": "Weight decay",
    "momentum": "Momentum",
    "batch_size": "Batch size",
    "dropout": "Dropout",
    "correction": "Correction after the diagnosis",
}

_COMPUTE_LABELS = {
    "memory": "Memory probe",
    "lr_range_test": "LR range test",
    "weight_decay": "Weight decay",
    "momentum": "Momentum",
    "batch_size": "Batch size",
    "dropout": "Dropout",
    "final_lr": "Final LR range test",
    "final_run": "Final 1cycle run",
    "lr_bracket": "Max LR bracket (full runs)",
    "race_readings": "Range tests at each candidate batch size",
    "race": "The race (successive halving of 1cycle runs)",
    "corrective_run": "Corrective run",
    "divergence_retries": "Runs repeated after a divergence",
}

_VERDICT_CLASS = {
    "balanced": "good",
    "overfitting": "warn",
    "underfitting": "warn",
    "diverged": "bad",
    "too-short": "neutral",
}

_CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa;
  --accent: #0b5cad; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
  font: 15px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width: 980px; margin: 0 auto; padding: 28px 24px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 0 0 10px; padding-bottom: 6px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 18px 0 6px; }
p { margin: 6px 0; }
pre.cmd span { white-space: nowrap; }
code, pre { font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px;
  padding: 8px 12px; white-space: pre-wrap; overflow-wrap: anywhere; margin: 6px 0; }
section { margin-top: 34px; }
.subtitle { color: var(--muted); margin: 0; }
.cards { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; margin-top: 20px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 14px 18px; }
.card h2 { border: 0; padding: 0; font-size: 17px; margin-bottom: 8px; }
.big { font-size: 34px; font-weight: 600; line-height: 1.1; }
.big small { font-size: 15px; font-weight: 400; color: var(--muted); }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
th, td { border: 1px solid var(--line); padding: 4px 10px; text-align: left;
  vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv { min-width: 60%; }
table.kv th { width: 14em; }
.card table.kv { width: 100%; min-width: 0; }
.card table.kv th { width: 50%; }
tr.total td { font-weight: 600; background: var(--soft); }
.scroll { overflow-x: auto; }
.decision { font-size: 17px; margin: 4px 0 8px; }
.decision .value { font-weight: 600; }
.rule { color: var(--muted); }
.how { background: #f1f7fe; border-left: 3px solid var(--accent); padding: 6px 12px;
  color: #24425f; font-size: 14px; margin: 10px 0; }
.how b { color: var(--accent); }
.note { color: var(--muted); font-style: italic; }
figure { margin: 10px 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line);
  border-radius: 4px; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; align-items: start; }
.grid table.kv { width: 100%; min-width: 0; margin: 0; }
.badge { display: inline-block; padding: 1px 10px; border-radius: 999px; font-size: 14px;
  font-weight: 600; border: 1px solid; vertical-align: middle; }
.badge.good { color: #1a7f37; background: #dafbe1; border-color: #aceebb; }
.badge.warn { color: #9a6700; background: #fff8c5; border-color: #f0dc8c; }
.badge.bad { color: #cf222e; background: #ffebe9; border-color: #ffcecb; }
.badge.neutral { color: #59636e; background: #f6f8fa; border-color: #d1d9e0; }
nav ol { margin: 6px 0; padding-left: 22px; columns: 2; }
nav a, a { color: var(--accent); text-decoration: none; }
details summary { cursor: pointer; color: var(--accent); margin: 6px 0; }
footer { margin-top: 40px; color: var(--muted); font-size: 13px;
  border-top: 1px solid var(--line); padding-top: 10px; }
@media (max-width: 720px) { .cards, .grid { grid-template-columns: 1fr; } }
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


# --------------------------------------------------------------------------- entry points


def write_report(out_dir: str | Path) -> Path:
    """Build ``out_dir/report.html`` from the ``tune`` output in ``out_dir`` and return its
    path. Raises `UsageError` (one line) when ``out_dir`` is not a ``tune`` output folder."""
    out = Path(out_dir)
    text = render_report(out)
    path = out / REPORT_FILE
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def render_report(out_dir: str | Path) -> str:
    """The report's HTML for the ``tune`` output in ``out_dir`` (see `write_report`)."""
    out = Path(out_dir)
    data = _load(out)
    meta = _mapping(data.get("meta"))
    task = str(meta.get("task") or _mapping(data.get("summary")).get("task") or "task")
    decisions = [d for d in data.get("decisions") or [] if isinstance(d, Mapping)]
    steps = _step_ids(decisions)
    body = [
        _header(task, meta),
        _overview(data, meta),
        _contents(decisions, steps),
        *(
            _step(out, d, i + 1, key)
            for i, (d, key) in enumerate(zip(decisions, steps, strict=True))
        ),
        _final_run(out, data, task, len(decisions) + 1),
        _compute(data, meta),
        _provenance(data, meta),
        "<footer>Built by <code>disciplined</code> from <code>tune.json</code> in this folder; "
        "rebuild it with <code>disciplined report DIR</code>. Numbers show 4 significant "
        f"digits; {_DASH} marks a value that is undefined or was not recorded.</footer>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(task)}: disciplined tune report</title>\n<style>{_CSS}</style>\n"
        "</head>\n<body>\n<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------- loading


def _load(out: Path) -> dict[str, Any]:
    if not out.exists():
        raise UsageError(f"no such folder: {out}")
    if not out.is_dir():
        raise UsageError(f"{out} is not a folder (give the output folder of `disciplined tune`)")
    path = out / "tune.json"
    if not path.is_file():
        if (out / "trials.sqlite").exists():
            raise UsageError(
                f"{out} holds trials but no tune.json: the tune did not finish (run the same "
                "`disciplined tune` command again to resume)"
            )
        raise UsageError(
            f"{out} is not a tune output: it has no tune.json (run `disciplined tune --out DIR`)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    except RecursionError:
        raise UsageError(f"{path} is not a tune result: its JSON is nested too deep") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a tune result: it holds no JSON object")
    missing = [k for k in ("hparams", "decisions", "meta") if k not in data]
    if missing:
        raise UsageError(f"{path} is not a tune result: it lacks {', '.join(missing)}")
    if not data["decisions"] or not data["hparams"]:
        raise UsageError(f"{path} holds no results: no decisions or no hyper-parameters")
    return data


def _mapping(x: Any) -> Mapping[str, Any]:
    return x if isinstance(x, Mapping) else {}


def _record(decision: Mapping[str, Any]) -> Payload | None:
    """The decision's typed record (`studies.decide.read_payload`), read by attribute."""
    return read_payload(decision, _RECORDS)


def read_history(out_dir: str | Path) -> tuple[Any, str | None]:
    """The final run's `History` from ``out_dir/history.json`` and ``None``, or ``None`` and
    what is wrong with the file (missing, not JSON, not a history): the report says so
    instead of leaving the run out without a word."""
    from disciplined.training.fit import History

    path = Path(out_dir) / "history.json"
    if not path.exists():
        return None, "history.json is missing"
    try:
        return History.load(path), None
    except json.JSONDecodeError as exc:
        return None, f"history.json is not valid JSON ({exc.msg} at line {exc.lineno})"
    except KeyError as exc:
        return None, f"history.json is not a history (no {exc.args[0]!r} field)"
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        return None, f"history.json cannot be read ({type(exc).__name__}: {exc})"


# --------------------------------------------------------------------------- formatting


def _e(x: Any) -> str:
    """HTML-escape anything, as text."""
    return html.escape(str(x), quote=True)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _fmt(x: Any) -> str:
    """A value as escaped HTML text: numbers to 4 significant digits, None and NaN as a
    dash, booleans as yes/no, lists and dictionaries as compact JSON."""
    if x is None:
        return _DASH
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return _e(_number(x))
    if isinstance(x, str):
        return _e(x) if x not in ("NaN", "Infinity", "-Infinity") else _DASH
    if isinstance(x, (list, tuple, dict)):
        return _e(json.dumps(x, default=str, separators=(", ", ": ")))
    return _e(x)


def _number(x: float) -> str:
    if not math.isfinite(x):
        return _DASH
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e6:
        decimals = max(0, 3 - math.floor(math.log10(abs(x))))
        text = f"{x:.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa, _, exponent = f"{x:.4g}".partition("e")
    return f"{mantissa}e{int(exponent)}" if exponent else mantissa


def _sentence(text: Any) -> str:
    """Escaped text ending with a full stop."""
    text = str(text).strip()
    return _e(text if text.endswith((".", "!", "?")) else text + ".")


def _is_num(x: Any) -> bool:
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))


def _label(key: str) -> str:
    """A key as a label: ``step_bytes`` reads "step memory", others lose their underscores."""
    if key.endswith("_bytes"):
        key = key[: -len("_bytes")] + "_memory"
    return key.replace("_", " ")


def _size(n: float) -> str:
    """A number of bytes in binary units: "512 KiB", "1.5 MiB", "7.8 GiB"."""
    value, unit = float(n), "bytes"
    for name in ("KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024:
            break
        value, unit = value / 1024, name
    return f"{int(value)} bytes" if unit == "bytes" else f"{value:.3g} {unit}"


def _cell(key: str, value: Any) -> str:
    """``value`` formatted for the column or detail ``key``: byte counts as MiB/GiB."""
    if key.endswith("_bytes") and _is_num(value) and value is not None:
        return _e(_size(value))
    return _fmt(value)


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows of dicts as an HTML table; the columns are the union of the keys, in order."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    if not rows or not columns:
        return '<p class="note">No evidence table was recorded for this step.</p>'
    head = "".join(f"<th>{_e(_label(c))}</th>" for c in columns)
    lines = []
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c)
            if c == "trial" and isinstance(v, str):
                cells.append(f"<td><code>{_e(v)}</code></td>")
            else:
                cells.append(
                    f'<td class="num">{_cell(c, v)}</td>' if _is_num(v) else f"<td>{_fmt(v)}</td>"
                )
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>'
        + "".join(lines)
        + "</tbody></table></div>"
    )


def _kv(pairs: Iterable[tuple[str, Any]], raw: bool = False) -> str:
    """A two-column table of (label, value); labels are escaped, values formatted (or
    inserted as they are with ``raw``, for values already rendered)."""
    rows = []
    for key, value in pairs:
        cell = f"<td>{value if raw else _fmt(value)}</td>"
        rows.append(f"<tr><th>{_e(key)}</th>{cell}</tr>")
    return '<table class="kv"><tbody>' + "".join(rows) + "</tbody></table>"


def _image(out: Path, name: Any, alt: str) -> str:
    """An embedded PNG from ``out``, found by file name; a note when it is missing."""
    if not name:
        return '<p class="note">No plot was recorded for this step.</p>'
    file = PurePath(str(name)).name
    path = out / file
    try:
        data = path.read_bytes()
    except OSError:
        return f'<p class="note">Plot <code>{_e(file)}</code> is missing from this folder.</p>'
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 24:
        return f'<p class="note">Plot <code>{_e(file)}</code> is not a PNG image.</p>'
    width, height = struct.unpack(">II", data[16:24])
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return f'<figure><img src="{uri}" alt="{_e(alt)}" width="{width}" height="{height}"></figure>'


# --------------------------------------------------------------------------- sections


def _header(task: str, meta: Mapping[str, Any]) -> str:
    parts = [f"<h1>Tune report: {_e(task)}</h1>"]
    if meta.get("description"):
        parts.append(f'<p class="subtitle">{_e(meta["description"])}</p>')
    facts = []
    if meta.get("metric"):
        facts.append(f"metric: {_e(meta['metric'])}")
    if meta.get("seed") is not None:
        facts.append(f"seed {_fmt(meta['seed'])}")
    if meta.get("device"):
        facts.append(f"device {_e(meta['device'])}")
    if facts:
        parts.append(f'<p class="subtitle">{" · ".join(facts)}</p>')
    parts.append(
        '<p class="subtitle">The hyper-parameters below were set by the recipe of Leslie N. '
        "Smith, <i>A disciplined approach to neural network hyper-parameters: Part 1</i> "
        "(arXiv 1803.09820), each step read off short runs; the evidence for every choice "
        "follows.</p>"
    )
    return "<header>" + "".join(parts) + "</header>"


def _verdict_badge(verdict: Any) -> str:
    if not verdict:
        return f'<span class="badge neutral">{_DASH}</span>'
    cls = _VERDICT_CLASS.get(str(verdict), "neutral")
    return f'<span class="badge {cls}">{_e(verdict)}</span>'


def _overview(data: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    hp = _mapping(data.get("hparams"))
    summary = _mapping(data.get("summary"))
    final = _mapping(summary.get("final"))
    diagnosis = _mapping(data.get("diagnosis"))
    epochs = data.get("epochs", summary.get("epochs"))
    rows = [
        ("max LR", hp.get("max_lr")),
        ("min LR", hp.get("min_lr")),
        ("max momentum", hp.get("max_momentum")),
        ("min momentum", hp.get("min_momentum")),
        ("weight decay", hp.get("weight_decay")),
        ("batch size", hp.get("batch_size")),
        ("dropout", hp.get("dropout")),
        ("epochs", epochs),
        ("optimizer", hp.get("optimizer")),
        ("schedule", hp.get("schedule")),
    ]
    metric = final.get("metric") or meta.get("metric") or "metric"
    verdict = diagnosis.get("verdict") or final.get("diagnosis")
    left = f'<div class="card"><h2>Chosen hyper-parameters</h2>{_kv(rows)}</div>'
    right = (
        '<div class="card"><h2>Final run</h2>'
        f'<div class="big">{_fmt(final.get("val_metric"))} <small>validation {_e(metric)}'
        "</small></div>"
        f"<p>validation loss <b>{_fmt(final.get('val_loss'))}</b></p>"
        f"<p>diagnosis {_verdict_badge(verdict)}</p>"
    )
    if diagnosis.get("summary"):
        right += f"<p>{_e(diagnosis['summary'])}</p>"
    right += _next_steps(verdict, diagnosis)
    command = _train_command(hp, epochs, meta)
    if command:
        right += (
            "<h3>Train with these again</h3>"
            f'<pre class="cmd">{_command_html(command)}</pre>'
            '<p class="note">Values rounded to 6 digits; hparams.json holds them exactly.</p>'
        )
    right += "</div>"
    return f'<section class="cards" id="overview">{left}{right}</section>'


def _next_steps(verdict: Any, diagnosis: Mapping[str, Any]) -> str:
    """The diagnosis's advice on the answer card, as what to do next, when the verdict is
    not "balanced" (none for a balanced run or one without a diagnosis)."""
    advice = [str(a) for a in diagnosis.get("advice") or [] if a]
    if not verdict or verdict == "balanced" or not advice:
        return ""
    items = "".join(f"<li>{_e(a[:1].upper() + a[1:])}</li>" for a in advice)
    return (
        f"<h3>What to do next</h3><p>The diagnosis reads {_e(verdict)}; try:</p><ul>{items}</ul>"
        '<p class="note">The diagnosis section below shows the evidence.</p>'
    )


def _command_html(command: str) -> str:
    """A shell line, escaped, with each option kept on one line with its value."""
    words = shlex.split(command)
    groups: list[list[str]] = []
    for word in words:
        if groups and groups[-1][-1].startswith("--") and not word.startswith("--"):
            groups[-1].append(word)
        else:
            groups.append([word])
    return " ".join(f"<span>{_e(shlex.join(g))}</span>" for g in groups)


def _train_command(hp: Mapping[str, Any], epochs: Any, meta: Mapping[str, Any]) -> str:
    """The ``disciplined train`` line that repeats the final run."""
    ref = meta.get("task_ref") or meta.get("task")
    needed = ("max_lr", "max_momentum", "min_momentum", "weight_decay", "batch_size")
    if not ref or not _finite(epochs) or not all(_finite(hp.get(k)) for k in needed):
        return ""

    def g(x: Any) -> str:
        return format(x, ".6g")

    args = ["disciplined", "train", "--task", str(ref)]
    for key, value in sorted(_mapping(meta.get("task_options")).items()):
        args += ["--task-option", f"{key}={value}"]
    args += ["--epochs", g(epochs), "--batch-size", str(hp["batch_size"])]
    args += ["--max-lr", g(hp["max_lr"])]
    if _finite(hp.get("div")) and hp["div"] != 10:
        args += ["--div", g(hp["div"])]
    args += ["--momentum", f"{g(hp['max_momentum'])},{g(hp['min_momentum'])}"]
    args += ["--weight-decay", g(hp["weight_decay"])]
    if _finite(hp.get("dropout")) and hp["dropout"]:
        args += ["--dropout", g(hp["dropout"])]
    if hp.get("optimizer"):
        args += ["--optimizer", str(hp["optimizer"])]
    if meta.get("seed") is not None:
        args += ["--seed", str(meta["seed"])]
    return shlex.join(args)


def _step_ids(decisions: Sequence[Mapping[str, Any]]) -> list[str]:
    """A wording key per decision: its name, except that a learning-rate decision after the
    first is the final one (taken at the chosen settings), and batch size and corrections go
    by rule."""
    keys, seen_lr = [], False
    raced = any(d.get("name") == "race" for d in decisions)
    for d in decisions:
        name = str(d.get("name", ""))
        if name == "learning_rate" and d.get("rule") == "best_full_run_of_bracket":
            keys.append("lr_bracket")
        elif name == "learning_rate":
            later = "race_learning_rate" if raced else "final_learning_rate"
            keys.append(later if seen_lr else "learning_rate")
            seen_lr = True
        elif name in ("batch_size", "correction"):  # worded by the rule that decided
            keys.append(f"{name}:{d.get('rule', '')}")
        else:
            keys.append(name)
    return keys


def _title(key: str, decision: Mapping[str, Any]) -> str:
    base = key.split(":")[0]
    record = _record(decision)
    batch = record.batch_size if isinstance(record, LearningRateReading) else None
    if base == "race_learning_rate" and batch is not None:
        return f"Max LR at batch size {_fmt(batch)}"
    return _TITLES.get(base) or _label(str(decision.get("name") or "step")).capitalize()


def _contents(decisions: Sequence[Mapping[str, Any]], steps: Sequence[str]) -> str:
    items = [
        f'<li><a href="#step-{i + 1}">{_e(_title(k, d))}</a></li>'
        for i, (d, k) in enumerate(zip(decisions, steps, strict=True))
    ]
    n = len(decisions)
    items += [
        f'<li><a href="#step-{n + 1}">Final 1cycle run and diagnosis</a></li>',
        '<li><a href="#compute">Compute spent</a></li>',
        '<li><a href="#provenance">Where these numbers came from</a></li>',
    ]
    return f"<nav><h3>Contents</h3><ol>{''.join(items)}</ol></nav>"


def _values_tried(decision: Mapping[str, Any]) -> str:
    """The values a sweep tried, as its table records them: "0.99, 0.97, 0.95 and 0.9"."""
    rows = decision.get("table") or ()
    values = [_fmt(r["value"]) for r in rows if isinstance(r, Mapping) and "value" in r]
    if not values:
        return "each candidate value"
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def _column(decision: Mapping[str, Any], column: str) -> list[Any]:
    """The values of ``column`` in the decision's table, in its order (rows without it
    skipped)."""
    rows = decision.get("table") or ()
    return [r[column] for r in rows if isinstance(r, Mapping) and r.get(column) is not None]


def _listed(values: Sequence[Any], unit: str = "") -> str:
    """"a, b and c" of formatted values; "as its table shows" when there are none."""
    texts = [_fmt(v) + unit for v in values]
    if not texts:
        return "as its table shows"
    return texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " and " + texts[-1]


def _bracket_runs(decision: Mapping[str, Any]) -> str:
    """The bracket's runs as they ran: "0.01, 0.03 (the reading) and 0.09"."""
    record = _record(decision)
    reading = record.reading if isinstance(record, LrBracket) else None
    return _listed(
        [
            f"{_fmt(lr)} (the reading)" if lr == reading else lr
            for lr in _column(decision, "max_lr")
        ]
    )


def _change(decision: Mapping[str, Any]) -> str:
    """A correction's change as it ran: "weight decay 0.0001 -> 0.001"."""
    record = _record(decision)
    parameter = record.parameter if isinstance(record, Correction) else None
    rows = [r for r in decision.get("table") or () if isinstance(r, Mapping)]
    if not rows or parameter not in rows[0]:
        return "as its table shows"
    label = "max LR" if parameter == "max_lr" else "weight decay"
    return f"{label} {_fmt(rows[0].get('replaces'))} → {_fmt(rows[0][parameter])}"


def _race_factors(decision: Mapping[str, Any]) -> str:
    """The LR factors the race's first rung ran: "0.333, 1 and 3"."""
    rows = [r for r in decision.get("table") or () if isinstance(r, Mapping)]
    return _listed(sorted({r["lr_factor"] for r in rows if r.get("rung") == 0}))


def _race_rungs(decision: Mapping[str, Any]) -> tuple[float, ...]:
    """The epochs of the race's rungs, as its record holds them."""
    record = _record(decision)
    return record.rungs if isinstance(record, RaceRecord) else ()


def _not_compared(decision: Mapping[str, Any]) -> str | None:
    """Why a batch-size decision compared no batch sizes, as its record says."""
    record = _record(decision)
    return record.not_compared if isinstance(record, BatchSizeCap) else None


def _race_wds(decision: Mapping[str, Any]) -> str:
    rows = [r for r in decision.get("table") or () if isinstance(r, Mapping)]
    return _listed(sorted({r["weight_decay"] for r in rows if r.get("rung") == 0}))


_FACTS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "factors": _race_factors,
    "wds": _race_wds,
    "rungs": lambda d: _listed(_race_rungs(d)),
    "values": _values_tried,
    "batches": lambda d: _listed(_column(d, "batch_size")),
    "bracket": _bracket_runs,
    "change": _change,
    "tried": lambda d: _listed(_column(d, "max_lr")),
    "not_compared": lambda d: _not_compared(d) or "no batch sizes were compared",
}
"""What each ``{name}`` in a how-to-read text is filled with: a fact read off the decision
that ran, so the prose quotes the values tried, not the defaults."""


def _explanation(key: str, decision: Mapping[str, Any]) -> tuple[str, str]:
    """The text that says how to read this step, and for a learning-rate reading the
    sentence of its rule: both read from the rule the decision applied (`rules.Rule`, by
    name among its record type's rules), else from the record type's own reading."""
    base = key.split(":")[0]
    rule_name = str(decision.get("rule", ""))
    readings = {
        "learning_rate": LearningRateReading.HOW_TO_READ,
        "final_learning_rate": LearningRateReading.FINAL_HOW_TO_READ,
        "race_learning_rate": LearningRateReading.CANDIDATE_HOW_TO_READ,
    }
    if base in readings:  # one study, read at three steps of the recipe
        rule = LearningRateReading.rule(rule_name)
        if rule is None or base == "race_learning_rate":
            return readings[base], ""
        said = f" Rule <code>{_e(rule.name)}</code> reads max LR as {_e(rule.explanation)}."
        return readings[base], said
    kind = payload_type(decision, _RECORDS)
    if kind is None:
        return "", ""
    rule = kind.rule(rule_name)
    return (rule.explanation if rule is not None else kind.HOW_TO_READ), ""


def _how_to_read(key: str, decision: Mapping[str, Any]) -> str:
    """Smith's reading of this step in a sentence or three (and the LR rule's, if known)."""
    text, rule_sentence = _explanation(key, decision)
    if not text:
        return ""
    for name, fill in _FACTS.items():
        if "{" + name + "}" in text:
            text = text.replace("{" + name + "}", fill(decision))
    return f'<p class="how"><b>How to read this.</b> {_e(text)}{rule_sentence}</p>'


def _decision_value(decision: Mapping[str, Any]) -> str:
    name, value = decision.get("name"), decision.get("value")
    record = _record(decision)
    text = _fmt(value)
    if name == "learning_rate" and isinstance(record, LearningRateReading):
        text = f"max LR {_fmt(value)}, min LR {_fmt(record.min_lr)}"
    elif name == "momentum" and isinstance(record, MomentumChoice):
        text = (
            f"{_e(record.parameter or 'momentum')} {_fmt(record.max_momentum)} → "
            f"{_fmt(record.min_momentum)} (cyclical)"
        )
    elif name == "correction":
        parameter = record.parameter if isinstance(record, Correction) else None
        label = "max LR" if parameter == "max_lr" else "weight decay"
        text = f"{label} {_fmt(value)}"
    elif name == "race" and isinstance(record, RaceRecord):
        text = (
            f"batch {_fmt(record.batch_size)}, max LR {_fmt(value)}, weight decay "
            f"{_fmt(record.weight_decay)}"
        )
    return text


_SHOWN: dict[type[Payload], tuple[str, ...]] = {
    LearningRateReading: ("min_lr",),
    MomentumChoice: ("max_momentum", "min_momentum"),
    BatchSizeCap: ("not_compared",),  # the reason and the how-to-read text say it
}
"""The fields of a record that the value line or the how-to-read text already shows."""


def _extra(decision: Mapping[str, Any]) -> str:
    """The record's fields that the value line does not already show."""
    record = _record(decision)
    if record is None:
        return ""
    shown = _SHOWN.get(type(record), ())
    extra = {k: v for k, v in record.to_dict().items() if k not in shown}
    if not extra:
        return ""
    pairs = []
    for key, value in extra.items():
        if isinstance(value, Mapping):  # its scalar entries; nested records stay in tune.json
            scalars = [(k, v) for k, v in value.items() if not isinstance(v, (Mapping, list))]
            text = ", ".join(f"{_e(_label(str(k)))} {_cell(str(k), v)}" for k, v in scalars)
        else:
            text = _cell(key, value)
        pairs.append((_label(key), text))
    return "<h3>Details</h3>" + _kv(pairs, raw=True)


def _candidate_plots(out: Path, decision: Mapping[str, Any]) -> str:
    """For the batch-size comparison: each candidate's own range test, when its PNG exists."""
    record = _record(decision)
    max_lrs = record.max_lr if isinstance(record, BatchSizeComparison) else {}
    files = {b: PurePath(f"batch{b}_range_test.png").name for b in max_lrs}
    figures = [
        _image(out, file, f"LR range test at batch size {b}")
        for b, file in files.items()
        if (out / file).is_file()
    ]
    if not figures:
        return ""
    return (
        "<details><summary>The range test of each candidate batch size "
        f'({len(figures)} plots)</summary><div class="grid">{"".join(figures)}</div></details>'
    )


def _compute_line(decision: Mapping[str, Any]) -> str:
    """What the step spent; a step that charged nothing says its trials were read back from
    the store (or shows no line when it ran none)."""
    c = _mapping(decision.get("compute"))
    if not c:
        return ""
    if not any(_is_num(v) and v for v in c.values()):
        n = len(decision.get("trials") or ())
        if not n:
            return ""
        return (
            f'<p class="rule">Compute: none new; its {n} trial{"" if n == 1 else "s"} '
            f"{'was' if n == 1 else 'were'} read back from the store.</p>"
        )
    parts = []
    if "epochs" in c:
        parts.append(f"{_fmt(c['epochs'])} epochs")
    if "seconds" in c:
        parts.append(f"{_fmt(c['seconds'])} s")
    if "trials" in c:
        parts.append(f"{_fmt(c['trials'])} trial{'' if c['trials'] == 1 else 's'}")
    return f'<p class="rule">Compute: {", ".join(parts)}.</p>' if parts else ""


def _step(out: Path, decision: Mapping[str, Any], number: int, key: str) -> str:
    title = _title(key, decision)
    name, rule = decision.get("name", ""), decision.get("rule", "")
    parts = [
        f'<section id="step-{number}"><h2>{number}. {_e(title)}</h2>',
        f'<p class="decision">Decision <code>{_e(name)}</code> = '
        f'<span class="value">{_decision_value(decision)}</span> '
        f'<span class="rule">by rule <code>{_e(rule)}</code></span></p>',
    ]
    if decision.get("reason"):
        parts.append(f"<p>{_sentence(decision['reason'])}</p>")
    parts.append(_how_to_read(key, decision))
    parts.append(_image(out, decision.get("plot"), f"{title}: plot"))
    if key in ("batch_size:best_at_equal_time", "batch_size:best_at_equal_epochs"):
        parts.append(_candidate_plots(out, decision))
    parts.append("<h3>Evidence</h3>")
    table = [r for r in decision.get("table") or [] if isinstance(r, Mapping)]
    parts.append(_table(table))
    parts.append(_extra(decision))
    parts.append(_compute_line(decision))
    parts.append("</section>")
    return "".join(p for p in parts if p)


def _final_run(out: Path, data: Mapping[str, Any], task: str, number: int) -> str:
    diagnosis = _mapping(data.get("diagnosis"))
    parts = [
        f'<section id="step-{number}"><h2>{number}. Final 1cycle run and diagnosis</h2>',
        _image(out, "curves.png", f"{task}: final 1cycle run"),
    ]
    history, problem = read_history(out)
    if history is not None and history.evals:
        parts.append(_history_summary(history))
    elif history is None:
        parts.append(f'<p class="note">{_e(problem)}: the final run\'s numbers are left out.</p>')
    parts.append("<h3>Diagnosis</h3>")
    if not diagnosis:
        parts.append('<p class="note">No diagnosis was recorded.</p>')
    else:
        parts.append(
            f"<p>{_verdict_badge(diagnosis.get('verdict'))} "
            f'<span class="rule">by rule <code>{_e(diagnosis.get("rule", ""))}</code></span>'
            "</p>"
        )
        if diagnosis.get("summary"):
            parts.append(f"<p>{_sentence(diagnosis['summary'])}</p>")
        advice = [a for a in diagnosis.get("advice") or [] if a]
        if advice:
            parts.append("<p><b>Advice:</b></p><ul>")
            parts += [f"<li>{_e(a)}</li>" for a in advice]
            parts.append("</ul>")
        parts.append(f'<p class="how"><b>How to read this.</b> {_e(_FINAL_RUN_HOW_TO_READ)}</p>')
        evidence = _mapping(diagnosis.get("evidence"))
        if evidence:
            parts.append("<h3>Evidence read off the curves</h3>")
            pairs = [(_label(k), v) for k, v in evidence.items()]
            if len(pairs) > 8:  # two tables side by side
                half = (len(pairs) + 1) // 2
                parts.append(f'<div class="grid">{_kv(pairs[:half])}{_kv(pairs[half:])}</div>')
            else:
                parts.append(_kv(pairs))
        thresholds = _mapping(diagnosis.get("thresholds"))
        if thresholds:
            parts.append(
                '<p class="rule">Thresholds: '
                + ", ".join(f"{_e(_label(k))} {_fmt(v)}" for k, v in thresholds.items())
                + ".</p>"
            )
    parts.append("</section>")
    return "".join(parts)


def _history_summary(history: Any) -> str:
    """The final run's evaluations (at most 12 rows, always the last), its best and its
    outcome (`describe_run`'s words, as the command line and the tables say it)."""
    from disciplined.measure.diagnose import describe_run

    evals = list(history.evals)
    if len(evals) > 12:  # 12 evenly spaced, the first and the last among them
        evals = [evals[i] for i in sorted({round(j * (len(evals) - 1) / 11) for j in range(12)})]
    name = history.metric_name
    rows = [
        {
            "epoch": e.epoch,
            "step": e.step,
            "train_loss": e.train_loss,
            "val_loss": e.val_loss,
            f"val_{name}": e.val_metric,
            "seconds": e.seconds,
        }
        for e in evals
    ]
    best = history.best()
    line = (
        f"{_fmt(history.steps)} steps ({_fmt(history.epochs)} epochs) in {_fmt(history.seconds)} s"
    )
    if best is not None:
        line += f"; best validation {_e(name)} {_fmt(best.val_metric)} at epoch {_fmt(best.epoch)}"
    line += f"; outcome: {_e(describe_run(history, history.meta.get('epochs')))}"
    if history.diverged and history.diverged_reason:
        line += f" ({_e(history.diverged_reason)})"
    return f"<h3>Evaluations</h3><p>{line}.</p>{_table(rows)}"


def _compute(data: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    compute = {k: _mapping(v) for k, v in _mapping(data.get("compute")).items()}
    rows = []
    total_epochs = total_seconds = 0.0
    for key, c in compute.items():
        epochs, seconds = c.get("epochs"), c.get("seconds")
        total_epochs += epochs if _finite(epochs) else 0.0
        total_seconds += seconds if _finite(seconds) else 0.0
        label = _COMPUTE_LABELS.get(key, _label(key))
        rows.append(
            f'<tr><td>{_e(label)}</td><td class="num">{_fmt(epochs)}</td>'
            f'<td class="num">{_fmt(seconds)}</td></tr>'
        )
    budget = meta.get("budget")
    rows.append(
        f'<tr class="total"><td>total</td><td class="num">{_fmt(total_epochs)}</td>'
        f'<td class="num">{_fmt(total_seconds)}</td></tr>'
    )
    table = (
        "<table><thead><tr><th>step</th><th>epochs</th><th>seconds</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )
    notes = []
    if _finite(budget) and budget > 0:
        notes.append(
            f"Budget: {_fmt(budget)} epochs; {100 * total_epochs / budget:.0f}% of it spent."
        )
    if _finite(meta.get("wall_seconds")):
        notes.append(f"Wall-clock time of the whole tune: {_fmt(meta['wall_seconds'])} s.")
    devices = _mapping(meta.get("trial_devices"))
    if devices:
        where = ", ".join(f"{_e(str(k))} ({_fmt(v)})" for k, v in devices.items())
        amp = f", mixed precision {_e(str(meta['amp']))}" if meta.get("amp") else ""
        notes.append(f"Trials ran on: {where}{amp}.")
    threads = _mapping(meta.get("threads"))
    if threads.get("threads"):
        notes.append(
            f"Torch CPU threads per trial: {_fmt(threads['threads'])} "
            f"({_e(str(threads.get('reason', '')))})."
        )
    retries = meta.get("trial_retries")
    if isinstance(retries, int) and retries > 0:
        notes.append(
            f"{retries} trial run{'s were' if retries > 1 else ' was'} repeated after its "
            "worker was lost (the store's results say which)."
        )
    return (
        '<section id="compute"><h2>Compute spent</h2>'
        "<p>Epochs of the task (range-test and training steps alike) and seconds of training, "
        "per step of the recipe. Trials read back from the store cost nothing on a rerun.</p>"
        f"{table}" + "".join(f"<p>{n}</p>" for n in notes) + "</section>"
    )


def _provenance(data: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    options = _mapping(meta.get("task_options"))
    pairs = [
        ("task", meta.get("task")),
        ("task reference", meta.get("task_ref")),
        ("task options", ", ".join(f"{k}={v}" for k, v in options.items()) or None),
        ("seed", meta.get("seed")),
        ("device", meta.get("device")),
        ("python", meta.get("python")),
        ("torch", meta.get("torch")),
        ("platform", meta.get("platform")),
        ("output folder", data.get("out")),
    ]
    parts = [
        '<section id="provenance"><h2>Where these numbers came from</h2>',
        _kv((k, v) for k, v in pairs if v is not None and v != ""),
    ]
    if meta.get("command"):
        parts.append(f"<h3>Command line</h3><pre>{_e(meta['command'])}</pre>")
    parts.append("</section>")
    return "".join(parts)
