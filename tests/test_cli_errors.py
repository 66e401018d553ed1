"""Issue #14, points 4, 5 and 8 at the command line: a user's mistake is one line on stderr, never a
traceback, and customer data is printed as it is, never read as Rich markup.

Each test runs `python -m kizuna` as a user does, on workspaces and files written here.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kizuna.settings import SETTINGS_FILE
from kizuna.workspace import Settings, Workspace

KIZUNA = [sys.executable, "-m", "kizuna"]
CUSTOMERS = "customer_id,name\nC1,山田 太郎\nC2,[red]鈴木[/red]\n"


def kizuna(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KIZUNA, *map(str, args)], capture_output=True, text=True, cwd=cwd, check=False)


def fails(done: subprocess.CompletedProcess[str], message: str, status: int = 1, *, lang: str = "ja") -> None:
    """The command stopped with `status` and said exactly `message`, in one line, after "エラー:" (a
    Japanese workspace's, or no workspace's) or "error:" (`lang` "en"). Messages the catalogue has are
    in that language; the others are still English in either."""
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr == f"{'エラー' if lang == 'ja' else 'error'}: {message}\n"
    assert done.returncode == status


def succeeds(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Workspaces made once through the Python API (a command costs a second of start-up):
    `ws` holds two customers; `analyzed` also orders, analyzed as of 2024-03-01."""
    root = tmp_path_factory.mktemp("templates")
    customers = write(root / "c.csv", CUSTOMERS)
    orders = write(root / "o.csv", "order_id,customer_id,ordered_at,amount,status,channel\n"
                                   "O1,C1,2024-01-05,1200,completed,web\nO2,C2,2024-02-05,900,completed,shop\n")
    with Workspace.init(root / "ws") as ws:
        ws.import_file("customers", customers)
    shutil.copytree(root / "ws", root / "analyzed")
    with Workspace.open(root / "analyzed") as ws:
        ws.import_file("orders", orders)
        ws.analyze(dt.date(2024, 3, 1))
    for folder in ("ws", "analyzed"):  # the rejects of nothing rejected, if any, are not part of the template
        shutil.rmtree(root / folder / "rejects", ignore_errors=True)
    return root


@pytest.fixture
def ws(templates: Path, tmp_path: Path) -> Path:
    """A workspace `ws` in tmp_path holding two customers."""
    shutil.copytree(templates / "ws", tmp_path / "ws")
    write(tmp_path / "c.csv", CUSTOMERS)
    return tmp_path / "ws"


@pytest.fixture
def analyzed(templates: Path, tmp_path: Path) -> Path:
    """A workspace `ws` in tmp_path with customers and orders, analyzed: segments and exports work."""
    shutil.copytree(templates / "analyzed", tmp_path / "ws")
    return tmp_path / "ws"


# -- point 4: data is never markup ---------------------------------------------------------------
@pytest.mark.slow
def test_markup_in_headers_and_values_is_printed_literally(ws: Path):
    orders = write(ws.parent / "o.csv", "order_id,customer_id,ordered_at,amount,status,channel,[/oops]\n"
                                        "O1,C1,2024-01-05,1200,completed,[/bad],1\n"
                                        "O2,C2,2024-02-05,900,completed,[red]x,2\n")
    out = succeeds(kizuna("import", "orders", orders, "-d", ws, "--lang", "en", cwd=ws.parent))
    assert "[/oops]" in out  # the ignored column, as it is named
    out = succeeds(kizuna("kpi", "--by", "channel", "--as-of", "2024-03-01", "-d", ws, cwd=ws.parent))
    assert "[/bad]" in out and "[red]x" in out  # printed, not taken for a closing tag or a colour
    report = json.loads(succeeds(kizuna("kpi", "--by", "channel", "--as-of", "2024-03-01", "-d", ws, "-f", "json",
                                        cwd=ws.parent)))
    assert {r["channel"] for r in report["by"]} == {"[/bad]", "[red]x"}


@pytest.mark.slow
def test_a_file_name_with_brackets_is_printed_literally(ws: Path):
    path = write(ws.parent / "[red]o[bold].csv", "order_id,customer_id,ordered_at,amount\nO1,C1,2024-01-05,100\n")
    out = succeeds(kizuna("import", "orders", path, "-d", ws, cwd=ws.parent))
    assert "[red]o[bold].csv" in out


