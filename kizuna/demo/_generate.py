"""The demo files, written as a Japanese business would export them, and their import.

Each kind goes out in a different shape on purpose, so that the demo walks the same import
path as a real shop's exports:

=============  ===========================  ===================================================
kind           file                         shape
=============  ===========================  ===================================================
customers      customers.csv                UTF-8 with BOM, Japanese headers, yes/no as 配信する,
                                            ○/×, 希望/不要; one header needs customers-mapping.toml
products       products.csv                 UTF-8, canonical headers
orders         orders.csv                   Shift_JIS (cp932), CRLF, 受注番号/購入日/金額 with
                                            "2024/01/05 13:45" and "￥1,200", 完了/キャンセル/返品
order-items    order-items.csv              UTF-8, Japanese headers
nps            nps.parquet                  Parquet, Japanese column names, timestamps with zone
support        support.csv                  UTF-8, 電話/チャット/メール …, 解決済み/対応中
events         events.csv                   UTF-8, 定期開始/解約/引越し …
=============  ===========================  ===================================================
"""

from __future__ import annotations

import codecs
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from kizuna.demo._arrow import clock, numbered, pick, stamps
from kizuna.demo._catalog import EVENT_WORDS, PRODUCTS, STATUS_WORDS, SUPPORT_CHANNEL_WORDS
from kizuna.demo._experience import events_table, nps_table, support_table
from kizuna.demo._profiles import customers_table, ids_of
from kizuna.demo._simulate import CHANNELS, PRICES, simulate_business
from kizuna.importing import ImportSummary
from kizuna.workspace import Workspace

__all__ = ["DEFAULT_AS_OF", "IMPORT_ORDER", "DemoResult", "build_demo", "demo_tables", "generate_demo_files"]

DEFAULT_AS_OF = dt.date(2026, 11, 1)
# Dependency order: orders need customers, order items need orders and products.
IMPORT_ORDER = ("customers", "products", "orders", "order-items", "nps", "support", "events")
DEMO_BUSINESS = "きずなウォーター（デモ）"  # the title row of the demo's workbooks and report
TIMEZONE = "Asia/Tokyo"  # the demo business is Japanese; its Parquet export says so
# What the demo's water saves money against (`money_saved`): water in 500 mL PET bottles at ¥100
# each, the comparison water-server shops make. Every water product of the catalogue costs less
# a litre, so every customer who kept some water has saved something (tests/test_ranks.py).
ALTERNATIVE = {"alternative_name": "500mLのペットボトル", "alternative_yen_per_l": 200}
_CHUNK_ROWS = 250_000
_FILE_NAMES = {
    "customers": "customers.csv", "customers-mapping": "customers-mapping.toml", "products": "products.csv",
    "orders": "orders.csv", "order-items": "order-items.csv", "nps": "nps.parquet", "support": "support.csv",
    "events": "events.csv",
}

CUSTOMERS_MAPPING = """\
# The demo's customer export calls LINE friendship 「LINE友だち登録」, a header kizuna
# does not know by itself; every other header is one of its built-in Japanese aliases.
[columns]
"LINE友だち登録" = "line_opt_in"
"""


@dataclass
class DemoResult:
    """What `build_demo` made: the open workspace, one import summary per file, the files."""

    workspace: Workspace
    summaries: list[ImportSummary] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        """Rows rejected over all imports (0 unless the bad rows were asked for)."""
        return sum(s.rejected for s in self.summaries)


def demo_tables(
    customers: int = 10_000, *, seed: int = 7, as_of: dt.date = DEFAULT_AS_OF
) -> dict[str, pa.Table]:
    """The demo business as canonical tables (docs/measures.md §7), keyed by kind; same seed, same tables.

    >>> tables = demo_tables(100, seed=1)
    >>> tables["customers"].column("customer_id")[0].as_py()
    'C0000001'
    """
    return dict(_tables(customers, seed, as_of))


