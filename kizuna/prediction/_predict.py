"""`predict`: every customer's P(alive), expected orders, next order, order value, CLV, churn risk and
its reasons, and value at risk, as of a date (docs/measures.md §3).

A pipeline of stages, each a function of what it is given, composed in `predict_customers`:
features (`read_features`) → fit (`fit_models`) → score (`score`) → explain (`explain`) → the
table to store (`prediction_table`; the caller stores it). The engine does the per-customer work
(`customer_features`) and the aggregation to sufficient statistics; the models are fitted in
NumPy on what comes back:

* BG/NBD on (frequency, recency, T) counts: P(alive), expected orders, the next order's date;
* Gamma-Gamma on the repeat buyers: expected order value, hence the CLV over `clv_horizon_days`,
  discounted month by month;
* the churn model on the features of `horizon_days` before the as-of date and what happened in
  the `horizon_days` after them (no order, or a cancelled subscription): the churn risk now, and
  the three features that raise each customer's risk most, in words;
* the shifted-beta-geometric model on the subscriptions' monthly survival: each subscriber's
  probability of cancelling within the horizon, for the summary and the call list.

`PredictionError` says plainly when the data cannot carry a model (too few repeat buyers, too
short a history) instead of producing numbers nobody should act on. When BG/NBD, Gamma-Gamma or
sBG do not fit the data (`kizuna.models.ModelFitError`: e.g. customers who all keep buying for
ten years, so nobody drops out and BG/NBD runs off to a → 0), the prediction goes on without
that model: what it would give is stored as NULL (never NaN), Gamma-Gamma's order value falls
back to each customer's own average, and a `FitProblem` says in one line which model did not fit
and what that means (`FitProblem.line`, in Japanese or English).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import special

from kizuna._errors import KizunaError, Phrase
from kizuna.analytics import KEEP_STATES, LOST_STATES, AnalysisSettings, AsOf, lifecycle_states
from kizuna.i18n import label
from kizuna.models import (
    BetaGeo,
    ConvergenceWarning,
    GammaGamma,
    ModelFitError,
    ModelFitWarning,
    ShiftedBetaGeo,
    fit_note,
)
from kizuna.prediction._churn import ChurnModel, boosting_threads
from kizuna.prediction._features import (
    CHURN_FEATURES,
    churn_labels,
    customer_features,
    earlier_summary,
    purchase_summary,
)
from kizuna.prediction._reasons import reason_text_arrays

__all__ = ["GONE", "PREDICTION_COLUMNS", "Features", "FitProblem", "Fits", "PredictionError",
           "Predictions", "Scores", "churn_scores", "explain", "fit_models", "keep_count", "predict_customers",
           "prediction_table", "purchase_figures", "read_features", "score", "scored_rows"]

# The stored columns of customer_predictions, in order.
PREDICTION_COLUMNS = (
    "customer_id", "as_of", "horizon_days", "p_alive", "expected_orders", "expected_next_order_on",
    "expected_order_value", "clv", "clv_profit", "churn_risk", "value_at_risk", "cancel_probability",
    "churn_reasons_ja", "churn_reasons_en", "open_contacts", "days_since_life_event", "lifecycle_state",
    "lost_since",
)
# The hard rule of docs/measures.md#lifecycle-state: a subscriber who cancelled and has not ordered
# since is gone, whatever their purchase history says: churn risk 1, P(alive) 0, nothing expected.
GONE = "subscription_cancelled"
MIN_REPEAT_BUYERS = 30  # fewer cannot pin the BG/NBD and Gamma-Gamma parameters down
MIN_TRAINING_CUSTOMERS = 200
MIN_TRAINING_WINDOW = 30  # days: the shortest window the churn model is trained on
NEXT_ORDER_SEARCH_DAYS = 3 * 365  # an order not expected within three years has no date
MONTH_DAYS = 365.25 / 12


class PredictionError(KizunaError):
    """The workspace's data cannot support a prediction model; the message says why and what to do."""


@dataclass
class FitProblem:
    """A model that did not fit the workspace's data (or gave no number for some customers), and
    what the prediction did instead.

    ``reason`` is a `ModelFitError` reason, ``"not_converged"`` (the optimiser stopped early), or
    ``"partial"`` (BG/NBD fitted, but its figures are not finite for ``customers`` customers).
    """

    model: str  # "bg_nbd", "gamma_gamma" or "shifted_beta_geo"
    reason: str
    detail: str  # the model's own words (English), for the curious and for bug reports
    history_days: int = 0  # the longest customer history: "nobody has dropped out in 10 years"
    customers: int = 0  # "partial": customers without BG/NBD figures

    def line(self, lang: str = "ja") -> str:
        """One line for people: which model did not fit, why, and what is left empty or estimated instead."""
        if self.reason == "partial":
            return label("fit_partial_bg_nbd", lang).format(n=f"{self.customers:,}")
        days = self.history_days
        span = (label("span_years", lang).format(n=round(days / 365.25)) if days >= 365 else
                label("span_days", lang).format(n=days))
        why = label(f"fit_reason_{self.reason}", lang).format(span=span)
        return label(f"fit_failed_{self.model}", lang).format(reason=why)

    def to_dict(self, lang: str = "ja") -> dict[str, object]:
        return {"model": self.model, "reason": self.reason, "message": self.line(lang), "detail": self.detail}