@pytest.mark.slow
def test_the_summary_names_ten_ignored_columns_and_counts_the_rest(ws: Path):
    extra = [f"x{i:02}" for i in range(1, 26)]
    orders = write(ws.parent / "o.csv", "order_id,customer_id,ordered_at,amount," + ",".join(extra) + "\n"
                                        "O1,C1,2024-01-05,100" + ",1" * len(extra) + "\n")
    out = succeeds(kizuna("import", "orders", orders, "-d", ws, "--lang", "en", cwd=ws.parent))
    assert ", ".join(extra[:10]) + " … and 15 more" in out
    assert "x11" not in out
    summary = json.loads(succeeds(kizuna("import", "orders", orders, "-d", ws, "-f", "json", cwd=ws.parent)))
    assert summary["ignored_columns"] == extra  # scripts get them all


# -- point 5: one line instead of a traceback ----------------------------------------------------
@pytest.mark.parametrize(("command", "day"), [
    (["analyze", "--as-of"], "0001-01-01"), (["analyze", "--as-of"], "9999-12-31"),
    (["kpi", "--as-of"], "1899-12-31"), (["kpi", "--to"], "3000-01-01"), (["kpi", "--from"], "0001-01-01"),
    (["demo", "--dir", "d", "--as-of"], "0001-01-01"),
])
@pytest.mark.slow
def test_dates_outside_the_computable_range_are_refused(analyzed: Path, command: list[str], day: str):
    fails(kizuna(*command, day, "-d", "ws", cwd=analyzed.parent) if command[0] != "demo"
          else kizuna(*command, day, cwd=analyzed.parent),
          f"日付 {day} は kizuna が計算できる期間 (1900-01-01 … 2999-12-31) の外です。"
          "この期間の日付を指定してください。")
    if command[0] != "demo":
        fails(kizuna(*command, day, "-d", "ws", "--lang", "en", cwd=analyzed.parent),
              f"the date {day} is outside 1900-01-01 … 2999-12-31, the days kizuna computes on; "
              "give a date in that range.", lang="en")


@pytest.mark.slow
def test_the_edges_of_the_range_work(analyzed: Path):
    for day in ("1900-01-01", "2999-12-31"):
        succeeds(kizuna("kpi", "--from", "1900-01-01", "--as-of", day, "-d", analyzed, "-f", "json",
                        cwd=analyzed.parent))
    succeeds(kizuna("analyze", "--as-of", "2999-12-31", "-d", analyzed, "-f", "json", cwd=analyzed.parent))


@pytest.mark.slow
def test_usage_mistakes_are_one_line_too(ws: Path):
    fails(kizuna("kpi", "--as-of", "[/x]", "-d", ws, cwd=ws.parent),
          "--as-of '[/x]' は日付ではありません。YYYY-MM-DD の形で書いてください。"
          "`kizuna kpi --help` を参照してください。", status=2)
    fails(kizuna("kpi", "--by", "week", "-d", ws, cwd=ws.parent),
          "--by は month、channel のいずれかにしてください。`kizuna kpi --help` を参照してください。", status=2)
    fails(kizuna("kpi", "--by", "week", "-d", ws, "--lang", "en", cwd=ws.parent),
          "--by must be one of month, channel. See `kizuna kpi --help`.", status=2, lang="en")
    fails(kizuna("migration", "--from", "2026-06-30", "--to", "2026-01-31", "-d", ws, "--lang", "en", cwd=ws.parent),
          "--from 2026-06-30 must be before --to 2026-01-31; give an earlier --from. "
          "See `kizuna migration --help`.", status=2, lang="en")
    # Click's own words (a missing or unknown option) stay as the library wrote them, with the pointer to the help
    fails(kizuna("kpi", "--bogus", cwd=ws.parent), "No such option: --bogus。`kizuna kpi --help` を参照してください。",
          status=2)


@pytest.mark.slow
def test_an_unknown_encoding_is_one_line(ws: Path):
    orders = write(ws.parent / "o.csv", "order_id,customer_id,ordered_at,amount\nO1,C1,2024-01-05,100\n")
    done = kizuna("import", "orders", orders, "--encoding", "bogus", "-d", ws, cwd=ws.parent)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("エラー: ") and done.stderr.count("\n") == 1 and "bogus" in done.stderr


