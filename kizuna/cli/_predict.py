"""`kizuna predict`, `kizuna priority` and `kizuna backtest`: docs/measures.md §3 from the command line.

Thin: each command calls one `Workspace` method and prints what it returns. scikit-learn and
the models load inside the commands, so `kizuna --help` does not pay for them.

A model that did not fit the data is said in one line (`FitProblem.line`, in --lang), on standard
output with the tables, on standard error with `-f json`; its figures are empty (None / null),
and JSON never holds NaN.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kizuna.cli._app import AsOfOption, DbOption, DirOption, LangOption, _as_of, _check, _progress, app, mistake
from kizuna.cli._render import Percent, console, error_console, print_json, show_rows
from kizuna.i18n import label, say, segment_label

if TYPE_CHECKING:  # loaded inside the commands: `kizuna --help` does not pay for Ibis
    from kizuna.workspace import Workspace

HorizonOption = Annotated[
    int | None,
    typer.Option("--horizon", help="Days ahead: churn = no order (or a cancellation) within them."),
]
PRIORITY_FORMATS = ("table", "csv", "xlsx", "json")


@app.command()
def predict(
    as_of: AsOfOption = None,
    horizon: HorizonOption = None,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
    fmt: Annotated[str, typer.Option("--format", "-f", help="Output: table or json.")] = "table",
) -> None:
    """Predict P(alive), next order, order value, CLV and churn risk with its reasons for every customer."""
    from kizuna.workspace import Workspace

    _check(lang, "json" if fmt == "json" else "table")
    with Workspace.open(directory, store_url=db, create=False) as ws:
        with _progress(fmt) as progress:
            progress.add_task(label("predicting", lang), total=None)
            result = ws.predict(_as_of(as_of), horizon_days=horizon)
        show_prediction(ws, result, lang, fmt)


def show_prediction(ws: Workspace, result, lang: str, fmt: str) -> None:
    """The model fit, how many customers are at high risk, and the value at risk by segment."""
    import pyarrow.compute as pc

    from kizuna.prediction import high_risk_count, keep_count, value_at_risk_by

    threshold = ws.settings.prediction.high_risk
    table = result.table
    by_segment = (value_at_risk_by(ws.predictions(), ws.scores(), "matrix_cell")
                  if ws.store.has_table("customer_scores") else [])
    high = high_risk_count(table, threshold)
    keep = keep_count(table)
    total_at_risk = pc.sum(table["value_at_risk"]).as_py()  # None when nobody has one
    if fmt == "json":
        print_json({
            "as_of": result.as_of, "horizon_days": result.horizon_days, "clv_horizon_days": result.clv_horizon_days,
            "customers": table.num_rows, "active_or_at_risk": keep, "high_risk": high,
            "high_risk_threshold": threshold, "lifecycle": _state_counts(table),
            "value_at_risk": total_at_risk, "model_fit": result.model_fit(),
            "value_at_risk_by_segment": by_segment, "notes": [say(note, lang) for note in result.notes],
            "problems": [problem.to_dict(lang) for problem in result.problems],
        })
        say_problems(result.problems, lang, error_console)
        return
    fit = result.model_fit()
    show_rows([
        {"model": "BG/NBD", "params": _params(fit["bg_nbd"], lang)},
        {"model": "Gamma-Gamma", "params": _params(fit["gamma_gamma"], lang)},
        {"model": "sBG", "params": _params(fit["shifted_beta_geo"], lang)},
        {"model": label("validation_auc", lang) + " (churn)",
         "params": f"{fit['churn']['validation_auc']:.3f} ({label('training_customers', lang)} "
                   f"{fit['churn']['training_customers']:,})"},
    ], [("model", label("model", lang)), ("params", label("parameters", lang))], title=label("title_model_fit", lang))
    show_rows([
        {"k": label("predicted_customers", lang), "v": table.num_rows},
        {"k": label("keep_customers", lang), "v": keep},
        {"k": label("high_risk_customers", lang).format(p=round(100 * threshold)), "v": high},
        {"k": label("value_at_risk", lang), "v": _round(total_at_risk, None)},
    ], [("k", label("measure", lang)), ("v", label("value", lang))])
    states = _state_counts(table)
    if states:
        show_rows([{"state": label(f"lifecycle_{state}", lang), "customers": states[state]}
                   for state in ("active", "at_risk", "lapsed", "lost", "subscription_cancelled") if state in states],
                  [("state", label("lifecycle_state", lang)), ("customers", label("customers", lang))])
    if by_segment:
        show_rows([{**r, "segment": segment_label(r["segment"], lang),
                    "value_at_risk": _round(r["value_at_risk"], None)} for r in by_segment],
                  [("segment", label("segment", lang)), ("customers", label("customers", lang)),
                   ("value_at_risk", label("value_at_risk", lang))], title=label("title_value_at_risk", lang))
    say_problems(result.problems, lang)
    for note in result.notes:
        console.print(f"{label('note', lang)}: {say(note, lang)}", markup=False)


def _state_counts(table) -> dict[str, int]:
    """Predicted customers by lifecycle state."""
    from collections import Counter

    if "lifecycle_state" not in table.column_names:
        return {}
    return dict(Counter(table["lifecycle_state"].to_pylist()))


def say_problems(problems, lang: str, where=console) -> None:
    """One line per model that did not fit the data: which, why, and what is left empty."""
    for problem in problems:
        where.print(problem.line(lang), markup=False, highlight=False, soft_wrap=True)


def _params(fit: dict | None, lang: str) -> str:
    if fit is None:
        return "-"
    if fit.get("params") is None:  # did not fit the data: the line below the tables says why
        return label("not_computed", lang)
    errors = fit.get("standard_errors") or {}
    return ", ".join(
        f"{k} {v:.3f}" + (f" ({errors[k]:.3f})" if errors.get(k) is not None else "") for k, v in fit["params"].items()
    )


@app.command()
def priority(
    top: Annotated[int | None, typer.Option("--top", help="Show at most this many rows.")] = None,
    capacity: Annotated[
        int | None, typer.Option("--capacity", help="A day's calls: the list's length (default [prediction]).")
    ] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="File for csv / xlsx (csv without it: standard output; xlsx: call-list.xlsx).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv, xlsx or json.")] = "table",
    kind: Annotated[str, typer.Option(
        "--list", help="keep (active and at-risk customers by value at risk, or by the value kept by calling once "
                       "enough call outcomes exist: calls.min_outcomes) or winback (lost or cancelled "
                       "within [prediction] winback_days, by value, with the lost reason's action).")] = "keep",
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
) -> None:
    """The day's call list within the capacity: customers with a phone, none called within the cooldown,
    with reasons and the suggested action; the summary says how many go to e-mail / DM instead."""
    from kizuna.workspace import Workspace

    _check(lang)
    if fmt not in PRIORITY_FORMATS:
        raise mistake("one_of", option="--format", choices=list(PRIORITY_FORMATS))
    from kizuna.prediction import LISTS

    if kind not in LISTS:
        raise mistake("one_of", option="--list", choices=list(LISTS))
    rows = min(n for n in (top, capacity) if n is not None) if (top or capacity) else None
    with Workspace.open(directory, store_url=db, create=False) as ws:
        lists = ws.call_lists(rows, kind=kind)
        if fmt in ("csv", "xlsx"):
            # a CSV without -o goes to standard output, as every command's; the summary then to stderr
            path = output if output is not None or fmt == "csv" else Path("call-list.xlsx")
            if path == Path("-"):
                path = None
            count = ws.write_priority(path, fmt=fmt, lang=lang, kind=kind, lists=lists)
            where = console if path is not None else error_console
            if path is not None:
                console.print(f"{path}: {count:,} {label('customers', lang)}", markup=False)
            say_call_summary(lists, lang, where)
            from kizuna.prediction import missing_value_at_risk

            if kind == "keep" and missing_value_at_risk(lists.calls):
                where.print(label("call_list_no_value_at_risk", lang), markup=False, highlight=False, soft_wrap=True)
            return
    if kind == "winback" and fmt == "table":  # grouped by lost reason, with the words that gave it
        from kizuna.cli._calls import show_winback_list

        show_winback_list(lists.calls, lang)
    else:
        show_call_list(lists.calls, lang, fmt, by_value=kind == "keep")
    say_call_summary(lists, lang, error_console if fmt == "json" else console)


def say_call_summary(lists, lang: str, where=console) -> None:
    """One line: which list, how many calls within the capacity, how many go by e-mail / DM, how many
    were left off for the cooldown."""
    summary = lists.summary()
    where.print(label("call_list_summary", lang).format(
        list=label(f"list_{lists.kind}", lang), calls=summary["calls"], capacity=summary["capacity"],
        mail=summary["mail"], cooled=summary["cooled_down"], days=summary["cooldown_days"],
        candidates=summary["candidates"]), markup=False, highlight=False, soft_wrap=True)
    for line in ranking_lines(summary, lang):
        where.print(line, markup=False, highlight=False, soft_wrap=True)
    if lists.kind == "winback":
        from kizuna.cli._calls import reason_counts

        where.print(reason_counts(summary, lang), markup=False, highlight=False, soft_wrap=True)


def ranking_lines(summary: dict, lang: str) -> list[str]:
    """The keep list's ranking (by the effect of a call, or by value at risk and why), and the call holdout."""
    lines = []
    if summary["list"] == "keep":
        outcomes, needed = summary["outcomes"], summary["min_outcomes"]
        key = ("call_ranking_uplift" if summary["ranking"] == "uplift" else "call_ranking_no_estimate"
               if needed is not None and outcomes >= needed else "call_ranking_value_at_risk")
        lines.append(label(key, lang).format(outcomes=f"{outcomes:,}", needed=f"{needed or 0:,}"))
    if summary["held_out"]:
        lines.append(label("call_summary_held_out", lang).format(n=summary["held_out"]))
    return lines


