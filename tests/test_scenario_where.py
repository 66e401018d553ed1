"""A scenario's `audience.where` values are checked for their column's kind (issue #18, 12): one
line naming the file, the line and the field, never a database traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kizuna.scenarios import ScenarioError, load_scenario
from kizuna.scenarios._evaluate import audience_filter
from kizuna.scenarios._model import BOOLEAN_COLUMNS, NUMBER_COLUMNS, TEXT_COLUMNS

from factories import day, workspace_with

SCENARIO = """\
trigger: {{after_order: {{days: 1}}}}
audience:
  where: [{where}]
goal: {{kind: order}}
steps: [{{channel: dm, body: x}}]
"""


def scenario_file(folder: Path, where: str, name: str = "bad") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(SCENARIO.format(where=where), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("where") / "ws"
    ws = workspace_with(path, customers=[{"customer_id": "C1", "name": "佐藤 花子"}],
                        orders=[{"order_id": "O1", "customer_id": "C1", "ordered_at": day("2026-11-28", 15),
                                 "amount": 3240}])
    ws.analyze()
    ws.close()
    return path


@pytest.mark.parametrize(("where", "problem", "japanese"), [
    ('"ltv_revenue in [1, abc]"', "'abc' is not a number for ltv_revenue.",
     "'abc' は ltv_revenue と比べられる数値ではありません。"),
    ('"churn_risk >= high"', "'high' is not a number for churn_risk.",
     "'high' は churn_risk と比べられる数値ではありません。"),
    ('"recency_days not in [30, nan]"', "'nan' is not a number for recency_days.",
     "'nan' は recency_days と比べられる数値ではありません。"),
    ('"lapsing == yes"', "'yes' is not true or false for lapsing.",
     "'yes' は lapsing と比べられる true / false ではありません。"),
])
def test_a_value_of_the_wrong_kind_is_one_line_when_the_file_is_read(tmp_path: Path, where: str, problem: str,
                                                                      japanese: str):
    path = scenario_file(tmp_path, where)
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert str(raised.value) == raised.value.text("en") == f"{path}:3: audience.where: {problem}"
    assert raised.value.text("ja") == f"{path}:3: audience.where: {japanese}"


def test_text_columns_take_digits_as_text(tmp_path: Path):
    scenario = load_scenario(scenario_file(tmp_path, '"rfm_rank in [a, 1]", "ltv_revenue in [1, 2.5]"'))
    assert [c.value for c in scenario.conditions] == [["a", "1"], [1, 2.5]]


@pytest.mark.slow
def test_kizuna_run_stops_with_one_line_not_a_database_traceback(analyzed: Path):
    folder = analyzed / "scenarios"
    for old in folder.glob("*.yaml"):
        old.unlink()
    path = scenario_file(folder, '"ltv_revenue in [1, abc]"')
    said = {}
    try:
        for lang in ("ja", "en"):
            said[lang] = subprocess.run([sys.executable, "-m", "kizuna", "run", "--dry-run", "--as-of", "2026-11-29",
                                         "--dir", str(analyzed), "--lang", lang], capture_output=True, text=True,
                                        timeout=300)
    finally:
        path.unlink()
    for done in said.values():
        assert done.returncode == 1
        assert "Traceback" not in done.stderr and "Conversion Error" not in done.stderr
    assert said["en"].stderr.strip().splitlines() == [
        f"error: {path}:3: audience.where: 'abc' is not a number for ltv_revenue."]
    assert said["ja"].stderr.strip().splitlines() == [
        f"エラー: {path}:3: audience.where: 'abc' は ltv_revenue と比べられる数値ではありません。"]


def test_a_column_the_reader_does_not_know_is_checked_against_the_table_when_run(analyzed: Path, tmp_path: Path):
    from kizuna.workspace import Workspace

    path = scenario_file(tmp_path, '"last_order_at in [abc, 1]"')
    scenario = load_scenario(path)
    with Workspace.open(analyzed) as ws:
        with pytest.raises(ScenarioError, match=rf"{path.name}:3: audience.where: 'abc' is not a timestamp"):
            audience_filter(scenario, ws.store.table("customer_scores")).to_pyarrow()
        fine = load_scenario(scenario_file(tmp_path, '"ltv_revenue in [3240, 1]", "matrix_cell not in [x, 1]"', "ok"))
        assert audience_filter(fine, ws.store.table("customer_scores")).count().to_pyarrow().as_py() == 1


def test_the_readers_column_kinds_are_the_stores(analyzed: Path):
    from kizuna.prediction import PREDICTION_COLUMNS
    from kizuna.workspace import Workspace

    with Workspace.open(analyzed) as ws:
        schema = ws.store.table("customer_scores").schema()
    for name, kind in schema.items():
        if kind.is_numeric():
            assert name in NUMBER_COLUMNS, name
        elif kind.is_boolean():
            assert name in BOOLEAN_COLUMNS, name
        elif kind.is_string():
            assert name in TEXT_COLUMNS, name
    known = set(schema) | set(PREDICTION_COLUMNS)
    assert known >= (NUMBER_COLUMNS | BOOLEAN_COLUMNS | TEXT_COLUMNS)