def _tables(customers: int, seed: int, as_of: dt.date) -> Iterator[tuple[str, pa.Table]]:
    """The tables of `demo_tables` one at a time, so that a writer holds one table, not seven."""
    if customers < 1:
        raise ValueError("the demo needs at least one customer")
    # One independent stream per table, so a change to how one table is drawn leaves the others alone.
    people_rng, profile_rng, nps_rng, support_rng, events_rng = np.random.default_rng(seed).spawn(5)
    business = simulate_business(customers, people_rng, as_of)
    o = business.orders
    product_ids = [row[0] for row in PRODUCTS]
    yield "customers", customers_table(business, profile_rng, as_of)
    yield "products", pa.table({
        "product_id": [r[0] for r in PRODUCTS], "name": [r[1] for r in PRODUCTS],
        "category": [r[2] for r in PRODUCTS], "price": pa.array([r[3] for r in PRODUCTS], pa.int64()),
        "cycle_days": pa.array([r[4] for r in PRODUCTS], pa.int64()),
        "volume_l": pa.array([r[5] for r in PRODUCTS], pa.float64()),
    })
    yield "orders", pa.table({
        "order_id": numbered("O", np.arange(1, len(o.customer) + 1), 8),
        "customer_id": ids_of(o.customer),
        "ordered_at": stamps(o.at),
        "amount": pa.array(o.amount),
        "status": pick(("completed", "cancelled", "returned"), o.status),
        "refund_amount": pa.array(o.refund, mask=o.refund < 0),
        "channel": pick(CHANNELS, o.channel),
        "shipped_at": stamps(o.shipped, o.shipped >= 0),
    })
    yield "order-items", pa.table({
        "order_id": numbered("O", o.item_order + 1, 8),
        "product_id": pick(product_ids, o.item_product),
        "quantity": pa.array(o.item_quantity),
        "unit_price": pa.array(PRICES[o.item_product]),
    })
    yield "nps", nps_table(business, nps_rng)
    yield "support", support_table(business, support_rng)
    yield "events", events_table(business, events_rng)


def generate_demo_files(
    directory: Path | str,
    *,
    customers: int = 10_000,
    seed: int = 7,
    as_of: dt.date = DEFAULT_AS_OF,
    with_bad_rows: bool = False,
) -> dict[str, Path]:
    """Write the demo business's exports into `directory`; returns kind -> path.

    The keys are the seven kinds of `kizuna import` (customers, products, orders,
    order-items, nps, support, events) plus ``customers-mapping``, the mapping file to
    pass with the customers file. Nothing in the files happens after `as_of`. The same
    arguments always write the same bytes. `with_bad_rows` adds three orders the import
    must reject (an impossible date, a negative amount, an unknown customer).

    >>> files = generate_demo_files(tmp_path, customers=100)    # doctest: +SKIP
    >>> Workspace.init(ws_dir).import_file("orders", files["orders"])  # doctest: +SKIP
    """
    return _write_files(Path(directory), customers=customers, seed=seed, as_of=as_of,
                        with_bad_rows=with_bad_rows)


def _write_files(directory: Path, *, customers: int, seed: int, as_of: dt.date, with_bad_rows: bool,
                 written: Callable[[str], None] | None = None, stop: threading.Event | None = None
                 ) -> dict[str, Path]:
    """`generate_demo_files`, calling `written(kind)` once each file is complete (in `IMPORT_ORDER`);
    returns early once `stop` is set."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {kind: directory / name for kind, name in _FILE_NAMES.items()}
    files["customers-mapping"].write_text(CUSTOMERS_MAPPING, encoding="utf-8")
    for kind, table in _tables(customers, seed, as_of):
        _write_export(kind, table, files[kind], as_of=as_of, with_bad_rows=with_bad_rows)
        del table  # one table in memory at a time
        if written:
            written(kind)
        if stop is not None and stop.is_set():
            break
    return files


def _write_export(kind: str, table: pa.Table, path: Path, *, as_of: dt.date, with_bad_rows: bool) -> None:
    """Write one canonical table in the shape its kind's export has (see the module docstring)."""
    if kind == "customers":
        _write_csv(_customers_export(table), path, bom=True)
    elif kind == "orders":
        orders = _orders_export(table)
        if with_bad_rows:
            orders = pa.concat_tables([orders, _bad_orders(orders.schema, as_of)])
        _write_csv(orders, path, encoding="cp932", eol="\r\n")
    elif kind == "order-items":
        _write_csv(table.rename_columns(["受注番号", "商品コード", "数量", "単価"]), path)
    elif kind == "nps":
        pq.write_table(_nps_export(table), path)
    elif kind == "support":
        _write_csv(_support_export(table), path)
    elif kind == "events":
        _write_csv(_events_export(table), path)
    else:
        _write_csv(table, path)


