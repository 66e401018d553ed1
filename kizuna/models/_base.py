"""What every customer-base model shares: errors and warnings, the fitted check, input checks,
sufficient statistics, the optimiser and standard errors from the Hessian.

::

    KizunaError
    ├── ModelNotFittedError         predict_* called before fit
    └── ModelFitError (ValueError)  fit found no usable model: degenerate data, or an optimum at
                                    the edge of the parameter space (a parameter runs off to 0 or
                                    infinity) or without standard errors; nothing is fitted
    UserWarning
    └── ModelFitWarning             the fit ran, but the data or the result are weak
        └── ConvergenceWarning      the optimiser stopped before it converged (converged_ False)

A fit either gives finite parameters at an interior optimum with finite standard errors, or it
stopped early (ConvergenceWarning, ``converged_`` False: use with care), or it raises
ModelFitError — never parameters that make the predictions NaN without saying so.

Every model is fitted in log-parameter space (all parameters are positive), with an analytic
gradient, on the unique rows of its data with a weight for each: customers with equal
(frequency, recency, T) share one likelihood term, so the cost of a fit grows with the number of
distinct rows (a few thousand for CDNOW's weeks, 400k for a million customers over three years
of days), not with the number of customers.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from scipy import optimize, special

from kizuna._errors import KizunaError, Phrase

__all__ = [
    "BaseModel",
    "ConvergenceWarning",
    "ModelFitError",
    "ModelFitWarning",
    "ModelNotFittedError",
    "as_counts",
    "as_vector",
    "check_frt",
    "check_nonnegative",
    "check_whole",
    "compress",
    "dot",
    "factorize",
    "fit_note",
    "same_length",
    "single_threaded_blas",
    "softplus_sigmoid",
    "warn",
]

# Log-parameters are kept within these bounds: exp(±20) is 2e-9 … 5e8, far outside any sensible
# value of these models; an estimate at a bound means the data do not pin that parameter down.
LOG_BOUND = 20.0
# Above this many unique rows a fit starts from the optimum of a random sample of about this many
# rows, refined by Newton steps with the sample's Hessian (see BaseModel._warm_start).
WARM_START_ROWS = 60_000


class ModelNotFittedError(KizunaError):
    """A prediction was asked of a model that has not been fitted yet."""

    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(f"This {model} is not fitted yet. Call fit(...) with your data before predicting.")


class ModelFitError(KizunaError, ValueError):
    """`fit` found no model the data support; the model stays unfitted.

    ``reason`` says why, for callers that phrase their own message:

    * ``"no_repeat_buyers"`` — nobody has a repeat purchase (BG/NBD's drop-out, Gamma-Gamma's spend);
    * ``"no_time"`` — every customer was observed for no time at all (T = 0);
    * ``"no_dropout"`` — BG/NBD: the data show no drop-out at all (the mean drop-out probability
      a / (a + b) runs to 0), e.g. customers who all keep buying for years;
    * ``"no_cancellation"`` — sBG: nobody cancelled, or the cancellation probability runs to 0;
    * ``"diverged"`` — a parameter ran to the edge of the search range (exp(±20)), or the
      likelihood is not finite: the maximum is at 0 or infinity, not at numbers;
    * ``"not_identified"`` — the optimum has no standard errors (the Hessian is not finite or not
      positive definite): the data do not pin the parameters down.

    ``parameters`` names the parameters concerned (may be empty); ``params`` the values reached.
    """

    REASONS = ("no_repeat_buyers", "no_time", "no_dropout", "no_cancellation", "diverged", "not_identified")

    def __init__(self, model: str, reason: str, message: str, *, parameters: Sequence[str] = (),
                 params: dict[str, float] | None = None) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown reason {reason!r}")
        self.model = model
        self.reason = reason
        self.parameters = tuple(parameters)
        self.params = dict(params or {})
        super().__init__(f"{model}: {message}")


class ModelFitWarning(UserWarning):
    """The fit ran, but the data are weak (few customers, a broken assumption): use the result with care.

    `phrase`: the catalogue's words for it when it has them, which a command says in its reader's language
    (the warning's text is the English)."""

    def __init__(self, message: str | Phrase = "") -> None:
        self.phrase = message if isinstance(message, Phrase) else None
        if self.phrase is not None:
            import kizuna.i18n  # noqa: F401  (the catalogue, for the English text, when the models are used alone)
        super().__init__(message.text("en") if isinstance(message, Phrase) else message)


class ConvergenceWarning(ModelFitWarning):
    """The optimiser stopped before the log-likelihood reached its maximum."""


def fit_note(caught: warnings.WarningMessage) -> str | Phrase:
    """What a caught `ModelFitWarning` says, for a list of caveats a command prints: its phrase (said in the
    reader's language), else its text."""
    return getattr(caught.message, "phrase", None) or str(caught.message)


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str | Phrase, category: type[ModelFitWarning] = ModelFitWarning) -> None:
    """warnings.warn, pointing at the first caller outside kizuna.models (the user's fit call)."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(category(message), stacklevel=level)


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of a * b. Not ``a @ b``: OpenBLAS runs long dot products on several threads, which stall
    (0.03 ms becomes 15 ms for 400k values) whenever another process holds a core."""
    return float(np.einsum("i,i->", a, b))