@pytest.mark.slow
def test_a_memory_limit_too_small_for_analyze_says_which_setting_to_raise(tmp_path: Path):
    succeeds(kizuna("demo", "--customers", "20000", "--dir", "demo", "-f", "json", cwd=tmp_path))
    settings = tmp_path / "demo" / "kizuna.toml"
    text = settings.read_text(encoding="utf-8")
    assert 'memory_limit = ""' in text
    settings.write_text(text.replace('memory_limit = ""', 'memory_limit = "50MB"'), encoding="utf-8")
    fails(kizuna("analyze", "-d", "demo", cwd=tmp_path),
          "DuckDB のメモリが足りなくなりました: メモリ上限 50MB が小さすぎました。kizuna.toml の [store] "
          "memory_limit を上げるか、空にして DuckDB の既定 (このコンピューターのメモリの 80%) にしてください。")
    fails(kizuna("analyze", "-d", "demo", "--lang", "en", cwd=tmp_path),
          "DuckDB ran out of memory: the memory limit of 50MB was too small. Raise [store] memory_limit in "
          "kizuna.toml, or empty it for DuckDB's default (80% of this computer's memory).", lang="en")
    # the failed analysis left the scores of the demo's as they were
    matrix = json.loads(succeeds(kizuna("segments", "-d", "demo", "-f", "json", cwd=tmp_path)))["matrix"]
    assert sum(r["customers"] for r in matrix) == 20_000


@pytest.mark.parametrize("name", ["folder", "file.csv/list.csv"])
@pytest.mark.slow
def test_export_to_a_folder_or_below_a_file_is_refused_before_computing(analyzed: Path, name: str):
    cwd = analyzed.parent
    (cwd / "folder").mkdir()
    write(cwd / "file.csv", "")
    message, english = {
        "folder": ("folder はフォルダーです。-o でファイル名を指定してください (例: -o folder/list.csv)。",
                   "folder is a folder; give a file name with -o, e.g. -o folder/list.csv."),
        "file.csv/list.csv": (f"file.csv/list.csv に書き込めません: {cwd / 'file.csv'} はフォルダーではなくファイル"
                              "です。-o で別のパスを指定してください。",
                              f"cannot write file.csv/list.csv: {cwd / 'file.csv'} is a file, not a folder. "
                              "Choose another path with -o."),
    }[name]
    fails(kizuna("export", "loyal", "-o", name, "-d", analyzed, cwd=cwd), message)
    fails(kizuna("export", "loyal", "-o", name, "-d", analyzed, "--lang", "en", cwd=cwd), english, lang="en")


@pytest.mark.slow
def test_init_on_a_file_or_an_existing_workspace(ws: Path):
    cwd = ws.parent
    write(cwd / "notes.txt", "x")
    fails(kizuna("init", "notes.txt", cwd=cwd), "notes.txt はフォルダーではなくファイルです。ワークスペースには"
                                                "新しいフォルダーか空のフォルダーを指定してください。")
    fails(kizuna("init", "notes.txt/shop", cwd=cwd), "フォルダー notes.txt/shop を作成できません (Not a directory)。"
                                                     "書き込めるフォルダーを指定してください。")
    fails(kizuna("init", "ws", cwd=cwd), "ws はすでに kizuna のワークスペースです (kizuna.toml があります)。"
                                         "--dir で使うか、別のフォルダーを指定してください。")
    fails(kizuna("init", "notes.txt", "--lang", "en", cwd=cwd),
          "notes.txt is a file, not a folder. Give a new or empty folder for the workspace.", lang="en")
    fails(kizuna("init", "notes.txt/shop", "--lang", "en", cwd=cwd),
          "cannot create the folder notes.txt/shop (Not a directory). Choose a folder you can write in.", lang="en")
    fails(kizuna("init", "ws", "--lang", "en", cwd=cwd),
          "ws is already a kizuna workspace (kizuna.toml exists). Use it with --dir, or choose another folder.",
          lang="en")
    assert (cwd / "notes.txt").read_text() == "x"


@pytest.mark.parametrize("command", [["analyze"], ["predict"], ["serve", "--port", "0"], ["user", "passwd", "anna"],
                                     ["run", "--dry-run"]])
@pytest.mark.slow
def test_a_folder_that_is_no_workspace_is_named_with_what_to_do(tmp_path: Path, command: list[str]):
    """Every command, the web server's included, says it in the same words, in the language asked for
    (Japanese when the folder has no settings to say which)."""
    (tmp_path / "shop").mkdir()
    where = tmp_path / "shop"
    fails(kizuna(*command, "-d", "shop", cwd=tmp_path),
          f"{where} は kizuna のワークスペースではありません (kizuna.toml がありません)。"
          "`kizuna init DIR` で作成するか、--dir で既存のワークスペースを指定してください。")
    fails(kizuna(*command, "-d", "shop", "--lang", "en", cwd=tmp_path),
          f"{where} is not a kizuna workspace (no kizuna.toml). Create one with `kizuna init DIR`, or pass --dir to "
          "an existing one.", lang="en")
    assert list(where.iterdir()) == []  # nothing written into the folder


