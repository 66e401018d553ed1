"""The effect of a call, learned from the calls (docs/measures.md#uplift-ranking): which customers a call
keeps that would otherwise leave, so that the keep list calls them first.

The keep list leaves a stable, hashed share of the customers it would call uncalled (`[calls]
holdout_share`, `call_holdout`). The customers on the lists — called, or held out — and what became of
them are the data (`call_outcomes`):

* **list periods**: the calls are grouped by week (`period_days`, Monday to Sunday); the list of a week
  is as of the end of the day before it (its *list day*): who could be called then (`active` or
  `at_risk`, a telephone number, not called within `[calls] cooldown_days`), with the churn features
  of that day;
* **called**: those of them called in the week; **held out**: the held-out customers the list would
  have called that week. Nobody records them (no list is stored), so they are found the way the list
  found the called: a classifier learns, from the customers who could be called and were not held
  out, who was called; of the held-out customers who could be called, the ones it scores highest are
  taken, as many as the holdout share gives for that week's calls (n × share / (1 − share));
* **kept**: ordered, and did not cancel a subscription, within `horizon_days` after the list day (the
  churn model's outcome, reversed). A customer counts once per horizon: a later list within the
  horizon of their earlier one is left out, and a held-out customer already taken within the horizon
  is not taken again (as the cooldown keeps a customer called off the next lists).

The outcomes of the latest `max_periods` weeks whose horizon has passed are used, one query per week:
the cost of `kizuna predict` grows with them.

`UpliftModel` estimates each customer's uplift — P(kept | called) − P(kept | held out) — with two
models (a T-learner: one gradient-boosting classifier per group, on the churn features), and
`call_uplift` fits it as of a day once `[calls] min_outcomes` outcomes exist; the keep list then ranks
by the expected value kept by calling, uplift × CLV (`with_call_uplift`, `KEEP_ORDERS`).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import ibis
import numpy as np
import pyarrow as pa

from kizuna._errors import KizunaError, Phrase
from kizuna.analytics import KEEP_STATES, AnalysisSettings, AsOf, lifecycle_states
from kizuna.i18n import say
from kizuna.models import ModelFitWarning, ModelNotFittedError, fit_note
from kizuna.prediction._call_rules import has_phone, recently_called
from kizuna.prediction._calls import in_call_holdout
from kizuna.prediction._churn import constant_where_empty
from kizuna.prediction._features import CHURN_FEATURES, MODEL_COLUMNS, churn_labels, customer_features

__all__ = ["CALL_EFFECT_COLUMNS", "KEEP_ORDERS", "CallOutcomes", "CallUplift", "UpliftDataError",
           "UpliftModel", "call_outcomes", "call_uplift", "features_matrix", "keep_ranking", "rank_key",
           "with_call_uplift"]

# The columns `with_call_uplift` adds to customer_predictions (after PREDICTION_COLUMNS).
CALL_EFFECT_COLUMNS = ("uplift", "value_kept", "call_outcomes")
# The keep list's rankings, each by these columns (highest first, a missing value last), then customer id.
KEEP_ORDERS = {"value_at_risk": ("value_at_risk", "churn_risk"), "uplift": ("value_kept", "uplift", "churn_risk")}
# The periods of the lists start on Mondays (2001-01-01 was one).
_MONDAY = dt.date(2001, 1, 1)
# Customers who could be called and were not, per customer called, that teach the classifier who was.
_NEGATIVES_PER_CALL = 20


class UpliftDataError(KizunaError):
    """The call outcomes cannot support an estimate of the effect of a call (too few, or nobody held out).

    Carries ``called`` and ``held_out``: the outcomes of each group."""

    def __init__(self, message: str | Phrase, *, called: int, held_out: int) -> None:
        self.called, self.held_out = called, held_out
        super().__init__(message)


class UpliftModel:
    """The effect of a call on keeping a customer, from customers called and held out (a T-learner).

    One scikit-learn ``HistGradientBoostingClassifier`` learns P(kept) from the called customers'
    features, another from the held-out customers'; a customer's uplift is the difference of the two.
    A group whose customers all had the same outcome, or too few to split, gets its kept rate for
    everyone instead of a classifier.

    Parameters
    ----------
    min_group
        Fewer outcomes than this in either group raise :class:`UpliftDataError`.
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization
        Passed to each group's classifier (small trees, slow learning: the groups are often small).
    random_state
        Seed of the classifiers: the same data give the same model.

    Attributes (after ``fit``)
    --------------------------
    feature_names_ : tuple of the feature names
    n_called_, n_held_out_ : int, outcomes of each group
    kept_rate_called_, kept_rate_held_out_ : float, the observed kept rates
    average_uplift_ : float, kept_rate_called_ − kept_rate_held_out_

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(size=(4000, 1))
    >>> called = rng.uniform(size=4000) < 0.5
    >>> kept = rng.uniform(size=4000) < 0.3 + 0.4 * called * (X[:, 0] > 0.5)
    >>> model = UpliftModel().fit(X, called, kept, ["x"])
    >>> model.predict_uplift([[0.9], [0.1]]).round(1).tolist()  # doctest: +SKIP
    [0.4, 0.0]
    """

    def __init__(self, *, min_group: int = 20, max_iter: int = 100, learning_rate: float = 0.05,
                 max_leaf_nodes: int = 8, min_samples_leaf: int = 20, l2_regularization: float = 1.0,
                 random_state: int = 0) -> None:
        self.min_group = min_group
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state

    def __repr__(self) -> str:
        if not hasattr(self, "called_model_"):
            return "UpliftModel()"
        return (f"UpliftModel(called={self.n_called_:,}, held out={self.n_held_out_:,}, "
                f"average uplift={self.average_uplift_:+.3f})")

    def fit(self, X: Any, called: Any, kept: Any, feature_names: Sequence[str] | None = None) -> UpliftModel:
        """Learn from features `X` (customers × features, NaN = unknown), `called` (1: called, 0: held out)
        and `kept` (1: kept, 0: left). Raises :class:`UpliftDataError` when either group has fewer than
        `min_group` outcomes; warns (:class:`ModelFitWarning`) when one has fewer than 100."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X must be customers × features, got shape {X.shape}.")
        names = tuple(str(n) for n in feature_names) if feature_names is not None else tuple(
            f"x{j}" for j in range(X.shape[1]))
        if len(names) != X.shape[1]:
            raise ValueError(f"{len(names)} feature names for {X.shape[1]} columns.")
        t, y = _binary(called, "called", len(X)), _binary(kept, "kept", len(X))
        n_called, n_held = int(t.sum()), int(len(t) - t.sum())
        if not len(t):
            raise UpliftDataError(Phrase.of("error.uplift_no_outcomes"), called=0, held_out=0)
        if n_held == 0:
            raise UpliftDataError(Phrase.of("error.uplift_no_held_out", n=f"{len(t):,}"), called=n_called, held_out=0)
        if min(n_called, n_held) < self.min_group:
            key = "error.uplift_few_held_out" if n_held < n_called else "error.uplift_few_called"
            raise UpliftDataError(Phrase.of(key, n=f"{min(n_called, n_held):,}", called=f"{n_called:,}",
                                            held=f"{n_held:,}", least=f"{self.min_group:,}"),
                                  called=n_called, held_out=n_held)
        if min(n_called, n_held) < 100:
            warnings.warn(ModelFitWarning(Phrase.of("note.uplift_small_group", n=f"{min(n_called, n_held):,}",
                                                    called=f"{n_called:,}", held=f"{n_held:,}")), stacklevel=2)
        self.called_model_ = self._group_model(X[t == 1], y[t == 1])
        self.held_out_model_ = self._group_model(X[t == 0], y[t == 0])
        self.feature_names_ = names
        self.n_called_, self.n_held_out_ = n_called, n_held
        self.kept_rate_called_ = float(y[t == 1].mean())
        self.kept_rate_held_out_ = float(y[t == 0].mean())
        self.average_uplift_ = self.kept_rate_called_ - self.kept_rate_held_out_
        return self

    def _group_model(self, X: np.ndarray, y: np.ndarray) -> Any:
        rate = float(y.mean())
        if rate in (0.0, 1.0) or len(y) < 2 * self.min_samples_leaf:
            return rate
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization, early_stopping=False,
            random_state=self.random_state,
        ).fit(constant_where_empty(X), y)

    def predict_kept(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """P(kept) if called, and if not, for each row of `X` (the features in `feature_names_` order)."""
        if not hasattr(self, "called_model_"):
            raise ModelNotFittedError(type(self).__name__)
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names_):
            raise ValueError(f"X must have {len(self.feature_names_)} columns ({', '.join(self.feature_names_)}).")
        return _probability(self.called_model_, X), _probability(self.held_out_model_, X)

    def predict_uplift(self, X: Any) -> np.ndarray:
        """P(kept | called) − P(kept | not called) for each row of `X`: what a call adds to the chance of keeping
        the customer (negative: the call would do harm)."""
        called, held = self.predict_kept(X)
        return called - held


