"""Issue #18 item 4: a fit that cannot converge must not write NaN and crash later.

Ten years of customers who buy regularly and never drop out make BG/NBD run off to a → 0 (the
drop-out probability has its maximum at 0, outside the parameter space). The models now refuse
such a fit (`ModelFitError` with a reason), `predict` stores NULL for what BG/NBD would have
given and says so in one line, and every reader of the predictions — the call list, JSON, the
backtest, the web pages and exports — copes with the missing values.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from kizuna.models import BetaGeo, ConvergenceWarning, GammaGamma, ModelFitError, ModifiedBetaGeo, ShiftedBetaGeo
from kizuna.models._base import LOG_BOUND, BaseModel
from kizuna.prediction import FitProblem
from kizuna.workspace import Workspace

from factories import orders_for, workspace_with
from servers import free_port

KIZUNA = [sys.executable, "-m", "kizuna"]
AS_OF = dt.date(2026, 11, 1)
BACKTEST_AS_OF = "2026-07-01"
CUSTOMERS = 300
LINE_EN = ("BG/NBD did not converge on this data (nobody has dropped out in 10 years): P(alive), expected orders, "
           "next order date, CLV and value at risk are left empty; churn risk comes from the churn model alone.")
LINE_JA = ("BG/NBDモデルはこのデータでは収束しませんでした (10年間だれも離脱していません): 稼働確率・期待購入回数・"
           "次回購入予定日・CLV・離脱リスク金額は空欄です。離脱確率は離脱モデルだけで求めています。")
CALL_LIST_EN = "Value at risk could not be computed (see kizuna predict), so the list is ordered by churn risk."


def kizuna(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KIZUNA, *args], capture_output=True, text=True, cwd=cwd, check=False)


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity (which json.dumps writes by default, and no JSON reader takes)."""
    def refuse(constant: str):
        raise AssertionError(f"{constant} in JSON output")

    return json.loads(text, parse_constant=refuse)


# -- detection, by hand -------------------------------------------------------------------------------

def test_customers_all_seen_buying_at_the_end_show_no_dropout():
    """A customer whose last purchase is at T (recency = T) certainly had not dropped out before T.
    The drop-out part of the BG/NBD likelihood is then B(a, b+x)/B(a, b) · (1 + a/(b+x-1)), which
    telescopes to Π_{j=0}^{x-2} (b+j)/(a+b+j): it only grows as a → 0. With every repeat buyer
    like that, the maximum is at a / (a + b) = 0, outside the parameter space: no usable fit."""
    rng = np.random.default_rng(1)
    x = rng.poisson(5, 300).astype(float)
    T = rng.uniform(100, 400, 300)
    recency = np.where(x > 0, T, 0.0)
    for cls in (BetaGeo, ModifiedBetaGeo):
        model = cls()
        with pytest.raises(ModelFitError, match="nobody seems to drop out") as caught:
            model.fit(x, recency, T)
        error = caught.value
        assert (error.model, error.reason, error.parameters) == (cls.__name__, "no_dropout", ("a", "b"))
        assert error.params["a"] / (error.params["a"] + error.params["b"]) < 1e-6
        assert not hasattr(model, "params_")  # nothing half-fitted to predict NaN from


def test_ten_years_of_regular_buyers_make_bg_nbd_fail_not_predict_nan():
    # every ~120 days for ten years, nobody stopping: the data, as (frequency, recency, T) in days
    rng = np.random.default_rng(0)
    T = rng.uniform(3287, 3652, 300).round()
    interval = rng.uniform(100, 140, 300)
    x = np.floor(T / interval)
    recency = x * interval
    with pytest.raises(ModelFitError) as caught:
        BetaGeo().fit(x, recency.round(), T)
    assert caught.value.reason == "no_dropout"


