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
(with the same settings and rounds) on the other four fifths — or, when the validation customers
are 20,000 or more, their risks from the model itself, which never trained on them — then
isotonic regression from those to what happened (Platt's logistic curve when there are fewer
than 100 customers or 10 of either outcome), so that a risk of 30 % means that about 30 of 100
such customers leave. Isotonic regression is a step function: within a step, customers keep the
boosting's order (a millionth of its probability is added), so the calibration does not change
who ranks first.

On a small shop's few thousand customers one boosted model's order at the top of the list moves
with the customers it happened to keep aside to stop its boosting; so up to five models, each
stopped on another fifth of the customers, are averaged (a bag), as many as fit in
``_BAG_ROWS`` training rows: five up to 20,000 training customers, one above 50,000, where the
bag's cost would grow with the shop and one model's order no longer moves. The risk is the members' mean
probability, and a contribution the mean of the members' (the same occlusion of the mean).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from kizuna._errors import KizunaError, Phrase
from kizuna.models import ModelFitWarning, ModelNotFittedError

__all__ = ["MISSING_REFERENCE", "ChurnDataError", "ChurnModel", "boosting_threads"]

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

# Rows per block when computing contributions: bounds the extra memory to one copy of a block per
# thread whatever the number of customers, and makes blocks enough to keep two threads busy.
_BLOCK_ROWS = 100_000
# A contribution at or below this (risk points) does not count as raising the risk: the rounding
# noise of the trees' sums is far below it, a real effect far above.
_RAISE_TOL = 1e-6
# At most this many customers' held-out risks calibrate the model (5 more fits on them).
_CALIBRATION_ROWS = 200_000
# A validation fold of at least this many customers calibrates the model by itself: enough
# customers for every step of the isotonic curve, and five more fits saved where they cost most.
_HELD_OUT_ENOUGH = 20_000
# Training rows the bagged models may fit in all (see the module docstring), and the most members.
_BAG_ROWS = 100_000
_MOST_MEMBERS = 5


