"""`backtest`: calibrate on the data before a date, predict the period after it, and compare with what
happened (docs/measures.md §3) — the figures that say whether to trust `predict`.

* purchases: BG/NBD's expected purchase days per customer against the actual ones, by the number
  of repeat purchases in the calibration period (the calibration/holdout chart of Fader, Hardie &
  Lee 2005), and in total;
* churn, on the customers who could still be kept at the as-of date (lifecycle state active or
  at risk, the churn model's population): the base rate, how well the churn risk ranks who left
  (ROC AUC, top-decile lift, and precision, recall and lift among the day's `capacity` calls) and
  how well it is calibrated (Brier score, predicted vs actual churn rate by decile), side by side
  with baselines that need no model of ours on the same customers: the days since the last order,
  BG/NBD's 1 − P(alive) and its expected purchases; and, for each baseline, whether the model's calls
  find more churners than the baseline's beyond chance (`compare_at_capacity`: at a day's capacity
  the best rankings call nearly the same customers, and a few calls' difference is often noise).

When BG/NBD did not fit the calibration data (see `FitProblem`), its figures are None: the
predicted purchases, the holdout table's predicted means and the BG/NBD baselines; the churn
model is scored as ever. No figure is NaN: `to_dict` gives JSON without NaN.

`call_backtest` (``kizuna backtest --calls``) asks the same of the keep list's ranking by the effect of
a call: the uplift model learns from the call outcomes known at the as-of date, the models of the
as-of date rank the customers on the lists made after it, and the Qini coefficient and the uplift at
capacity (`qini_coefficient`, `uplift_at_capacity`) say which ranking put the customers a call kept
first — the expected value kept by calling (uplift × CLV), value at risk (churn risk × CLV), or
chance.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pyarrow as pa

from kizuna._errors import KizunaError, Phrase
from kizuna._numbers import finite_or_none
from kizuna.analytics import KEEP_STATES, AnalysisSettings
from kizuna.i18n import say
from kizuna.models import ModelFitWarning, fit_note
from kizuna.prediction._chart import write_holdout_chart
from kizuna.prediction._evaluation import (
    at_capacity,
    brier_score,
    calibration_table,
    compare_at_capacity,
    holdout_aggregate,
    holdout_table,
    qini_coefficient,
    qini_curve,
    roc_auc,
    top_decile_lift,
    uplift_at_capacity,
)
from kizuna.prediction._features import CHURN_FEATURES, churn_labels
from kizuna.prediction._predict import (
    Features,
    FitProblem,
    Fits,
    PredictionError,
    Predictions,
    predict_customers,
    score,
)
from kizuna.prediction._uplift import (
    CallOutcomes,
    UpliftDataError,
    UpliftModel,
    call_outcomes,
    features_matrix,
    rank_key,
)

__all__ = ["Backtest", "CallBacktest", "backtest", "backtest_report", "call_backtest", "write_backtest_report"]


@dataclass
class Backtest:
    """The figures of one backtest; `to_dict` gives them all, for `--format json`."""

    as_of: dt.date  # the end of the calibration period
    horizon_days: int
    customers: int  # the churn figures' population: active or at risk at the as-of date
    churn_rate: float  # its base rate
    purchases: dict[str, Any]  # aggregate: predicted vs actual purchase days in the holdout
    holdout: list[dict[str, Any]]  # by calibration frequency 0..7+
    churn: dict[str, dict[str, Any]]  # model / recency / bg_nbd: auc, top_decile_lift
    calibration: list[dict[str, Any]]  # the model's risk by decile
    model_fit: dict[str, Any]
    population: dict[str, Any] = field(default_factory=dict)  # states, customers, of how many predicted
    capacity: int = 100
    # per baseline: the model's precision at capacity against the baseline's, with the interval of
    # the difference and its verdict (`compare_at_capacity`)
    comparison: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str | Phrase] = field(default_factory=list)
    problems: list[FitProblem] = field(default_factory=list)  # models that did not fit the calibration data

    def to_dict(self, lang: str = "ja") -> dict[str, Any]:
        """Every figure, JSON-ready: a figure that could not be computed is None, never NaN."""
        return finite_or_none({
            "as_of": self.as_of.isoformat(), "horizon_days": self.horizon_days, "population": self.population,
            "customers": self.customers, "churn_rate": self.churn_rate, "base_rate": self.churn_rate,
            "capacity": self.capacity, "purchases": self.purchases, "holdout": self.holdout,
            "churn": self.churn, "comparison": self.comparison, "calibration": self.calibration,
            "model_fit": self.model_fit, "notes": [say(note, lang) for note in self.notes],
            "problems": [p.to_dict(lang) for p in self.problems],
        })


def backtest(
    tables: dict[str, ibis.Table], as_of: dt.date, *, horizon_days: int = 90, clv_horizon_days: int = 365,
    discount_rate: float = 0.1, gross_margin_rate: float = 0.4, capacity: int = 100,
    analysis: AnalysisSettings | None = None,
) -> Backtest:
    """Predict as of `as_of` from the data before it, then score against the `horizon_days` after it;
    the churn figures on the customers active or at risk at `as_of`, with `capacity` calls a day."""
    last = _last_order_day(tables)
    end = as_of + dt.timedelta(days=horizon_days)
    if last is None or last < end:
        raise PredictionError.keyed("error.backtest_past_data", start=as_of + dt.timedelta(days=1), end=end,
                                    last=last or "-", days=horizon_days)
    result = predict_customers(tables, as_of, horizon_days=horizon_days, clv_horizon_days=clv_horizon_days,
                               discount_rate=discount_rate, gross_margin_rate=gross_margin_rate, analysis=analysis)
    actual = churn_labels(tables, as_of, horizon_days).to_pyarrow()
    return _score(result, actual, capacity)


def backtest_report(
    tables: dict[str, ibis.Table], as_of: dt.date, folder: Path | str, *, horizon_days: int = 90,
    clv_horizon_days: int = 365, discount_rate: float = 0.1, gross_margin_rate: float = 0.4, lang: str = "ja",
    capacity: int = 100, analysis: AnalysisSettings | None = None,
) -> tuple[Backtest, Path]:
    """`backtest`, with its report written into `folder` (see `write_backtest_report`); the
    figures and the chart's path."""
    result = backtest(tables, as_of, horizon_days=horizon_days, clv_horizon_days=clv_horizon_days,
                      discount_rate=discount_rate, gross_margin_rate=gross_margin_rate, capacity=capacity,
                      analysis=analysis)
    return result, write_backtest_report(result, folder, lang)


