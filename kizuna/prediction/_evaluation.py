"""Backtest figures: how well risks rank and match what happened, and how predicted purchases
compare with actual ones (plain NumPy / scikit-learn on arrays, one value per customer).

* :func:`roc_auc` — the chance that a customer who churned got a higher score than one who stayed;
* :func:`top_decile_lift` — churn rate among the 10 % highest scores ÷ the overall churn rate;
* :func:`compare_at_capacity` — two rankings' precision among the day's calls, and whether the
  difference is more than chance (Newcombe's interval on the customers only one of them calls);
* :func:`calibration_table` — per decile of predicted risk: mean predicted vs actual churn rate;
* :func:`holdout_table` and :func:`holdout_aggregate` — the calibration/holdout comparison of
  Fader, Hardie & Lee (2005, figure 4): mean predicted vs mean actual holdout purchases by the
  number of repeat purchases in the calibration period (0, 1, …, 7+), and the totals;
* :func:`qini_curve`, :func:`qini_coefficient` and :func:`uplift_at_capacity` — how well a ranking
  finds the customers a call keeps, on customers called and held out uncalled (Radcliffe 2007).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kizuna.models import newcombe_interval

__all__ = ["at_capacity", "brier_score", "calibration_table", "compare_at_capacity", "holdout_aggregate",
           "holdout_table", "qini_coefficient", "qini_curve", "roc_auc", "top_decile_lift", "uplift_at_capacity"]


def _vectors(**arrays: Any) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=np.float64).ravel() for a in arrays.values()]
    lengths = {name: len(a) for name, a in zip(arrays, out, strict=True)}
    if len(set(lengths.values())) > 1:
        raise ValueError("one value per customer is needed in each input, but the lengths differ: "
                         + ", ".join(f"{k} {v:,}" for k, v in lengths.items()) + ".")
    for name, a in zip(arrays, out, strict=True):
        if np.isnan(a).any():
            raise ValueError(f"{name} has missing values; fill or drop those customers first.")
    return out


def roc_auc(y_true: Any, score: Any) -> float | None:
    """ROC AUC of `score` for the outcome `y_true` (1/0); None when only one outcome occurs.

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    from sklearn.metrics import roc_auc_score

    y, s = _vectors(y_true=y_true, score=score)
    positives = int(y.sum())
    if positives == 0 or positives == len(y):
        return None
    return float(roc_auc_score(y, s))


def top_decile_lift(y_true: Any, score: Any, fraction: float = 0.1) -> float | None:
    """Churn rate among the `fraction` highest scores ÷ the overall churn rate (1: no better than
    picking at random); None without customers or without a churner.

    The top group holds ceil(fraction × customers) customers; ties at its edge are broken by
    position (a stable sort), so the result does not depend on chance.

    >>> top_decile_lift([1, 0, 0, 0, 0, 0, 0, 0, 0, 1], [9, 1, 2, 3, 4, 5, 6, 7, 8, 0])
    5.0
    """
    y, s = _vectors(y_true=y_true, score=score)
    if not len(y) or y.sum() == 0:
        return None
    top = max(1, math.ceil(fraction * len(y)))
    highest = np.argsort(-s, kind="stable")[:top]
    return float(y[highest].mean() / y.mean())


def at_capacity(y_true: Any, score: Any, capacity: int) -> dict[str, float | None]:
    """The `capacity` highest scores as the day's calls: precision (churners among them), recall (their
    share of all churners) and lift (precision ÷ the overall churn rate). Ties at the edge are broken by
    position (a stable sort). None where a figure cannot be computed (no customers, no churner).

    >>> at_capacity([1, 0, 1, 0, 0, 1], [0.9, 0.8, 0.7, 0.1, 0.2, 0.3], 2)
    {'capacity': 2, 'precision': 0.5, 'recall': 0.3333333333333333, 'lift': 1.0}
    """
    y, s = _vectors(y_true=y_true, score=score)
    k = min(max(int(capacity), 1), len(y))
    if not len(y):
        return {"capacity": 0, "precision": None, "recall": None, "lift": None}
    top = np.argsort(-s, kind="stable")[:k]
    precision = float(y[top].mean())
    churners = float(y.sum())
    return {"capacity": k, "precision": precision, "recall": float(y[top].sum() / churners) if churners else None,
            "lift": precision / float(y.mean()) if churners else None}


