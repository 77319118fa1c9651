"""The HTML report of a ``tune`` output folder, built from a real (small) tune run.

The run is shared by the module: digits MLP, 5-epoch final run, 100-step range tests, batch
sizes compared; about 10 s on one core. The browser test loads the report in a headless
Chromium (see ``tests/chromium.py``) and is skipped only when no Chromium is installed.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import pytest
from chromium import check_page, find_chromium, screenshot

from disciplined import tune
from disciplined.cli import main
from disciplined.errors import UsageError
from disciplined.report.html import _fmt, write_report

COMMAND = "disciplined tune --task digits-mlp --epochs 5 --budget 60 --range-steps 100"
EVIL = "<script>alert(1)</script>"


def _tune_folder(factory: pytest.TempPathFactory, **settings: object) -> Path:
    """A real tune output folder on digits-mlp (report.html written by `tune` itself)."""
    out = factory.mktemp("tune") / "out"
    tune(
        "digits-mlp",
        epochs=5,
        budget=60,
        out=out,
        range_steps=100,
        command=COMMAND,
        compare_batch_sizes=True,
        **settings,
    )
    return out


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default tune's folder (the race)."""
    return _tune_folder(tmp_path_factory)


@pytest.fixture(scope="module")
def bracket_tuned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder made with ``search="bracket"`` (batch comparison, LR bracket, corrections):
    the prose of those steps is read from it."""
    return _tune_folder(tmp_path_factory, search="bracket")


def test_the_race_is_explained_with_the_values_it_ran(tuned: Path) -> None:
    """The default tune races: the report names the LR factors, weight decays and rungs that
    its own race table holds, and the winner's settings."""
    data = json.loads((tuned / "tune.json").read_text())
    race = next(d for d in data["decisions"] if d["name"] == "race")
    text = (tuned / "report.html").read_text(encoding="utf-8")
    assert "The race: batch size, max LR and weight decay by full runs" in text
    rungs = race["extra"]["rungs"]
    assert all(f"{e:g}" in text for e in rungs)
    first = [r for r in race["table"] if r["rung"] == 0]
    assert len(first) == race["extra"]["counts"][0]
    assert f"batch {race['extra']['batch_size']}" in text


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("trials.sqlite*"))
    return dst


def _edit(folder: Path, change) -> None:
    path = folder / "tune.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _img_srcs(text: str) -> list[str]:
    return re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", text)


def test_tune_writes_a_self_contained_report(tuned: Path) -> None:
    text = (tuned / "report.html").read_text(encoding="utf-8")
    data = json.loads((tuned / "tune.json").read_text())
    assert "digits-mlp" in text
    for d in data["decisions"]:
        assert f"<code>{d['name']}</code>" in text
        assert f"<code>{d['rule']}</code>" in text
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text.lower()
    srcs = _img_srcs(text)
    plots = [d for d in data["decisions"] if d["plot"]]
    assert len(srcs) >= len(plots) + 1  # each step's plot and the final curves
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert text.count("<img") == len(srcs)
    # the top table and the final numbers are there, formatted to 4 significant digits
    assert f"<td>{_fmt(data['hparams']['max_lr'])}</td>" in text
    assert f"<td>{data['hparams']['batch_size']}</td>" in text
    assert _fmt(data["summary"]["final"]["val_metric"]) in text
    assert f">{data['diagnosis']['verdict']}</span>" in text
    assert "How to read this." in text
    assert "Budget: 60 epochs" in text
    assert COMMAND in text