def show_call_list(listed, lang: str, fmt: str = "table", *, by_value: bool = True) -> None:
    """The call list on screen: who, how much is at risk, what to do and why (a file has every column)."""
    from kizuna.prediction import call_list_rows, missing_value_at_risk

    if fmt == "json":
        print_json(listed.to_pylist())
        if by_value and missing_value_at_risk(listed):
            error_console.print(label("call_list_no_value_at_risk", lang), markup=False, highlight=False,
                                soft_wrap=True)
        return
    if by_value and missing_value_at_risk(listed):
        console.print(label("call_list_no_value_at_risk", lang), markup=False, highlight=False, soft_wrap=True)
    headers, lines = call_list_rows(listed, lang)
    shown = (0, 2, 3, 4, 6, 7, 10, 9, 11)
    rows = [{f"c{i}": Percent(line[i]) if i == 6 else line[i] for i in shown} for line in lines]
    show_rows(rows, [(f"c{i}", headers[i]) for i in shown], title=label("title_priority", lang))


@app.command()
def backtest(
    as_of: Annotated[str, typer.Option("--as-of", help="End of the calibration period (YYYY-MM-DD).")],
    horizon: HorizonOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder for the report (JSON) and chart (PNG).")
    ] = None,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
    fmt: Annotated[str, typer.Option("--format", "-f", help="Output: table or json.")] = "table",
    calls: Annotated[bool, typer.Option(
        "--calls", help="Judge the keep list's rankings on the calls recorded from --as-of on: Qini coefficient and "
                        "uplift at capacity by the effect of a call, by value at risk, and at random.")] = False,
) -> None:
    """Calibrate before --as-of, predict the next --horizon days, and compare with what happened."""
    from kizuna.workspace import Workspace

    _check(lang, "json" if fmt == "json" else "table")
    day = _as_of(as_of)
    if calls:
        with Workspace.open(directory, store_url=db, create=False) as ws, _progress(fmt) as progress:
            progress.add_task(label("predicting", lang), total=None)
            found = ws.call_backtest(day, horizon_days=horizon)
        show_call_backtest(found, lang, fmt)
        return
    with Workspace.open(directory, store_url=db, create=False) as ws, _progress(fmt) as progress:
        progress.add_task(label("predicting", lang), total=None)
        result, chart = ws.backtest(day, horizon_days=horizon, report_dir=output, lang=lang)
    if fmt == "json":
        print_json({**result.to_dict(lang), "chart": str(chart)})
        say_problems(result.problems, lang, error_console)
        return
    p = result.purchases
    show_rows([
        {"k": label("period", lang), "v": f"{result.as_of} + {result.horizon_days} {label('days', lang)}"},
        {"k": label("backtest_population", lang), "v": result.customers},
        {"k": label("actual_churn_rate", lang), "v": _pct(result.churn_rate)},
        {"k": label("call_capacity", lang), "v": result.capacity},
        {"k": label("predicted_purchases", lang), "v": _round(p["predicted"], None)},
        {"k": label("actual_purchases", lang), "v": _round(p["actual"], None)},
    ], [("k", label("measure", lang)), ("v", label("value", lang))], title=label("title_backtest", lang))
    show_rows([{"score": label(f"score_{name}", lang), "auc": _round(f["auc"], 3),
                "precision": _pct(f["precision_at_capacity"]), "recall": _pct(f["recall_at_capacity"]),
                "lift": _round(f["lift_at_capacity"], 2), "brier": _round(f["brier"], 3)}
               for name, f in result.churn.items()],
              [("score", label("churn_score", lang)), ("auc", "ROC AUC"),
               ("precision", label("precision_at_capacity", lang)), ("recall", label("recall_at_capacity", lang)),
               ("lift", label("lift_at_capacity", lang)), ("brier", "Brier")],
              title=label("title_churn_ranking", lang))
    show_rows([{"baseline": label(f"score_{name}", lang), "model": _pct(c["precision"]),
                "other": _pct(c["other_precision"]), "one_list": c["only_score"],
                "difference": f"{100 * c['difference']:+.1f}",
                "interval": f"{100 * c['low']:+.1f} – {100 * c['high']:+.1f}",
                "verdict": label(f"verdict_{c['verdict']}", lang)}
               for name, c in result.comparison.items() if c is not None],
              [("baseline", label("baseline", lang)), ("model", label("model_precision", lang)),
               ("other", label("baseline_precision", lang)), ("one_list", label("on_one_list_only", lang)),
               ("difference", label("difference_points", lang)), ("interval", label("difference_interval_95", lang)),
               ("verdict", label("verdict", lang))],
              title=label("title_model_vs_baselines", lang))
    show_rows([{**r, "mean_predicted": _round(r["mean_predicted"], 3), "mean_actual": _round(r["mean_actual"], 3)}
               for r in result.holdout],
              [("label", label("repeat_purchases_before", lang)), ("customers", label("customers", lang)),
               ("mean_predicted", label("predicted", lang)), ("mean_actual", label("actual", lang))],
              title=label("title_holdout", lang))
    show_rows([{"bin": r["bin"], "customers": r["customers"], "predicted": Percent(round(100 * r["mean_predicted"], 1)),
                "actual": Percent(round(100 * r["actual_rate"], 1)),
                "interval": f"{100 * r['actual_low']:.1f}–{100 * r['actual_high']:.1f}",
                "within": label("yes" if r["within_interval"] else "no", lang)} for r in result.calibration],
              [("bin", label("risk_decile", lang)), ("customers", label("customers", lang)),
               ("predicted", label("predicted", lang) + " %"), ("actual", label("actual", lang) + " %"),
               ("interval", label("interval_95", lang) + " %"), ("within", label("within_interval", lang))],
              title=label("title_calibration", lang))
    say_problems(result.problems, lang)
    console.print(f"{label('chart', lang)}: {chart}", markup=False)