@functools.cache
def _threadpools() -> Any:
    from threadpoolctl import ThreadpoolController  # a dependency of scikit-learn; a few ms to set up

    return ThreadpoolController()


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """OpenBLAS on one thread while fitting. L-BFGS-B's linear algebra is on 4x4 matrices; OpenBLAS
    still wakes its threads for it, and they stall whenever another process holds a core: the CDNOW
    fit took 0.13 s instead of 4 ms on this 2-core machine while other work ran."""
    with _threadpools().limit(limits=1, user_api="blas"):
        yield


# -- input ------------------------------------------------------------------------------------------
def as_vector(name: str, values: Any) -> np.ndarray:
    """`values` as a 1-D float64 array of finite numbers, or ValueError naming `name`."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numbers: {exc}") from None
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one value per customer), got shape {array.shape}.")
    bad = ~np.isfinite(array)
    if bad.any():
        where = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} has {int(bad.sum())} missing or infinite value(s), the first at position {where} "
                         f"({array[where]}). Drop or fill those customers first.")
    return array


def same_length(**arrays: np.ndarray) -> int:
    """The common length of the arrays, or ValueError listing the lengths."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        got = ", ".join(f"{name} {n:,}" for name, n in lengths.items())
        raise ValueError(f"one value per customer is needed in each input, but the lengths differ: {got}.")
    return next(iter(lengths.values()))


def _first_bad(name: str, array: np.ndarray, bad: np.ndarray, what: str) -> ValueError:
    where = int(np.flatnonzero(bad)[0])
    return ValueError(f"{name} {what}: {int(bad.sum()):,} value(s), the first at position {where} ({array[where]}).")


def check_nonnegative(name: str, array: np.ndarray) -> None:
    if (array < 0).any():
        raise _first_bad(name, array, array < 0, "must not be negative")


def check_whole(name: str, array: np.ndarray) -> None:
    bad = array != np.floor(array)
    if bad.any():
        raise _first_bad(name, array, bad, "must be whole numbers (counts of repeat orders)")


def as_counts(weights: Any, n: int) -> np.ndarray | None:
    """The optional weights (customers per row) as float64, or None when not given."""
    if weights is None:
        return None
    w = as_vector("weights", weights)
    if len(w) != n:
        raise ValueError(f"weights has {len(w):,} values for {n:,} rows: one weight (number of customers) per row "
                         "is needed.")
    check_nonnegative("weights", w)
    return w


