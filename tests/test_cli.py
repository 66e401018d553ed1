"""The README's path through the CLI, as a user runs it: demo, kpi, analyze, segments, export."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import openpyxl
import pytest

from kizuna.workspace import Workspace

KIZUNA = [sys.executable, "-m", "kizuna"]


def kizuna(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KIZUNA, *args], capture_output=True, text=True, cwd=cwd, check=False)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("cli")
    done = kizuna("demo", "--customers", "1500", "--as-of", "2026-06-30", cwd=cwd)
    assert done.returncode == 0, done.stderr
    return cwd


@pytest.mark.slow
def test_demo_prints_counts_kpis_and_segments_and_freezes_its_as_of_date(demo_dir: Path):
    with Workspace.open(demo_dir / "kizuna-demo") as ws:
        counts = ws.counts()
        assert ws.settings.analysis.as_of == "2026-06-30"  # later reports stop where the business does
        assert ws.scores().count().to_pyarrow().as_py() == 1_500
    assert counts["customers"] == 1_500 and counts["orders"] > 1_500
    # `kpi` without --as-of uses the workspace's date, not today's.
    report = json.loads(kizuna("kpi", "--dir", "kizuna-demo", "--format", "json", cwd=demo_dir).stdout)
    assert (report["as_of"], report["start"]) == ("2026-06-30", "2025-06-30")
    assert report["headline"]["customers"] == 1_500
    assert report["subscription_churn"][-1]["month"] == "2026-06-01"  # June is complete on 30 June
    nps = report["nps"]
    assert nps["promoter"] + nps["passive"] + nps["detractor"] == nps["answered"] > 0


@pytest.mark.slow
def test_demo_output_names_what_it_found(demo_dir: Path, tmp_path: Path):
    done = kizuna("demo", "--customers", "300", "--dir", str(tmp_path / "small"), "--lang", "en", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for words in ("customers", "orders", "NPS", "repeat rate", "Retention by first-order month",
                  "NPS x LTV matrix", "churn candidate", "kizuna export"):
        assert words in done.stdout, words
    assert "300" in done.stdout


@pytest.mark.slow
def test_segments_and_export_agree_on_the_churn_candidates(demo_dir: Path):
    matrix = json.loads(kizuna("segments", "--dir", "kizuna-demo", "--format", "json", cwd=demo_dir).stdout)["matrix"]
    expected = next(r["customers"] for r in matrix if r["segment"] == "churn_candidate")
    assert expected > 0  # the demo's heavy-buying detractors
    with Workspace.open(demo_dir / "kizuna-demo") as ws:  # the Python API finds the same customers
        members = ws.segment("離脱候補者").to_pyarrow()
        assert members.num_rows == expected
        assert set(members["nps_score"].to_pylist()) <= set(range(7))  # all detractors
    done = kizuna("export", "離脱候補者", "--dir", "kizuna-demo", "-o", "churn.xlsx", "-f", "xlsx", cwd=demo_dir)
    assert done.returncode == 0, done.stderr
    book = openpyxl.load_workbook(demo_dir / "churn.xlsx", read_only=True)
    rows = list(book.active.iter_rows(values_only=True))
    book.close()
    assert len(rows) - 2 == expected  # a title row, the header
    done = kizuna("export", "churn_candidate", "--dir", "kizuna-demo", "-o", "churn.csv", "--lang", "en",
                  cwd=demo_dir)
    assert done.returncode == 0, done.stderr
    with (demo_dir / "churn.csv").open(encoding="utf-8-sig", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == expected


@pytest.mark.slow
def test_analyze_as_of_an_earlier_day_sees_fewer_customers_buying(demo_dir: Path):
    done = kizuna("analyze", "--dir", "kizuna-demo", "--as-of", "2025-06-30", "--format", "json", cwd=demo_dir)
    assert done.returncode == 0, done.stderr
    with Workspace.open(demo_dir / "kizuna-demo") as ws:
        scores = ws.scores()
        assert scores.as_of.max().to_pyarrow().as_py().isoformat() == "2025-06-30"
        last = scores.last_order_at.max().to_pyarrow().as_py()
    assert last is not None and last.date().isoformat() <= "2025-06-30"


@pytest.mark.parametrize(("args", "words"), [
    (("kpi", "--as-of", "30/06/2026"), "YYYY-MM-DD"),
    (("kpi", "--by", "weekday"), "month、channel"),
    (("export", "no_such_segment"), "no_such_segment"),
    (("kpi", "--dir", "nowhere"), "kizuna init"),
])
@pytest.mark.slow
def test_mistakes_get_one_clear_line_and_no_traceback(demo_dir: Path, args: tuple[str, ...], words: str):
    argv = list(args) if "--dir" in args else [*args, "--dir", "kizuna-demo"]
    done = kizuna(*argv, cwd=demo_dir)
    assert done.returncode != 0
    assert words in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_a_bad_as_of_setting_names_the_file_and_the_fix(tmp_path: Path):
    Workspace.init(tmp_path / "ws").close()
    settings = tmp_path / "ws" / "kizuna.toml"
    settings.write_text(settings.read_text(encoding="utf-8").replace('as_of = ""', 'as_of = "yesterday"'),
                        encoding="utf-8")
    done = kizuna("kpi", "--dir", "ws", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "kizuna.toml" in done.stderr and "analysis.as_of" in done.stderr and "YYYY-MM-DD" in done.stderr


@pytest.mark.slow
def test_a_memory_limit_setting_caps_duckdb_and_a_bad_one_names_the_fix(tmp_path: Path):
    Workspace.init(tmp_path / "ws").close()
    settings = tmp_path / "ws" / "kizuna.toml"
    text = settings.read_text(encoding="utf-8")
    assert 'memory_limit = ""' in text  # written, commented, by `kizuna init`
    # empty: half of the machine's memory, where DuckDB alone would take 80 % (the process holds Arrow data too)
    with Workspace.open(tmp_path / "ws") as ws:
        limit = ws.store.backend.con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    own = duckdb.connect().execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert limit.endswith(" GiB") and own.endswith(" GiB")
    assert float(limit.split()[0]) == pytest.approx(float(own.split()[0]) * 5 / 8, abs=0.1)
    with Workspace.open(tmp_path / "ws") as ws, Workspace.open(tmp_path / "ws") as again:
        # a second connection to the file shares DuckDB's database, and the limit is not halved again
        assert again.store.backend.con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == limit
    settings.write_text(text.replace('memory_limit = ""', 'memory_limit = "1GB"'), encoding="utf-8")
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.settings.store.memory_limit == "1GB"
        limit = ws.store.backend.con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert limit == "953.6 MiB"  # DuckDB shows 1 GB (10^9 bytes) in MiB

    settings.write_text(text.replace('memory_limit = ""', 'memory_limit = "lots"'), encoding="utf-8")
    done = kizuna("kpi", "--dir", "ws", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "memory_limit" in done.stderr and "kizuna.toml" in done.stderr and '"2GB"' in done.stderr


def test_the_cli_starts_without_loading_ibis_pandas_or_scikit_learn():
    # `kizuna --help` must be instant: heavy libraries load inside the commands that use them
    heavy = "('ibis', 'pandas', 'sklearn', 'pyarrow')"
    code = f"import sys, kizuna.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


_ORDERS = ('"order_id","customer_id","ordered_at","amount","status","refund_amount","channel"\n'
           '"O1","C1","2025/01/05 10:00:00","¥12,800","completed",,"自社EC"\n'
           '"O2","C2","2025/01/06 11:30:00","3380","returned",3380,"楽天市場"\n'
           '"O3","C1","2025/02/01 09:15:00","1580","completed",,"Ｙａｈｏｏ！ショッピング"\n')
_IMPORT_PROCESS = """
import json, sys
from kizuna.cli import main
sys.argv = ['kizuna', 'import', *sys.argv[1:], '--format', 'json']
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
loaded = sorted(m for m in sys.modules if m.startswith('ibis.backends.sql.compilers.'))
print(json.dumps(loaded), file=sys.stderr)
"""


def _import_process(*args: str, cwd: Path) -> tuple[dict, list[str]]:
    """`kizuna import ARGS` in a process of its own: its summary, and which of Ibis' SQL compilers it
    loaded."""
    done = subprocess.run([sys.executable, "-c", _IMPORT_PROCESS, *args], capture_output=True, text=True,
                          cwd=cwd, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.slow
def test_import_loads_no_other_engines_sql_compiler_and_stores_the_same_rows(tmp_path: Path):
    # an import's start: the compilers of engines the store is not on stay unloaded; the rows are
    # those an import in this process stores
    (tmp_path / "customers.csv").write_text('"customer_id","name"\n"C1","渡辺 陽子"\n"C2","松本 翔太"\n',
                                            encoding="utf-8")
    (tmp_path / "orders.csv").write_text(_ORDERS, encoding="utf-8")
    assert kizuna("init", "ws", cwd=tmp_path).returncode == 0
    _import_process("customers", "customers.csv", "--dir", "ws", cwd=tmp_path)
    summary, loaded = _import_process("orders", "orders.csv", "--dir", "ws", cwd=tmp_path)
    assert (summary["added"], summary["rejected"]) == (3, 0)
    assert loaded == ["ibis.backends.sql.compilers._compat", "ibis.backends.sql.compilers.base",
                      "ibis.backends.sql.compilers.duckdb"]

    with Workspace.init(tmp_path / "here") as here:
        here.import_file("customers", tmp_path / "customers.csv")
        here.import_file("orders", tmp_path / "orders.csv")
        expected = here.store.table("orders").order_by("order_id").to_pyarrow()
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.store.table("orders").order_by("order_id").to_pyarrow().equals(expected)


@pytest.mark.slow
def test_an_import_process_that_rejects_rows_reports_them_as_before(tmp_path: Path):
    (tmp_path / "customers.csv").write_text('"customer_id","name"\n"C1","渡辺 陽子"\n', encoding="utf-8")
    (tmp_path / "orders.csv").write_text(_ORDERS + '"O1","C1","2025/03/01 09:00:00","990","completed",,"自社EC"\n'
                                         '"O4","C1","not a day","990","completed",,"自社EC"\n', encoding="utf-8")
    assert kizuna("init", "ws", cwd=tmp_path).returncode == 0
    _import_process("customers", "customers.csv", "--dir", "ws", cwd=tmp_path)
    summary, _ = _import_process("orders", "orders.csv", "--dir", "ws", cwd=tmp_path)
    assert (summary["added"], summary["rejected"]) == (2, 3)  # unknown C2, O1 repeated with other data, the day
    rejects = list(csv.reader((tmp_path / summary["rejects_path"]).read_text(encoding="utf-8-sig").splitlines()))
    assert sorted((row[1], row[2]) for row in rejects[1:]) == [("3", "customer_id"), ("5", "order_id"),
                                                                ("6", "ordered_at")]


@pytest.mark.slow
def test_analyze_loads_neither_the_models_nor_the_channels_nor_the_importer(demo_dir: Path):
    # a command pays for what it uses: analyze needs Ibis and the engine, not SciPy, scikit-learn,
    # Jinja2, YAML, the LINE client or the file readers
    unused = ("scipy", "sklearn", "jinja2", "yaml", "httpx", "kizuna.importing._sources",
              "kizuna.scenarios._dispatch", "kizuna.reporting._figures")
    code = ("import sys\nfrom kizuna.cli import main\n"
            "sys.argv = ['kizuna', 'analyze', '--dir', 'kizuna-demo', '--format', 'json']\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            f"print(sorted(m for m in {unused!r} if m in sys.modules), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=demo_dir, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["matrix"]  # the command did its work
    assert done.stderr.strip().splitlines()[-1] == "[]"
