"""The churn model, its reasons in words, the backtest figures and the holdout chart.

The model is trained on synthetic customers whose churn is driven, by construction, by two
features (the overdue ratio and open support contacts): it must learn that, and its
contributions must name the true driver.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import struct
import warnings

import numpy as np
import pyarrow as pa
import pytest

from kizuna import KizunaError
from kizuna.models import ModelFitWarning, ModelNotFittedError
from kizuna.prediction import CHURN_FEATURES
from kizuna.prediction._chart import holdout_chart_spec, write_holdout_chart
from kizuna.prediction._churn import MISSING_REFERENCE, ChurnDataError, ChurnModel
from kizuna.prediction._evaluation import (
    calibration_table,
    compare_at_capacity,
    holdout_aggregate,
    holdout_table,
    roc_auc,
    top_decile_lift,
)
from kizuna.prediction._reasons import reason_texts

COL = {name: j for j, name in enumerate(CHURN_FEATURES)}


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Customers whose churn depends on the overdue ratio and on open contacts only."""
    rng = np.random.default_rng(seed)
    X = np.full((n, len(CHURN_FEATURES)), np.nan)
    interval = rng.uniform(10, 60, n)
    overdue = rng.lognormal(0.0, 0.6, n)
    X[:, COL["mean_interval_days"]] = interval
    X[:, COL["overdue_ratio"]] = overdue
    X[:, COL["days_since_last_order"]] = np.round(overdue * interval)
    X[:, COL["orders"]] = rng.integers(2, 30, n)
    X[:, COL["orders_365d"]] = rng.integers(0, 12, n)
    X[:, COL["revenue"]] = rng.integers(2_000, 200_000, n)
    X[:, COL["revenue_365d"]] = rng.integers(0, 60_000, n)
    X[:, COL["tenure_days"]] = rng.integers(60, 1500, n)
    answered = rng.random(n) < 0.3
    X[answered, COL["nps_score"]] = rng.integers(0, 11, answered.sum())
    X[:, COL["contacts_365d"]] = rng.poisson(0.5, n)
    X[:, COL["open_contacts"]] = (rng.random(n) < 0.15).astype(float)
    X[:, COL["complaints_365d"]] = 0.0
    X[:, COL["is_subscriber"]] = (rng.random(n) < 0.2).astype(float)
    logit = -2.0 + 2.5 * np.log(overdue) * 1.6 + 3.0 * X[:, COL["open_contacts"]]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


@pytest.fixture(scope="module")
def fitted() -> ChurnModel:
    X, y = synthetic(4000, seed=1)
    return ChurnModel().fit(X, y, CHURN_FEATURES)


# -- the model ------------------------------------------------------------------------------------
def test_learns_the_drivers(fitted: ChurnModel) -> None:
    X, y = synthetic(3000, seed=2)
    auc = roc_auc(y, fitted.predict_risk(X))
    assert auc is not None and auc > 0.8
    assert fitted.validation_auc_ is not None and fitted.validation_auc_ > 0.8
    assert 0.0 < fitted.baseline_ < 1.0
    assert fitted.n_customers_ == 4000
    risk = fitted.predict_risk(X)
    assert risk.shape == (3000,) and ((risk >= 0) & (risk <= 1)).all()


def test_contributions_name_the_true_driver(fitted: ChurnModel) -> None:
    X, _ = synthetic(3000, seed=3)
    top = fitted.top_reasons(X)
    assert top.shape == (3000, 3) and top.dtype == np.int64
    overdue = (X[:, COL["overdue_ratio"]] > 3.0) & (X[:, COL["open_contacts"]] == 0)
    complaint = (X[:, COL["open_contacts"]] == 1) & (X[:, COL["overdue_ratio"]] < 1.0)
    assert overdue.sum() > 20 and complaint.sum() > 100
    # days since the last order carries the same story as the ratio (it is the ratio times the interval)
    recency = {COL["overdue_ratio"], COL["days_since_last_order"]}
    assert np.mean([t in recency for t in top[overdue, 0]]) > 0.9
    assert np.mean(top[complaint, 0] == COL["open_contacts"]) > 0.9