def write_backtest_report(result: Backtest, folder: Path | str, lang: str = "ja") -> Path:
    """Write `result` as JSON (no NaN) and its calibration/holdout chart as PNG into `folder`, both
    named ``backtest-<as of>-<horizon>d``; returns the chart's path."""
    folder = Path(folder)
    stem = f"backtest-{result.as_of.isoformat()}-{result.horizon_days}d"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.json").write_text(
            json.dumps(result.to_dict(lang), ensure_ascii=False, indent=1, default=str, allow_nan=False) + "\n",
            encoding="utf-8",
        )
        return write_holdout_chart(result.holdout, folder / f"{stem}.png", lang)
    except OSError as exc:
        raise KizunaError.keyed("error.backtest_not_written", folder=str(folder), problem=exc.strerror) from None


def _last_order_day(tables: dict[str, ibis.Table]) -> dt.date | None:
    orders = tables["orders"]
    value = orders.ordered_at.max().to_pyarrow().as_py()
    return None if value is None else value.date()


def _score(result: Predictions, actual, capacity: int = 100) -> Backtest:
    # one row per predicted customer, in the prediction's order (customer_features' customers are
    # the customers of churn_labels at the same date)
    order = {customer: i for i, customer in enumerate(actual["customer_id"].to_pylist())}
    index = np.array([order[c] for c in result.table["customer_id"].to_pylist()])
    churned = actual["churned"].to_numpy()[index]
    bought = actual["purchase_days_after"].to_numpy()[index].astype(float)

    table, features = result.table, result.features
    expected = table["expected_orders"].to_numpy(zero_copy_only=False).astype(float)  # NULL: NaN
    risk = table["churn_risk"].to_numpy(zero_copy_only=False).astype(float)
    recency = features["days_since_last_order"].to_numpy().astype(float)
    dead = 1 - table["p_alive"].to_numpy(zero_copy_only=False).astype(float)
    frequency = features["frequency"].to_numpy()
    # BG/NBD's figures, when it fitted (for every customer: see FitProblem "partial")
    beta_geo = bool(np.isfinite(expected).all() and np.isfinite(dead).all())
    # BG/NBD's P(alive) is 1 for every customer without a repeat purchase, often the likeliest to
    # leave: its expected purchases in the horizon (fewer: more likely to churn) is shown too
    scores = {"model": risk, "recency": recency, "bg_nbd": dead if beta_geo else None,
              "bg_nbd_orders": -expected if beta_geo else None}
    # the churn figures: on the customers who could still be kept at the as-of date
    states = np.asarray(table["lifecycle_state"].to_pylist(), dtype=object)
    keep = np.isin(states, KEEP_STATES)
    probabilities = {"model": risk, "bg_nbd": dead if beta_geo else None}
    churn = {name: _churn_figures(churned[keep], None if score is None else score[keep],
                                  None if probabilities.get(name) is None else probabilities[name][keep], capacity)
             for name, score in scores.items()}
    comparison = {name: compare_at_capacity(churned[keep], risk[keep], score[keep], capacity)
                  for name, score in scores.items() if name != "model" and score is not None and keep.any()}
    if beta_geo:
        purchases = holdout_aggregate(expected, bought)
        holdout = holdout_table(frequency, expected, bought)
    else:  # what happened is known all the same
        purchases = {**holdout_aggregate(np.zeros_like(bought), bought), "predicted": None, "error_pct": None}
        holdout = [{**row, "mean_predicted": None} for row in holdout_table(frequency, np.zeros_like(bought), bought)]
    return Backtest(
        as_of=result.as_of, horizon_days=result.horizon_days, customers=int(keep.sum()),
        churn_rate=float(churned[keep].mean()) if keep.any() else math.nan,
        purchases=purchases, holdout=finite_or_none(holdout),
        churn=churn, calibration=churn["model"]["calibration"] or [], model_fit=result.model_fit(),
        population={"states": list(KEEP_STATES), "customers": int(keep.sum()), "predicted": table.num_rows},
        capacity=capacity, comparison=comparison, notes=result.notes, problems=result.problems,
    )