@dataclass
class Predictions:
    """What `predict_customers` found: the per-customer table and the models behind it.

    `beta_geo` and `gamma_gamma` are None when that model did not fit the data (see `problems`):
    BG/NBD's columns are then NULL, Gamma-Gamma's order value each customer's own average.
    """

    as_of: dt.date
    horizon_days: int
    clv_horizon_days: int
    table: pa.Table  # PREDICTION_COLUMNS, one row per customer who has ordered
    beta_geo: BetaGeo | None
    gamma_gamma: GammaGamma | None
    churn: ChurnModel
    shifted_beta_geo: ShiftedBetaGeo | None
    training_customers: int
    repeat_buyers: int
    features: pa.Table  # the inputs (customer_features), row for row with `table`
    notes: list[str | Phrase] = field(default_factory=list)  # plain-language caveats about the fit
    problems: list[FitProblem] = field(default_factory=list)  # models that did not fit, one line each

    def problem(self, model: str) -> FitProblem | None:
        return next((p for p in self.problems if p.model == model and p.reason != "partial"), None)

    def model_fit(self) -> dict[str, object]:
        """The fitted parameters, their standard errors and how well each model did, for reports.

        Numbers only: a standard error that could not be computed is None, never NaN; a model that
        did not fit has ``params`` None and its ``problem`` (a reason, see `FitProblem`).
        """
        def described(model, key: str, extra: dict | None = None) -> dict[str, object] | None:
            problem = self.problem(key)
            if model is None:
                if problem is None:
                    return None
                return {"params": None, "standard_errors": None, "converged": False, "problem": problem.reason,
                        **(extra or {})}
            return {"params": _finite(model.params_),
                    "standard_errors": _finite(getattr(model, "standard_errors_", None)),
                    "converged": getattr(model, "converged_", None), **(extra or {})}

        return {
            "bg_nbd": described(self.beta_geo, "bg_nbd", {"repeat_buyers": self.repeat_buyers}),
            "gamma_gamma": described(self.gamma_gamma, "gamma_gamma"),
            "churn": {"validation_auc": self.churn.validation_auc_, "training_customers": self.training_customers,
                      "population": getattr(self.churn, "population_", list(KEEP_STATES)),
                      "calibration": self.churn.calibration_},
            "shifted_beta_geo": described(self.shifted_beta_geo, "shifted_beta_geo"),
        }


def _import_beside() -> None:
    """The churn model's scikit-learn modules imported on a thread while the engine computes the features
    (a query that lets go of the GIL): the fit would otherwise wait for the import after the query."""
    import threading

    def load() -> None:
        with contextlib.suppress(ImportError):  # the fit says so itself
            import sklearn.ensemble  # noqa: F401
            import sklearn.isotonic  # noqa: F401
            import sklearn.metrics  # noqa: F401
            import sklearn.model_selection  # noqa: F401
            import threadpoolctl  # noqa: F401

    threading.Thread(target=load, name="kizuna-import", daemon=True).start()


def _release_memory() -> None:
    """Arrow's freed memory, and what C's allocator keeps in each thread's arena (glibc's `malloc_trim`:
    NumPy's arrays freed on the worker threads), handed back to the system."""
    pa.default_memory_pool().release_unused()
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):  # not glibc
        pass


def _finite(values: dict[str, float] | None) -> dict[str, float | None] | None:
    if values is None:
        return None
    return {k: (float(v) if v is not None and np.isfinite(v) else None) for k, v in values.items()}


def _numbers(values: np.ndarray) -> pa.Array:
    """float64 with NULL wherever a value is not a finite number: nothing stored is NaN or infinite."""
    array = np.asarray(values, dtype=np.float64)
    return pa.array(array, pa.float64(), mask=~np.isfinite(array))