def check_frt(frequency: Any, recency: Any, T: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """frequency (repeat orders), recency (age at the last order) and T (age now), checked."""
    x, t_x, T_ = as_vector("frequency", frequency), as_vector("recency", recency), as_vector("T", T)
    same_length(frequency=x, recency=t_x, T=T_)
    for name, a in (("frequency", x), ("recency", t_x), ("T", T_)):
        check_nonnegative(name, a)
    check_whole("frequency", x)
    if (t_x > T_).any():
        raise _first_bad("recency", t_x, t_x > T_, "must not exceed T (the customer's age)")
    bad = (x == 0) & (t_x != 0)
    if bad.any():
        raise _first_bad("recency", t_x, bad, "must be 0 for customers without repeat orders (frequency 0)")
    return x, t_x, T_


# -- sufficient statistics ---------------------------------------------------------------------------
def _codes(column: np.ndarray) -> tuple[np.ndarray, np.ndarray | float, int]:
    """Integer codes for a column: (codes, levels — or the offset when codes are column - min —, number of codes).

    Whole numbers in a moderate range (days, weeks, counts) need no sort: the code is the value
    minus the minimum. Anything else is coded by np.unique.
    """
    low, high = float(column.min()), float(column.max())
    if high - low < 2**24 and np.array_equal(column, np.floor(column)):
        return (column - low).astype(np.int64), low, int(high - low) + 1
    levels, codes = np.unique(column, return_inverse=True)
    return codes.astype(np.int64), levels, len(levels)


def compress(columns: Sequence[np.ndarray], weights: np.ndarray | None = None
             ) -> tuple[list[np.ndarray], np.ndarray]:
    """The unique rows of `columns` (same-length 1-D arrays) and the weight of each.

    The weight is the number of equal rows, or the sum of their `weights` when given. Rows of
    weight 0 are dropped. Each column is turned into integer codes, the codes into one int64
    key, and the keys are counted: one sort of int64 (none of floats) for whole-number data.
    """
    coded = [_codes(c) for c in columns] if len(columns[0]) else []
    if not coded or math.prod(n for _, _, n in coded) >= 2**62:
        # Too many distinct values to pack into one integer: sort the rows themselves.
        rows, inverse = np.unique(np.column_stack(columns), axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        counts = np.bincount(inverse, weights=weights, minlength=len(rows)).astype(np.float64)
        keep = counts > 0
        return [rows[keep, i] for i in range(rows.shape[1])], counts[keep]
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for codes, _, n in coded:
        key *= n
        key += codes
    if math.prod(n for _, _, n in coded) < 2**31:
        key = key.astype(np.int32)  # sorts in half the time of int64
    if weights is None:
        keys, counts = np.unique(key, return_counts=True)
        counts = counts.astype(np.float64)
    else:
        keys, inverse = np.unique(key, return_inverse=True)
        counts = np.bincount(inverse, weights=weights, minlength=len(keys))
        keys, counts = keys[counts > 0], counts[counts > 0]
    keys = keys.astype(np.int64)
    out: list[np.ndarray] = []
    for _, levels, n in reversed(coded):
        keys, code = np.divmod(keys, n)
        out.append(levels[code] if isinstance(levels, np.ndarray) else code + levels)
    return [c.astype(np.float64) for c in reversed(out)], counts


def factorize(column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, index) with values[index] == column: per-value terms are computed once per value.

    Whole numbers in a range not much wider than their count need no sort (values may then
    include some that do not occur).
    """
    if len(column) and np.array_equal(column, np.floor(column)):
        low, high = float(column.min()), float(column.max())
        if high - low <= 2 * len(column) + 1024:
            return np.arange(low, high + 1), (column - low).astype(np.intp)
    values, index = np.unique(column, return_inverse=True)
    return values, index.reshape(-1)


def softplus_sigmoid(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(1 + exp(z)) and 1 / (1 + exp(-z)), both from one exp(-|z|) (np.logaddexp and expit are
    several times slower), without overflow."""
    # exp(-|z|) only down to exp(-700): below that come subnormal numbers, which the FPU handles
    # a hundred times slower, and log1p of them is 0 to double precision anyway.
    e = np.exp(-np.minimum(np.abs(z), 700.0))
    softplus = np.maximum(z, 0.0) + np.log1p(e)
    sigmoid = np.where(z >= 0, 1.0, e) / (1.0 + e)
    return softplus, sigmoid


# -- fitting --------------------------------------------------------------------------------------

def numeric_hessian(gradient: Callable[[np.ndarray], np.ndarray], at: np.ndarray,
                    gradient_at: np.ndarray | None = None) -> np.ndarray:
    """Forward differences of an analytic gradient, made symmetric (k gradient calls for k parameters).

    At the optimum the gradient is ~0 and smooth: forward differences with a step of 1e-6 give
    the standard errors to about six digits, at half the cost of central ones.
    """
    k = len(at)
    hessian = np.empty((k, k))
    base = gradient(at) if gradient_at is None else gradient_at
    for i in range(k):
        step = 1e-6 * max(1.0, abs(at[i]))
        moved = at.copy()
        moved[i] += step
        hessian[:, i] = (gradient(moved) - base) / step
    return (hessian + hessian.T) / 2


def _scaled(value_grad: tuple[float, np.ndarray], total: float) -> tuple[float, np.ndarray]:
    """The objective per customer (for the optimiser's tolerances); a huge value where it is not finite."""
    value, grad = value_grad
    if not np.isfinite(value):
        return 1e300, np.zeros_like(grad)
    return value / total, grad / total


class BaseModel:
    """The estimator contract: parameters in __init__, learned state ending in ``_``, fit returns self."""

    _param_names: tuple[str, ...] = ()

    params_: dict[str, float]
    standard_errors_: dict[str, float]
    log_likelihood_: float
    converged_: bool
    n_customers_: float

    def __init__(self, *, max_iter: int = 1000) -> None:
        self.max_iter = max_iter  # iterations of L-BFGS-B before giving up (ConvergenceWarning)

    def __repr__(self) -> str:
        if not self._is_fitted():
            return f"{type(self).__name__}()"
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
        return f"{type(self).__name__}({shown})"

    def _is_fitted(self) -> bool:
        return hasattr(self, "params_")

    def _fail(self, reason: str, message: str, *, parameters: Sequence[str] = (),
              params: dict[str, float] | None = None) -> ModelFitError:
        """ModelFitError for this model, after forgetting what an earlier fit learned (nothing half-fitted)."""
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, name)
        return ModelFitError(type(self).__name__, reason, message, parameters=parameters, params=params)

    def _degenerate_reason(self, params: dict[str, float]) -> tuple[str, tuple[str, ...], str] | None:
        """(reason, parameters, why in words) of a failed fit at `params` when the data are degenerate in
        a way the model can name (e.g. BG/NBD: nobody drops out), or None."""
        return None

    def _check_fitted(self) -> dict[str, float]:
        if not self._is_fitted():
            raise ModelNotFittedError(type(self).__name__)
        return self.params_

    def confidence_intervals(self, level: float = 0.95) -> dict[str, tuple[float, float]]:
        """Wald intervals for each parameter, computed on the log scale so that they stay positive.

        ``exp(log(θ) ± z·se(log θ))`` with ``se(log θ) = se(θ) / θ``; NaN bounds when the
        standard errors could not be computed.
        """
        params = self._check_fitted()
        z = float(special.ndtri(0.5 + level / 2))
        out = {}
        for name, value in params.items():
            spread = z * self.standard_errors_[name] / value
            out[name] = (value * math.exp(-spread), value * math.exp(spread)) if math.isfinite(spread) \
                else (math.nan, math.nan)
        return out

    # The model's negative log-likelihood (summed over weighted rows) and its gradient with
    # respect to the log-parameters, at log-parameters `theta`.
    def _objective(self, theta: np.ndarray, data: tuple[np.ndarray, ...]) -> tuple[float, np.ndarray]:
        raise NotImplementedError

    def _prepare(self, *rows: np.ndarray) -> Any:
        """The unique rows (columns, then the weights) arranged for _objective; by default as they are."""
        return rows

    def _fit_rows(self, columns: Sequence[np.ndarray], weights: np.ndarray, start: np.ndarray) -> None:
        """Fit on unique rows with weights (from compress): prepare them, warm-start when many, optimise."""
        total = float(weights.sum())
        data = self._prepare(*columns, weights)
        known = None
        with single_threaded_blas():
            if len(weights) > WARM_START_ROWS:
                start, known = self._warm_start(columns, weights, data, start, total)
            self._optimize(data, start, total, known)

    def _warm_start(self, columns: Sequence[np.ndarray], weights: np.ndarray, data: Any, start: np.ndarray,
                    total: float) -> tuple[np.ndarray, tuple[float, np.ndarray] | None]:
        """A start next to the optimum for many rows, at the cost of a few evaluations on all of them.

        Fit a random sample of ~WARM_START_ROWS rows, take its Hessian (scaled up to all customers)
        and take Newton steps on all rows with it: each step gains a digit or more, because the
        sample's curvature is close to the whole's. L-BFGS-B then confirms the optimum in one or
        two evaluations instead of ~20. Falls back to `start` if anything looks wrong. Returns the
        start and the objective there (value, gradient), or None.
        """
        pick = np.random.default_rng(0).random(len(weights)) < WARM_START_ROWS / len(weights)
        sample_total = float(weights[pick].sum())
        sample = self._prepare(*(c[pick] for c in columns), weights[pick])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fitted = optimize.minimize(lambda t: _scaled(self._objective(t, sample), sample_total), start, jac=True,
                                       method="L-BFGS-B", bounds=[(-LOG_BOUND, LOG_BOUND)] * len(start),
                                       options={"maxiter": self.max_iter, "ftol": 1e-12, "gtol": 1e-8})
            theta = fitted.x
            hessian = numeric_hessian(lambda t: self._objective(t, sample)[1], theta) * (total / sample_total)
            if not (fitted.success and np.all(np.isfinite(hessian)) and np.all(np.linalg.eigvalsh(hessian) > 0)):
                return start, None
            value, grad = self._objective(theta, data)
            for _ in range(12):
                if not np.isfinite(value) or np.max(np.abs(grad)) / total <= 1e-9:
                    break  # L-BFGS-B's gtol: it will stop at once
                step = np.linalg.solve(hessian, grad)
                moved = theta - step
                if np.any(np.abs(moved) > LOG_BOUND):
                    break
                moved_value, moved_grad = self._objective(moved, data)
                # Near the optimum the value changes less than its rounding error: allow for that.
                if not moved_value <= value + 1e-14 * abs(value):
                    break
                theta, value, grad = moved, moved_value, moved_grad
        return (theta, (value, grad)) if np.isfinite(value) else (start, None)

    def _optimize(self, data: Any, start: np.ndarray, total: float,
                  known: tuple[float, np.ndarray] | None = None) -> None:
        """Maximise the likelihood over log-parameters; set params_, standard_errors_ and the rest."""
        names = self._param_names

        def scaled(theta: np.ndarray) -> tuple[float, np.ndarray]:
            # Per-customer scale keeps the tolerances meaningful for any number of customers.
            if known is not None and np.array_equal(theta, start):
                return _scaled(known, total)  # the objective at the start, known already
            return _scaled(self._objective(theta, data), total)

        result = optimize.minimize(scaled, start, jac=True, method="L-BFGS-B",
                                   bounds=[(-LOG_BOUND, LOG_BOUND)] * len(start),
                                   options={"maxiter": self.max_iter, "ftol": 1e-14, "gtol": 1e-9})
        theta = result.x
        value = result.fun * total if result.fun < 1e299 else math.inf
        params = {n: float(math.exp(t)) for n, t in zip(names, theta, strict=True)}
        name = type(self).__name__
        # A line search that fails only because the optimum is already reached to machine
        # precision ("ABNORMAL_TERMINATION_IN_LNSRCH") is not a failure: judge by the gradient.
        flat = np.max(np.abs(result.jac)) < 1e-5 and result.nit < self.max_iter
        converged = bool(result.success or flat) and bool(np.isfinite(value))
        shown = ", ".join(f"{k} = {v:.3g}" for k, v in params.items())
        if not np.isfinite(value) or not np.all(np.isfinite(theta)):
            raise self._fail("diverged", f"the log-likelihood is not finite at the end of the search ({shown}): "
                             "the data cannot be described by this model.", params=params)
        at_bound = tuple(n for n, t in zip(names, theta, strict=True) if abs(t) >= LOG_BOUND - 1e-6)
        # Not converged: the warning below says enough; the Hessian there may well be indefinite too,
        # so only a converged fit without standard errors is a failure.
        errors = None if at_bound else self._standard_errors(theta, data, result.jac * total)
        if at_bound or (errors is None and converged):
            if at_bound:
                ends = ", ".join(f"{n} ran to {'0' if params[n] < 1 else 'infinity'}" for n in at_bound)
                detail, reason, which = f"{ends} (the edge of the search range, exp(±{LOG_BOUND:g}))", "diverged", \
                    at_bound
            else:
                detail, reason, which = ("the optimum has no standard errors (the Hessian is not finite or not "
                                         "positive definite)"), "not_identified", ()
            degenerate = self._degenerate_reason(params)
            if degenerate is not None:
                reason, which, why = degenerate
                detail = f"{why}; {detail}"
            raise self._fail(reason, f"the fit did not converge: {detail}; {shown}. The data do not identify the "
                             "model, so its predictions would be meaningless.", parameters=which, params=params)
        self.params_ = params
        self.log_likelihood_ = -float(value)
        self.converged_ = converged
        self.n_customers_ = float(total)
        self.standard_errors_ = errors if errors is not None else dict.fromkeys(names, math.nan)
        if not converged:
            warn(f"{name}: the optimiser stopped before converging ({result.message}; "
                 f"{result.nit} iterations); the parameters may be off.", ConvergenceWarning)

    def _standard_errors(self, theta: np.ndarray, data: tuple[np.ndarray, ...],
                         gradient: np.ndarray) -> dict[str, float] | None:
        """Standard errors from the inverse Hessian of the negative log-likelihood (delta method); None
        when the Hessian is not finite or not positive definite."""
        with np.errstate(all="ignore"):
            hessian = numeric_hessian(lambda t: self._objective(t, data)[1], theta, gradient)
        if not np.all(np.isfinite(hessian)):
            return None
        try:
            covariance = np.linalg.inv(hessian)
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(covariance)) or not np.all(np.diag(covariance) > 0):
            return None
        # se(θ) = θ · se(log θ)
        se_log = np.sqrt(np.diag(covariance))
        errors = {n: float(math.exp(t) * s) for n, t, s in zip(self._param_names, theta, se_log, strict=True)}
        return errors if all(math.isfinite(v) for v in errors.values()) else None