def _churn_figures(churned: np.ndarray, score: np.ndarray | None, probability: np.ndarray | None,
                   capacity: int) -> dict[str, Any]:
    """How one score ranks and, when it is a probability, how well it is calibrated."""
    if score is None or not len(churned):
        return {"auc": None, "top_decile_lift": None, "precision_at_capacity": None, "recall_at_capacity": None,
                "lift_at_capacity": None, "brier": None, "calibration": None}
    top = at_capacity(churned, score, capacity)
    return {
        "auc": roc_auc(churned, score), "top_decile_lift": top_decile_lift(churned, score),
        "precision_at_capacity": top["precision"], "recall_at_capacity": top["recall"],
        "lift_at_capacity": top["lift"],
        "brier": brier_score(churned, probability) if probability is not None else None,
        "calibration": calibration_table(churned, probability) if probability is not None else None,
    }


# -- the ranking by the effect of a call (kizuna backtest --calls) ----------------------------------------------
@dataclass
class CallBacktest:
    """How the keep list's rankings did on the lists made after `as_of` (`call_backtest`); `to_dict`
    gives every figure for ``--format json`` (None, never NaN, where one cannot be computed)."""

    as_of: dt.date
    horizon_days: int
    capacity: int
    training: dict[str, Any]  # the outcomes the uplift model learned from: counts and list days
    evaluation: dict[str, Any]  # the outcomes the rankings are judged on
    rankings: dict[str, dict[str, Any]]  # uplift / value_at_risk / random: qini, uplift at capacity, curve
    model: dict[str, Any] = field(default_factory=dict)  # the uplift model's kept rates
    notes: list[str | Phrase] = field(default_factory=list)

    def to_dict(self, lang: str = "ja") -> dict[str, Any]:
        return finite_or_none({
            "as_of": self.as_of.isoformat(), "horizon_days": self.horizon_days, "capacity": self.capacity,
            "training": self.training, "evaluation": self.evaluation, "rankings": self.rankings,
            "model": self.model, "notes": [say(note, lang) for note in self.notes],
        })


