"""The churn model: the probability that a customer places no order (or cancels a subscription)
in the next N days, and which of their features raise it.

A scikit-learn ``HistGradientBoostingClassifier`` behind the estimator contract of
:mod:`kizuna.models` (parameters in ``__init__``, learned state ending in ``_``, ``fit`` returns
the model, predictions after a fitted check, weak data as :class:`ModelFitWarning`).

Contributions are by **occlusion**: the contribution of feature *j* to a customer's risk is
``risk(x) - risk(x with x_j set to its reference)``, computed with the model itself, so a reason
is named only when the model really gives that customer a higher risk because of it. The
reference of a feature is what a typical customer has:

* "missing" for features whose absence means nothing happened (no NPS answer, no support
  contact, no life event, no subscription — ``MISSING_REFERENCE``), and for any feature missing
  in most training rows;
* otherwise the median of the training rows (e.g. 0 open contacts, the median days since the
  last order).

The contributions of one customer do not add up to the risk (features interact); they say how
much the risk would fall if that one feature were typical, which is what a reason claims. They are
measured on the boosting's own probabilities; the risk the model gives (`predict_risk`) is that
probability **calibrated** on held-out risks: each training customer's risk from a model fitted
(with the same settings and rounds) on the other four fifths, then isotonic regression from those
to what happened (Platt's logistic curve when there are fewer than 100 customers or 10 of either
outcome), so that a risk of 30 % means that about 30 of 100 such customers leave. Isotonic
regression is a step function: within a step, customers keep the boosting's order (a millionth of
its probability is added), so the calibration does not change who ranks first.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from kizuna._errors import KizunaError
from kizuna.models import ModelFitWarning, ModelNotFittedError

__all__ = ["MISSING_REFERENCE", "ChurnDataError", "ChurnModel"]

# Features whose natural "nothing to report" value is missing: occluding them means "as if the
# customer had never answered the survey / contacted support / had a life event / subscribed".
MISSING_REFERENCE = (
    "nps_score",
    "nps_change",
    "resolution_hours",
    "days_since_contact",
    "subscription_days",
    "days_since_life_event",
)

# Rows per block when computing contributions: bounds the extra memory to one copy of a block
# (200k x 18 float64 = 29 MB) whatever the number of customers.
_BLOCK_ROWS = 200_000
# A contribution at or below this (risk points) does not count as raising the risk: the rounding
# noise of the trees' sums is far below it, a real effect far above.
_RAISE_TOL = 1e-6
# At most this many customers' held-out risks calibrate the model (5 more fits on them).
_CALIBRATION_ROWS = 200_000


class ChurnDataError(KizunaError):
    """The training data cannot support a churn model (too few customers, or all of one outcome).

    Carries ``n_customers`` and ``n_churned`` so that a caller can phrase its own context
    (the as-of date, the horizon).
    """

    def __init__(self, message: str, *, n_customers: int, n_churned: int) -> None:
        self.n_customers = n_customers
        self.n_churned = n_churned
        super().__init__(message)


class ChurnModel:
    """Churn risk from customer features, with faithful per-customer contributions.

    Parameters
    ----------
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization
        Passed to ``HistGradientBoostingClassifier``. Boosting stops early when the loss on the
        validation customers stops improving for ``n_iter_no_change`` rounds.
    validation_fraction
        Share of the customers held out (stratified by outcome) to stop the boosting and to
        measure ``validation_auc_``. The model is trained on the rest.
    min_customers
        Fewer training customers than this raise :class:`ChurnDataError`.
    calibration
        "isotonic" (default), "sigmoid" (Platt) or "none": how the boosting's probabilities are
        calibrated on the held-out customers (see the module docstring).
    missing_reference
        Features whose reference (see the module docstring) is "missing" rather than the median.
    random_state
        Seed of the split and of the boosting: the same data give the same model.

    Attributes (after ``fit``)
    --------------------------
    model_ : the fitted ``HistGradientBoostingClassifier``
    feature_names_ : tuple of the feature names, in the columns' order
    reference_ : ndarray (k,) the reference value of each feature (NaN: missing)
    baseline_ : float, the churn rate of the training customers
    validation_auc_ : float or None, ROC AUC on the held-out customers
    n_customers_, n_churned_ : int
    n_iter_ : int, boosting rounds kept
    calibration_ : str, the calibration used ("isotonic", "sigmoid" or "none")

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2000, 2))
    >>> y = (X[:, 0] + rng.normal(scale=0.5, size=2000) > 0).astype(int)
    >>> model = ChurnModel().fit(X, y, ["overdue_ratio", "noise"])
    >>> model.validation_auc_ > 0.9
    True
    >>> model.predict_risk(X[:2]).round(2).tolist()  # doctest: +SKIP
    [0.96, 0.27]
    """

    def __init__(self, *, max_iter: int = 200, learning_rate: float = 0.1, max_leaf_nodes: int = 15,
                 min_samples_leaf: int = 40, l2_regularization: float = 1.0, n_iter_no_change: int = 20,
                 validation_fraction: float = 0.2, min_customers: int = 200,
                 missing_reference: Sequence[str] = MISSING_REFERENCE, calibration: str = "isotonic",
                 random_state: int = 0) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.n_iter_no_change = n_iter_no_change
        self.validation_fraction = validation_fraction
        self.min_customers = min_customers
        self.missing_reference = missing_reference
        self.calibration = calibration
        self.random_state = random_state

    def __repr__(self) -> str:
        if not hasattr(self, "model_"):
            return "ChurnModel()"
        auc = "n/a" if self.validation_auc_ is None else f"{self.validation_auc_:.3f}"
        return f"ChurnModel(customers={self.n_customers_:,}, churn rate={self.baseline_:.3f}, validation AUC={auc})"

    # -- fitting ------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, feature_names: Sequence[str]) -> ChurnModel:
        """Learn churn risk from features `X` (n customers x k features, NaN = unknown) and
        outcomes `y` (1 = churned: no order or a cancellation in the window, 0 = stayed).

        Raises :class:`ChurnDataError` when there are fewer than `min_customers` customers or
        only one outcome; warns (:class:`ModelFitWarning`) when one outcome is rare or the model
        does no better than chance on the held-out customers.
        """
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import train_test_split

        names = tuple(str(n) for n in feature_names)
        X = _as_matrix(X, len(names))
        y = _as_outcome(y, len(X))
        n, churned = len(y), int(y.sum())
        self._check_data(n, churned)

        # Reference values for occlusion (see the module docstring).
        missing_share = np.isnan(X).mean(axis=0) if n else np.ones(len(names))
        reference = np.full(len(names), np.nan)
        for j, name in enumerate(names):
            if name in self.missing_reference or missing_share[j] > 0.5:
                continue
            reference[j] = float(np.nanmedian(X[:, j]))

        # A feature nobody has (no NPS answers, no events in this workspace) is all missing, which
        # the boosting's binning cannot take: train on a constant instead, so no tree splits on it
        # and the model ignores it.
        empty = np.isnan(X).all(axis=0)
        if empty.any():
            X = X.copy()
            X[:, empty] = 0.0

        train, valid = train_test_split(np.arange(n), test_size=self.validation_fraction, stratify=y,
                                        random_state=self.random_state)
        model = HistGradientBoostingClassifier(
            learning_rate=self.learning_rate, max_iter=self.max_iter, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
            early_stopping=True, n_iter_no_change=self.n_iter_no_change, random_state=self.random_state,
        )
        model.fit(X[train], y[train], X_val=X[valid], y_val=y[valid])

        self.__dict__.pop("_trees_cache", None)  # of a previous fit
        self.model_ = model
        self.feature_names_ = names
        self.reference_ = reference
        self.baseline_ = churned / n
        self.n_customers_ = n
        self.n_churned_ = churned
        self.n_iter_ = int(model.n_iter_)
        y_valid = y[valid]
        raw_valid = model.predict_proba(X[valid])[:, 1]
        self.validation_auc_ = (float(roc_auc_score(y_valid, raw_valid))
                                if 0 < y_valid.sum() < len(y_valid) else None)
        held_out, outcome = self._held_out_risks(X, y, model.n_iter_) if self.calibration != "none" else (
            raw_valid, y_valid)
        self.calibrator_, self.calibration_ = _calibrator(self.calibration, held_out, outcome)
        if self.validation_auc_ is not None and self.validation_auc_ < 0.55:
            warnings.warn(f"The churn model does little better than chance on the {len(valid):,} customers held out "
                          f"to check it (AUC {self.validation_auc_:.2f}; 0.5 is a coin toss): the features do not tell "
                          "who leaves. Treat its risks and reasons with care.", ModelFitWarning, stacklevel=2)
        return self

    def _held_out_risks(self, X: np.ndarray, y: np.ndarray, rounds: int) -> tuple[np.ndarray, np.ndarray]:
        """Each training customer's risk from a model that did not see them (5 folds, stratified, the
        same settings and boosting rounds as the model; at most 200,000 customers): what the
        calibration is fitted on, so that it learns from every customer, not only the validation fold."""
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.model_selection import StratifiedKFold

        rows = np.arange(len(y))
        if len(rows) > _CALIBRATION_ROWS:
            rows = np.sort(np.random.default_rng(self.random_state).choice(rows, _CALIBRATION_ROWS, replace=False))
        Xc, yc = X[rows], y[rows]
        folds = min(5, int(yc.sum()), int(len(yc) - yc.sum()))
        if folds < 2:
            return self.model_.predict_proba(Xc)[:, 1], yc
        out = np.empty(len(yc))
        for fit_rows, held in StratifiedKFold(folds, shuffle=True, random_state=self.random_state).split(Xc, yc):
            fold = HistGradientBoostingClassifier(
                learning_rate=self.learning_rate, max_iter=max(int(rounds), 1), max_leaf_nodes=self.max_leaf_nodes,
                min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
                early_stopping=False, random_state=self.random_state,
            ).fit(Xc[fit_rows], yc[fit_rows])
            out[held] = fold.predict_proba(Xc[held])[:, 1]
        return out, yc

    def _check_data(self, n: int, churned: int) -> None:
        stayed = n - churned
        if n < self.min_customers:
            raise ChurnDataError(
                f"Only {n:,} customers had ordered before the training date (the as-of date minus the horizon): "
                f"too short a history to learn who leaves (at least {self.min_customers:,} are needed). Import more "
                "history or shorten --horizon.", n_customers=n, n_churned=churned)
        if churned == 0 or stayed == 0:
            what = "left (no order in the window)" if stayed == 0 else "ordered again in the window"
            raise ChurnDataError(
                f"All {n:,} customers {what}: with one outcome only, nothing tells those who leave from those who "
                "stay. Choose an as-of date or --horizon where both happen, or import more history.",
                n_customers=n, n_churned=churned)
        rare = min(churned, stayed)
        if rare < 20 or rare / n < 0.01:
            which = "left" if churned == rare else "ordered again"
            warnings.warn(f"Only {rare:,} of {n:,} customers {which} in the window: too few to learn reliably who "
                          "leaves; the churn risks are rough. A longer history or a different --horizon gives a better "
                          "model.", ModelFitWarning, stacklevel=3)

    # -- predicting ---------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise ModelNotFittedError(type(self).__name__)

    def _matrix(self, X: Any) -> np.ndarray:
        self._check_fitted()
        return _as_matrix(X, len(self.feature_names_))

    def predict_risk(self, X: Any) -> np.ndarray:
        """Calibrated probability of churn (0-1) for each row of `X` (the features in `feature_names_` order)."""
        X = self._matrix(X)
        if not len(X):
            return np.empty(0)
        raw = self._risk(X)
        return raw if self.calibrator_ is None else self.calibrator_(raw)

    def raw_risk(self, X: Any) -> np.ndarray:
        """The boosting's own probability, before calibration: what contributions are measured on."""
        X = self._matrix(X)
        return self._risk(X) if len(X) else np.empty(0)

    def _risk(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(X)[:, 1]

    def contributions(self, X: Any, rows: Any = None) -> np.ndarray:
        """Per customer and feature, how much the feature raises the risk: (n, k) risk points.

        ``risk(x) - risk(x with feature j at its reference)`` (see the module docstring), on the
        boosting's own probability (`raw_risk`): the calibration is monotone, so it does not change
        which features raise a risk, and its steps would hide what the model learned;
        positive values raise the risk, negative ones lower it, 0 where the customer's value is
        the reference. Computed in blocks of 200k rows; the cost grows with rows x trees (about
        8 s for 1M customers and 60 trees on 2 cores), so pass `rows` (indices or a boolean mask)
        to compute only those customers (e.g. the high-risk ones); the other rows are 0.
        """
        X = self._matrix(X)
        out = np.zeros(X.shape, dtype=np.float64)
        wanted = np.arange(len(X)) if rows is None else _row_indices(rows, len(X))
        for start in range(0, len(wanted), _BLOCK_ROWS):
            chosen = wanted[start:start + _BLOCK_ROWS]
            out[chosen] = self._block_contributions(X[chosen])
        return out

    def _block_contributions(self, block: np.ndarray) -> np.ndarray:
        trees = self._trees()
        if trees is None:
            return self._occlude_whole(block)
        return trees.contributions(block, self.reference_)

    def _occlude_whole(self, block: np.ndarray) -> np.ndarray:
        """Occlusion with the whole model per feature (the reference implementation)."""
        risk = self._risk(block)
        out = np.zeros(block.shape, dtype=np.float64)
        for j, rows in _differing(block, self.reference_):
            moved = block[rows]
            moved[:, j] = self.reference_[j]
            out[rows, j] = risk[rows] - self._risk(moved)
        return out

    def _trees(self) -> _Trees | None:
        if not hasattr(self, "_trees_cache"):
            self._trees_cache = _Trees.of(self.model_)
        return self._trees_cache

    def top_reasons(self, X: Any, k: int = 3, *, rows: Any = None,
                    contributions: np.ndarray | None = None) -> np.ndarray:
        """Indices (into `feature_names_`) of the `k` features that raise each customer's risk most,
        largest first; -1 where fewer than `k` features raise it. Shape (n, k), int64.

        `rows` limits the work to those customers (the others get -1, see :meth:`contributions`);
        pass `contributions` (from :meth:`contributions`) to reuse them.
        """
        c = self.contributions(X, rows) if contributions is None else np.asarray(contributions, dtype=np.float64)
        if c.ndim != 2 or (c.shape[1] != len(self.feature_names_) if hasattr(self, "feature_names_") else False):
            raise ValueError(f"contributions must be (customers x {len(self.feature_names_)}), got shape {c.shape}.")
        k_eff = min(k, c.shape[1])
        # argpartition picks the k largest without sorting every row; then sort those k.
        if k_eff < c.shape[1]:
            top = np.argpartition(-c, k_eff - 1, axis=1)[:, :k_eff]
        else:
            top = np.tile(np.arange(c.shape[1]), (len(c), 1))
        values = np.take_along_axis(c, top, axis=1)
        order = np.argsort(-values, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        values = np.take_along_axis(values, order, axis=1)
        top = np.where(values > _RAISE_TOL, top, -1).astype(np.int64)
        if k_eff < k:
            top = np.hstack([top, np.full((len(top), k - k_eff), -1, dtype=np.int64)])
        return top


def _calibrator(kind: str, raw: np.ndarray, y: np.ndarray) -> tuple[Any, str]:
    """(function from the boosting's probabilities to calibrated ones, or None; the kind used)."""
    churned = int(y.sum())
    if kind == "none" or churned == 0 or churned == len(y):
        return None, "none"
    if kind == "isotonic" and len(y) >= 100 and min(churned, len(y) - churned) >= 10:
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y)
        # within a step the boosting's order is kept: a millionth of its probability breaks the tie
        return (lambda p: np.clip(iso.predict(p) * (1 - 1e-6) + 1e-6 * p, 0.0, 1.0)), "isotonic"
    from sklearn.linear_model import LogisticRegression

    logit = np.log(np.clip(raw, 1e-9, 1 - 1e-9) / np.clip(1 - raw, 1e-9, 1))
    platt = LogisticRegression(C=1e6).fit(logit.reshape(-1, 1), y)
    a, b = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    if a <= 0:  # a curve that would turn the ranking round: leave the probabilities as they are
        return None, "none"
    return (lambda p: _sigmoid(a * np.log(np.clip(p, 1e-9, 1 - 1e-9) / np.clip(1 - p, 1e-9, 1)) + b)), "sigmoid"


def _row_indices(rows: Any, n: int) -> np.ndarray:
    """Row indices from indices or a boolean mask of length n."""
    array = np.asarray(rows)
    if array.dtype == bool:
        if array.shape != (n,):
            raise ValueError(f"a boolean mask of rows needs one value per customer ({n:,}), got shape {array.shape}.")
        return np.flatnonzero(array)
    array = array.astype(np.int64).ravel()
    if len(array) and (array.min() < -n or array.max() >= n):
        raise ValueError(f"row indices must be between 0 and {n - 1:,}.")
    return np.unique(array % n) if len(array) else array


def _differing(block: np.ndarray, reference: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(feature, rows whose value differs from the feature's reference) for each feature.

    Rows at the reference contribute nothing and are skipped: most rows, for counts such as
    open contacts and for the features usually missing.
    """
    for j, ref in enumerate(reference):
        column = block[:, j]
        rows = np.flatnonzero(~np.isnan(column) if math.isnan(ref) else (column != ref))
        if len(rows):
            yield j, rows


class _Trees:
    """The fitted boosting's trees, to occlude a feature in the trees that split on it only.

    The model's log-odds are the baseline plus the sum of its trees' outputs. Setting feature j
    to its reference changes only the trees that split on j, so each tree's output is computed
    once per row, and for each feature only those trees are run again on the rows that differ:
    about a third of the work of running the whole model once per feature, for the same numbers
    (checked against the whole model in the tests). Built on scikit-learn internals
    (``_predictors``, ``_baseline_prediction``, ``_bin_mapper``, ``predict_binned``); when they are not there (another
    scikit-learn version) ``ChurnModel`` falls back to the whole model.
    """

    def __init__(self, trees: list[Any], uses: list[np.ndarray], baseline: float, bin_mapper: Any,
                 n_threads: int) -> None:
        self.trees, self.uses, self.baseline = trees, uses, baseline
        self.bin_mapper, self.n_threads = bin_mapper, n_threads
        self.missing_bin = bin_mapper.missing_values_bin_idx_

    @classmethod
    def of(cls, model: Any) -> _Trees | None:
        try:
            from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

            predictors = model._predictors
            if any(len(p) != 1 for p in predictors):
                return None  # binary classification has one tree per iteration
            trees = [p[0] for p in predictors]
            uses = [np.unique(t.nodes["feature_idx"][t.nodes["is_leaf"] == 0]) for t in trees]
            baseline = float(np.asarray(model._baseline_prediction).ravel()[0])
            if trees and not hasattr(trees[0], "predict_binned"):
                return None
            return cls(trees, uses, baseline, model._bin_mapper, _openmp_effective_n_threads())
        except (AttributeError, ImportError, IndexError, KeyError, TypeError, ValueError):
            return None

    def _tree(self, t: int, binned: np.ndarray) -> np.ndarray:
        # On the binned features (one byte each): the same leaves as on the raw values (a split's
        # threshold is a bin edge), half the memory traffic of float64 rows.
        return self.trees[t].predict_binned(binned, self.missing_bin, self.n_threads)

    def contributions(self, block: np.ndarray, reference: np.ndarray) -> np.ndarray:
        binned = np.ascontiguousarray(self.bin_mapper.transform(block))
        reference_bins = self.bin_mapper.transform(reference.reshape(1, -1))[0]
        outputs = np.empty((len(self.trees), len(block)), dtype=np.float64)  # one row per tree: contiguous
        for t in range(len(self.trees)):
            outputs[t] = self._tree(t, binned)
        raw = self.baseline + outputs.sum(axis=0)
        risk = _sigmoid(raw)
        by_feature: dict[int, list[int]] = {}
        for t, features in enumerate(self.uses):
            for j in features.tolist():
                by_feature.setdefault(j, []).append(t)
        out = np.zeros(block.shape, dtype=np.float64)
        for j, rows in _differing(block, reference):
            trees = by_feature.get(j)
            if not trees:
                continue  # no tree splits on j: the model ignores it
            moved = binned[rows]
            moved[:, j] = reference_bins[j]
            change = np.zeros(len(rows))
            for t in trees:
                change += self._tree(t, moved) - outputs[t, rows]
            out[rows, j] = risk[rows] - _sigmoid(raw[rows] + change)
        return out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # as scikit-learn's log-loss turns raw scores into probabilities (scipy.special.expit)
    from scipy.special import expit

    return expit(z)


def _as_matrix(X: Any, k: int) -> np.ndarray:
    """X as a C-ordered float64 matrix with k columns (NaN allowed: unknown), or ValueError."""
    try:
        array = np.ascontiguousarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the features must be numbers (NaN for unknown): {exc}") from None
    if array.ndim != 2 or array.shape[1] != k:
        raise ValueError(f"the features must be a matrix of customers x {k} features (one column per feature "
                         f"name), got shape {array.shape}.")
    if np.isinf(array).any():
        raise ValueError("the features hold infinite values; use NaN for unknown values.")
    return array


def _as_outcome(y: Any, n: int) -> np.ndarray:
    """y as 0/1 int64 of length n, or ValueError."""
    array = np.asarray(y)
    if array.ndim != 1 or len(array) != n:
        raise ValueError(f"one outcome per customer is needed: {n:,} rows of features, y has shape {array.shape}.")
    values = np.asarray(array, dtype=np.float64)
    if np.isnan(values).any() or not np.isin(values, (0.0, 1.0)).all():
        raise ValueError("the outcome y must be 1 (churned) or 0 (stayed) for every customer.")
    return values.astype(np.int64)