def _probability(model: Any, X: np.ndarray) -> np.ndarray:
    if isinstance(model, float):
        return np.full(len(X), model)
    return model.predict_proba(X)[:, 1] if len(X) else np.empty(0)


def _binary(values: Any, name: str, n: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if len(array) != n:
        raise ValueError(f"{name} has {len(array):,} values for {n:,} customers.")
    if not np.isin(array, (0.0, 1.0)).all():
        raise ValueError(f"{name} must be 1 or 0 for every customer.")
    return array.astype(np.int64)


# -- the outcomes of the keep lists ---------------------------------------------------------------------------
@dataclass
class CallOutcomes:
    """The customers who were on a keep list, called or held out, and whether they were kept (`call_outcomes`)."""

    as_of: dt.date
    horizon_days: int
    period_days: int
    # customer_id, list_day, called (1/0), kept (1/0), lifecycle_state, MODEL_COLUMNS, CHURN_FEATURES
    rows: pa.Table
    pending: int = 0  # customers called in periods whose horizon has not passed by the as-of date

    @property
    def outcomes(self) -> int:
        return self.rows.num_rows

    @property
    def called(self) -> np.ndarray:
        return self.rows["called"].to_numpy()

    @property
    def kept(self) -> np.ndarray:
        return self.rows["kept"].to_numpy()

    @property
    def matrix(self) -> np.ndarray:
        """CHURN_FEATURES, customers × features (NaN: unknown)."""
        return features_matrix(self.rows)

    def counts(self) -> dict[str, int]:
        called = int(self.called.sum())
        return {"outcomes": self.outcomes, "called": called, "held_out": self.outcomes - called,
                "pending": self.pending}


def features_matrix(table: pa.Table) -> np.ndarray:
    """The churn features of `table`'s rows as a float matrix (NULL: NaN)."""
    if not table.num_rows:
        return np.empty((0, len(CHURN_FEATURES)))
    return np.column_stack([table[c].cast(pa.float64()).to_numpy(zero_copy_only=False) for c in CHURN_FEATURES])


def call_outcomes(
    tables: dict[str, ibis.Table], as_of: dt.date, *, secret: str, holdout_share: float, horizon_days: int = 90,
    cooldown_days: int = 14, period_days: int = 7, max_periods: int = 26, analysis: AnalysisSettings | None = None,
    random_state: int = 0,
) -> CallOutcomes:
    """The call outcomes known at the end of `as_of` (see the module docstring): one row per customer and
    list period whose horizon has passed, called or held out, with the features of the list day.

    `secret` and `holdout_share` say who is held out (`in_call_holdout`); `period_days` groups the calls
    into lists (7: weeks from Monday; 1: a list a day); the latest `max_periods` periods whose horizon
    has passed are used. One query per list period."""
    calls = tables.get("calls")
    if calls is None:
        return CallOutcomes(as_of, horizon_days, period_days, _empty_rows())
    seen = calls.filter(AsOf(as_of).before_end(calls.called_at))
    days = seen.select("customer_id", day=seen.called_at.date()).distinct().to_pyarrow()
    by_period: dict[dt.date, set[str]] = {}
    for customer, day in zip(days["customer_id"].to_pylist(), days["day"].to_pylist(), strict=True):
        start = day - dt.timedelta(days=(day - _MONDAY).days % period_days)
        by_period.setdefault(start, set()).add(customer)
    ended = sorted(s for s in by_period if s - dt.timedelta(days=1) + dt.timedelta(days=horizon_days) <= as_of)
    known = ended[-max_periods:]
    pending = sum(len(c) for s, c in by_period.items() if s > known[-1]) if known else sum(map(len, by_period.values()))
    if not known:
        return CallOutcomes(as_of, horizon_days, period_days, _empty_rows(), pending)
    rng = np.random.default_rng(random_state)
    parts: list[tuple[dt.date, pa.Table, np.ndarray, np.ndarray]] = []  # day, rows, called, held out
    learn: list[tuple[np.ndarray, np.ndarray]] = []  # who was called, among those not held out
    for start in known:
        day = start - dt.timedelta(days=1)
        rows = _period_rows(tables, seen, day, horizon_days, cooldown_days, analysis)
        ids = rows["customer_id"].to_pylist()
        was_called = np.fromiter((c in by_period[start] for c in ids), bool, len(ids))
        held = np.fromiter((in_call_holdout(c, secret, holdout_share) for c in ids), bool, len(ids))
        treated = was_called & ~held
        if not treated.any():  # the week's calls were not keep-list calls (win-back, lost customers)
            continue
        others = np.flatnonzero(~was_called & ~held)
        if len(others) > _NEGATIVES_PER_CALL * treated.sum():
            others = np.sort(rng.choice(others, _NEGATIVES_PER_CALL * int(treated.sum()), replace=False))
        keep = np.flatnonzero(treated | held)
        matrix = features_matrix(rows)
        learn.append((np.vstack([matrix[treated], matrix[others]]),
                      np.r_[np.ones(int(treated.sum())), np.zeros(len(others))]))
        parts.append((day, rows.take(pa.array(keep)), treated[keep], held[keep]))
    if not parts:
        return CallOutcomes(as_of, horizon_days, period_days, _empty_rows(), pending)
    listed = _on_the_list(parts, learn, holdout_share, horizon_days, random_state)
    return CallOutcomes(as_of, horizon_days, period_days, _ordered(listed), pending)


def _period_rows(tables: dict[str, ibis.Table], calls: ibis.Table, day: dt.date, horizon_days: int,
                 cooldown_days: int, analysis: AnalysisSettings | None) -> pa.Table:
    """Who the list as of `day` could call (active or at risk, a phone, not in the cooldown), with their
    features then and whether they were kept in the `horizon_days` after it; in customer order."""
    customers = tables["customers"]
    reachable = customers.filter(has_phone(customers.phone)).customer_id
    states = lifecycle_states(tables, day, analysis)
    # IN / NOT IN, not semi and anti joins: in a chain of joins Ibis writes those as LEFT SEMI / ANTI
    # JOIN, which PostgreSQL does not know
    states = states.filter(states.lifecycle_state.isin(KEEP_STATES), states.customer_id.isin(reachable))
    cooled = recently_called(calls, day, cooldown_days)
    if cooled is not None:
        states = states.filter(~states.customer_id.isin(cooled.customer_id))
    labels = churn_labels(tables, day, horizon_days).select("customer_id", "churned")
    pool = (customer_features(tables, day).inner_join(states.select("customer_id", "lifecycle_state"), "customer_id")
            .inner_join(labels, "customer_id"))
    return pool.order_by("customer_id").select(
        "customer_id", list_day=ibis.literal(day), lifecycle_state=pool.lifecycle_state.cast("string"),
        kept=(1 - pool.churned).cast("int64"), **{c: pool[c] for c in (*MODEL_COLUMNS, *CHURN_FEATURES)},
    ).to_pyarrow()


def _on_the_list(parts: list[tuple[dt.date, pa.Table, np.ndarray, np.ndarray]],
                 learn: list[tuple[np.ndarray, np.ndarray]], share: float, horizon_days: int,
                 random_state: int) -> pa.Table:
    """Period by period, in order: the customers called, and of the held-out customers those the list would
    have called — the ones a classifier of who was called scores highest, n × share / (1 − share) of them for
    n called. Only a customer's first list within `horizon_days` counts (outcome windows do not overlap), for
    the called and the held out alike."""
    X = np.vstack([x for x, _ in learn])
    y = np.concatenate([c for _, c in learn])
    empty = np.isnan(X).all(axis=0)  # a feature nobody has: a constant, which no tree splits on
    model = None  # everyone who could be called was: so would every held-out customer have been
    if y.min() != y.max():
        from sklearn.ensemble import HistGradientBoostingClassifier

        X = X.copy()
        X[:, empty] = 0.0
        model = HistGradientBoostingClassifier(max_iter=100, max_leaf_nodes=15, early_stopping=False,
                                               random_state=random_state).fit(X, y)
    tables = []
    last: dict[str, dt.date] = {}  # customer -> the list day of their outcome window
    for day, rows, treated, held in parts:
        ids = rows["customer_id"].to_pylist()
        free = np.fromiter((c not in last or (day - last[c]).days >= horizon_days for c in ids), bool, len(ids))
        called = np.flatnonzero(treated & free)
        candidates = np.flatnonzero(held & free)
        wanted = round(len(called) * share / (1 - share)) if share < 1 else len(candidates)
        if model is None or len(candidates) <= wanted:
            chosen = candidates
        else:
            matrix = features_matrix(rows.take(pa.array(candidates)))
            matrix[:, empty] = 0.0
            likely = model.predict_proba(matrix)[:, 1]
            chosen = candidates[np.argsort(-likely, kind="stable")[:wanted]]
        keep = np.sort(np.r_[called, chosen]).astype(np.int64)
        last.update((ids[i], day) for i in keep)
        listed = rows.take(pa.array(keep, pa.int64()))
        tables.append(listed.append_column("called", pa.array(treated[keep].astype(np.int64))))
    return pa.concat_tables(tables)


def _ordered(rows: pa.Table) -> pa.Table:
    columns = ["customer_id", "list_day", "called", "kept", "lifecycle_state", *MODEL_COLUMNS, *CHURN_FEATURES]
    return rows.select(columns)


def _empty_rows() -> pa.Table:
    types = {"customer_id": pa.string(), "list_day": pa.date32(), "called": pa.int64(), "kept": pa.int64(),
             "lifecycle_state": pa.string()}
    columns = ["customer_id", "list_day", "called", "kept", "lifecycle_state", *MODEL_COLUMNS, *CHURN_FEATURES]
    return pa.table({c: pa.array([], types.get(c, pa.float64())) for c in columns})


# -- the uplift of the day's customers ------------------------------------------------------------------------
@dataclass
class CallUplift:
    """What the call outcomes say as of a day: how many there are, and the model of the effect of a call
    (None: fewer than `min_outcomes`, or `problem` says why it could not be estimated)."""

    as_of: dt.date
    min_outcomes: int
    outcomes: int = 0
    called: int = 0
    held_out: int = 0
    pending: int = 0
    model: UpliftModel | None = None
    problem: Phrase | str | None = None
    notes: list[str | Phrase] = field(default_factory=list)

    @property
    def ranking(self) -> str:
        """The keep list's ranking these outcomes allow: "uplift" with a model, else "value_at_risk"."""
        return "uplift" if self.model is not None else "value_at_risk"

    def to_dict(self, lang: str = "ja") -> dict[str, Any]:
        model = self.model
        return {"as_of": self.as_of.isoformat(), "ranking": self.ranking, "outcomes": self.outcomes,
                "min_outcomes": self.min_outcomes, "called": self.called, "held_out": self.held_out,
                "pending": self.pending, "problem": say(self.problem, lang) if self.problem else None,
                "notes": [say(note, lang) for note in self.notes],
                "kept_rate_called": model.kept_rate_called_ if model else None,
                "kept_rate_held_out": model.kept_rate_held_out_ if model else None,
                "average_uplift": model.average_uplift_ if model else None}


def call_uplift(
    tables: dict[str, ibis.Table], as_of: dt.date, *, secret: str, holdout_share: float, min_outcomes: int,
    horizon_days: int = 90, cooldown_days: int = 14, period_days: int = 7, analysis: AnalysisSettings | None = None,
    outcomes: CallOutcomes | None = None,
) -> CallUplift:
    """The call outcomes known at the end of `as_of` (`call_outcomes`, or the `outcomes` given) and, once
    there are `min_outcomes` of them, the `UpliftModel` fitted on them. Too few held-out or called
    customers leave the model None with the reason in `problem`; a weak fit's warning goes to `notes`."""
    if outcomes is None:
        outcomes = call_outcomes(tables, as_of, secret=secret, holdout_share=holdout_share,
                                 horizon_days=horizon_days, cooldown_days=cooldown_days, period_days=period_days,
                                 analysis=analysis)
    result = CallUplift(as_of, min_outcomes, **outcomes.counts())
    if outcomes.outcomes < min_outcomes:
        return result
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ModelFitWarning)
        try:
            result.model = UpliftModel().fit(outcomes.matrix, outcomes.called, outcomes.kept, CHURN_FEATURES)
        except UpliftDataError as exc:
            result.problem = exc.phrase or str(exc)
    result.notes += [fit_note(w) for w in caught if issubclass(w.category, ModelFitWarning)]
    return result