def test_cli_rebuilds_the_same_file(tuned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (tuned / "report.html").read_bytes()
    (tuned / "report.html").unlink()
    assert main(["report", str(tuned)]) == 0
    assert capsys.readouterr().out.strip() == str(tuned / "report.html")
    assert (tuned / "report.html").read_bytes() == before


def test_user_and_data_strings_are_escaped(tuned: Path, tmp_path: Path) -> None:
    folder = _copy(tuned, tmp_path)

    def inject(data: dict) -> None:
        data["meta"]["task"] = data["summary"]["task"] = EVIL
        data["meta"]["command"] = "tune --task 'x' && echo <b>bold</b>"
        data["decisions"][0]["reason"] = '<img src=x onerror="alert(2)">'
        data["decisions"][0]["table"][0]["stop_reason"] = "</td><script>alert(3)</script>"
        data["diagnosis"]["advice"] = ["<iframe src=javascript:alert(4)>"]

    _edit(folder, inject)
    text = write_report(folder).read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script" not in text.lower() and "<iframe" not in text.lower()
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in text
    assert "&lt;/td&gt;&lt;script&gt;alert(3)" in text
    assert "&amp;&amp; echo &lt;b&gt;bold&lt;/b&gt;" in text
    assert all(s.startswith("data:image/png;base64,") for s in _img_srcs(text))


def test_missing_files_give_notes_not_broken_images(tuned: Path, tmp_path: Path) -> None:
    folder = _copy(tuned, tmp_path)
    full = len(_img_srcs((tuned / "report.html").read_text(encoding="utf-8")))
    (folder / "weight_decay.png").unlink()
    (folder / "curves.png").write_bytes(b"not a png")
    (folder / "history.json").unlink()
    text = write_report(folder).read_text(encoding="utf-8")
    assert "Plot <code>weight_decay.png</code> is missing from this folder." in text
    assert "Plot <code>curves.png</code> is not a PNG image." in text
    assert "history.json is missing: the final run's numbers are left out." in text
    assert len(_img_srcs(text)) == full - 2


def test_a_corrupt_history_is_named_in_the_report_and_on_stderr(
    tuned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _copy(tuned, tmp_path)
    (folder / "history.json").write_text('{"evals": [')
    assert main(["report", str(folder)]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("disciplined: warning: history.json is not valid JSON")
    assert len(captured.err.strip().splitlines()) == 1
    text = (folder / "report.html").read_text(encoding="utf-8")
    assert "history.json is not valid JSON" in text


def test_plot_paths_are_resolved_by_file_name(tuned: Path, tmp_path: Path) -> None:
    folder = _copy(tuned, tmp_path)

    def relocate(data: dict) -> None:
        for d in data["decisions"]:
            if d["plot"]:
                d["plot"] = "/elsewhere/at/run/time/" + Path(d["plot"]).name

    _edit(folder, relocate)
    before = (tuned / "report.html").read_text(encoding="utf-8")
    after = write_report(folder).read_text(encoding="utf-8")
    assert _img_srcs(after) == _img_srcs(before)


def test_correction_unknown_steps_and_undefined_numbers(tuned: Path, tmp_path: Path) -> None:
    folder = _copy(tuned, tmp_path)
    correction = {
        "name": "correction",
        "value": 0.001,
        "rule": "one_grid_step_as_advised",
        "reason": "overfitting: weight decay 0.0001 -> 0.001; kept the new run",
        "table": [{"weight_decay": 0.001, "val_metric": None, "replaces": 0.0001}],
        "trials": ["abc"],
        "plot": None,
        "extra": {},
        "compute": {"epochs": 5.0, "seconds": 1.0},
    }
    unknown = {**correction, "name": "label_smoothing", "rule": "new_rule", "value": 0.1}
    unknown["extra"] = {"nested": {"a": 1, "deeper": {"b": 2}}, "values": [1, 2]}

    def add(data: dict) -> None:
        data["decisions"] += [correction, unknown]
        data["summary"]["final"]["val_loss"] = None

    _edit(folder, add)
    text = write_report(folder).read_text(encoding="utf-8")
    assert "Correction after the diagnosis" in text
    assert "weight decay 0.001" in text and "<code>one_grid_step_as_advised</code>" in text
    assert "Label smoothing" in text and "<code>new_rule</code>" in text
    assert "No plot was recorded for this step." in text
    assert "validation loss <b>–</b>" in text


@pytest.mark.parametrize("case", ["missing", "empty", "file", "bad-json", "not-a-result"])
def test_bad_input_is_one_line_and_exit_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "dir"
    if case != "missing":
        target.mkdir()
    if case == "file":
        target = target / "tune.json"
        target.write_text("{}")
    elif case == "bad-json":
        (target / "tune.json").write_text("{not json")
    elif case == "not-a-result":
        (target / "tune.json").write_text('{"hparams": {}}')
    with pytest.raises(UsageError):
        write_report(target)
    assert main(["report", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("disciplined: error: ") and err.count("\n") == 1
    assert not (tmp_path / "dir" / "report.html").exists()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "–"),
        (math.nan, "–"),
        (math.inf, "–"),
        ("NaN", "–"),
        (0.0, "0"),
        (3.0, "3"),
        (0.1, "0.1"),
        (0.031622776, "0.03162"),
        (1.2345678, "1.235"),
        (123.456, "123.5"),
        (12345.6, "12346"),
        (1e-5, "1e-5"),
        (3.16227e-5, "3.162e-5"),
        (1.23456e7, "1.235e7"),
        (128, "128"),
        (True, "yes"),
        ("<b>", "&lt;b&gt;"),
    ],
)
def test_numbers_show_four_significant_digits(value: object, text: str) -> None:
    assert _fmt(value) == text


def test_report_renders_in_chromium(tuned: Path) -> None:
    exe = find_chromium()
    if exe is None:
        pytest.skip("chromium not installed: no /usr/bin/chromium and none on PATH")
    html = tuned / "report.html"
    check = check_page(html, executable=exe)
    assert check.console_errors == []
    assert check.requests == []
    n_img = html.read_text(encoding="utf-8").count("<img")
    assert len(check.images) == n_img > 0
    assert check.broken_images == []
    assert all(i["width"] > 0 and i["decoded"] for i in check.images)


def test_a_hostile_task_name_runs_no_script_in_chromium(tuned: Path, tmp_path: Path) -> None:
    """A task named like markup (issue 14: ``<img src=x onerror=...>``) shows as text: the
    browser runs nothing, requests nothing, and loads no image of the name's."""
    exe = find_chromium()
    if exe is None:
        pytest.skip("chromium not installed: no /usr/bin/chromium and none on PATH")
    hostile = "<img src=x onerror=console.error('xss-img')>"
    folder = _copy(tuned, tmp_path)

    def change(data):
        data["meta"]["task"] = hostile
        data["meta"]["description"] = "<script>console.error('xss-script')</script>"
        data["meta"]["task_options"] = {"<svg onload=console.error('xss-svg')>": 1}

    _edit(folder, change)
    html = write_report(folder)
    text = Path(html).read_text(encoding="utf-8")
    assert "&lt;img src=x onerror=" in text
    check = check_page(html, executable=exe)
    assert check.console_errors == [] and check.requests == []
    assert len(check.images) == text.count("<img") == len(_img_srcs(text))
    assert all(src.startswith("data:image/png;base64,") for src in _img_srcs(text))


def test_browser_check_sees_what_it_should(tmp_path: Path) -> None:
    """The check above is not vacuous: a broken image, a console error, an uncaught
    exception and an outside request are all reported."""
    if find_chromium() is None:
        pytest.skip("chromium not installed: no /usr/bin/chromium and none on PATH")
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><img src="data:image/png;base64,AAAA"><img src="http://127.0.0.1:9/x.png">'
        "<script>console.error('boom'); no_such_function();</script>"
    )
    check = check_page(page)
    assert len(check.broken_images) == 2
    assert "boom" in check.console_errors
    assert any("no_such_function" in e for e in check.console_errors)
    assert check.requests == ["http://127.0.0.1:9/x.png"]


def test_screenshot_for_the_readme(tuned: Path) -> None:
    """``DISCIPLINED_SCREENSHOT=1 pytest tests/test_report.py -k screenshot`` writes
    ``docs/report.png``, the first screen of a small `digits-mlp` report. The README's
    picture is the same `screenshot` taken of ``runs/demo/report.html`` after `make demo`."""
    if os.environ.get("DISCIPLINED_SCREENSHOT") != "1":
        pytest.skip("set DISCIPLINED_SCREENSHOT=1 to write docs/report.png")
    exe = find_chromium()
    if exe is None:
        pytest.skip("chromium not installed: no /usr/bin/chromium and none on PATH")
    png = Path(__file__).resolve().parents[1] / "docs" / "report.png"
    screenshot(tuned / "report.html", png, width=1200, height=1600, executable=exe)
    assert png.read_bytes().startswith(b"\x89PNG")


def test_the_prose_names_the_values_that_ran(bracket_tuned: Path, tmp_path: Path) -> None:
    """The momentum and weight-decay explanations quote the values in their tables, not a
    fixed list (the bracket's tune: the race runs no momentum range tests)."""
    tuned = bracket_tuned
    text = (tuned / "report.html").read_text(encoding="utf-8")
    data = json.loads((tuned / "tune.json").read_text())
    mom = next(d for d in data["decisions"] if d["name"] == "momentum")
    listed = [_fmt(r["value"]) for r in mom["table"]]
    assert f"Range tests at momentum {', '.join(listed[:-1])} and {listed[-1]}," in text
    folder = _copy(tuned, tmp_path)

    def two_momenta(d):
        m = next(x for x in d["decisions"] if x["name"] == "momentum")
        m["table"] = [r for r in m["table"] if r["value"] in (0.95, 0.9)]

    _edit(folder, two_momenta)
    again = write_report(folder).read_text(encoding="utf-8")
    assert "Range tests at momentum 0.95 and 0.9, read like" in again
    assert "Range tests at momentum 0.99" not in again


def test_bracket_batch_and_correction_prose_quote_what_ran(
    bracket_tuned: Path, tmp_path: Path
) -> None:
    """The bracket, the batch-size comparison, the corrections and the divergence retries
    explain themselves with the values in their own tables (a bracket at 4x, candidates the
    user chose, a retry list), not the default factors."""
    folder = _copy(bracket_tuned, tmp_path)

    def edit(d):
        d["decisions"] = [x for x in d["decisions"] if x["name"] != "correction"]
        bracket = next(x for x in d["decisions"] if x["rule"] == "best_full_run_of_bracket")
        bracket["extra"]["reading"] = 0.02
        bracket["table"] = [{"max_lr": lr, "val_metric": 0.9} for lr in (0.005, 0.02, 0.08)]
        batch = next(x for x in d["decisions"] if x["name"] == "batch_size")
        batch["rule"] = "best_at_equal_epochs"
        batch["table"] = [{"batch_size": b, "val_metric": 0.9} for b in (48, 96)]
        d["decisions"].append(
            {
                "name": "correction",
                "value": 0.0003,
                "rule": "one_grid_step_as_advised",
                "reason": "overfitting",
                "table": [{"weight_decay": 0.0003, "replaces": 3e-05, "val_metric": 0.9}],
                "extra": {"parameter": "weight_decay"},
            }
        )
        d["decisions"].append(
            {
                "name": "correction",
                "value": 0.01,
                "rule": "lower_max_lr_until_stable",
                "reason": "diverged",
                "table": [{"max_lr": 0.5}, {"max_lr": 0.1}, {"max_lr": 0.01}],
                "extra": {"parameter": "max_lr"},
            }
        )

    _edit(folder, edit)
    text = write_report(folder).read_text(encoding="utf-8")
    assert "at max LR 0.005, 0.02 (the reading) and 0.08;" in text
    assert "Each candidate batch size (48 and 96, capped by memory)" in text
    assert "weight decay 3e-5 → 0.0003, and the run was repeated" in text
    assert "until one held (max LR 0.5, 0.1 and 0.01)" in text
    assert "three times" not in text and "a third of" not in text


def test_lost_workers_are_named_in_the_compute_section(tuned: Path, tmp_path: Path) -> None:
    folder = _copy(tuned, tmp_path)
    assert "worker was lost" not in (tuned / "report.html").read_text(encoding="utf-8")
    _edit(folder, lambda d: d["meta"].update(trial_retries=2))
    text = write_report(folder).read_text(encoding="utf-8")
    assert "2 trial runs were repeated after its worker was lost" in text


def test_skipped_batch_memory_compute_and_next_steps_say_what_happened(
    tuned: Path, tmp_path: Path
) -> None:
    """Issue 34 item 4: a skipped batch step says why (not "equal wall-clock time"), memory
    reads in MiB/GiB, a step that spent nothing says its trials were read back from the
    store, and the answer card says what to do next when the run was not balanced."""
    folder = _copy(tuned, tmp_path)
    why = "the budget of 41 epochs cannot pay for comparing batch sizes [8, 16, 32]"

    def edit(d):
        d["decisions"].append(
            {
                "name": "batch_size",
                "value": 32,
                "rule": "largest_that_fits",
                "reason": f"memory never binds; kept the task's batch size 32; {why}",
                "table": [{"batch_size": 32, "step_bytes": 3 * 2**20, "fits": True}],
                "extra": {
                    "memory": {"batch_size": 1437, "limit_bytes": 3 * 2**29, "device": "cpu"},
                    "not_compared": why,
                },
            }
        )
        d["decisions"].append(
            {
                "name": "learning_rate",
                "value": 0.1,
                "rule": "smith",
                "reason": "read back",
                "trials": ["abc", "def"],
                "compute": {"epochs": 0, "seconds": 0.0, "trials": 0},
            }
        )
        d["diagnosis"].update(
            verdict="underfitting", advice=["a longer cycle (more epochs)", "less regularization"]
        )

    _edit(folder, edit)
    text = write_report(folder).read_text(encoding="utf-8")
    assert f"Only that cap was applied here: {why}." in text
    assert "equal wall-clock time" not in text
    assert "limit memory 1.5 GiB" in text and "3 MiB" in text
    assert "limit bytes" not in text and "1610612736" not in text
    assert "Compute: 0 epochs" not in text
    assert "Compute: none new; its 2 trials were read back from the store." in text
    card = text[text.index('id="overview"') : text.index("</section>", text.index('id="overview"'))]
    assert "What to do next" in card and "A longer cycle (more epochs)" in card
    _edit(folder, lambda d: d["diagnosis"].update(verdict="balanced"))
    assert "What to do next" not in write_report(folder).read_text(encoding="utf-8")


def test_vertical_lines_in_the_plots_are_labelled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every vertical line the plots draw has a legend entry (the overlays' max LRs, a
    sweep's stop, a run's divergence)."""
    from matplotlib.lines import Line2D

    from disciplined.measure.range_test import RangeTest
    from disciplined.measure.suggest import smith
    from disciplined.report import plots
    from disciplined.training.history import History

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or Path(path))
    lrs = [1e-4 * 1.2**i for i in range(60)]
    losses = [2.3 - 1.5 * min(i, 40) / 40 + (0.2 * (i - 45) if i > 45 else 0) for i in range(60)]
    test = RangeTest(
        lrs=tuple(lrs),
        losses=tuple(losses),
        smoothed=tuple(losses),
        suggestion=smith(lrs, losses),
        stop_lr=lrs[-1],
        stop_step=59,
        stop_reason="climbed back",
    )
    plots.plot_range_overlay([test, test], ["wd 0", "wd 1e-4"], "ov.png")
    plots.plot_range_test(test, "rt.png")
    history = History(
        lrs=(0.1,) * 20,
        train_losses=(1.0,) * 20,
        momenta=(0.9,) * 20,
        evals=(),
        steps_per_epoch=10,
        diverged=True,
        diverged_step=12,
    )
    plots.plot_history(history, "h.png")
    for fig in figures:
        for ax in fig.axes:
            vlines = [
                line
                for line in ax.get_lines()
                if isinstance(line, Line2D) and len(set(line.get_xdata())) == 1
            ]
            labelled = {t.get_text() for t in (ax.get_legend().get_texts() if vlines else [])}
            for line in vlines:
                assert line.get_label() in labelled, line.get_label()


@pytest.mark.parametrize("which", ["tuned", "bracket_tuned"])
def test_a_tune_json_of_the_untyped_format_reports_the_same(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Issue 35: a tune.json written before the decision records were typed (no "record"
    key: each decision's record only as its "extra" entries) reads back into the same typed
    records and renders the same page, how-to-read texts from the rules included."""
    from disciplined.report.html import _RECORDS
    from disciplined.studies.decide import Decision, UntypedPayload

    folder = _copy(request.getfixturevalue(which), tmp_path)
    typed = json.loads((folder / "tune.json").read_text(encoding="utf-8"))["decisions"]
    assert all("record" in d for d in typed)

    def untype(data: dict) -> None:
        for d in data["decisions"]:
            del d["record"]

    _edit(folder, untype)
    old = json.loads((folder / "tune.json").read_text(encoding="utf-8"))["decisions"]
    back = [Decision.from_dict(d, _RECORDS) for d in old]
    assert [Decision.from_dict(d, _RECORDS) for d in typed] == back
    assert not any(isinstance(d.payload, UntypedPayload) for d in back)
    before = (request.getfixturevalue(which) / "report.html").read_text(encoding="utf-8")
    text = write_report(folder).read_text(encoding="utf-8")
    assert text == before
    assert "Rule <code>smith_train_and_validation" in text and "How to read this." in text
