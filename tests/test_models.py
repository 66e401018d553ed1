"""kizuna.models: published values on CDNOW, likelihood and gradients, recovery of simulated
parameters, extreme customers, and the estimator contract common to every model."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize
from scipy.special import betaln, gammaln

import kizuna.models
from kizuna._errors import KizunaError
from kizuna.models import (
    BetaGeo,
    ConvergenceWarning,
    GammaGamma,
    ModelFitError,
    ModelFitWarning,
    ModelNotFittedError,
    ModifiedBetaGeo,
    ShiftedBetaGeo,
)
from kizuna.models._base import compress
from kizuna.models._simulate import simulate_beta_geo, simulate_gamma_gamma, simulate_shifted_beta_geo

DATA = Path(__file__).parent / "data"

# Fader & Hardie (2007), "How to project customer retention", % of the cohort still active, years 0-7.
REGULAR = [100.0, 63.1, 46.8, 38.2, 32.6, 28.9, 26.2, 24.1]
HIGH_END = [100.0, 86.9, 74.3, 65.3, 59.3, 55.1, 51.7, 49.1]


@pytest.fixture(scope="module")
def cdnow() -> dict[str, np.ndarray]:
    """The CDNOW summary (weeks) with the mean repeat-purchase value (lifetimes' monetary_value)."""
    summary = np.genfromtxt(DATA / "cdnow_customers_summary.csv", delimiter=",", names=True)
    spend = np.genfromtxt(DATA / "cdnow_customers_summary_with_transactions.csv", delimiter=",", names=True)
    assert len(summary) == len(spend) == 2357
    assert np.array_equal(summary["frequency"], spend["x"]) and np.array_equal(summary["T"], spend["T"])
    return {"frequency": summary["frequency"], "recency": summary["recency"], "T": summary["T"],
            "monetary_value": spend["zbar"]}


@pytest.fixture(scope="module")
def bg_cdnow(cdnow) -> BetaGeo:
    return BetaGeo().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])


def test_public_names():
    assert kizuna.models.__all__ == ["BetaGeo", "ConvergenceWarning", "GammaGamma", "ModelFitError",
                                     "ModelFitWarning", "ModelNotFittedError", "ModifiedBetaGeo", "ShiftedBetaGeo",
                                     "fit_note", "newcombe_interval", "wilson_interval"]


def test_a_weak_fit_warns_in_words_the_commands_say_in_their_readers_language():
    # the warning's text is the English; its phrase is what `kizuna predict` prints, in the workspace's language
    import warnings

    from kizuna.i18n import say
    from kizuna.models import GammaGamma, ModelFitWarning, fit_note

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ModelFitWarning)
        with contextlib.suppress(ModelFitError):  # three customers: the warning comes before the fit
            GammaGamma().fit(np.array([1.0, 2.0, 3.0]), np.array([1200.0, 1500.0, 1000.0]))
    few = next(w for w in caught if str(w.message).startswith("GammaGamma: only 3 repeat buyers; at least "))
    assert issubclass(few.category, ModelFitWarning)
    assert say(fit_note(few), "ja").startswith("GammaGamma: リピーターが 3 人しかいません。")
    assert say(fit_note(few), "en") == str(few.message)
    assert issubclass(ModelNotFittedError, KizunaError)
    assert issubclass(ModelFitError, KizunaError) and issubclass(ModelFitError, ValueError)
    assert issubclass(ConvergenceWarning, ModelFitWarning) and issubclass(ModelFitWarning, UserWarning)