def build_demo(
    directory: Path | str,
    *,
    customers: int = 10_000,
    seed: int = 7,
    as_of: dt.date = DEFAULT_AS_OF,
    with_bad_rows: bool = False,
    on_progress: Callable[[str], None] | None = None,
) -> DemoResult:
    """Create (or reuse) a workspace in `directory`, write the demo files, import them.

    The files go to ``directory / "demo-data"`` and are imported with
    `Workspace.import_file`, exactly as a user's files would be, in dependency order; each
    is imported as soon as it is complete, while a thread writes the next ones.
    The workspace's ``as_of`` setting becomes `as_of`, so its reports stop where the
    business does; its RFM ranks are the ones `Workspace.suggest_ranks` proposes for the
    imported business, and its money saved is counted against 500 mL PET bottles
    (`ALTERNATIVE`). `on_progress(step)` is called before each step ("generating 10,000
    customers", "importing orders", …). The workspace is returned open; close it (or use ``with``).

    >>> result = build_demo("kizuna-demo", customers=2_000)      # doctest: +SKIP
    >>> result.workspace.counts()["customers"], result.rejected  # doctest: +SKIP
    (2000, 0)
    """
    report = on_progress or (lambda step: None)
    workspace = Workspace.init(directory, exist_ok=True)
    try:
        # The business stops on `as_of`: reports default to that day, not to today.
        workspace.save_settings(workspace.settings.replace(analysis={"as_of": as_of.isoformat()},
                                                           business={"name": DEMO_BUSINESS},
                                                           delivery=ALTERNATIVE))
        report(f"generating {customers:,} customers")
        result = DemoResult(workspace)
        # The files are written in a thread while the ones already written are imported: the
        # import of one kind overlaps the generation of the next (both mostly outside the GIL).
        ready = {kind: threading.Event() for kind in IMPORT_ORDER}
        stop = threading.Event()
        data = Path(directory) / "demo-data"
        with ThreadPoolExecutor(1, thread_name_prefix="kizuna-demo-files") as pool:
            writing = pool.submit(_write_files, data, customers=customers, seed=seed,
                                  as_of=as_of, with_bad_rows=with_bad_rows,
                                  written=lambda kind: ready[kind].set(), stop=stop)
            try:
                for kind in IMPORT_ORDER:
                    while not ready[kind].wait(0.05):
                        if writing.done():
                            writing.result()  # the writer failed: its error, here
                    report(f"importing {kind}")
                    result.summaries.append(workspace.import_file(
                        kind, data / _FILE_NAMES[kind], mapping=_mapping_file(kind, data)))
            finally:
                stop.set()
            result.files = writing.result()
        workspace.write_rank_rules(workspace.suggest_ranks(as_of).rules)
    except BaseException:
        workspace.close()
        raise
    return result


def _mapping_file(kind: str, directory: Path) -> Path | None:
    name = _FILE_NAMES.get(f"{kind}-mapping")
    return directory / name if name else None


# -- the export shapes --------------------------------------------------------------------------
def _customers_export(t: pa.Table) -> pa.Table:
    def words(column: str, yes: str, no: str) -> pa.Array:
        values = t[column].combine_chunks()
        return pc.if_else(values, yes, no)

    return pa.table({
        "顧客ID": t["customer_id"], "氏名": t["name"], "フリガナ": t["name_kana"],
        "メールアドレス": t["email"], "電話番号": t["phone"], "郵便番号": t["postal_code"],
        "住所": t["address"], "登録日": _when(t["signed_up_at"], "minutes"),
        "メール配信": words("email_opt_in", "配信する", "配信しない"),
        "LINEユーザーID": t["line_user_id"], "LINE友だち登録": words("line_opt_in", "○", "×"),
        "DM送付": words("dm_opt_in", "希望", "不要"),
        "生年月日": _when(t["birthday"].cast(pa.timestamp("s")), "date"),
    })


def _orders_export(t: pa.Table) -> pa.Table:
    status = t["status"].combine_chunks()
    return pa.table({
        "受注番号": t["order_id"], "顧客ID": t["customer_id"],
        "購入日": _when(t["ordered_at"], "minutes"), "金額": _yen(t["amount"]),
        "ステータス": _words(status, STATUS_WORDS), "返金額": t["refund_amount"].cast(pa.string()),
        "販売チャネル": t["channel"], "発送日": _when(t["shipped_at"], "minutes"),
    })


def _bad_orders(schema: pa.Schema, as_of: dt.date) -> pa.Table:
    day = (as_of - dt.timedelta(days=3)).strftime("%Y/%m/%d 10:00")
    rows = {
        "受注番号": ["O-BAD-1", "O-BAD-2", "O-BAD-3"],
        "顧客ID": ["C0000001", "C0000001", "C-UNKNOWN"],
        "購入日": [f"{as_of.year}/02/30 10:00", day, day],  # 30 February does not exist
        "金額": ["￥1,404", "▲1,404", "￥1,404"],  # ▲ is the Japanese minus sign
        "ステータス": ["完了", "完了", "完了"], "返金額": [None, None, None],
        "販売チャネル": ["web", "web", "web"], "発送日": [None, None, None],
    }
    return pa.table(rows, schema=schema)