class _Rate(BaseModel):
    """A toy model: n events in exposure S, Poisson with rate λ; the MLE is n / S (∞ when S = 0).
    A second parameter `unused` does not enter the likelihood when `flat` (its Hessian row is 0)."""

    def __init__(self, *, flat: bool = False) -> None:
        super().__init__()
        self._param_names = ("rate", "unused") if flat else ("rate",)

    def fit(self, n: float, exposure: float) -> _Rate:
        self._optimize((n, exposure), np.zeros(len(self._param_names)), 1.0)
        return self

    def _objective(self, theta, data):
        n, exposure = data
        rate = np.exp(theta[0])
        grad = np.zeros(len(theta))
        grad[0] = rate * exposure - n  # d/dθ of λS - n log λ
        return float(rate * exposure - n * theta[0]), grad


def test_an_optimum_at_infinity_or_a_flat_direction_is_a_fit_failure():
    assert _Rate().fit(6, 3).params_["rate"] == pytest.approx(2.0)  # n / S
    with pytest.raises(ModelFitError, match="rate ran to infinity") as caught:
        _Rate().fit(6, 0)  # n / 0: the likelihood grows for ever with λ
    assert (caught.value.reason, caught.value.parameters) == ("diverged", ("rate",))
    assert caught.value.params["rate"] == pytest.approx(np.exp(LOG_BOUND))
    with pytest.raises(ModelFitError, match="no standard errors") as caught:
        _Rate(flat=True).fit(6, 3)  # `unused` is not identified: the Hessian is singular
    assert caught.value.reason == "not_identified"


def test_stopping_early_warns_and_degenerate_cohorts_and_spend_raise():
    rng = np.random.default_rng(2)
    frequency = rng.integers(1, 10, 300).astype(float)
    with pytest.warns(ConvergenceWarning):
        stopped = GammaGamma(max_iter=1).fit(frequency, rng.gamma(5, 10, 300))
    assert stopped.converged_ is False  # usable with care; predict treats it as not fitted
    with pytest.raises(ModelFitError) as caught:  # every order worth the same: no spread to estimate
        GammaGamma().fit(frequency, np.full(300, 5000.0))
    assert caught.value.reason in ("not_identified", "diverged")
    with pytest.raises(ModelFitError) as caught:
        ShiftedBetaGeo().fit([500, 500, 500, 500])
    assert caught.value.reason == "no_cancellation"


def test_fit_problem_lines_in_both_languages():
    problem = FitProblem("bg_nbd", "no_dropout", "BetaGeo: …", history_days=3652)
    assert problem.line("en") == LINE_EN and problem.line("ja") == LINE_JA
    assert FitProblem("shifted_beta_geo", "no_cancellation", "", 400).line("en") == (
        "sBG did not converge on the subscriptions (nobody has cancelled): the cancellation probability is left "
        "empty.")
    assert FitProblem("bg_nbd", "partial", "", customers=1234).line("en").startswith("1,234 customers' P(alive)")


# -- the business of the issue ------------------------------------------------------------------------

def regular_orders(amount: int | None = None, seed: int = 0) -> list[dict]:
    """CUSTOMERS customers who started in 2016-17 and have bought every 100-140 days ever since."""
    rng = np.random.default_rng(seed)
    orders = []
    for i in range(CUSTOMERS):
        start = dt.date(2016, 11, 1) + dt.timedelta(days=int(rng.integers(0, 365)))
        interval = int(rng.integers(100, 140))
        usual = rng.lognormal(np.log(5000), 0.4)  # each customer has an order value of their own
        dates, day = [], start
        while day <= AS_OF:
            dates.append(day.isoformat())
            day += dt.timedelta(days=interval + int(rng.integers(-10, 11)))
        amounts = [amount or round(usual * rng.uniform(0.7, 1.3)) for _ in dates]
        orders += orders_for(f"C{i:04d}", dates, amounts)
    return orders


@pytest.fixture(scope="module")
def loyal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("degenerate") / "ws"
    phones = [{"customer_id": f"C{i:04d}", "phone": f"03-0000-{i:04d}"} for i in range(CUSTOMERS)]  # call lists
    with workspace_with(path, customers=phones, orders=regular_orders()) as ws:
        ws.analyze(AS_OF)
        ws.predict(AS_OF)
    return path