# -- published values --------------------------------------------------------------------------------
def test_beta_geo_cdnow_published(bg_cdnow):
    # Fader, Hardie & Lee (2005), "Counting your customers the easy way", section 4.
    p = bg_cdnow.params_
    assert {k: round(v, 3) for k, v in p.items()} == {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    assert bg_cdnow.log_likelihood_ == pytest.approx(-9582.4, abs=0.05)
    assert bg_cdnow.converged_ and bg_cdnow.n_customers_ == 2357
    # Conditional expectation over the next 39 weeks of customer 1 (x = 2, t_x = 30.43, T = 38.86).
    assert bg_cdnow.predict_purchases(39, 2, 30.43, 38.86) == pytest.approx([1.226], abs=5e-4)
    # lifetimes 0.11.3 on the same data: P(alive) 0.7266, E[X(39)] of a new customer 1.1950, and
    # standard errors 0.012557, 0.378221, 0.185719, 0.705345.
    assert bg_cdnow.predict_alive(2, 30.43, 38.86) == pytest.approx([0.72661], abs=1e-5)
    assert bg_cdnow.predict_unconditional(39) == pytest.approx([1.19502], abs=1e-5)
    se = bg_cdnow.standard_errors_
    assert [se[k] for k in ("r", "alpha", "a", "b")] == pytest.approx([0.012557, 0.378221, 0.185719, 0.705345],
                                                                     rel=1e-3)
    low, high = bg_cdnow.confidence_intervals()["r"]
    assert low < p["r"] < high and high - low == pytest.approx(2 * 1.96 * se["r"], rel=0.01)


def test_modified_beta_geo_cdnow_as_lifetimes(cdnow):
    # No published CDNOW fit of MBG/NBD: lifetimes 0.11.3's ModifiedBetaGeoFitter on the same data gives
    # r 0.524838, α 6.182988, a 0.891356, b 1.614000 (se 0.083264, 0.695597, 0.154785, 0.537472),
    # E[X(39) | 2, 30.43, 38.86] 1.262671, P(alive) 0.706126 (x = 2) and 0.389716 (x = 0), E[X(39)] 1.182284.
    model = ModifiedBetaGeo().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    assert [model.params_[k] for k in ("r", "alpha", "a", "b")] == pytest.approx([0.524838, 6.182988, 0.891356,
                                                                                1.614000], abs=1e-5)
    assert [model.standard_errors_[k] for k in ("r", "alpha", "a", "b")] == pytest.approx(
        [0.083264, 0.695597, 0.154785, 0.537472], rel=1e-3)
    assert model.predict_purchases(39, 2, 30.43, 38.86) == pytest.approx([1.262671], abs=1e-5)
    assert model.predict_alive([2, 0], [30.43, 0], [38.86, 38.86]) == pytest.approx([0.706126, 0.389716], abs=1e-5)
    assert model.predict_unconditional(39) == pytest.approx([1.182284], abs=1e-5)


def test_gamma_gamma_cdnow_published(cdnow):
    repeat = cdnow["frequency"] > 0
    model = GammaGamma().fit(cdnow["frequency"][repeat], cdnow["monetary_value"][repeat])
    p = model.params_
    # Fader, Hardie & Lee (2005), "RFM and CLV": p 6.25, q 3.74, γ 15.44; the optimum is 6.249, 3.745, 15.448.
    assert [p["p"], p["q"], p["v"]] == pytest.approx([6.249, 3.745, 15.448], abs=0.01)
    assert [p["p"], p["q"], p["v"]] == pytest.approx([6.25, 3.74, 15.44], abs=0.01)
    assert model.n_customers_ == 946 and model.converged_
    # lifetimes 0.11.3: customer 1 (x = 2, zbar = 22.35) expects 24.6586; the population mean 35.171.
    assert model.predict_spend([2, 0], [22.35, np.nan]) == pytest.approx([24.6586, 35.1710], abs=1e-4)
    assert model.predict_population_mean() == pytest.approx(35.1710, abs=1e-4)
    assert [model.standard_errors_[k] for k in ("p", "q", "v")] == pytest.approx([1.1897, 0.2902, 4.1600],
                                                                                rel=1e-3)


@pytest.mark.parametrize(("alive", "alpha", "beta"), [(REGULAR, 0.704, 1.182), (HIGH_END, 0.668, 3.806)])
def test_shifted_beta_geo_published(alive, alpha, beta):
    # Fader & Hardie (2007), "How to project customer retention", table 1 / section 5.
    model = ShiftedBetaGeo().fit(alive)
    assert (round(model.params_["alpha"], 3), round(model.params_["beta"], 3)) == (alpha, beta)
    survival = model.predict_retention(12)
    assert survival[0] == 1 and np.all(np.diff(survival) < 0)
    # S(t) = S(t-1) r(t) and S(t-1) - S(t) = P(T = t)
    assert survival[1:] == pytest.approx(np.cumprod(model.predict_retention_rate(12)))
    assert -np.diff(survival) == pytest.approx(model.predict_churn_probability(12))
    assert np.all(np.diff(model.predict_retention_rate(12)) > 0)  # retention rises with tenure
    # counts or percentages: the same parameters, standard errors shrinking with the cohort's size
    counts = ShiftedBetaGeo().fit(np.array(alive) * 10)
    assert counts.params_ == pytest.approx(model.params_, rel=1e-6)
    assert counts.standard_errors_["alpha"] == pytest.approx(model.standard_errors_["alpha"] / math.sqrt(10),
                                                             rel=1e-3)


# -- likelihood and gradients -------------------------------------------------------------------------
def bg_nbd_log_likelihood(params, x, t_x, T, modified=False):
    """Equation 6 of Fader, Hardie & Lee (2005), written out plainly, one customer per row; `modified`:
    MBG/NBD (Batislam, Denizel & Filiztekin 2007, as lifetimes' ModifiedBetaGeoFitter)."""
    r, alpha, a, b = params
    s = 1 if modified else 0
    A1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    A2 = gammaln(a + b) + gammaln(b + x + s) - gammaln(b) - gammaln(a + b + x + s)
    A3 = -(r + x) * np.log(alpha + T)
    with np.errstate(invalid="ignore", divide="ignore"):
        A4 = np.where((x > 0) | modified, np.log(a) - np.log(b + x - 1 + s) - (r + x) * np.log(alpha + t_x), -np.inf)
    return float(np.sum(A1 + A2 + np.logaddexp(A3, A4)))


def gamma_gamma_log_likelihood(params, x, m):
    p, q, v = params
    return float(np.sum(gammaln(p * x + q) - gammaln(p * x) - gammaln(q) + q * np.log(v) + (p * x - 1) * np.log(m)
                        + p * x * np.log(x) - (p * x + q) * np.log(x * m + v)))


def sbg_log_likelihood(params, alive):
    alpha, beta = params
    n = np.asarray(alive, dtype=float)
    t = np.arange(1, len(n))
    return float(-np.diff(n) @ (betaln(alpha + 1, beta + t - 1) - betaln(alpha, beta))
                 + n[-1] * (betaln(alpha, beta + len(n) - 1) - betaln(alpha, beta)))


def model_and_data(name, cdnow):
    x, t_x, T, m = cdnow["frequency"], cdnow["recency"], cdnow["T"], cdnow["monetary_value"]
    if name in ("BetaGeo", "ModifiedBetaGeo"):
        cols, w = compress((x, t_x, T))
        model = BetaGeo() if name == "BetaGeo" else ModifiedBetaGeo()
        return model, model._prepare(*cols, w), \
            lambda p: bg_nbd_log_likelihood(p, x, t_x, T, modified=name == "ModifiedBetaGeo")
    if name == "GammaGamma":
        repeat = x > 0
        cols, w = compress((x[repeat], m[repeat]))
        return GammaGamma(), (*cols, w), lambda p: gamma_gamma_log_likelihood(p, x[repeat], m[repeat])
    churned = -np.diff(np.array(REGULAR) * 10)
    return ShiftedBetaGeo(), (churned, np.array([REGULAR[-1] * 10])), \
        lambda p: sbg_log_likelihood(p, np.array(REGULAR) * 10)


@pytest.mark.parametrize("name", ["BetaGeo", "ModifiedBetaGeo", "GammaGamma", "ShiftedBetaGeo"])
def test_log_likelihood_and_gradient(name, cdnow):
    """The compressed, vectorised objective equals the plain formula; its gradient equals finite differences."""
    model, data, plain = model_and_data(name, cdnow)
    rng = np.random.default_rng(1)
    for _ in range(3):
        theta = rng.uniform(-1.5, 1.5, len(model._param_names))
        value, grad = model._objective(theta, data)
        assert -value == pytest.approx(plain(np.exp(theta)), rel=1e-10)
        numeric = optimize.approx_fprime(theta, lambda t: model._objective(t, data)[0], 1e-7)
        assert grad == pytest.approx(numeric, rel=1e-4, abs=1e-3 * max(1.0, np.abs(grad).max()) * 1e-2)
        assert optimize.check_grad(lambda t: model._objective(t, data)[0], lambda t: model._objective(t, data)[1],
                                   theta) < 1e-4 * max(1.0, np.abs(grad).max())


# -- recovery of simulated parameters -----------------------------------------------------------------
def assert_recovered(model, truth):
    for name, value in truth.items():
        se = model.standard_errors_[name]
        assert se > 0 and abs(model.params_[name] - value) < 4 * se, (name, model.params_[name], value, se)


@pytest.mark.parametrize("cls", [BetaGeo, ModifiedBetaGeo])
def test_beta_geo_recovers_simulated_parameters(cls):
    rng = np.random.default_rng(2024)
    truth = {"r": 0.5, "alpha": 8.0, "a": 0.6, "b": 3.0}
    T = rng.uniform(20, 80, 50_000)
    x, t_x, T = simulate_beta_geo(50_000, T, **truth, rng=rng, modified=cls is ModifiedBetaGeo)
    model = cls().fit(x, t_x, T)
    assert model.converged_
    assert_recovered(model, truth)


def test_simulation_matches_the_model():
    # Mean repeat purchases of a cohort observed for T = 30 equal E[X(30)] (equation 9).
    rng = np.random.default_rng(5)
    for cls in (BetaGeo, ModifiedBetaGeo):
        x, _, _ = simulate_beta_geo(200_000, 30.0, r=0.3, alpha=5.0, a=0.8, b=2.5, rng=rng,
                                    modified=cls is ModifiedBetaGeo)
        model = cls()
        model.params_ = {"r": 0.3, "alpha": 5.0, "a": 0.8, "b": 2.5}
        expected = model.predict_unconditional(30.0)[0]
        assert abs(x.mean() - expected) < 4 * x.std() / math.sqrt(len(x))


def test_gamma_gamma_recovers_simulated_parameters():
    rng = np.random.default_rng(7)
    truth = {"p": 5.0, "q": 4.0, "v": 20.0}
    frequency = rng.integers(1, 12, 50_000).astype(float)
    spend = simulate_gamma_gamma(frequency, **truth, rng=rng)
    model = GammaGamma().fit(frequency, spend)
    assert_recovered(model, truth)


def test_shifted_beta_geo_recovers_simulated_parameters():
    rng = np.random.default_rng(11)
    truth = {"alpha": 0.7, "beta": 1.2}
    alive = simulate_shifted_beta_geo(50_000, 8, **truth, rng=rng)
    model = ShiftedBetaGeo().fit(alive)
    assert model.n_customers_ == 50_000
    assert_recovered(model, truth)


# -- extreme customers --------------------------------------------------------------------------------
def test_extreme_customers_stay_finite(bg_cdnow, cdnow):
    x = np.array([500, 500, 500, 0, 0, 1, 1, 200, 29])
    t_x = np.array([0, 5000, 2500, 0, 0, 0, 5000, 10, 38.43])
    T = np.array([5000, 5000, 5000, 5000, 0, 5000, 5000, 20, 38.86])
    for t in (0.0, 1.0, 39.0, 5000.0, 1e6):
        expected = bg_cdnow.predict_purchases(t, x, t_x, T)
        assert np.all(np.isfinite(expected)) and np.all(expected >= 0)
    alive = bg_cdnow.predict_alive(x, t_x, T)
    assert np.all((alive >= 0) & (alive <= 1))
    assert alive[3] == alive[4] == 1.0  # no repeat purchase: alive for sure
    # 500 purchases up to now: alive but for the drop-out chance after the last one; 500 long ago: gone.
    a, b = bg_cdnow.params_["a"], bg_cdnow.params_["b"]
    assert alive[1] == pytest.approx(1 / (1 + a / (b + 499))) and alive[0] < 1e-100
    modified = ModifiedBetaGeo().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    for t in (0.0, 39.0, 1e6):
        assert np.all(np.isfinite(modified.predict_purchases(t, x, t_x, T)))
    alive_modified = modified.predict_alive(x, t_x, T)
    assert np.all((alive_modified >= 0) & (alive_modified <= 1)) and alive_modified[3] < 1
    # a horizon array broadcasts against one customer
    assert bg_cdnow.predict_purchases([1, 39, 390], 2, 30.43, 38.86).shape == (3,)
    # fitting with extreme (but not absurd) customers among ordinary ones: finite and converged
    x, t_x, T = [500, 300, 1, 0, 500], [4990, 2500, 0, 0, 500], [5000, 5000, 5000, 5000, 500]
    model = BetaGeo().fit(np.r_[cdnow["frequency"], x], np.r_[cdnow["recency"], t_x], np.r_[cdnow["T"], T])
    assert model.converged_ and np.isfinite(model.log_likelihood_)
    assert all(np.isfinite(v) and v > 0 for v in [*model.params_.values(), *model.standard_errors_.values()])
    rng = np.random.default_rng(4)
    frequency = np.r_[rng.integers(1, 10, 1000), 500, 500, 1, 1].astype(float)
    monetary = np.r_[simulate_gamma_gamma(frequency[:-4], p=6, q=4, v=15, rng=rng), 30, 1e-3, 1e5, 1e-3]
    spend = GammaGamma().fit(frequency, monetary)
    assert np.all(np.isfinite(spend.predict_spend([500, 500, 1, 1, 0], [1e6, 1e-3, 1e5, 1e-3, 0])))


# -- the estimator contract, for every model ----------------------------------------------------------
def fit_args(name, cdnow):
    if name in ("BetaGeo", "ModifiedBetaGeo"):
        return (cdnow["frequency"], cdnow["recency"], cdnow["T"])
    if name == "GammaGamma":
        repeat = cdnow["frequency"] > 0
        return (cdnow["frequency"][repeat], cdnow["monetary_value"][repeat])
    return (REGULAR,)


def predict_calls(model):
    if isinstance(model, BetaGeo):
        return [lambda: model.predict_alive([1], [2], [3]), lambda: model.predict_purchases(1, [1], [2], [3]),
                lambda: model.predict_unconditional(1)]
    if isinstance(model, GammaGamma):
        return [lambda: model.predict_spend([1], [2]), model.predict_population_mean]
    return [lambda: model.predict_retention(3), lambda: model.predict_retention_rate(3),
            lambda: model.predict_churn_probability(3)]


@pytest.mark.parametrize("cls", [BetaGeo, ModifiedBetaGeo, GammaGamma, ShiftedBetaGeo])
def test_estimator_contract(cls, cdnow):
    model = cls()
    assert vars(model) == {"max_iter": 1000} and repr(model) == f"{cls.__name__}()"
    for predict in predict_calls(model):
        with pytest.raises(ModelNotFittedError, match="not fitted yet. Call fit"):
            predict()
    with pytest.raises(ModelNotFittedError):
        model.confidence_intervals()
    assert model.fit(*fit_args(cls.__name__, cdnow)) is model
    assert list(model.params_) == list(model._param_names) == list(model.standard_errors_)
    assert all(isinstance(v, float) and v > 0 for v in model.params_.values())
    assert model.converged_ is True and model.log_likelihood_ < 0 and model.n_customers_ > 0
    assert cls.__name__ in repr(model)
    for predict in predict_calls(model):
        assert np.all(np.isfinite(predict()))
    with pytest.warns(ConvergenceWarning, match="stopped before converging"):
        stopped = cls(max_iter=1).fit(*fit_args(cls.__name__, cdnow))
    assert stopped.converged_ is False


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"frequency": [1, -1], "recency": [1, 0], "T": [2, 2]}, "frequency must not be negative"),
    ({"frequency": [1, 1], "recency": [3, 1], "T": [2, 2]}, "recency must not exceed T"),
    ({"frequency": [1, np.nan], "recency": [1, 1], "T": [2, 2]}, "frequency has 1 missing"),
    ({"frequency": [1, 1], "recency": [1, 1], "T": [2, np.inf]}, "T has 1 missing or infinite"),
    ({"frequency": [1, 1, 2], "recency": [1, 1], "T": [2, 2]}, "lengths differ: frequency 3, recency 2, T 2"),
    ({"frequency": [1.5, 1], "recency": [1, 1], "T": [2, 2]}, "frequency must be whole numbers"),
    ({"frequency": [0, 1], "recency": [1, 1], "T": [2, 2]}, "recency must be 0 for customers without repeat"),
    ({"frequency": [], "recency": [], "T": []}, "no customers"),
    ({"frequency": [1, 2], "recency": [1, 1], "T": [2, 2], "weights": [1, -1]}, "weights must not be negative"),
    ({"frequency": [1, 2], "recency": [1, 1], "T": [2, 2], "weights": [1]}, "weights has 1 values for 2 rows"),
    ({"frequency": [[1, 2]], "recency": [1, 1], "T": [2, 2]}, "one-dimensional"),
    ({"frequency": ["a", "b"], "recency": [1, 1], "T": [2, 2]}, "frequency must be numbers"),
])
def test_beta_geo_rejects_impossible_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BetaGeo().fit(**kwargs)