def with_call_uplift(predictions: pa.Table, features: pa.Table, fit: CallUplift | None) -> pa.Table:
    """`predictions` (row for row with `features`, as `predict_customers` gives them) with ``uplift``, the
    expected ``value_kept`` by calling (uplift × CLV) and ``call_outcomes`` (the outcomes known): NULL
    uplift and value without a model, never NaN."""
    n = predictions.num_rows
    uplift = np.full(n, np.nan)
    if fit is not None and fit.model is not None and n:
        uplift = fit.model.predict_uplift(features_matrix(features))
    clv = predictions["clv"].to_numpy(zero_copy_only=False).astype(np.float64)
    value = uplift * clv
    outcomes = fit.outcomes if fit is not None else 0
    return (predictions
            .append_column("uplift", pa.array(uplift, pa.float64(), mask=~np.isfinite(uplift)))
            .append_column("value_kept", pa.array(value, pa.float64(), mask=~np.isfinite(value)))
            .append_column("call_outcomes", pa.array(np.full(n, outcomes), pa.int64())))


def keep_ranking(outcomes: int | None, min_outcomes: int, estimated: bool) -> str:
    """The keep list's ranking: "uplift" when `min_outcomes` call outcomes are known and the predictions
    carry the effect of a call (`estimated`: an uplift, see `with_call_uplift`), else "value_at_risk".

    >>> keep_ranking(250, 200, True), keep_ranking(150, 200, True), keep_ranking(250, 200, False)
    ('uplift', 'value_at_risk', 'value_at_risk')
    """
    return "uplift" if estimated and (outcomes or 0) >= min_outcomes else "value_at_risk"


def rank_key(row: dict[str, Any], ranking: str) -> tuple:
    """Sort key of a customer (a dict with the ranking's columns) in `ranking`'s order (`KEEP_ORDERS`):
    highest first, a missing number last, then by customer id — as `call_lists` orders in the engine."""
    def highest_first(value: Any) -> tuple[bool, float]:
        known = isinstance(value, int | float) and np.isfinite(value)
        return (not known, -float(value) if known else 0.0)

    return (*(highest_first(row.get(column)) for column in KEEP_ORDERS[ranking]), str(row.get("customer_id")))