def test_contributions_are_the_models_own_occlusion(fitted: ChurnModel) -> None:
    """Faithful: the contribution of j is risk(x) - risk(x with j at its reference), by the model."""
    X, _ = synthetic(500, seed=4)
    c = fitted.contributions(X)
    risk = fitted.raw_risk(X)  # contributions are on the boosting's own probability, before calibration
    for j in (COL["overdue_ratio"], COL["open_contacts"], COL["nps_score"], COL["orders"]):
        moved = X.copy()
        moved[:, j] = fitted.reference_[j]
        np.testing.assert_allclose(c[:, j], risk - fitted.raw_risk(moved), atol=1e-12)
    # the tree-by-tree shortcut gives the same numbers as occluding with the whole model
    np.testing.assert_allclose(c, fitted._occlude_whole(X), atol=1e-12)
    # references: median, or missing for the features whose absence means "nothing happened"
    assert math.isnan(fitted.reference_[COL["nps_score"]]) and "nps_score" in MISSING_REFERENCE
    assert fitted.reference_[COL["open_contacts"]] == 0.0
    assert fitted.reference_[COL["overdue_ratio"]] == pytest.approx(1.0, abs=0.1)


def test_risk_and_reasons_in_one_pass_equal_the_two_calls(fitted: ChurnModel) -> None:
    """The one pass that scores a batch gives predict_risk's risks and top_reasons' reasons, to the bit."""
    X, _ = synthetic(700, seed=12)
    risk, top = fitted.risk_and_reasons(X)
    np.testing.assert_array_equal(risk, fitted.predict_risk(X))
    np.testing.assert_array_equal(top, fitted.top_reasons(X))
    # the trees' own probability is the model's predict_proba (the same sum, in the same order)
    np.testing.assert_array_equal(fitted._trees().contributions(X, fitted.reference_, 1)[0], fitted.raw_risk(X))
    empty_risk, empty_top = fitted.risk_and_reasons(np.zeros((0, len(CHURN_FEATURES))))
    assert empty_risk.shape == (0,) and empty_top.shape == (0, 3)


def test_risk_and_reasons_of_some_rows(fitted: ChurnModel) -> None:
    """`rows` limits the reasons to those customers: every customer keeps the whole pass's risk, to the
    bit; the chosen ones their reasons, the others none (-1)."""
    X, _ = synthetic(700, seed=12)
    whole_risk, whole_top = fitted.risk_and_reasons(X)
    chosen = np.zeros(len(X), dtype=bool)
    chosen[::3] = True
    chosen[600:] = True
    risk, top = fitted.risk_and_reasons(X, rows=chosen)
    np.testing.assert_array_equal(risk, whole_risk)
    np.testing.assert_array_equal(top[chosen], whole_top[chosen])
    assert (top[~chosen] == -1).all() and (whole_top[~chosen] >= 0).any()
    none_risk, none_top = fitted.risk_and_reasons(X, rows=np.zeros(len(X), dtype=bool))
    np.testing.assert_array_equal(none_risk, whole_risk)
    assert (none_top == -1).all()