def predict_customers(
    tables: dict[str, ibis.Table], as_of: dt.date, *, horizon_days: int = 90, clv_horizon_days: int = 365,
    discount_rate: float = 0.1, gross_margin_rate: float = 0.4, analysis: AnalysisSettings | None = None,
) -> Predictions:
    """Fit the models on the data up to `as_of` and predict every customer who has ordered.

    features → fit → score → explain → the table to store (storing is the caller's). `analysis`
    ([analysis]) defines the lifecycle states (its dormant days, lapse factor, NPS validity).
    """
    cutoff = as_of - dt.timedelta(days=horizon_days)
    _import_beside()
    # one grouping of the orders by customer and day for the features now and the churn model's first
    # training rows (the features as of the cut-off), kept in the engine while both are read
    with _purchases(tables, as_of, earlier=cutoff) as purchases:
        features = read_features(tables, as_of, analysis, purchases=purchases)
        training = _training_rows(tables, cutoff, horizon_days, analysis, KEEP_STATES,
                                  purchases=earlier_summary(purchases))
    fits = fit_models(tables, as_of, features, horizon_days=horizon_days, analysis=analysis, training=training)
    table, scores = scored_rows(features, fits, as_of, horizon_days=horizon_days, clv_horizon_days=clv_horizon_days,
                                discount_rate=discount_rate, gross_margin_rate=gross_margin_rate)
    # what the allocators kept of the arrays freed on the way (the reasons' texts, the scoring threads'
    # blocks) goes back to the system before the caller stores the table, which needs memory of its own
    _release_memory()
    return Predictions(as_of, horizon_days, clv_horizon_days, table, fits.beta_geo, fits.gamma_gamma, fits.churn,
                       fits.shifted_beta_geo, fits.training_customers, features.repeat_buyers, features.table,
                       fits.notes, fits.problems + scores.problems)



def scored_rows(features: Features, fits: Fits, as_of: dt.date, *, horizon_days: int, clv_horizon_days: int,
                discount_rate: float, gross_margin_rate: float) -> tuple[pa.Table, Scores]:
    """score → explain → the table to store, for some customers' features (all of them, or a batch in an
    engine's workers): the churn risk and its reasons in one pass over the trees."""
    from concurrent.futures import Future, ThreadPoolExecutor

    # BG/NBD's and Gamma-Gamma's figures do not depend on the churn model: on a thread of their own while
    # the churn model scores on the others (NumPy and SciPy's functions let go of the GIL), when the load
    # leaves another core free (on a busy machine one after the other: threads would only take turns)
    beside = boosting_threads() > 1
    with ThreadPoolExecutor(1) if beside else contextlib.nullcontext() as pool:
        figures: Future[Scores] | None = None
        if pool is not None:
            figures = pool.submit(purchase_figures, features, fits, horizon_days=horizon_days,
                                  clv_horizon_days=clv_horizon_days, discount_rate=discount_rate)
        # reasons only where someone can act on them: a customer who has left (`LOST_STATES`) is on no keep
        # list or call list, and their lost reason says why they left; the occlusion is most of the scoring
        explained = ~_in_states(features.table, LOST_STATES)
        risk, top = churn_scores(fits.churn, features.matrix, rows=explained)
        # the matrix is not read again: not held while the reasons are written and the table is stored
        features.__dict__.pop("matrix", None)
        scores = score(features, fits, horizon_days=horizon_days, clv_horizon_days=clv_horizon_days,
                       discount_rate=discount_rate, churn_risk=risk,
                       figures=None if figures is None else figures.result())
    reasons = explain(features, fits.churn, top=top, unexplained=~explained)
    table = prediction_table(features, scores, reasons, as_of, horizon_days=horizon_days,
                             gross_margin_rate=gross_margin_rate)
    return table, scores


@dataclass(frozen=True)
class Features:
    """Stage 1: every customer's features, what the models read of them, and BG/NBD's counts."""

    table: pa.Table  # customer_features, one row per customer who has ordered
    counts: pa.Table  # customers per distinct (frequency, recency, T)
    frequency: np.ndarray
    recency: np.ndarray
    age: np.ndarray  # T: days from the first order to the as-of date
    monetary_value: np.ndarray

    @cached_property
    def matrix(self) -> np.ndarray:
        """CHURN_FEATURES, for the churn model: made when first scored (not held while the models fit)."""
        return _matrix(self.table)

    @property
    def repeat_buyers(self) -> int:
        return int((self.frequency > 0).sum())

    @property
    def history_days(self) -> int:
        """The longest customer history: "nobody has dropped out in 10 years"."""
        return int(np.nanmax(self.age)) if len(self.age) else 0

    @property
    def spends(self) -> np.ndarray:
        """Repeat buyers with a positive average order (repeat orders all refunded: no spend to learn from)."""
        return (self.frequency > 0) & (self.monetary_value > 0)


@dataclass(frozen=True)
class Fits:
    """Stage 2: the fitted models (None: did not fit, with its `FitProblem`), and what was said on the way."""

    beta_geo: BetaGeo | None
    gamma_gamma: GammaGamma | None
    shifted_beta_geo: ShiftedBetaGeo | None
    churn: ChurnModel
    training_customers: int
    notes: list[str | Phrase]
    problems: list[FitProblem]


@dataclass(frozen=True)
class Scores:
    """Stage 3: per customer, row for row with the features (NaN: no figure; stored as NULL)."""

    p_alive: np.ndarray
    expected_orders: np.ndarray
    next_order_days: np.ndarray
    order_value: np.ndarray
    clv: np.ndarray
    churn_risk: np.ndarray
    cancel_probability: np.ndarray
    problems: list[FitProblem]  # BG/NBD fitted but gave no figure for some customers ("partial")