def compare_at_capacity(y_true: Any, score: Any, other: Any, capacity: int) -> dict[str, Any] | None:
    """Does `score` find more churners than `other` among the day's `capacity` calls, beyond chance?

    Customers both rankings call count the same for both; the difference in precision comes from the
    ``d`` customers only `score` calls against the ``d`` only `other` calls. Those are two separate
    groups of customers, so the difference of their churn rates gets Newcombe's hybrid score interval
    (95 %), scaled by ``d / capacity`` to the lists' precision. ``verdict``: "better" when the whole
    interval lies above 0, "worse" when below, "no_difference" when it spans 0 (or the lists are
    the same). None without customers.

    >>> r = compare_at_capacity([1, 1, 0, 0, 1, 0], [6, 5, 4, 3, 2, 1], [6, 1, 5, 3, 2, 4], 2)
    >>> r["difference"], r["only_score"], r["only_other"], r["verdict"]
    (0.5, 1, 1, 'no_difference')
    """
    y, a, b = _vectors(y_true=y_true, score=score, other=other)
    if not len(y):
        return None
    k = min(max(int(capacity), 1), len(y))
    mine = np.zeros(len(y), dtype=bool)
    theirs = np.zeros(len(y), dtype=bool)
    mine[np.argsort(-a, kind="stable")[:k]] = True
    theirs[np.argsort(-b, kind="stable")[:k]] = True
    only_mine, only_theirs = mine & ~theirs, theirs & ~mine
    d = int(only_mine.sum())  # as many as only_theirs: both lists hold k customers
    hits_mine, hits_theirs = int(y[only_mine].sum()), int(y[only_theirs].sum())
    figures = {"capacity": k, "precision": float(y[mine].mean()), "other_precision": float(y[theirs].mean()),
               "only_score": d, "only_other": d, "only_score_churned": hits_mine, "only_other_churned": hits_theirs}
    if d == 0:
        return {**figures, "difference": 0.0, "low": 0.0, "high": 0.0, "verdict": "no_difference"}
    difference, low, high = (v * d / k for v in newcombe_interval(hits_mine, d, hits_theirs, d))
    verdict = "better" if low > 0 else "worse" if high < 0 else "no_difference"
    return {**figures, "difference": difference, "low": low, "high": high, "verdict": verdict}


def brier_score(y_true: Any, probability: Any) -> float | None:
    """Mean squared difference between the predicted probability and what happened (0 is perfect; always
    predicting the base rate p scores p(1 − p)). None without customers.

    >>> brier_score([1, 0], [0.8, 0.4])
    0.1
    """
    y, p = _vectors(y_true=y_true, probability=probability)
    return float(np.mean((p - y) ** 2)) if len(y) else None