@pytest.mark.slow
def test_blocks_on_threads_give_the_numbers_of_one(fitted: ChurnModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """The blocks scored on two threads give, to the bit, what they give one after the other."""
    import kizuna.prediction._churn as churn

    X, _ = synthetic(1100, seed=13)
    monkeypatch.setattr(churn, "_BLOCK_ROWS", 128)  # nine blocks, the last one short
    by_thread = {}
    for threads in (1, 2):
        monkeypatch.setattr(churn, "boosting_threads", lambda threads=threads: threads)
        by_thread[threads] = (*fitted.risk_and_reasons(X), fitted.contributions(X, rows=np.arange(0, 1100, 3)))
    for one, two in zip(by_thread[1], by_thread[2], strict=True):
        np.testing.assert_array_equal(one, two)
    np.testing.assert_allclose(by_thread[2][2][::3], fitted._occlude_whole(X[::3]), atol=1e-12)


def test_blocks_are_even_and_a_multiple_of_the_threads(fitted: ChurnModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """250 rows in blocks of 100 at most on two threads: four blocks of 62-63 rows (not 100, 100 and 50,
    where one thread would walk the last block alone); on one thread three, in turn."""
    import kizuna.prediction._churn as churn

    monkeypatch.setattr(churn, "_BLOCK_ROWS", 100)
    def spans(n: int) -> list[tuple[int, int]]:
        seen: list[tuple[int, int]] = []
        fitted._each_block(lambda start, stop, _threads: seen.append((start, stop)), n)
        return sorted(seen)

    for threads, expected in ((2, [(0, 62), (62, 125), (125, 187), (187, 250)]), (1, [(0, 83), (83, 166), (166, 250)])):
        monkeypatch.setattr(churn, "boosting_threads", lambda threads=threads: threads)
        assert spans(250) == expected
    assert spans(0) == []


def test_boosting_threads_fit_the_machine() -> None:
    import os

    from kizuna.prediction._churn import boosting_threads

    assert 1 <= boosting_threads() <= len(os.sched_getaffinity(0))


def test_free_cores_round_what_others_use() -> None:
    from kizuna.prediction._churn import _free_cores

    assert [_free_cores(2, used) for used in (0.0, 0.4, 0.6, 1.4, 1.6, 3.0)] == [2, 2, 1, 1, 1, 1]
    assert [_free_cores(4, used) for used in (0.0, 1.2, 2.6)] == [4, 3, 1]


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="the machine's CPU time is read from Linux's /proc/stat")
def test_another_process_spinning_counts_as_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process keeping a core busy is measured as at least the CPU time it got in the window (the
    load average would count this process's own work of the last minute as well)."""
    import subprocess
    import sys
    import time

    import kizuna.prediction._churn as churn

    monkeypatch.setattr(churn, "_cpu_mark", None)
    monkeypatch.setattr(churn, "_cpu_measured", None)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        ticks = os.sysconf("SC_CLK_TCK")

        def spinner_cpu() -> float:
            with open(f"/proc/{spinner.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime

        churn._cores_used_by_others()  # the window starts here
        started, spun = time.monotonic(), spinner_cpu()
        time.sleep(1.5)
        used = churn._cores_used_by_others()
        share = (spinner_cpu() - spun) / (time.monotonic() - started)
    finally:
        spinner.kill()
        spinner.wait()
    assert share > 0.2  # the spinner ran
    assert used is not None and used >= share - 0.15


def test_top_reasons_pad_with_minus_one(fitted: ChurnModel) -> None:
    contributions = np.zeros((3, len(CHURN_FEATURES)))
    contributions[0, [4, 7, 9]] = [0.01, 0.3, 0.2]
    contributions[1, 2] = 0.05
    contributions[1, 3] = -0.5
    top = fitted.top_reasons(np.zeros((3, len(CHURN_FEATURES))), contributions=contributions)
    assert top.tolist() == [[7, 9, 4], [2, -1, -1], [-1, -1, -1]]


def test_reasons_for_chosen_rows_only(fitted: ChurnModel) -> None:
    X, _ = synthetic(300, seed=11)
    every = fitted.contributions(X)
    high = fitted.predict_risk(X) > 0.5
    some = fitted.contributions(X, rows=high)
    np.testing.assert_allclose(some[high], every[high], atol=1e-12)
    assert (some[~high] == 0).all()
    assert (fitted.top_reasons(X, rows=np.flatnonzero(~high))[high] == -1).all()


def test_estimator_contract() -> None:
    model = ChurnModel(max_iter=50, random_state=3)
    assert vars(model)["max_iter"] == 50 and not [k for k in vars(model) if k.endswith("_")]
    with pytest.raises(ModelNotFittedError, match="not fitted"):
        model.predict_risk(np.zeros((1, len(CHURN_FEATURES))))
    with pytest.raises(ModelNotFittedError):
        model.contributions(np.zeros((1, len(CHURN_FEATURES))))
    X, y = synthetic(600, seed=5)
    assert model.fit(X, y, CHURN_FEATURES) is model
    assert model.feature_names_ == CHURN_FEATURES
    again = ChurnModel(max_iter=50, random_state=3).fit(X, y, CHURN_FEATURES)
    np.testing.assert_array_equal(again.predict_risk(X), model.predict_risk(X))  # same seed, same model
    with pytest.raises(ValueError, match="18 features"):
        model.predict_risk(np.zeros((2, 3)))
    assert "validation AUC" in repr(model)


@pytest.mark.slow
def test_a_small_shops_risk_is_the_mean_of_a_bag_of_models(fitted: ChurnModel, monkeypatch) -> None:
    """Up to five models, each stopped on another split, as many as fit in _BAG_ROWS training rows; the
    raw risk is their mean probability and a contribution the occlusion of that mean."""
    import kizuna.prediction._churn as churn

    X, _ = synthetic(300, seed=12)
    assert len(fitted.members_) == 5 and fitted.members_[0] is fitted.model_  # 4,000 customers: five fit
    each = np.stack([member.predict_proba(X)[:, 1] for member in fitted.members_])
    assert len({tuple(row.round(12)) for row in each}) == 5  # each member its own split, its own model
    np.testing.assert_allclose(fitted.raw_risk(X), each.mean(axis=0), atol=1e-15)
    c = fitted.contributions(X)
    moved = X.copy()
    j = COL["overdue_ratio"]
    moved[:, j] = fitted.reference_[j]
    np.testing.assert_allclose(c[:, j], fitted.raw_risk(X) - fitted.raw_risk(moved), atol=1e-12)
    X2, y2 = synthetic(1000, seed=4)
    monkeypatch.setattr(churn, "_BAG_ROWS", 2500)  # 2 models fit in 2,500 rows of 1,000 customers
    assert len(ChurnModel(max_iter=30).fit(X2, y2, CHURN_FEATURES).members_) == 2
    monkeypatch.setattr(churn, "_BAG_ROWS", 500)  # fewer rows than customers: one model, as a large shop
    single = ChurnModel(max_iter=30).fit(X2, y2, CHURN_FEATURES)
    assert single.members_ == [single.model_]
    np.testing.assert_array_equal(single.raw_risk(X), single.model_.predict_proba(X)[:, 1])  # to the bit
    assert len(ChurnModel(max_iter=30, members=3).fit(X2, y2, CHURN_FEATURES).members_) == 3


def test_a_feature_one_customer_has_is_no_error() -> None:
    # one NPS answer: every training set that leaves that customer out (the validation split, the folds
    # the calibration learns from) has the feature all missing, which scikit-learn's binning cannot take
    X, y = synthetic(600, seed=5)
    X[:, COL["nps_score"]] = np.nan
    X[0, COL["nps_score"]] = 9
    risks = ChurnModel(max_iter=50, random_state=3).fit(X, y, CHURN_FEATURES).predict_risk(X)
    assert np.isfinite(risks).all()


def test_too_few_customers_raise_in_plain_words() -> None:
    X, y = synthetic(40, seed=6)
    with pytest.raises(ChurnDataError, match=r"Only 40 customers .* too short a history .* shorten --horizon") as info:
        ChurnModel().fit(X, y, CHURN_FEATURES)
    assert isinstance(info.value, KizunaError) and info.value.n_customers == 40
    # in the reader's language: the message comes from the catalogue
    assert info.value.text("ja").startswith("学習日 (基準日から予測期間を引いた日) までに注文した顧客が 40 人")


def test_one_outcome_raises() -> None:
    X, _ = synthetic(500, seed=7)
    with pytest.raises(ChurnDataError, match="All 500 customers left"):
        ChurnModel().fit(X, np.ones(500, dtype=int), CHURN_FEATURES)
    with pytest.raises(ChurnDataError, match="ordered again"):
        ChurnModel().fit(X, np.zeros(500, dtype=int), CHURN_FEATURES)


def test_rare_outcome_warns() -> None:
    X, _ = synthetic(1000, seed=8)
    y = np.zeros(1000, dtype=int)
    y[np.argsort(-X[:, COL["overdue_ratio"]])[:12]] = 1
    with pytest.warns(ModelFitWarning, match="Only 12 of 1,000 customers left"):
        ChurnModel().fit(X, y, CHURN_FEATURES)


def test_bad_outcomes_are_refused() -> None:
    X, _ = synthetic(300, seed=9)
    with pytest.raises(ValueError, match="1 \\(churned\\) or 0"):
        ChurnModel().fit(X, np.full(300, 2), CHURN_FEATURES)
    with pytest.raises(ValueError, match="one outcome per customer"):
        ChurnModel().fit(X, np.zeros(299), CHURN_FEATURES)


# -- reasons --------------------------------------------------------------------------------------
def features_table(rows: list[dict]) -> pa.Table:
    """A features table like customer_features' (every feature and context column)."""
    columns: dict[str, pa.Array] = {}
    for name in CHURN_FEATURES:
        columns[name] = pa.array([r.get(name) for r in rows], pa.float64())
    columns["last_order_at"] = pa.array([r.get("last_order_at") for r in rows], pa.date32())
    columns["open_complaint_since"] = pa.array([r.get("open_complaint_since") for r in rows], pa.date32())
    columns["life_event"] = pa.array([r.get("life_event") for r in rows], pa.string())
    return pa.table(columns)


HAND_MADE = [
    {"days_since_last_order": 74, "mean_interval_days": 37, "overdue_ratio": 2.0, "orders": 6,
     "open_contacts": 1, "complaints_365d": 1, "open_complaint_since": dt.date(2026, 5, 2),
     "nps_score": 3, "nps_change": -6},
    {"days_since_last_order": 20, "mean_interval_days": 30, "resolution_hours": 52.4,
     "days_since_life_event": 92, "life_event": "moved", "is_subscriber": 1, "subscription_days": 45,
     "orders_365d": 2, "orders": 14, "tenure_days": 1095},
    {"days_since_last_order": 5},
]
REASONS = np.array([
    [COL["overdue_ratio"], COL["open_contacts"], COL["nps_change"]],
    [COL["resolution_hours"], COL["days_since_life_event"], COL["subscription_days"]],
    [-1, -1, -1],
])


def test_reasons_in_japanese() -> None:
    texts = reason_texts(features_table(HAND_MADE), REASONS, CHURN_FEATURES, "ja")
    assert texts == [
        "最終購入から74日 (通常の間隔の2.0倍) / 2026-05-02から未解決のクレーム / NPSが9から3に低下",
        "問い合わせの解決に平均52時間 / 3か月前に引越し / 定期購入2か月目",
        "",
    ]


def test_reasons_in_english() -> None:
    texts = reason_texts(features_table(HAND_MADE), REASONS, CHURN_FEATURES, "en")
    assert texts == [
        "no order for 74 days, 2.0 times the usual interval / unresolved complaint since 2026-05-02 "
        "/ NPS fell from 9 to 3",
        "support took 52 hours on average to resolve / moved 3 months ago / subscription in its 2nd month",
        "",
    ]


def test_same_story_is_told_once() -> None:
    reasons = np.array([[COL["days_since_last_order"], COL["overdue_ratio"], COL["nps_score"]], [-1, -1, -1],
                        [-1, -1, -1]])
    texts = reason_texts(features_table(HAND_MADE), reasons, CHURN_FEATURES, "en")
    assert texts[0] == "no order for 74 days, 2.0 times the usual interval / NPS 3"


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_every_feature_has_words(lang: str) -> None:
    row = {name: 3.0 for name in CHURN_FEATURES} | {"nps_change": -2.0, "life_event": "married",
                                                    "open_complaint_since": dt.date(2026, 1, 5)}
    table = features_table([row, {}])  # the second customer: all unknown
    for j, name in enumerate(CHURN_FEATURES):
        texts = reason_texts(table, np.array([[j, -1, -1], [j, -1, -1]]), CHURN_FEATURES, lang)
        # words, not the column name (a generic fallback) nor a missing value printed as such
        assert all(texts), name
        assert not any(("_" in name and name in t) or "nan" in t or "None" in t for t in texts), (name, texts)
    spot = {"orders_365d": ("過去1年の購入3回", "3 orders in the last year"),
            "days_since_life_event": ("3日前に結婚", "married 3 days ago"),
            "revenue": ("通算購入額¥3", "¥3 spent in total")}
    for name, words in spot.items():
        text = reason_texts(table, np.array([[COL[name], -1, -1], [-1, -1, -1]]), CHURN_FEATURES, lang)[0]
        assert text == words[lang == "en"]


def test_reasons_per_distinct_key_are_each_customers_own() -> None:
    """Texts made once per distinct set of values (and joined once per combination) are what each
    customer alone would get: repeated customers, overdue ratios on both sides of a printed tenth."""
    base = {"days_since_last_order": 74.0, "mean_interval_days": 37.0, "nps_score": 3.0, "orders": 6.0}
    ratios = [(30.0, 20.0), (30.0, 19.9), (30.0, 20.1), (31.0, 20.0), (21.0, 14.0), (5.0, 20.0), (7.0, 20.0),
              (5.0, 0.0)]
    rows = [base, dict(base)] + [base | {"days_since_last_order": d, "mean_interval_days": m} for d, m in ratios]
    rows += [base | {"open_contacts": 1.0, "complaints_365d": 1.0, "open_complaint_since": dt.date(2026, 5, d)}
             for d in (2, 2, 3)]
    table = features_table(rows)
    reasons = np.array([[COL["overdue_ratio"], COL["nps_score"], -1]] * (2 + len(ratios))
                       + [[COL["open_contacts"], COL["days_since_last_order"], COL["orders"]]] * 3)
    for lang in ("ja", "en"):
        together = reason_texts(table, reasons, CHURN_FEATURES, lang)
        alone = [reason_texts(table.slice(i, 1), reasons[i:i + 1], CHURN_FEATURES, lang)[0] for i in range(len(rows))]
        assert together == alone
    assert together[2] == "no order for 30 days, 1.5 times the usual interval / NPS 3"


def test_reasons_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown language"):
        reason_texts(features_table(HAND_MADE), REASONS, CHURN_FEATURES, "fr")
    with pytest.raises(ValueError, match="one row per row of features"):
        reason_texts(features_table(HAND_MADE), REASONS[:2], CHURN_FEATURES, "ja")
    with pytest.raises(ValueError, match="open_complaint_since"):
        reason_texts(features_table(HAND_MADE).drop_columns(["open_complaint_since"]), REASONS, CHURN_FEATURES, "ja")


def test_model_reasons_end_to_end(fitted: ChurnModel) -> None:
    X, _ = synthetic(200, seed=10)
    rows = [dict(zip(CHURN_FEATURES, (None if math.isnan(v) else v for v in x), strict=True)) for x in X]
    texts = reason_texts(features_table(rows), fitted.top_reasons(X), CHURN_FEATURES, "ja")
    assert len(texts) == 200
    worst = int(np.argmax(fitted.predict_risk(X)))
    assert texts[worst].startswith("最終購入から") or "未解決" in texts[worst]


# -- evaluation -----------------------------------------------------------------------------------
def test_roc_auc_by_hand() -> None:
    # pairs (churner, stayer): (0.35 > 0.1) (0.35 < 0.4) (0.8 > 0.1) (0.8 > 0.4): 3 of 4
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert roc_auc([1, 0], [0.5, 0.5]) == 0.5  # ties count half
    assert roc_auc([1, 1, 1], [0.1, 0.2, 0.3]) is None


def test_top_decile_lift_by_hand() -> None:
    y = np.zeros(20, dtype=int)
    y[[0, 1, 5, 6]] = 1  # 20 % churn overall
    score = np.arange(20, 0, -1)  # customers 0 and 1 have the two highest scores
    assert top_decile_lift(y, score) == pytest.approx(1.0 / 0.2)
    assert top_decile_lift(np.zeros(5), np.arange(5)) is None
    assert top_decile_lift(y, -score) == 0.0


def test_compare_at_capacity_by_hand() -> None:
    # four calls: both call customers 0 and 1; only the score calls 2 and 3 (both churned), only the
    # other calls 4 and 5 (both stayed). Newcombe's interval of 2/2 − 0/2 with z = 1.96: Wilson's
    # 2 of 2 is [4 / (2·(2 + z²)), 1], 0 of 2 is [0, z² / (2 + z²)], so the low end is
    # 1 − √((1 − 0.34237)² + 0.65763²) = 0.06998 and the high end 1; scaled by 2 of 4 calls
    y = [1, 0, 1, 1, 0, 0, 1, 0, 0, 0]
    score = [10, 9, 8, 7, 1, 1, 1, 1, 1, 1]
    other = [10, 9, 1, 1, 8, 7, 1, 1, 1, 1]
    better = compare_at_capacity(y, score, other, 4)
    assert (better["precision"], better["other_precision"], better["only_score"]) == (0.75, 0.25, 2)
    assert (better["difference"], better["low"], better["high"]) == pytest.approx((0.5, 0.03499, 0.5), abs=1e-5)
    assert better["verdict"] == "better"
    worse = compare_at_capacity(y, other, score, 4)
    assert (worse["difference"], worse["low"], worse["high"]) == pytest.approx((-0.5, -0.5, -0.03499), abs=1e-5)
    assert worse["verdict"] == "worse"
    same = compare_at_capacity(y, score, score, 4)
    assert (same["only_score"], same["difference"], same["verdict"]) == (0, 0.0, "no_difference")
    # 30 of 40 against 28 of 40 on the customers one list alone calls: chance
    y = np.r_[np.ones(30), np.zeros(10), np.ones(28), np.zeros(12)]
    first, second = np.r_[np.ones(40), np.zeros(40)], np.r_[np.zeros(40), np.ones(40)]
    chance = compare_at_capacity(y, first + np.linspace(0, 0.1, 80), second, 40)
    assert chance["difference"] == pytest.approx(2 / 40) and chance["verdict"] == "no_difference"
    assert compare_at_capacity([], [], [], 10) is None


def test_calibration_table_by_hand() -> None:
    risk = [0.05, 0.1, 0.2, 0.3, 0.6, 0.9]
    y = [0, 0, 1, 0, 1, 1]
    rows = calibration_table(y, risk, bins=3)
    assert [r["customers"] for r in rows] == [2, 2, 2]
    assert [r["mean_predicted"] for r in rows] == pytest.approx([0.075, 0.25, 0.75])
    assert [r["actual_rate"] for r in rows] == [0.0, 0.5, 1.0]
    assert rows[2]["min_risk"] == 0.6 and rows[2]["max_risk"] == 0.9
    assert len(calibration_table(np.zeros(1000), np.linspace(0, 1, 1000))) == 10
    # Wilson's 95 % interval of each group's rate, by hand (z = 1.96): 0 of 2 → [0, z²/(2 + z²)],
    # 1 of 2 → (2·2·½ + z² ∓ z·√(z² + 4·2·¼)) / (2·(2 + z²))
    assert (rows[0]["actual_low"], rows[0]["actual_high"]) == (0.0, pytest.approx(0.6576, abs=1e-4))
    assert (rows[1]["actual_low"], rows[1]["actual_high"]) == (pytest.approx(0.0945, abs=1e-4),
                                                             pytest.approx(0.9055, abs=1e-4))
    assert all(r["within_interval"] for r in rows)
    # 100 customers predicted at 90 % of whom 50 left: 0.9 is far outside [0.404, 0.596]
    (wrong,) = calibration_table([1] * 50 + [0] * 50, [0.9] * 100, bins=1)
    assert (wrong["actual_low"], wrong["actual_high"]) == (pytest.approx(0.4038, abs=1e-4),
                                                          pytest.approx(0.5962, abs=1e-4))
    assert wrong["within_interval"] is False


def test_holdout_table_by_hand() -> None:
    frequency = [0, 0, 0, 1, 2, 7, 9]
    predicted = [0.1, 0.2, 0.3, 0.8, 1.5, 4.0, 6.0]
    actual = [0, 0, 1, 1, 2, 3, 7]
    rows = holdout_table(frequency, predicted, actual)
    assert [r["label"] for r in rows] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert [r["customers"] for r in rows] == [3, 1, 1, 0, 0, 0, 0, 2]
    assert rows[0]["mean_predicted"] == pytest.approx(0.2) and rows[0]["mean_actual"] == pytest.approx(1 / 3)
    assert rows[7]["mean_predicted"] == 5.0 and rows[7]["mean_actual"] == 5.0
    assert math.isnan(rows[3]["mean_actual"])
    total = holdout_aggregate(predicted, actual)
    assert total == {"customers": 7, "predicted": pytest.approx(12.9), "actual": 14.0,
                     "error_pct": pytest.approx(-100 * 1.1 / 14)}


def test_evaluation_refuses_mismatched_input() -> None:
    with pytest.raises(ValueError, match="lengths differ"):
        roc_auc([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="missing values"):
        calibration_table([0, 1], [0.1, float("nan")])


# -- chart ----------------------------------------------------------------------------------------
def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("lang", ["ja", "en"])
@pytest.mark.slow
def test_holdout_chart_png(tmp_path, lang: str) -> None:
    rows = holdout_table([0, 0, 1, 2, 3, 8], [0.2, 0.3, 0.9, 1.6, 2.2, 5.0], [0, 1, 1, 2, 2, 6])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = write_holdout_chart(rows, tmp_path / "sub" / f"holdout-{lang}.png", lang=lang)
    data = path.read_bytes()
    width, height = png_size(data)
    assert 600 <= width <= 2000 and 300 <= height <= 1500
    assert len(data) > 10_000
    spec = holdout_chart_spec(rows, lang)
    title = spec["title"]["text"] if isinstance(spec["title"], dict) else spec["title"]
    assert ("予測と実績" in title) if lang == "ja" else ("predicted vs actual" in title)
    # frequencies nobody has (4-6 here) are left out, not drawn at NaN
    assert {v["frequency"] for v in spec["data"]["values"]} == {"0", "1", "2", "3", "7+"}


def true_risk(X: np.ndarray) -> np.ndarray:
    """The churn probability `synthetic` draws from."""
    logit = -2.0 + 2.5 * np.log(X[:, COL["overdue_ratio"]]) * 1.6 + 3.0 * X[:, COL["open_contacts"]]
    return 1 / (1 + np.exp(-logit))


@pytest.mark.slow
def test_risks_are_calibrated_and_keep_the_models_order(fitted: ChurnModel) -> None:
    """Isotonic calibration on held-out risks: by decile of predicted risk, the mean predicted risk is
    within 5 points of the true probability of those customers; the ranking is the boosting's own."""
    X, _ = synthetic(20_000, seed=7)
    risk, raw = fitted.predict_risk(X), fitted.raw_risk(X)
    assert fitted.calibration_ == "isotonic"
    assert ((risk >= 0) & (risk <= 1)).all()
    assert (np.argsort(risk, kind="stable") == np.argsort(raw, kind="stable")).all()  # order kept
    truth = true_risk(X)
    for row in calibration_table(truth, risk):  # the true probability as the "outcome": its mean per decile
        assert abs(row["mean_predicted"] - row["actual_rate"]) < 0.05, row
    assert ChurnModel(calibration="none").fit(*synthetic(2000, seed=1), CHURN_FEATURES).calibration_ == "none"