def read_features(tables: dict[str, ibis.Table], as_of: dt.date, analysis: AnalysisSettings | None = None, *,
                  purchases: ibis.Table | None = None) -> Features:
    """Stage 1, features: `customer_features` as of `as_of` with each customer's lifecycle state, and the
    BG/NBD counts computed from them in the engine; a `PredictionError` when too few customers have
    ordered twice. `purchases`: `purchase_summary(tables, as_of)` kept in the engine by the caller."""
    # kept in the engine (a temporary table) while it is read twice, for the rows and for the BG/NBD
    # counts: the counts would otherwise compute every customer's features again
    with _purchases(tables, as_of) if purchases is None else contextlib.nullcontext(purchases) as purchases:
        features = customer_features(tables, as_of, purchases=purchases)
        cached = _with_states(features, tables, as_of, analysis, purchases=purchases).cache()
        try:
            # in customer order, as the predictions are stored (`Store.create_in_order` then writes them as read)
            table = cached.order_by("customer_id").to_pyarrow()
            counts = _beta_geo_counts(cached)
        finally:
            cached.release()
    if table.num_rows == 0:
        raise PredictionError.keyed("error.predict_no_orders")
    f, r, t, m = (table[c].to_numpy(zero_copy_only=False).astype(float)
                  for c in ("frequency", "recency", "T", "monetary_value"))
    repeat_buyers = int((f > 0).sum())
    if repeat_buyers < MIN_REPEAT_BUYERS:
        raise PredictionError.keyed("error.predict_few_repeat_buyers", n=f"{repeat_buyers:,}")
    return Features(table, counts, f, r, t, m)


def fit_models(tables: dict[str, ibis.Table], as_of: dt.date, features: Features, *, horizon_days: int,
               analysis: AnalysisSettings | None = None, training: pa.Table | None = None) -> Fits:
    """Stage 2, fit: BG/NBD, Gamma-Gamma and sBG (each None, with a `FitProblem`, when it does not
    fit the data), then the churn model on the features of `horizon_days` before `as_of` of the
    customers active or at risk then (`KEEP_STATES`). `training`: those rows (`_training_rows`), when
    the caller read them already."""
    notes: list[str | Phrase] = []
    problems: list[FitProblem] = []
    f, m, spends = features.frequency, features.monetary_value, features.spends
    history = features.history_days
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ModelFitWarning)
        beta_geo = _fitted("bg_nbd", lambda: _fit_beta_geo(features.counts), problems, history)
        gamma_gamma = _fitted("gamma_gamma", lambda: GammaGamma().fit(f[spends], m[spends]), problems, history)
        shifted = _fitted("shifted_beta_geo", lambda: _fit_shifted_beta_geo(tables, as_of), problems, history)
    # a model that stopped early is a FitProblem (one line), not a note as well
    notes += [fit_note(w) for w in caught
              if issubclass(w.category, ModelFitWarning) and not issubclass(w.category, ConvergenceWarning)]
    churn, customers = _fit_churn(tables, as_of, horizon_days, notes, analysis, training)
    return Fits(beta_geo, gamma_gamma, shifted, churn, customers, notes, problems)