class ChurnDataError(KizunaError):
    """The training data cannot support a churn model (too few customers, or all of one outcome).

    Carries ``n_customers`` and ``n_churned`` so that a caller can phrase its own context
    (the as-of date, the horizon).
    """

    def __init__(self, message: str | Phrase, *, n_customers: int, n_churned: int) -> None:
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
    members
        How many boosted models to average, each stopped on another split (None: as many as fit in
        100,000 training rows, at most five; see the module docstring).
    random_state
        Seed of the split and of the boosting: the same data give the same model.

    Attributes (after ``fit``)
    --------------------------
    model_ : the first fitted ``HistGradientBoostingClassifier`` (its split gives ``validation_auc_``)
    members_ : list of every fitted ``HistGradientBoostingClassifier``, ``model_`` first
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
                 members: int | None = None, random_state: int = 0) -> None:
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
        self.members = members
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

        members = (self.members if self.members is not None
                   else max(1, min(_MOST_MEMBERS, _BAG_ROWS // max(n, 1))))
        fitted, splits = [], []
        with _thread_limit() as threads:
            for seed in range(self.random_state, self.random_state + max(int(members), 1)):
                train, valid = train_test_split(np.arange(n), test_size=self.validation_fraction, stratify=y,
                                                random_state=seed)
                model = HistGradientBoostingClassifier(
                    learning_rate=self.learning_rate, max_iter=self.max_iter, max_leaf_nodes=self.max_leaf_nodes,
                    min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
                    early_stopping=True, n_iter_no_change=self.n_iter_no_change, random_state=seed,
                )
                fitted.append(model.fit(constant_where_empty(X[train]), y[train], X_val=X[valid], y_val=y[valid]))
                splits.append(valid)
        model, valid = fitted[0], splits[0]

        self.__dict__.pop("_trees_cache", None)  # of a previous fit
        self.model_ = model
        self.members_ = fitted
        self.feature_names_ = names
        self.reference_ = reference
        self.baseline_ = churned / n
        self.n_customers_ = n
        self.n_churned_ = churned
        self.n_iter_ = int(model.n_iter_)
        y_valid = y[valid]
        with _thread_limit(threads):
            raw_valid = model.predict_proba(X[valid])[:, 1]
            cross_fit = self.calibration != "none" and len(valid) < _HELD_OUT_ENOUGH
            held_out, outcome = self._held_out_risks(X, y, model.n_iter_) if cross_fit else (raw_valid, y_valid)
        self.validation_auc_ = (float(roc_auc_score(y_valid, raw_valid))
                                if 0 < y_valid.sum() < len(y_valid) else None)
        self.calibrator_, self.calibration_ = _calibrator(self.calibration, held_out, outcome)
        if self.validation_auc_ is not None and self.validation_auc_ < 0.55:
            warnings.warn(ModelFitWarning(Phrase.of("note.churn_near_chance", n=f"{len(valid):,}",
                                                    auc=f"{self.validation_auc_:.2f}")), stacklevel=2)
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
            ).fit(constant_where_empty(Xc[fit_rows]), yc[fit_rows])
            out[held] = fold.predict_proba(Xc[held])[:, 1]
        return out, yc

    def _check_data(self, n: int, churned: int) -> None:
        stayed = n - churned
        if n < self.min_customers:
            raise ChurnDataError(Phrase.of("error.churn_short_history", n=f"{n:,}", least=f"{self.min_customers:,}"),
                                 n_customers=n, n_churned=churned)
        if churned == 0 or stayed == 0:
            key = "error.churn_all_left" if stayed == 0 else "error.churn_all_returned"
            raise ChurnDataError(Phrase.of(key, n=f"{n:,}"), n_customers=n, n_churned=churned)
        rare = min(churned, stayed)
        if rare < 20 or rare / n < 0.01:
            key = "note.churn_few_left" if churned == rare else "note.churn_few_returned"
            warnings.warn(ModelFitWarning(Phrase.of(key, rare=f"{rare:,}", n=f"{n:,}")), stacklevel=3)

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
        with _thread_limit():
            return _mean([member.predict_proba(X)[:, 1] for member in self.members_])

    def contributions(self, X: Any, rows: Any = None) -> np.ndarray:
        """Per customer and feature, how much the feature raises the risk: (n, k) risk points.

        ``risk(x) - risk(x with feature j at its reference)`` (see the module docstring), on the
        boosting's own probability (`raw_risk`): the calibration is monotone, so it does not change
        which features raise a risk, and its steps would hide what the model learned;
        positive values raise the risk, negative ones lower it, 0 where the customer's value is
        the reference. Computed in blocks of 200k rows; the cost grows with rows x trees, so pass
        `rows` (indices or a boolean mask) to compute only those customers (e.g. the high-risk
        ones); the other rows are 0. `risk_and_reasons` gives the risks and top reasons of every
        customer in one pass.
        """
        X = self._matrix(X)
        out = np.zeros(X.shape, dtype=np.float64)
        wanted = np.arange(len(X)) if rows is None else _row_indices(rows, len(X))

        def one(start: int, stop: int, threads: int) -> None:
            chosen = wanted[start:stop]
            out[chosen] = self._block_contributions(X[chosen], threads)[1]

        self._each_block(one, len(wanted))
        return out

    def risk_and_reasons(self, X: Any, k: int = 3, *, rows: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """(`predict_risk(X)`, `top_reasons(X, k)`) in one pass over the trees, block by block: the
        contributions give the boosting's probability on the way, and only a block's are held at once.
        The scoring of a batch of customers' features, whole. `rows` (indices or a boolean mask) limits
        the reasons to those customers, as in `top_reasons`; the others get their risk alone."""
        X = self._matrix(X)
        risk = np.empty(len(X))
        top = np.full((len(X), k), -1, dtype=np.int64)
        wanted = None if rows is None else _row_indices(rows, len(X))

        def one(start: int, stop: int, threads: int) -> None:
            block = slice(start, stop) if wanted is None else wanted[start:stop]
            raw, contributions = self._block_contributions(X[block], threads)
            risk[block] = raw
            top[block] = self.top_reasons(X[block], k, contributions=contributions)

        self._each_block(one, len(X) if wanted is None else len(wanted))
        if wanted is not None and len(wanted) < len(X):
            rest = np.ones(len(X), dtype=bool)
            rest[wanted] = False
            risk[rest] = self._risk(X[rest])  # the same probability as the trees' pass gives, to the bit
        if len(X) and self.calibrator_ is not None:
            risk = self.calibrator_(risk)
        return risk, top

    def _each_block(self, one: Callable[[int, int, int], None], n: int) -> None:
        """`one(start, stop, threads)` for each block of `n` rows, `_BLOCK_ROWS` at most: on as many threads
        as `boosting_threads()` gives, each block on one of them (the trees' walks, NumPy's gathers and
        sorts let go of the GIL; a block's numbers do not depend on the others', so they are the same
        on any number of threads), as many blocks of even size as make a multiple of the threads, so that
        no thread is left with a last block alone. With the whole model (`_occlude_whole`: scikit-learn's
        thread limit is the process's), or one block, or one thread, the blocks in turn."""
        threads = boosting_threads()
        blocks = -(-n // _BLOCK_ROWS)
        parallel = threads > 1 and blocks > 1 and self._trees() is not None
        if parallel:
            blocks = -(-blocks // threads) * threads
        bounds = [n * b // blocks for b in range(blocks + 1)] if blocks else [0]
        spans = list(itertools.pairwise(bounds))
        if not parallel:
            for start, stop in spans:
                one(start, stop, threads)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(threads, len(spans))) as pool:
            for done in [pool.submit(one, start, stop, 1) for start, stop in spans]:
                done.result()

    def _block_contributions(self, block: np.ndarray, threads: int) -> tuple[np.ndarray, np.ndarray]:
        """(the boosting's probability, the contributions) of the rows of `block`; `threads`: the trees'
        walks' (OpenMP)."""
        trees = self._trees()
        if trees is None:
            return self._occlude_whole(block, with_risk=True)
        return trees.contributions(block, self.reference_, threads)

    def _occlude_whole(self, block: np.ndarray, *, with_risk: bool = False) -> Any:
        """Occlusion with the whole model per feature (the reference implementation)."""
        risk = self._risk(block)
        out = np.zeros(block.shape, dtype=np.float64)
        for j, rows in _differing(block, self.reference_):
            moved = block[rows]
            moved[:, j] = self.reference_[j]
            out[rows, j] = risk[rows] - self._risk(moved)
        return (risk, out) if with_risk else out

    def _trees(self) -> _Bag | None:
        if not hasattr(self, "_trees_cache"):
            self._trees_cache = _Bag.of(self.members_)
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
    """The fitted boosting's trees, to occlude a feature only where it changes a tree's leaf.

    The model's log-odds are the baseline plus the sum of its trees' outputs. Setting feature j
    to its reference changes a tree's output for a row only when the row's path in that tree
    passes a split on j that the reference would take the other way. So each tree is run once
    over all rows to find each row's leaf, and each leaf knows (from its path, once per tree)
    which features' references would move a row out of it, and where: the child the reference
    takes at the first such split (`_restarts`). Down to that split the moved row walks as the row
    did; from there only the subtree is walked, with j at its reference, and where that child is a
    leaf there is nothing to walk. The other rows keep their leaf, and their output would have come
    out the same to the last bit, so the numbers equal those of running the whole model once per
    feature (checked against it in the tests), for a fraction of the work. Built on
    scikit-learn internals (``_predictors``, ``_baseline_prediction``, ``_bin_mapper``,
    ``predict_binned``, the predictor's ``nodes``); when they are not there (another scikit-learn
    version) ``ChurnModel`` falls back to the whole model.
    """

    def __init__(self, trees: list[Any], leaf_finders: list[Any], baseline: float, bin_mapper: Any) -> None:
        self.trees, self.leaf_finders, self.baseline = trees, leaf_finders, baseline
        self.bin_mapper = bin_mapper
        self.missing_bin = bin_mapper.missing_values_bin_idx_
        self.walkers: dict[tuple[int, int], Any] = {}  # (tree, node): that subtree's predictor (`_walker`)

    @classmethod
    def of(cls, model: Any) -> _Trees | None:
        try:
            from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

            predictors = model._predictors
            if any(len(p) != 1 for p in predictors):
                return None  # binary classification has one tree per iteration
            trees = [p[0] for p in predictors]
            if trees and not hasattr(trees[0], "predict_binned"):
                return None
            finders = []
            for tree in trees:
                # the same tree whose leaves output their own node number: predict_binned then gives each row's leaf
                nodes = tree.nodes.copy()
                nodes["value"] = np.arange(len(nodes), dtype=nodes["value"].dtype)
                finders.append(TreePredictor(nodes, tree.binned_left_cat_bitsets, tree.raw_left_cat_bitsets))
            baseline = float(np.asarray(model._baseline_prediction).ravel()[0])
            return cls(trees, finders, baseline, model._bin_mapper)
        except (AttributeError, ImportError, IndexError, KeyError, TypeError, ValueError):
            return None

    def _restarts(self, t: int, reference_bins: np.ndarray, k: int) -> np.ndarray:
        """(nodes x k) int: for a row in that leaf, the node where its walk goes on when feature j is set
        to its reference: the child the reference takes at the first split on j of the leaf's path that
        the reference takes the other way (-1: none, the row keeps its leaf). Up to that split the row
        walks as before. At a categorical split: that split itself (a move assumed, walked again)."""
        nodes = self.trees[t].nodes
        restart = np.full((len(nodes), k), -1, dtype=np.int64)
        stack = [(0, np.full(k, -1, dtype=np.int64))]
        while stack:
            index, first = stack.pop()
            node = nodes[index]
            if node["is_leaf"]:
                restart[index] = first
                continue
            j = int(node["feature_idx"])
            ref = reference_bins[j]
            left, right = int(node["left"]), int(node["right"])
            if ref == self.missing_bin:
                goes = left if node["missing_go_to_left"] else right
            elif node["is_categorical"]:
                goes = index
            else:
                goes = left if ref <= node["bin_threshold"] else right
            for child in (left, right):
                below = first
                if first[j] < 0 and goes != child:  # an earlier split on j already took the row elsewhere
                    below = first.copy()
                    below[j] = goes
                stack.append((child, below))
        return restart

    def _walker(self, t: int, start: int) -> Any:
        """Tree t from node `start` down: a predictor of that subtree (its nodes renumbered, `start` first)."""
        key = (t, start)
        walker = self.walkers.get(key)
        if walker is None:
            from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

            tree = self.trees[t]
            nodes = tree.nodes
            order = [start]
            for index in order:  # grows while read: the subtree's nodes, breadth first
                if not nodes[index]["is_leaf"]:
                    order += [int(nodes[index]["left"]), int(nodes[index]["right"])]
            sub = nodes[np.array(order)].copy()
            number = {old: new for new, old in enumerate(order)}
            inner = sub["is_leaf"] == 0
            for side in ("left", "right"):
                sub[side][inner] = [number[int(old)] for old in sub[side][inner]]
            walker = TreePredictor(sub, tree.binned_left_cat_bitsets, tree.raw_left_cat_bitsets)
            self.walkers[key] = walker  # the same from any thread: a race builds it twice, no more
        return walker

    def contributions(self, block: np.ndarray, reference: np.ndarray, n_threads: int) -> tuple[np.ndarray, np.ndarray]:
        """(the boosting's probability, the contributions (n x k)) of each row of `block`."""
        n, k = block.shape
        binned = np.ascontiguousarray(self.bin_mapper.transform(block))
        reference_bins = self.bin_mapper.transform(reference.reshape(1, -1))[0]
        # the baseline first, then tree by tree: the model's own sum, so the probability is predict_proba's
        raw = np.full(n, self.baseline, dtype=np.float64)
        change = np.zeros((k, n), dtype=np.float64)  # per feature, the log-odds change with it at its reference
        for t, tree in enumerate(self.trees):
            nodes = tree.nodes
            values = nodes["value"]
            # node numbers as the smallest integers that hold them: argsort then sorts by radix
            leaf = self.leaf_finders[t].predict_binned(binned, self.missing_bin, n_threads).astype(
                np.uint8 if len(values) <= 256 else np.int32)
            raw += values[leaf]
            restart = self._restarts(t, reference_bins, k)
            moving = np.flatnonzero((restart >= 0).any(axis=1))
            if not len(moving):
                continue
            order = np.argsort(leaf, kind="stable")
            ends = np.searchsorted(leaf[order], np.arange(len(values) + 1))
            for j in np.flatnonzero((restart[moving] >= 0).any(axis=0)).tolist():
                # the rows of the leaves that feature j moves, by where their walk goes on: a leaf there
                # is the new output at once, a split is walked from (the subtree alone)
                goes = restart[moving, j]
                for start in np.unique(goes[goes >= 0]).tolist():
                    rows = np.concatenate([order[ends[node]:ends[node + 1]] for node in moving[goes == start]])
                    if not len(rows):
                        continue
                    if nodes[start]["is_leaf"]:
                        new = values[start]
                    else:
                        moved = np.take(binned, rows, axis=0)  # a third of the time of binned[rows]
                        moved[:, j] = reference_bins[j]
                        new = self._walker(t, start).predict_binned(moved, self.missing_bin, n_threads)
                    change[j, rows] += new - values[leaf[rows]]
        risk = _sigmoid(raw)
        out = np.zeros(block.shape, dtype=np.float64)
        for j in range(k):
            rows = np.flatnonzero(change[j])
            if len(rows):
                out[rows, j] = risk[rows] - _sigmoid(raw[rows] + change[j, rows])
        return risk, out


class _Bag:
    """The members' `_Trees`: the bag's probability and contributions are the means of its members'."""

    def __init__(self, members: list[_Trees]) -> None:
        self.members = members

    @classmethod
    def of(cls, models: list[Any]) -> _Bag | None:
        members = [_Trees.of(model) for model in models]
        return None if any(m is None for m in members) else cls(members)  # type: ignore[arg-type]

    def contributions(self, block: np.ndarray, reference: np.ndarray, n_threads: int) -> tuple[np.ndarray, np.ndarray]:
        """(the bag's probability, its contributions (n x k)) of each row of `block`."""
        each = [member.contributions(block, reference, n_threads) for member in self.members]
        return _mean([risk for risk, _ in each]), _mean([out for _, out in each])


def _mean(arrays: list[np.ndarray]) -> np.ndarray:
    """The element-wise mean of the members' arrays; one member's array as it is (to the bit)."""
    return arrays[0] if len(arrays) == 1 else np.mean(np.stack(arrays), axis=0)


def boosting_threads() -> int:
    """Threads for the boosting: the cores this process may use less those that other processes keep
    busy, at least one. What the others use is measured on the CPU time of the last seconds
    (`_cores_used_by_others`), or where that cannot be read, the one-minute load average beyond this
    process's own thread.

    The boosting's OpenMP threads wait for each other many times per tree, spinning while they wait:
    with more threads than free cores, a thread whose core another process holds keeps the others
    spinning, and the fit takes many times longer than on one thread.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    others = _cores_used_by_others()
    if others is None:
        try:
            others = max(0.0, os.getloadavg()[0] - 1.0)
        except OSError:
            others = 0.0
    return _free_cores(cores, others)


def _free_cores(cores: int, others: float) -> int:
    """The cores left when other processes keep `others` cores busy (rounded), at least one."""
    return max(1, min(cores, math.floor(cores - others + 0.5)))


# The one-minute load average counts this process's own threads of the minute before (the engine's
# query, an analysis just run): after a busy minute it would leave the boosting one thread on an idle
# machine. CPU time apart tells this process's use from the others'.
_CPU_WINDOW = (0.1, 30.0)  # a window shorter is noise; longer, no longer about now
_CPU_KEPT = 1.0  # seconds a measure is given again rather than measured on a shorter window


def _cpu_times() -> tuple[float, float, float] | None:
    """(monotonic seconds, the machine's busy CPU seconds, this process's CPU seconds), or None where
    the machine's are not readable (Linux's /proc/stat). Busy: all but idle and waiting for I/O."""
    try:
        with open("/proc/stat", "rb") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:9]]
        per_second = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    if len(ticks) < 5:
        return None
    return time.monotonic(), (sum(ticks) - ticks[3] - ticks[4]) / per_second, time.process_time()


_cpu_lock = threading.Lock()
_cpu_mark = _cpu_times()  # where the next window starts: first, this module's import
_cpu_measured: tuple[float, float] | None = None  # (when, cores the others used)


def _cores_used_by_others() -> float | None:
    """How many cores other processes kept busy since the last call, or since this module was imported
    (a window of a tenth of a second to 30 seconds; a tenth of a second waited for when there is none),
    or None where it cannot be measured. A measure less than a second old is given again."""
    global _cpu_mark, _cpu_measured
    with _cpu_lock:
        now = _cpu_times()
        if now is None:
            return None
        if _cpu_measured is not None and now[0] - _cpu_measured[0] < _CPU_KEPT:
            return _cpu_measured[1]
        if _cpu_mark is None or now[0] - _cpu_mark[0] > _CPU_WINDOW[1]:
            _cpu_mark = now
        if now[0] - _cpu_mark[0] < _CPU_WINDOW[0]:
            time.sleep(_CPU_WINDOW[0] - (now[0] - _cpu_mark[0]))
            now = _cpu_times()
            if now is None:
                return None
        start, _cpu_mark = _cpu_mark, now
        wall = now[0] - start[0]
        others = max(0.0, ((now[1] - start[1]) - (now[2] - start[2])) / wall) if wall > 0 else 0.0
        _cpu_measured = (now[0], others)
        return others


@contextlib.contextmanager
def _thread_limit(threads: int | None = None) -> Iterator[int]:
    """scikit-learn's OpenMP threads limited to `threads` (default: `boosting_threads()`) inside the block."""
    from threadpoolctl import threadpool_limits

    threads = boosting_threads() if threads is None else threads
    with threadpool_limits(limits=threads, user_api="openmp"):
        yield threads


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


def constant_where_empty(X: np.ndarray) -> np.ndarray:
    """`X` with every feature that no row has (all missing: no NPS answers, no events, or none among the
    rows of one group or fold) set to a constant. scikit-learn's binning cannot take an all-missing
    column; a constant one no tree splits on, so the model ignores the feature, as it should."""
    empty = np.isnan(X).all(axis=0)
    if not empty.any():
        return X
    X = X.copy()
    X[:, empty] = 0.0
    return X