def call_backtest(
    tables: dict[str, ibis.Table], as_of: dt.date, *, secret: str, holdout_share: float, horizon_days: int = 90,
    clv_horizon_days: int = 365, discount_rate: float = 0.1, capacity: int = 100, cooldown_days: int = 14,
    period_days: int = 7, analysis: AnalysisSettings | None = None,
) -> CallBacktest:
    """The keep list's rankings judged on the calls recorded (docs/measures.md#uplift-ranking).

    The call outcomes known at the end of the data (`call_outcomes`) are split at `as_of`: the uplift
    model learns from the lists whose horizon ended by then, and the lists made on or after it are the
    test. Each test customer is scored as of their list day by the models fitted as of `as_of` (churn
    model, BG/NBD, Gamma-Gamma: value at risk = churn risk × CLV; the uplift model: value kept = uplift ×
    CLV), and each ranking gets its Qini coefficient and its uplift among the `capacity` it ranks first;
    a random ranking's are what chance gives on average (Qini 0, the overall difference).
    """
    last = _last_order_day(tables)
    if last is None or last <= as_of:
        raise PredictionError.keyed("error.no_orders_after", as_of=as_of, last=last or "-")
    outcomes = call_outcomes(tables, last, secret=secret, holdout_share=holdout_share, horizon_days=horizon_days,
                             cooldown_days=cooldown_days, period_days=period_days, max_periods=100_000,
                             analysis=analysis)
    days = np.asarray(outcomes.rows["list_day"].to_numpy(zero_copy_only=False), dtype="datetime64[D]")
    cut = np.datetime64(as_of, "D")
    train = days + np.timedelta64(horizon_days, "D") <= cut
    test = days >= cut
    if not test.any():
        raise UpliftDataError(
            Phrase.of("error.no_call_outcomes_after", as_of=as_of, outcomes=f"{outcomes.outcomes:,}",
                      pending=f"{outcomes.pending:,}", days=horizon_days), called=0, held_out=0)
    matrix, called, kept = outcomes.matrix, outcomes.called, outcomes.kept
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ModelFitWarning)
        try:
            model = UpliftModel().fit(matrix[train], called[train], kept[train], CHURN_FEATURES)
        except UpliftDataError as exc:
            raise UpliftDataError(Phrase.of("error.before_day", day=as_of, problem=exc.phrase or str(exc)),
                                  called=exc.called, held_out=exc.held_out) from None
    predicted = predict_customers(tables, as_of, horizon_days=horizon_days, clv_horizon_days=clv_horizon_days,
                                  discount_rate=discount_rate, analysis=analysis)
    rows = outcomes.rows.filter(pa.array(test))
    risk, clv = _risk_and_value(rows, predicted, horizon_days, clv_horizon_days, discount_rate)
    uplift = model.predict_uplift(features_matrix(rows))
    scored = [{"customer_id": c, "value_at_risk": r * v, "churn_risk": r, "value_kept": u * v, "uplift": u}
              for c, r, v, u in zip(rows["customer_id"].to_pylist(), risk, clv, uplift, strict=True)]
    y, t = kept[test], called[test]
    rankings = {name: _ranking_figures(y, t, _positions(scored, name), capacity)
                for name in ("uplift", "value_at_risk")}
    overall = uplift_at_capacity(y, t, np.zeros(len(y)), len(y))
    rankings["random"] = {"qini": 0.0 if t.any() and not t.all() else None,
                          "at_capacity": {**overall, "capacity": min(capacity, len(y))},
                          "curve": _line(qini_curve(y, t, np.zeros(len(y))), len(y))}
    return CallBacktest(
        as_of=as_of, horizon_days=horizon_days, capacity=capacity,
        training=_period(outcomes, train), evaluation=_period(outcomes, test), rankings=rankings,
        model={"kept_rate_called": model.kept_rate_called_, "kept_rate_held_out": model.kept_rate_held_out_,
               "average_uplift": model.average_uplift_},
        notes=[*(fit_note(w) for w in caught if issubclass(w.category, ModelFitWarning)), *predicted.notes],
    )


def _risk_and_value(rows: pa.Table, predicted: Predictions, horizon_days: int, clv_horizon_days: int,
                    discount_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Churn risk and CLV of the `rows` (features as of their list days) by the models of `predicted`."""
    f, r, t, m = (rows[c].to_numpy(zero_copy_only=False).astype(float) for c in ("frequency", "recency", "T",
                                                                                   "monetary_value"))
    features = Features(rows, rows.select(["frequency", "recency", "T"]), f, r, t, m)
    fits = Fits(predicted.beta_geo, predicted.gamma_gamma, predicted.shifted_beta_geo, predicted.churn,
                predicted.training_customers, [], [])
    scores = score(features, fits, horizon_days=horizon_days, clv_horizon_days=clv_horizon_days,
                   discount_rate=discount_rate)
    return scores.churn_risk, scores.clv


def _positions(scored: list[dict[str, Any]], ranking: str) -> np.ndarray:
    """A score that orders the customers as the keep list would (`rank_key`): the first gets the highest."""
    order = sorted(range(len(scored)), key=lambda i: rank_key(scored[i], ranking))
    position = np.empty(len(scored))
    position[order] = np.arange(len(scored), 0, -1)
    return position


def _ranking_figures(kept: np.ndarray, called: np.ndarray, score: np.ndarray, capacity: int) -> dict[str, Any]:
    return {"qini": qini_coefficient(kept, called, score), "at_capacity": uplift_at_capacity(kept, called, score,
                                                                                             capacity),
            "curve": _line(qini_curve(kept, called, score), len(kept))}


def _line(curve: tuple[np.ndarray, np.ndarray], n: int) -> list[dict[str, float]]:
    """The Qini curve at every tenth of the customers (linear between its points): share targeted, and the
    customers kept by the calls as a share of all."""
    k, q = curve
    shares = np.linspace(0, 1, 11)
    return [{"targeted": float(x), "kept_by_calls": float(np.interp(x * n, k, q) / n) if n else 0.0} for x in shares]


def _period(outcomes: CallOutcomes, chosen: np.ndarray) -> dict[str, Any]:
    days = [d for d, keep in zip(outcomes.rows["list_day"].to_pylist(), chosen, strict=True) if keep]
    called = int(outcomes.called[chosen].sum())
    return {"outcomes": int(chosen.sum()), "called": called, "held_out": int(chosen.sum()) - called,
            "first_list_day": min(days).isoformat() if days else None,
            "last_list_day": max(days).isoformat() if days else None}