def churn_scores(churn: ChurnModel, matrix: np.ndarray, *, rows: np.ndarray | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The churn model on a batch of customers' features (`Features.matrix`): (each one's churn risk,
    their three features that raise it most, as `ChurnModel.top_reasons`), in one pass over the trees.
    `rows`: a mask of the customers whose reasons are wanted (the others: -1)."""
    return churn.risk_and_reasons(matrix, k=3, rows=rows)


def score(features: Features, fits: Fits, *, horizon_days: int, clv_horizon_days: int, discount_rate: float,
          churn_risk: np.ndarray | None = None, figures: Scores | None = None) -> Scores:
    """Stage 3, score: P(alive), expected orders and the next order (once per distinct (frequency,
    recency, T)), expected order value, CLV, churn risk and cancel probability. `churn_risk`: the
    risks `churn_scores` gave, when it ran already; `figures`: what `purchase_figures` gave, likewise."""
    if figures is None:
        figures = purchase_figures(features, fits, horizon_days=horizon_days, clv_horizon_days=clv_horizon_days,
                                   discount_rate=discount_rate)
    p_alive, expected_orders, next_order, spend, clv = (figures.p_alive, figures.expected_orders,
                                                        figures.next_order_days, figures.order_value, figures.clv)
    risk = fits.churn.predict_risk(features.matrix) if churn_risk is None else churn_risk
    cancel = _cancel_probability(fits.shifted_beta_geo, features.table, horizon_days)
    # the hard rule (docs/measures.md#lifecycle-state): a cancelled subscriber who has not ordered since
    gone = _in_states(features.table, (GONE,))
    if gone.any():
        risk = np.where(gone, 1.0, risk)
        p_alive, expected_orders, clv = (np.where(gone, 0.0, v) for v in (p_alive, expected_orders, clv))
        next_order = np.where(gone, np.nan, next_order)
        cancel = np.where(gone, np.nan, cancel)
    return Scores(p_alive, expected_orders, next_order, spend, clv, risk, cancel, figures.problems)


def purchase_figures(features: Features, fits: Fits, *, horizon_days: int, clv_horizon_days: int,
                     discount_rate: float) -> Scores:
    """Stage 3's figures of BG/NBD and Gamma-Gamma alone (P(alive), expected orders, the next order,
    expected order value, CLV), as `score` gives them before the lifecycle states' hard rule; its
    churn risk and cancel probability are NaN (`score` puts them in)."""
    f, r, t, m, spends = (features.frequency, features.recency, features.age, features.monetary_value,
                          features.spends)
    n = features.table.num_rows
    problems: list[FitProblem] = []
    # repeat orders all refunded (no spend to learn from): the population's mean order value
    if fits.gamma_gamma is not None:
        spend = fits.gamma_gamma.predict_spend(np.where(spends, f, 0), np.where(spends, m, 0.0))
    else:  # each customer's own average; for those without one, the average over those who have one
        overall = float(m[spends].mean()) if spends.any() else np.nan
        spend = np.where(spends, m, overall)
    beta_geo = fits.beta_geo
    if beta_geo is not None:
        # BG/NBD's predictions depend on (frequency, recency, T) alone, which many customers share:
        # each is computed once per distinct row and spread back to its customers
        first, spread = _distinct_rows(f, r, t)
        fu, ru, tu = f[first], r[first], t[first]
        with np.errstate(all="ignore"):
            p_alive = beta_geo.predict_alive(fu, ru, tu)[spread]
            expected_orders = beta_geo.predict_purchases(horizon_days, fu, ru, tu)[spread]
            clv = _discounted_value(beta_geo, spend, (fu, ru, tu), spread, clv_horizon_days, discount_rate)
            next_order = _next_order_days(beta_geo, fu, ru, tu)[spread]
        unknown = ~(np.isfinite(p_alive) & np.isfinite(expected_orders) & np.isfinite(clv))
        if unknown.any():  # none of these figures for those customers: NULL, and said so
            p_alive, expected_orders, clv = (np.where(unknown, np.nan, v) for v in (p_alive, expected_orders, clv))
            next_order = np.where(unknown, np.nan, next_order)
            problems.append(FitProblem("bg_nbd", "partial", "BetaGeo predictions are not finite for "
                                       f"{int(unknown.sum()):,} customers.", features.history_days,
                                       int(unknown.sum())))
    else:
        p_alive = expected_orders = clv = next_order = np.full(n, np.nan)
    none = np.full(n, np.nan)
    return Scores(p_alive, expected_orders, next_order, spend, clv, none, none, problems)


def explain(features: Features, churn: ChurnModel, *, top: np.ndarray | None = None,
            unexplained: np.ndarray | None = None) -> dict[str, pa.StringArray]:
    """Stage 4, explain: lang -> each customer's three features that raise the churn risk most
    (by occlusion on the model itself), in words (ja and en). `top`: those features as
    `churn_scores` gave them, when it ran already. `unexplained`: a mask of the customers who have
    left already (`LOST_STATES`), whose reasons were not looked for (`churn_scores(rows=)`), and who
    read so; by default every customer in those states."""
    if unexplained is None:
        unexplained = _in_states(features.table, LOST_STATES)
    if top is None:
        top = churn.top_reasons(features.matrix, k=3, rows=~unexplained)
    langs = ("ja", "en")
    # a customer none of whose features raises the risk above what it is for a typical customer
    return reason_text_arrays(features.table, top, CHURN_FEATURES,
                              {lang: label("reason.typical", lang) for lang in langs}, unexplained=unexplained,
                              unexplained_texts={lang: label("reason.already_left", lang) for lang in langs})


def prediction_table(features: Features, scores: Scores, reasons: dict[str, pa.StringArray], as_of: dt.date, *,
                     horizon_days: int, gross_margin_rate: float) -> pa.Table:
    """Stage 5: the rows of customer_predictions (`PREDICTION_COLUMNS`), NULL wherever there is no number."""
    n = features.table.num_rows
    as_of_days = np.datetime64(as_of, "D")
    next_order = scores.next_order_days
    known = np.isfinite(next_order)
    ahead = np.ceil(np.where(known, next_order, 0.0)).astype("timedelta64[D]")
    next_on = np.where(known, as_of_days + ahead, np.datetime64("NaT"))
    risk, clv = scores.churn_risk, scores.clv
    return pa.table({
        "customer_id": features.table["customer_id"],
        "as_of": pa.array(np.full(n, np.datetime64(as_of, "D")), pa.date32()),
        "horizon_days": pa.array(np.full(n, horizon_days), pa.int64()),
        "p_alive": _numbers(scores.p_alive),
        "expected_orders": _numbers(scores.expected_orders),
        "expected_next_order_on": pa.array(next_on, pa.date32()),
        "expected_order_value": _numbers(scores.order_value),
        "clv": _numbers(clv),
        "clv_profit": _numbers(clv * gross_margin_rate),
        "churn_risk": _numbers(risk),
        "value_at_risk": _numbers(risk * clv),
        "cancel_probability": _numbers(scores.cancel_probability),
        "churn_reasons_ja": reasons["ja"],
        "churn_reasons_en": reasons["en"],
        # what the call list's suggested action looks at, besides customer_scores
        "open_contacts": features.table["open_contacts"],
        "days_since_life_event": features.table["days_since_life_event"],
        "lifecycle_state": features.table["lifecycle_state"],
        "lost_since": features.table["lost_since"],
    })


def _fitted(key: str, fit, problems: list[FitProblem], history_days: int):
    """`fit()`'s model, or None with a FitProblem when it does not fit the data or stopped before converging."""
    failure = None
    with warnings.catch_warnings(record=True) as stopped:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            model = fit()
        except ModelFitError as exc:
            model, failure = None, exc
    for w in stopped:  # the others go on to the caller's record (the notes)
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if failure is not None:
        problems.append(FitProblem(key, failure.reason, str(failure), history_days))
        return None
    if model is not None and not model.converged_:
        detail = next((str(w.message) for w in stopped if issubclass(w.category, ConvergenceWarning)),
                      f"{type(model).__name__}: the optimiser stopped before converging.")
        problems.append(FitProblem(key, "not_converged", detail, history_days))
        return None
    return model