def test_predictions_reject_impossible_input(bg_cdnow):
    with pytest.raises(ValueError, match="recency must not exceed T"):
        bg_cdnow.predict_alive([1], [5], [4])
    with pytest.raises(ValueError, match="t must not be negative"):
        bg_cdnow.predict_purchases(-1, [1], [1], [4])


def test_gamma_gamma_and_sbg_reject_impossible_input():
    with pytest.raises(ValueError, match="monetary_value must be > 0 for customers with repeat orders"):
        GammaGamma().fit([1, 2], [10.0, 0.0])
    with pytest.raises(ModelFitError, match="no repeat buyers") as caught, \
            pytest.warns(ModelFitWarning, match="left out"):
        GammaGamma().fit([0, 0], [0, 0])
    assert caught.value.reason == "no_repeat_buyers"
    with pytest.raises(ValueError, match=r"must not increase.*alive\[2\] = 70 > alive\[1\] = 60"):
        ShiftedBetaGeo().fit([100, 60, 70])
    with pytest.raises(ValueError, match="at least two values"):
        ShiftedBetaGeo().fit([100])
    with pytest.raises(ValueError, match="size of the cohort"):
        ShiftedBetaGeo().fit([0, 0, 0])
    with pytest.raises(ValueError, match="periods must be a whole number"):
        ShiftedBetaGeo().fit(REGULAR).predict_retention(2.5)