# -- point 8: traps --------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["kizuna.duckdb", "kizuna.toml", "rejects/list.csv", "kizuna.duckdb.wal",
                                    "spark-warehouse/x.csv"])
@pytest.mark.slow
def test_export_never_writes_over_the_workspaces_own_files(analyzed: Path, target: str):
    before = {p: p.read_bytes() for p in analyzed.rglob("*") if p.is_file()}
    name = target.split("/")[0]
    what = f"{name} で、kizuna が使うファイル" if "/" not in target else f"{name} フォルダーの中で、kizuna が使う場所"
    fails(kizuna("export", "loyal", "-o", f"ws/../ws/{target}", "-d", "ws", cwd=analyzed.parent),
          f"ws/../ws/{target} はこのワークスペースの {what}です。書き出しで上書きはできません。"
          "-o FILE で別の場所に書き出してください。")
    what = f"this workspace's {name}" if "/" not in target else f"in this workspace's {name} folder"
    fails(kizuna("export", "loyal", "-o", f"ws/../ws/{target}", "-d", "ws", "--lang", "en", cwd=analyzed.parent),
          f"ws/../ws/{target} is {what}, which kizuna keeps for itself; an export must not write over it. "
          "Write the list elsewhere with -o FILE.", lang="en")
    assert {p: p.read_bytes() for p in analyzed.rglob("*") if p.is_file()} == before
    succeeds(kizuna("segments", "-d", "ws", cwd=analyzed.parent))  # the store is whole


@pytest.mark.slow
def test_export_never_writes_over_a_store_given_with_db(analyzed: Path):
    other = analyzed.parent / "other.duckdb"
    succeeds(kizuna("init", "second", "--db", other, cwd=analyzed.parent))
    fails(kizuna("export", "loyal", "-o", other, "-d", "second", cwd=analyzed.parent),
          f"{other} はこのワークスペースの other.duckdb で、kizuna が使うファイルです。書き出しで上書きはできません。"
          "-o FILE で別の場所に書き出してください。")


@pytest.mark.slow
def test_unknown_store_schemes_are_refused_without_showing_the_password(ws: Path):
    cwd = ws.parent
    message = ("mysql://user:***@host/x のストアを開けません: kizuna は mysql には保存しません。DuckDB のファイル "
               "(パス、または duckdb:///パス)、postgres://user:password@host/db、pyspark://local のどれかを --db か "
               "kizuna.toml の [store] url で指定してください。")
    for args in (["kpi", "-d", "ws"], ["import", "customers", "c.csv", "-d", "ws"], ["init", "shop"]):
        fails(kizuna(*args, "--db", "mysql://user:s3cret@host/x", cwd=cwd), message)
    fails(kizuna("kpi", "-d", "ws", "--db", "mysql://user:s3cret@host/x", "--lang", "en", cwd=cwd),
          "cannot open the store at mysql://user:***@host/x: kizuna does not store in mysql. Give a DuckDB file (a "
          "path, or duckdb:///path), postgres://user:password@host/db or pyspark://local, with --db or [store] url "
          "in kizuna.toml.", lang="en")
    assert not any("s3cret" in str(p) for p in cwd.rglob("*"))
    assert not (cwd / "shop").exists()  # init checked the URL before making anything


@pytest.mark.parametrize("command", [["kpi"], ["segments"], ["analyze"], ["export", "loyal", "-o", "x.csv"]])
@pytest.mark.slow
def test_reading_commands_do_not_create_a_missing_store(ws: Path, command: list[str]):
    fails(kizuna(*command, "-d", "ws", "--db", "elsewhere/kizuna.duckdb", cwd=ws.parent),
          "elsewhere/kizuna.duckdb にストアがありません。`kizuna init` か `kizuna import` でそこに作るか、--db と "
          "kizuna.toml の [store] url を確かめてください。")
    assert not (ws.parent / "elsewhere").exists()


@pytest.mark.slow
def test_a_store_held_by_another_process_names_it(ws: Path):
    settings = ws / SETTINGS_FILE  # a second's wait for the file, not the default half-minute
    settings.write_text(Settings.load(settings).replace(store={"lock_wait": 1}).to_toml(), encoding="utf-8")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time\n"
                               f"con = duckdb.connect({str(ws / 'kizuna.duckdb')!r})\n"
                               "print('held', flush=True)\n"
                               "sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        fails(kizuna("kpi", "-d", "ws", cwd=ws.parent),
              f"another kizuna command (PID {holder.pid}) is using this workspace's store ws/kizuna.duckdb; "
              "wait for it to finish, or stop it.")
    finally:
        holder.communicate("")  # end of input: the holder closes the store and exits