def _beta_geo_counts(features: ibis.Table) -> pa.Table:
    # the engine counts the customers of each (frequency, recency, T): one likelihood term each
    return features.group_by("frequency", "recency", "T").aggregate(customers=features.count()).to_pyarrow()


def _fit_beta_geo(stats: pa.Table) -> BetaGeo:
    column = {c: stats[c].to_numpy().astype(float) for c in ("frequency", "recency", "T", "customers")}
    return BetaGeo().fit(column["frequency"], column["recency"], column["T"], weights=column["customers"])


def _distinct_rows(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of one row of each distinct combination of `columns`, index of each row's combination).

    ``values_of(columns[first])[spread]`` gives every row the value computed for its combination;
    the arithmetic of each value is the same as on all rows, so the results are too, bit for bit.
    Each column becomes integer codes, the codes one int64 key: one sort of int64, none of rows.
    """
    key = np.zeros(len(columns[0]), dtype=np.int64)
    key_space = 1
    for column in columns:
        values, code = np.unique(column, return_inverse=True)
        key_space *= max(len(values), 1)
        if key_space >= 2**62:  # too many distinct values to pack into one integer: sort the rows
            _, first, spread = np.unique(np.column_stack(columns), axis=0, return_index=True, return_inverse=True)
            return first, spread.reshape(-1)
        key = key * len(values) + code.reshape(-1)
    _, first, spread = np.unique(key, return_index=True, return_inverse=True)
    return first, spread.reshape(-1)


def _discounted_value(
    model: BetaGeo, spend: np.ndarray, distinct: tuple[np.ndarray, np.ndarray, np.ndarray], spread: np.ndarray,
    days: int, yearly_rate: float,
) -> np.ndarray:
    """Expected revenue over `days`, month by month, each month discounted at `yearly_rate`.

    `distinct`: the distinct (frequency, recency, T) rows, `spread`: each customer's row in them.
    """
    f, r, t = distinct
    steps = max(1, round(days / MONTH_DAYS))
    ends = np.linspace(0, days, steps + 1)
    value = np.zeros(len(spread))
    previous = np.zeros(len(spread))
    for k in range(1, steps + 1):
        cumulative = model.predict_purchases(ends[k], f, r, t)[spread]
        discount = (1 + yearly_rate) ** (-ends[k] / 365.25)
        value += (cumulative - previous) * spend * discount
        previous = cumulative
    return value


def _next_order_days(model: BetaGeo, f: np.ndarray, r: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Days until the expected number of orders reaches one (NaN: not within three years)."""
    out = np.full_like(f, np.nan)
    reachable = np.flatnonzero(model.predict_purchases(NEXT_ORDER_SEARCH_DAYS, f, r, t) >= 1)
    f, r, t = f[reachable], r[reachable], t[reachable]  # the others get no date: no need to search
    low = np.zeros_like(f)
    high = np.full_like(f, float(NEXT_ORDER_SEARCH_DAYS))
    for _ in range(20):  # bisection: to well under a day over three years
        middle = (low + high) / 2
        below = model.predict_purchases(middle, f, r, t) < 1
        low = np.where(below, middle, low)
        high = np.where(below, high, middle)
    out[reachable] = high
    return out


def _matrix(features: pa.Table) -> np.ndarray:
    return np.column_stack([
        features[c].cast(pa.float64()).to_numpy(zero_copy_only=False) for c in CHURN_FEATURES
    ])


def _in_states(features: pa.Table, states: Sequence[str]) -> np.ndarray:
    """bool per customer: in one of the lifecycle `states` (no state: False), without a Python string per
    customer."""
    return pc.fill_null(pc.is_in(features["lifecycle_state"], pa.array(list(states), pa.string())),
                        False).to_numpy(zero_copy_only=False)


def _with_states(features: ibis.Table, tables: dict[str, ibis.Table], as_of: dt.date,
                 analysis: AnalysisSettings | None, *, purchases: ibis.Table | None = None) -> ibis.Table:
    """`features` with each customer's lifecycle state and the day they count as lost (as of `as_of`).
    `purchases`: the `purchase_summary` the features were computed from, read again for the states."""
    states = lifecycle_states(tables, as_of, analysis, summary=purchases).select(
        "customer_id", "lifecycle_state", "lost_since")
    return features.left_join(states, "customer_id")


def _fit_churn(
    tables: dict[str, ibis.Table], as_of: dt.date, horizon_days: int, notes: list[str | Phrase],
    analysis: AnalysisSettings | None = None, first: pa.Table | None = None,
) -> tuple[ChurnModel, int]:
    """Train on the features of `horizon_days` before `as_of` and what happened since, for the customers
    who could still be kept then: active or at risk on that day (`KEEP_STATES`).

    When the history before that date is too short (CDNOW's 273-day calibration period, say),
    shorter training windows are tried, down to 30 days, and a note says which was used: the
    model then learns who stops ordering for that long, the nearest question the data can answer.
    When even then fewer than 200 customers were active or at risk (a small shop), the model is
    trained on every customer who had ordered, lost or not, and a note says so
    (`ChurnModel.population_`). `first`: the training rows of the first try (`KEEP_STATES`, `horizon_days`),
    when the caller read them already.
    """
    for population in (KEEP_STATES, None):
        window = horizon_days
        while True:
            cutoff = as_of - dt.timedelta(days=window)
            if first is not None and population == KEEP_STATES and window == horizon_days:
                training = first
            else:
                training = _training_rows(tables, cutoff, window, analysis, population)
            churned = int(pc.sum(training["churned"]).as_py() or 0)
            enough = training.num_rows >= MIN_TRAINING_CUSTOMERS and 0 < churned < training.num_rows
            if enough or window // 2 < MIN_TRAINING_WINDOW:
                break
            window //= 2
        if enough:
            break
        kept = training.num_rows
    if not enough:
        raise PredictionError.keyed("error.predict_short_history", n=f"{training.num_rows:,}", cutoff=cutoff,
                                    window=window, as_of=as_of)
    if population is None:
        notes.append(Phrase.of("note.churn_all_customers", n=kept, cutoff=str(cutoff)))
    if window != horizon_days:
        notes.append(Phrase.of("note.churn_short_window", start=str(as_of - dt.timedelta(days=horizon_days)),
                               horizon=horizon_days, window=window, cutoff=str(cutoff)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ModelFitWarning)
        model = ChurnModel().fit(_matrix(training), training["churned"].to_numpy(), CHURN_FEATURES)
    model.population_ = list(population) if population is not None else ["all"]
    notes += [fit_note(w) for w in caught if issubclass(w.category, ModelFitWarning)]
    return model, training.num_rows


def _training_rows(tables: dict[str, ibis.Table], cutoff: dt.date, window: int, analysis: AnalysisSettings | None,
                   population: tuple[str, ...] | None, *, purchases: ibis.Table | None = None) -> pa.Table:
    """The churn model's training rows: features as of `cutoff` of the customers in `population` (None:
    everyone who had ordered), with what happened in the `window` days after it. `purchases`:
    `purchase_summary(tables, cutoff)` kept in the engine by the caller."""
    with _purchases(tables, cutoff) if purchases is None else contextlib.nullcontext(purchases) as purchases:
        joined = _with_states(customer_features(tables, cutoff, purchases=purchases), tables, cutoff, analysis,
                              purchases=purchases)
        if population is not None:
            joined = joined.filter(joined.lifecycle_state.isin(population))
        joined = joined.inner_join(churn_labels(tables, cutoff, window, purchases=purchases), "customer_id")
        # in customer order: the model's validation split and binning must see the rows in the same order
        # on every engine
        return joined.order_by("customer_id").select(*CHURN_FEATURES, "churned").to_pyarrow()


@contextlib.contextmanager
def _purchases(tables: dict[str, ibis.Table], as_of: dt.date, *,
               earlier: dt.date | None = None) -> Iterator[ibis.Table]:
    """`purchase_summary` kept in the engine (a temporary table) while the features and the lifecycle
    states read it: the engine would otherwise group the orders by customer and day once for each."""
    cached = purchase_summary(tables, as_of, earlier=earlier).cache()
    try:
        yield cached
    finally:
        cached.release()


def subscription_periods(tables: dict[str, ibis.Table], as_of: dt.date) -> pa.Table:
    """customer_id, months (whole months from the latest subscription start to its cancellation, or to
    `as_of`) and cancelled (1/0): each subscription's observed life, for the shifted-beta-geometric model."""
    cut = AsOf(as_of)
    events = tables["events"].filter(cut.before_end(tables["events"].occurred_at))
    starts = events.filter(events.kind == "subscription_start").group_by("customer_id").aggregate(
        started_at=events.occurred_at.max()
    )
    cancels = events.filter(events.kind == "cancellation").select("customer_id", cancelled_at=events.occurred_at)
    joined = starts.left_join(cancels, [starts.customer_id == cancels.customer_id,
                                        cancels.cancelled_at >= starts.started_at])
    per = joined.group_by(customer_id=joined.customer_id).aggregate(
        started_at=joined.started_at.min(), cancelled_at=joined.cancelled_at.min()
    )
    end = ibis.coalesce(per.cancelled_at.date(), ibis.literal(as_of))
    days = (end - per.started_at.date()).cast("int64")
    cancelled = ibis.cases((per.cancelled_at.notnull(), 1), else_=0).cast("int64")  # PostgreSQL: no bool cast
    return per.select("customer_id", days=days, cancelled=cancelled).to_pyarrow()


def _fit_shifted_beta_geo(tables: dict[str, ibis.Table], as_of: dt.date) -> ShiftedBetaGeo | None:
    """sBG on the subscriptions' pooled monthly survival (None without enough subscriptions).

    Subscriptions start in different months, so their survival is pooled as a life table: the
    share that stays through month k among those observed for all of it, chained into the
    survival of one cohort (the Kaplan-Meier estimate), which the model is then fitted to.
    """
    periods = subscription_periods(tables, as_of)
    if periods.num_rows < 50:
        return None
    months = np.floor(periods["days"].to_numpy() / MONTH_DAYS).astype(int)
    cancelled = periods["cancelled"].to_numpy().astype(bool)
    alive = [float(periods.num_rows)]
    for k in range(int(months.max())):
        # observed through month k: still subscribed after it, or cancelled within it (a subscription
        # that started less than k + 1 months ago has not been seen through month k yet)
        at_risk = int(((months > k) | (cancelled & (months == k))).sum())
        lost = int((cancelled & (months == k)).sum())
        if at_risk < 20:
            break
        alive.append(alive[-1] * (1 - lost / at_risk))
    if len(alive) < 3:
        return None
    return ShiftedBetaGeo().fit(np.array(alive))


def _cancel_probability(model: ShiftedBetaGeo | None, features: pa.Table, horizon_days: int) -> np.ndarray:
    """P(a subscriber cancels within the horizon | still subscribed after t months); NaN for non-subscribers
    and when there is no sBG fit."""
    subscriber = features["is_subscriber"].to_numpy(zero_copy_only=False) == 1
    if model is None:
        return np.full(features.num_rows, np.nan)
    days = features["subscription_days"].cast(pa.float64()).to_numpy(zero_copy_only=False)
    age = np.floor(np.nan_to_num(days) / MONTH_DAYS)
    alpha, beta = model.params_["alpha"], model.params_["beta"]
    ahead = horizon_days / MONTH_DAYS
    # S(t) = B(alpha, beta + t) / B(alpha, beta): the chance to stay `ahead` more months is S(t + ahead) / S(t)
    stay = np.exp(special.betaln(alpha, beta + age + ahead) - special.betaln(alpha, beta + age))
    return np.where(subscriber, 1 - stay, np.nan)


def value_at_risk_by(predictions: ibis.Table, scores: ibis.Table, column: str) -> list[dict]:
    """Predicted customers and their value at risk per value of a customer_scores column, most value first:
    joined and summed in the engine, where both tables are (a few rows come back)."""
    joined = predictions.select("customer_id", "value_at_risk").join(scores.select("customer_id", column),
                                                                     "customer_id")
    grouped = joined.group_by(column).aggregate(customers=joined.count(), value_at_risk=joined.value_at_risk.sum())
    rows = [{"segment": r[column], "customers": r["customers"], "value_at_risk": r["value_at_risk"]}
            for r in grouped.to_pyarrow().to_pylist()]
    return sorted(rows, key=lambda r: -(r["value_at_risk"] or 0))


def high_risk_count(predictions: pa.Table, threshold: float) -> int:
    """Customers who can still be kept (active or at risk) whose calibrated churn risk is at least `threshold`."""
    risk = predictions["churn_risk"]
    if "lifecycle_state" in predictions.column_names:
        keep = pc.is_in(predictions["lifecycle_state"], pa.array(KEEP_STATES))
        risk = pc.if_else(keep, risk, None)
    return int(pc.sum(pc.greater_equal(risk, threshold)).as_py() or 0)


def keep_count(predictions: pa.Table) -> int:
    """Customers active or at risk: the population the churn risk is for."""
    if "lifecycle_state" not in predictions.column_names:
        return predictions.num_rows
    return int(pc.sum(pc.is_in(predictions["lifecycle_state"], pa.array(KEEP_STATES))).as_py() or 0)