def test_degenerate_data_raise_or_warn():
    # Data that cannot identify a model raise ModelFitError with a reason; weak data warn.
    rng = np.random.default_rng(3)
    T = rng.uniform(10, 50, 500)
    model = BetaGeo()
    with pytest.raises(ModelFitError, match="no customer has a repeat purchase") as caught:
        model.fit(np.zeros(500), np.zeros(500), T)
    assert caught.value.reason == "no_repeat_buyers" and not hasattr(model, "params_")  # nothing half-fitted
    with pytest.raises(ModelFitError, match="every customer has T = 0") as caught:
        BetaGeo().fit(np.zeros(500), np.zeros(500), np.zeros(500))
    assert caught.value.reason == "no_time"
    x, t_x, T = simulate_beta_geo(40, 30.0, r=0.5, alpha=5, a=0.7, b=3, rng=rng)
    with pytest.warns(ModelFitWarning) as caught:
        BetaGeo().fit(x, t_x, T)
    assert any("only 40 customers" in str(w.message) for w in caught)
    frequency = rng.integers(1, 5, 200).astype(float)
    with pytest.warns(ModelFitWarning, match="1 customers with frequency 0 were left out"):
        GammaGamma().fit(np.r_[0, frequency], np.r_[0, simulate_gamma_gamma(frequency, p=5, q=4, v=20, rng=rng)])
    frequency = rng.integers(1, 8, 300).astype(float)  # order value rising with the number of orders
    with pytest.warns(ModelFitWarning, match="frequency and monetary value are correlated"):
        GammaGamma().fit(frequency, simulate_gamma_gamma(frequency, p=5, q=4, v=20, rng=rng) * frequency)
    frequency = rng.integers(1, 5, 2000).astype(float)
    with pytest.warns(ModelFitWarning, match=r"q = .* <= 1"):
        GammaGamma().fit(frequency, simulate_gamma_gamma(frequency, p=3.0, q=0.6, v=5.0, rng=rng))
    with pytest.raises(ModelFitError, match="nobody cancelled") as caught:
        ShiftedBetaGeo().fit([100, 100, 100])
    assert caught.value.reason == "no_cancellation"
    with pytest.raises(ModelFitError, match="only one period observed") as caught:
        ShiftedBetaGeo().fit([100, 60])
    assert caught.value.reason == "not_identified"
    # every warning points at the caller's fit(...), not into kizuna.models
    with pytest.warns(ModelFitWarning) as caught:
        BetaGeo().fit(x, t_x, T)
    assert {Path(w.filename) for w in caught} == {Path(__file__)}