def calibration_table(y_true: Any, risk: Any, bins: int = 10) -> list[dict[str, Any]]:
    """Per group of predicted risk (deciles by default, lowest risk first): customers, mean
    predicted risk, actual churn rate with its 95 % Wilson interval (``actual_low``,
    ``actual_high``; ``within_interval``: the mean prediction lies in it), and the group's risk range.

    Groups are by rank (equal sizes up to one customer; customers with equal risks may fall
    in adjacent groups), so every group has customers even when risks bunch up. The interval
    says how far a group's rate may stray by chance alone: with 125 customers in a group and a
    rate near 30 %, a perfectly calibrated model misses by more than 5 points about one time
    in five, so a gap is judged against the interval, not against a fixed number of points.

    >>> [(r["customers"], r["mean_predicted"], r["actual_rate"]) for r in
    ...  calibration_table([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9], bins=2)]
    [(2, 0.15000000000000002, 0.0), (2, 0.8, 1.0)]
    """
    from scipy.stats import binomtest

    y, r = _vectors(y_true=y_true, risk=risk)
    n = len(y)
    if bins < 1:
        raise ValueError("bins must be at least 1.")
    order = np.argsort(r, kind="stable")
    group = np.empty(n, dtype=np.int64)
    group[order] = np.arange(n) * bins // max(n, 1)
    rows = []
    for g in range(bins):
        members = group == g
        count = int(members.sum())
        if not count:
            continue
        churned = int(y[members].sum())
        interval = binomtest(churned, count).proportion_ci(confidence_level=0.95, method="wilson")
        mean_predicted = float(r[members].mean())
        rows.append({
            "bin": g + 1,
            "customers": count,
            "mean_predicted": mean_predicted,
            "actual_rate": churned / count,
            "actual_low": float(interval.low),
            "actual_high": float(interval.high),
            "within_interval": bool(interval.low <= mean_predicted <= interval.high),
            "min_risk": float(r[members].min()),
            "max_risk": float(r[members].max()),
        })
    return rows


def holdout_table(calibration_frequency: Any, predicted: Any, actual: Any,
                  max_frequency: int = 7) -> list[dict[str, Any]]:
    """The calibration/holdout table: per number of repeat purchases in the calibration period
    (0, 1, …, `max_frequency` and more), the customers, their mean predicted and mean actual
    purchases in the holdout period.

    Every frequency from 0 to `max_frequency` has a row (customers 0 and NaN means when nobody
    has it), so charts of different backtests line up; the last row, labelled "7+", holds
    everyone at or above `max_frequency`.

    >>> [(r["label"], r["customers"], r["mean_predicted"], r["mean_actual"])
    ...  for r in holdout_table([0, 0, 1, 3], [0.2, 0.4, 1.0, 2.5], [0, 1, 1, 2], max_frequency=2)]
    [('0', 2, 0.30000000000000004, 0.5), ('1', 1, 1.0, 1.0), ('2+', 1, 2.5, 2.0)]
    """
    f, p, a = _vectors(calibration_frequency=calibration_frequency, predicted=predicted, actual=actual)
    if max_frequency < 1:
        raise ValueError("max_frequency must be at least 1.")
    group = np.minimum(np.floor(f), max_frequency).astype(np.int64)
    if (group < 0).any():
        raise ValueError("calibration_frequency must not be negative.")
    counts = np.bincount(group, minlength=max_frequency + 1)
    sum_p = np.bincount(group, weights=p, minlength=max_frequency + 1)
    sum_a = np.bincount(group, weights=a, minlength=max_frequency + 1)
    rows = []
    for k in range(max_frequency + 1):
        count = int(counts[k])
        rows.append({
            "frequency": k,
            "label": f"{k}+" if k == max_frequency else str(k),
            "customers": count,
            "mean_predicted": float(sum_p[k] / count) if count else math.nan,
            "mean_actual": float(sum_a[k] / count) if count else math.nan,
        })
    return rows


def holdout_aggregate(predicted: Any, actual: Any) -> dict[str, Any]:
    """Total predicted vs actual holdout purchases over all customers, and the error in percent
    of the actual total (None when nothing was bought).

    >>> holdout_aggregate([0.5, 1.5, 2.0], [1, 1, 1])
    {'customers': 3, 'predicted': 4.0, 'actual': 3.0, 'error_pct': 33.333333333333336}
    """
    p, a = _vectors(predicted=predicted, actual=actual)
    total_p, total_a = float(p.sum()), float(a.sum())
    return {
        "customers": len(p),
        "predicted": total_p,
        "actual": total_a,
        "error_pct": 100.0 * (total_p - total_a) / total_a if total_a else None,
    }