def show_call_backtest(result, lang: str, fmt: str) -> None:
    """`kizuna backtest --calls`: per ranking, the Qini coefficient and the uplift at capacity; the
    outcomes learned from and judged on."""
    if fmt == "json":
        print_json(result.to_dict(lang))
        return
    for key, part in (("call_backtest_training", result.training), ("call_backtest_evaluation", result.evaluation)):
        console.print(label(key, lang).format(n=f"{part['outcomes']:,}", called=f"{part['called']:,}",
                                              held=f"{part['held_out']:,}", first=part["first_list_day"],
                                              last=part["last_list_day"]), markup=False, highlight=False)
    rows = []
    for name, figures in result.rankings.items():
        top = figures["at_capacity"]
        rows.append({"ranking": label(f"ranking_{name}", lang),
                     "qini": None if figures["qini"] is None else f"{figures['qini']:+.4f}",
                     "uplift": None if top["uplift"] is None else f"{100 * top['uplift']:+.1f}pt",
                     "called": _pct(top["kept_rate_called"]), "held": _pct(top["kept_rate_held_out"]),
                     "counts": f"{top['called']:,} / {top['held_out']:,}"})
    show_rows(rows, [("ranking", label("ranking", lang)), ("qini", label("qini_coefficient", lang)),
                     ("uplift", label("uplift_at_capacity", lang)), ("called", label("kept_rate_called", lang)),
                     ("held", label("kept_rate_held_out", lang)),
                     ("counts", f"{label('call_group_called', lang)} / {label('call_group_held_out', lang)}")],
              title=f"{label('title_call_backtest', lang)} — {label('call_capacity', lang)} {result.capacity:,}")
    for note in result.notes:
        console.print(f"{label('note', lang)}: {say(note, lang)}", markup=False)


def _pct(value: float | None) -> Percent | None:
    return None if value is None else Percent(round(100 * value, 1))


def _round(value: float | None, digits: int | None) -> float | int | None:
    """round(value, digits); None (shown as "-") when there is no number."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return round(value) if digits is None else round(value, digits)