# -- sufficient statistics ----------------------------------------------------------------------------
def test_compressed_fit_equals_row_by_row(cdnow, bg_cdnow):
    x, t_x, T = cdnow["frequency"], cdnow["recency"], cdnow["T"]
    rows, counts = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
    assert len(rows) == 1016
    aggregated = BetaGeo().fit(rows[:, 0], rows[:, 1], rows[:, 2], weights=counts)
    assert aggregated.params_ == pytest.approx(bg_cdnow.params_, rel=1e-7)
    assert aggregated.log_likelihood_ == pytest.approx(bg_cdnow.log_likelihood_, rel=1e-12)
    assert aggregated.n_customers_ == 2357
    # every customer twice = weight 2; rows of weight 0 do not count
    doubled = BetaGeo().fit(np.r_[x, x], np.r_[t_x, t_x], np.r_[T, T])
    weighted = BetaGeo().fit(np.r_[x, 5], np.r_[t_x, 1], np.r_[T, 9], weights=np.r_[np.full(len(x), 2.0), 0])
    assert weighted.params_ == pytest.approx(doubled.params_, rel=1e-7)
    assert weighted.standard_errors_["r"] == pytest.approx(bg_cdnow.standard_errors_["r"] / math.sqrt(2), rel=1e-4)


def test_compress_paths():
    rng = np.random.default_rng(0)
    whole = [rng.integers(0, 5, 1000).astype(float), rng.integers(100, 110, 1000).astype(float)]
    fractional = [rng.integers(0, 5, 1000) / 3, rng.integers(0, 3, 1000) + 0.5]
    huge = [rng.integers(0, 2**40, 1000).astype(float) for _ in range(2)]  # too many levels to pack
    for columns in (whole, fractional, huge, [whole[0], fractional[1]]):
        got, counts = compress(columns)
        want, want_counts = np.unique(np.column_stack(columns), axis=0, return_counts=True)
        assert np.array_equal(np.column_stack(got), want) and np.array_equal(counts, want_counts)
        weights = rng.uniform(0, 1, 1000)
        _, weighted = compress(columns, weights)
        assert weighted.sum() == pytest.approx(weights.sum())


@pytest.mark.parametrize("cls", [BetaGeo, GammaGamma])
def test_warm_start_for_many_rows_gives_the_same_fit(cls, monkeypatch):
    """Above WARM_START_ROWS unique rows a fit starts from a sample's optimum: same optimum, same errors."""
    rng = np.random.default_rng(9)
    if cls is BetaGeo:
        args = simulate_beta_geo(20_000, rng.uniform(20, 80, 20_000), r=0.5, alpha=8.0, a=0.6, b=3.0, rng=rng)
    else:
        frequency = rng.integers(1, 12, 20_000).astype(float)
        args = (frequency, simulate_gamma_gamma(frequency, p=5.0, q=4.0, v=20.0, rng=rng))
    cold = cls().fit(*args)
    monkeypatch.setattr(kizuna.models._base, "WARM_START_ROWS", 2_000)
    warm = cls().fit(*args)
    assert warm.converged_
    assert warm.params_ == pytest.approx(cold.params_, rel=1e-6)
    assert warm.standard_errors_ == pytest.approx(cold.standard_errors_, rel=1e-4)
    assert warm.log_likelihood_ == pytest.approx(cold.log_likelihood_, rel=1e-12)