def _nps_export(t: pa.Table) -> pa.Table:
    return pa.table({
        "顧客ID": t["customer_id"],
        # A warehouse export keeps the instant: local time with its zone.
        "回答日時": pc.assume_timezone(t["answered_at"], TIMEZONE),
        "スコア": t["score"].cast(pa.int8()), "コメント": t["comment"], "接点": t["touchpoint"],
    })


def _support_export(t: pa.Table) -> pa.Table:
    return pa.table({
        "問い合わせID": t["contact_id"], "顧客ID": t["customer_id"],
        "受付日時": _when(t["opened_at"], "seconds"),
        "窓口": _words(t["channel"].combine_chunks(), SUPPORT_CHANNEL_WORDS),
        "解決日時": _when(t["resolved_at"], "seconds"),
        "ステータス": _words(t["status"].combine_chunks(), {"resolved": "解決済み", "open": "対応中"}),
        "カテゴリ": t["category"],
        "クレーム": pc.if_else(t["is_complaint"].combine_chunks(), "あり", "なし"),
    })


def _events_export(t: pa.Table) -> pa.Table:
    return pa.table({
        "顧客ID": t["customer_id"], "発生日時": _when(t["occurred_at"], "seconds", "-"),
        "種別": _words(t["kind"].combine_chunks(), EVENT_WORDS), "詳細": t["detail"],
    })


def _when(column: pa.ChunkedArray, upto: str = "minutes", sep: str = "/") -> pa.Array | pa.ChunkedArray:
    """Timestamps as "2024/01/05 13:45"-style text, up to the date, the minute or the second."""
    values = column.combine_chunks()
    valid = values.is_valid().to_numpy(zero_copy_only=False) if values.null_count else None
    seconds = values.cast(pa.timestamp("s")).cast(pa.int64()).fill_null(0).to_numpy()
    return clock(seconds, valid, upto=upto, sep=sep)


def _words(values: pa.Array, words: dict[str, str]) -> pa.Array:
    index = pc.index_in(values, pa.array(list(words)))
    return pa.array(list(words.values())).take(index)


def _yen(amounts: pa.ChunkedArray) -> pa.Array:
    """"￥1,200" as a Japanese spreadsheet shows it (the full-width yen sign, which Shift_JIS has).

    Orders share a few thousand distinct amounts: each is formatted once, then looked up.
    """
    encoded = pc.dictionary_encode(amounts.combine_chunks())
    shown = pa.array([None if v is None else f"￥{v:,}" for v in encoded.dictionary.to_pylist()], pa.string())
    return shown.take(encoded.indices)


def _write_csv(table: pa.Table, path: Path, *, encoding: str = "utf-8", bom: bool = False,
               eol: str = "\n") -> None:
    """Arrow's CSV writer speaks UTF-8 only: other encodings go through `_bytes_as_latin1`."""
    if encoding != "utf-8":
        table = _bytes_as_latin1(table, encoding)
    with path.open("wb") as handle:
        if bom:
            handle.write(codecs.BOM_UTF8)
        for start in range(0, max(table.num_rows, 1), _CHUNK_ROWS):
            sink = pa.BufferOutputStream()
            options = pa_csv.WriteOptions(include_header=start == 0, eol=eol)
            pa_csv.write_csv(table.slice(start, _CHUNK_ROWS), sink, options)
            data = sink.getvalue()
            handle.write(data if encoding == "utf-8" else str(data, "utf-8").encode("latin-1"))


def _bytes_as_latin1(table: pa.Table, encoding: str) -> pa.Table:
    """`table` with its non-ASCII text (column names included) spelt as the bytes of `encoding`,
    one Latin-1 character a byte: the UTF-8 Arrow writes then turns back into exactly those bytes
    with a Latin-1 encode, a copy, where transcoding every row to `encoding` costs several times
    more. Only the distinct values of the non-ASCII columns are encoded."""
    def spelt(text: str | None) -> str | None:
        return None if text is None else text.encode(encoding).decode("latin-1")

    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) and not pc.all(pc.string_is_ascii(column)).as_py():
            encoded = pc.dictionary_encode(column.combine_chunks())
            words = pa.array([spelt(v) for v in encoded.dictionary.to_pylist()], pa.string())
            column = words.take(encoded.indices)
        columns.append(column)
    return pa.table(columns, names=[spelt(name) for name in table.column_names])