@pytest.mark.slow
def test_predict_stores_null_never_nan_and_says_why(loyal: Path):
    with Workspace.open(loyal) as ws:
        result = ws.predict(AS_OF)
        con = ws.store.backend.con
        counts = con.execute(
            "SELECT count(*), count(clv), count(value_at_risk), count(p_alive), count(expected_orders), "
            "count(expected_next_order_on), count(churn_risk), count(expected_order_value), "
            "count(*) FILTER (WHERE isnan(clv) OR isnan(value_at_risk) OR isnan(p_alive) OR isnan(expected_orders) "
            "OR isnan(churn_risk) OR isnan(expected_order_value)) FROM customer_predictions").fetchone()
    assert counts == (CUSTOMERS, 0, 0, 0, 0, 0, CUSTOMERS, CUSTOMERS, 0)
    assert result.beta_geo is None and result.gamma_gamma is not None
    assert [(p.model, p.reason) for p in result.problems] == [("bg_nbd", "no_dropout")]
    assert result.problems[0].line("en") == LINE_EN
    fit = result.model_fit()
    assert fit["bg_nbd"]["params"] is None and fit["bg_nbd"]["problem"] == "no_dropout"
    json.dumps(fit, allow_nan=False)


@pytest.mark.slow
def test_cli_predict_says_it_in_one_line_and_writes_json_without_nan(loyal: Path, tmp_path: Path):
    done = kizuna("predict", "--as-of", AS_OF.isoformat(), "--dir", str(loyal), "--lang", "en", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert LINE_EN in done.stdout.splitlines()  # one line of its own
    assert "Traceback" not in done.stderr and not re.search(r"\bnan\b", done.stdout, re.IGNORECASE)
    done = kizuna("predict", "--as-of", AS_OF.isoformat(), "--dir", str(loyal), cwd=tmp_path)
    assert done.returncode == 0 and LINE_JA in done.stdout.splitlines()
    done = kizuna("predict", "--as-of", AS_OF.isoformat(), "--dir", str(loyal), "-f", "json", "--lang", "en",
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = strict_json(done.stdout)
    assert summary["value_at_risk"] is None and summary["customers"] == CUSTOMERS
    assert summary["model_fit"]["bg_nbd"]["params"] is None
    assert [(p["model"], p["reason"], p["message"]) for p in summary["problems"]] == [
        ("bg_nbd", "no_dropout", LINE_EN)]
    assert LINE_EN in done.stderr.splitlines()


@pytest.mark.slow
def test_cli_priority_lists_by_churn_risk_with_nulls_and_valid_json(loyal: Path, tmp_path: Path):
    done = kizuna("priority", "--dir", str(loyal), "-f", "json", "--capacity", "50", "--lang", "en", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = strict_json(done.stdout)
    assert len(rows) == 50 and all(r["value_at_risk"] is None and r["clv"] is None for r in rows)
    risks = [r["churn_risk"] for r in rows]
    assert risks == sorted(risks, reverse=True)  # NULL value at risk for all: by churn risk
    assert CALL_LIST_EN in done.stderr.splitlines()
    done = kizuna("priority", "--dir", str(loyal), "--top", "5", "--lang", "en", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert CALL_LIST_EN in done.stdout.splitlines()
    done = kizuna("priority", "--dir", str(loyal), "-f", "csv", "-o", "calls.csv", "--capacity", "5", "--lang", "en",
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with (tmp_path / "calls.csv").open(encoding="utf-8-sig", newline="") as handle:
        listed = list(csv.DictReader(handle))
    assert len(listed) == 5 and all(r["value at risk (yen)"] == "" and r["churn risk %"] for r in listed)


@pytest.mark.slow
def test_cli_backtest_scores_the_churn_model_and_leaves_bg_nbd_empty(loyal: Path, tmp_path: Path):
    done = kizuna("backtest", "--dir", str(loyal), "--as-of", BACKTEST_AS_OF, "-o", str(tmp_path), "-f", "json",
                  "--lang", "en", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = strict_json(done.stdout)
    assert report["churn"]["model"]["auc"] is not None
    assert set(report["churn"]["bg_nbd"].values()) == {None}  # every figure of BG/NBD empty
    assert report["churn"]["model"]["precision_at_capacity"] is not None
    assert report["purchases"]["predicted"] is None and report["purchases"]["actual"] > 0
    assert all(r["mean_predicted"] is None for r in report["holdout"])
    assert [p["reason"] for p in report["problems"]] == ["no_dropout"]
    strict_json((tmp_path / f"backtest-{BACKTEST_AS_OF}-90d.json").read_text(encoding="utf-8"))
    assert (tmp_path / f"backtest-{BACKTEST_AS_OF}-90d.png").read_bytes()[:4] == b"\x89PNG"
    done = kizuna("backtest", "--dir", str(loyal), "--as-of", BACKTEST_AS_OF, "-o", str(tmp_path), "--lang", "en",
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "BG/NBD did not converge on this data (nobody has dropped out in 10 years)" in done.stdout


@pytest.mark.slow
def test_same_value_orders_fall_back_to_each_customers_average(tmp_path: Path):
    with workspace_with(tmp_path / "ws", orders=regular_orders(amount=5000, seed=1)) as ws:
        result = ws.predict(AS_OF)
    assert {p.model for p in result.problems} == {"bg_nbd", "gamma_gamma"}
    assert set(result.table["expected_order_value"].to_pylist()) == {5000.0}
    assert "each customer's own average order value" in next(
        p.line("en") for p in result.problems if p.model == "gamma_gamma")


# -- the web app --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def web(loyal: Path) -> Iterator[httpx.Client]:
    """An operator logged in to `kizuna serve` on the workspace: a real uvicorn server in a thread, as
    in test_web.py."""
    import uvicorn

    from kizuna.operations import OPERATIONS_FILE, Operations
    from kizuna.web import create_app, hash_password

    ops = Operations(loyal / OPERATIONS_FILE)
    ops.add_user("ops", "operator", hash_password("operator-password"))
    ops.close()
    app = create_app(loyal, logins_per_minute=10_000)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
    try:
        page = client.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        done = client.post("/login", data={"csrf": token, "name": "ops", "password": "operator-password", "next": "/"})
        assert done.status_code == 303, done.text
        yield client
    finally:
        client.close()
        server.should_exit = True
        thread.join(10)
        app.state.kizuna.reader.close()


@pytest.fixture(scope="module")
def rf_cell(loyal: Path) -> tuple[str, int, int, int]:
    """A customer, their R and F scores, and the customers of that R × F cell (read before the server opens
    the store)."""
    with Workspace.open(loyal) as ws:
        con = ws.store.backend.con
        customer, r, f = con.execute("SELECT customer_id, r_score, f_score FROM customer_scores "
                                     "ORDER BY customer_id LIMIT 1").fetchone()
        members = con.execute("SELECT count(*) FROM customer_scores WHERE r_score = ? AND f_score = ?",
                              [r, f]).fetchone()[0]
    return customer, r, f, members


@pytest.mark.slow
def test_web_call_list_customer_page_sort_and_export_cope_with_missing_values(rf_cell, web: httpx.Client):
    customer, r, f, members = rf_cell
    calls = web.get("/priority")
    assert calls.status_code == 200
    assert 'id="no-value-at-risk"' in calls.text and "離脱確率の高い順に並べています" in calls.text
    page = web.get(f"/customer/{customer}")
    assert page.status_code == 200 and "離脱確率" in page.text and "計算できません" in page.text
    for sort in ("value_at_risk", "churn_risk"):
        listed = web.get(f"/list?r={r}&f={f}&sort={sort}&desc=1")
        assert listed.status_code == 200, sort
        assert len(re.findall(r'class="customer" href="/customer/', listed.text)) == min(members, 50)
    export = web.get(f"/export.csv?r={r}&f={f}")
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(export.content.decode("utf-8-sig"))))
    assert len(rows) == members and all(row["離脱リスク金額 (円)"] == "" and row["離脱確率 %"] for row in rows)
    assert web.get(f"/export.xlsx?r={r}&f={f}").status_code == 200