def qini_curve(kept: Any, called: Any, score: Any) -> tuple[np.ndarray, np.ndarray]:
    """The Qini curve of a ranking (Radcliffe 2007): customers targeted k, and the customers a call kept
    among them, Q(k) = K_c(k) − K_h(k) × N_c(k) / N_h(k), where N_c, N_h are the called and the held out
    among the k highest scores and K_c, K_h those of them kept (K_h × N_c / N_h is 0 while N_h is 0).

    Customers with equal scores are one step of the curve (the straight line between its ends is the
    average over their orders), so a constant score gives the straight line of a random ranking.
    Returns k = 0, …, n at the end of each step, and Q(k) (Q(0) = 0).

    >>> k, q = qini_curve([1, 0, 1, 0], [1, 1, 0, 0], [0.9, 0.8, 0.7, 0.6])
    >>> k.tolist(), q.tolist()
    ([0, 1, 2, 3, 4], [0.0, 1.0, 1.0, -1.0, 0.0])
    """
    y, t, s = _vectors(kept=kept, called=called, score=score)
    if not len(y):
        return np.zeros(1, dtype=np.int64), np.zeros(1)
    order = np.argsort(-s, kind="stable")
    y, t, s = y[order], t[order], s[order]
    ends = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    n_called = np.cumsum(t)[ends]
    n_held = ends + 1 - n_called
    kept_called = np.cumsum(y * t)[ends]
    kept_held = np.cumsum(y * (1 - t))[ends]
    expected = np.divide(kept_held * n_called, n_held, out=np.zeros(len(ends)), where=n_held > 0)
    return np.r_[0, ends + 1].astype(np.int64), np.r_[0.0, kept_called - expected]


def qini_coefficient(kept: Any, called: Any, score: Any) -> float | None:
    """The area between the Qini curve and the straight line of a random ranking, with customers and
    kept customers both as shares of all customers (k / n, Q(k) / n): 0 for a ranking no better than
    chance, positive when the customers a call keeps come first. None without a called or a held-out
    customer (nothing to compare).

    >>> qini_coefficient([1, 0, 1, 0], [1, 1, 0, 0], [0.9, 0.8, 0.7, 0.6])
    0.0625
    """
    y, t, s = _vectors(kept=kept, called=called, score=score)
    if not t.any() or t.all():
        return None
    k, q = qini_curve(y, t, s)
    x, height = k / len(y), q / len(y)
    area = float(np.sum((x[1:] - x[:-1]) * (height[1:] + height[:-1]) / 2))
    return area - float(height[-1]) / 2


def uplift_at_capacity(kept: Any, called: Any, score: Any, capacity: int) -> dict[str, Any]:
    """Among the `capacity` highest scores: the customers called and held out, their kept rates, and
    the difference (the observed uplift of the calls a day's capacity would make on that ranking).
    Ties at the edge are broken by position (a stable sort). A rate is None without customers in its
    group, the uplift None without both.

    >>> uplift_at_capacity([1, 0, 1, 0, 1], [1, 1, 0, 0, 1], [5, 4, 3, 2, 1], 4)["uplift"]
    0.0
    """
    y, t, s = _vectors(kept=kept, called=called, score=score)
    k = min(max(int(capacity), 0), len(y))
    top = np.argsort(-s, kind="stable")[:k]
    yc, yh = y[top][t[top] == 1], y[top][t[top] == 0]
    rate_called = float(yc.mean()) if len(yc) else None
    rate_held = float(yh.mean()) if len(yh) else None
    return {"capacity": k, "called": len(yc), "held_out": len(yh), "kept_rate_called": rate_called,
            "kept_rate_held_out": rate_held,
            "uplift": rate_called - rate_held if rate_called is not None and rate_held is not None else None}
