"""Synthetic Japanese EC exports for benchmarks: customers and orders, any size, bounded memory.

    python bench/make_data.py --orders 10_000_000 --customers 1_000_000 --out bench/data/10m
    python bench/make_data.py --orders 100_000_000 --customers 10_000_000 --out bench/data/100m
    python bench/make_data.py --orders 1_000_000 --format parquet --out bench/data/1m-parquet

writes ``customers.csv`` and ``orders.csv`` (or ``.parquet``) into ``--out``. The same arguments
give the same files, byte for byte.

The business it models, so that analytics on the data see something realistic:

* customers sign up over the years (a third before the period, the rest growing through it),
  then stay for an exponentially distributed lifetime (40 % leave within weeks); customer ids
  follow sign-up order;
* each customer has a purchase propensity drawn from a log-normal distribution (15 % never
  buy); buyers place a first order the week after signing up, then repeat in proportion to
  their propensity until they churn. Purchase counts are skewed: about a third of buyers buy
  once, a few customers have hundreds of orders, the top 20 % bring most of the revenue;
* orders grow linearly over ``--years`` (the last day has ``1 + --growth`` times the orders of
  the first), with an evening peak in the day; a customer orders only between sign-up and churn;
* order ids follow order time, like an export sorted by 受注日時;
* CSV amounts are mostly plain integers, some written "¥12,800" as shops' exports do; statuses
  are mostly completed, some cancelled or returned (returns carry a refund); channels are the
  usual Japanese marketplaces.

CSV columns are text as exports write them ("2024/01/05 13:45:10"); Parquet columns are typed
(timestamp, int64, bool, date). Memory stays O(customers + --chunk-rows) whatever --orders is:
per-customer arrays, plus one chunk of orders at a time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

__all__ = ["Business", "make_business", "main", "order_batches", "customer_batches", "write"]

DAY = 86_400
WEEK = 7 * DAY

# (surname, reading) and (given name, reading): common Japanese names.
SURNAMES = [
    ("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"), ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"), ("山本", "ヤマモト"), ("中村", "ナカムラ"), ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
    ("吉田", "ヨシダ"), ("山田", "ヤマダ"), ("佐々木", "ササキ"), ("山口", "ヤマグチ"), ("松本", "マツモト"),
    ("井上", "イノウエ"), ("木村", "キムラ"), ("林", "ハヤシ"), ("斎藤", "サイトウ"), ("清水", "シミズ"),
]
GIVEN_NAMES = [
    ("翔太", "ショウタ"), ("大輔", "ダイスケ"), ("健太", "ケンタ"), ("拓也", "タクヤ"), ("直樹", "ナオキ"),
    ("蓮", "レン"), ("悠真", "ユウマ"), ("誠", "マコト"), ("浩", "ヒロシ"), ("隆", "タカシ"),
    ("美咲", "ミサキ"), ("陽子", "ヨウコ"), ("恵子", "ケイコ"), ("由美", "ユミ"), ("愛", "アイ"),
    ("結衣", "ユイ"), ("さくら", "サクラ"), ("真由美", "マユミ"), ("明美", "アケミ"), ("葵", "アオイ"),
]
# Prefectures with rough populations (10,000s), for the address column's distribution.
PREFECTURES = [
    ("北海道", 514), ("青森県", 120), ("岩手県", 118), ("宮城県", 228), ("秋田県", 93), ("山形県", 104),
    ("福島県", 179), ("茨城県", 284), ("栃木県", 191), ("群馬県", 191), ("埼玉県", 734), ("千葉県", 627),
    ("東京都", 1404), ("神奈川県", 923), ("新潟県", 214), ("富山県", 102), ("石川県", 111), ("福井県", 75),
    ("山梨県", 80), ("長野県", 202), ("岐阜県", 194), ("静岡県", 355), ("愛知県", 748), ("三重県", 174),
    ("滋賀県", 141), ("京都府", 253), ("大阪府", 878), ("兵庫県", 538), ("奈良県", 130), ("和歌山県", 90),
    ("鳥取県", 54), ("島根県", 65), ("岡山県", 186), ("広島県", 276), ("山口県", 131), ("徳島県", 70),
    ("香川県", 94), ("愛媛県", 131), ("高知県", 67), ("福岡県", 510), ("佐賀県", 80), ("長崎県", 128),
    ("熊本県", 172), ("大分県", 111), ("宮崎県", 105), ("鹿児島県", 156), ("沖縄県", 147),
]
CHANNELS = [("自社EC", 0.50), ("楽天市場", 0.22), ("Amazon", 0.14), ("Yahoo!ショッピング", 0.08),
            ("LINE", 0.04), ("電話", 0.02)]
STATUSES = [("completed", 0.92), ("cancelled", 0.05), ("returned", 0.03)]
# Relative orders per hour of the day (0-23 h): quiet at night, a peak after dinner.
HOURLY = np.array([3, 2, 1, 1, 1, 1, 2, 3, 4, 5, 6, 6, 7, 6, 6, 6, 6, 6, 7, 8, 10, 11, 10, 6], float)


@dataclass
class Business:
    """Per-customer facts that both files need: O(customers) memory."""

    customers: int
    orders: int
    start: int  # first second of the period (local wall-clock, as seconds from 1970-01-01)
    span: int  # seconds in the period
    growth: float
    signup: np.ndarray  # int64 seconds, sorted: customer ids follow sign-up order
    churn: np.ndarray  # int64 seconds: no orders after this
    weight: np.ndarray  # float64 purchase propensity (0: never buys)
    channel: np.ndarray  # int8 index into CHANNELS: the customer's usual channel
    seed: int


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


def make_business(customers: int, orders: int, *, seed: int = 20240105, start: str = "2023-01-01",
                  years: float = 3.0, growth: float = 1.0, lifetime_years: float = 2.5,
                  trial_share: float = 0.4) -> Business:
    """Draw every customer's sign-up, churn, propensity and usual channel."""
    rng = _rng(seed, 0)
    t0 = int(np.datetime64(start, "s").astype(np.int64))
    span = int(years * 365 * DAY)
    # A third signed up in the two years before the period; the rest join through it, growing.
    before = rng.random(customers) < 1 / 3
    signup = np.where(
        before,
        t0 - rng.random(customers) * 2 * 365 * DAY,
        t0 + span * _growth_quantile(rng.random(customers), growth),
    ).astype(np.int64)
    signup.sort()
    # Many try the shop once or twice and leave within weeks; the rest stay for years.
    lifetime = np.where(rng.random(customers) < trial_share, rng.exponential(45 * DAY, customers),
                        rng.exponential(lifetime_years * 365 * DAY, customers))
    churn = signup + lifetime.astype(np.int64)
    weight = np.minimum(rng.lognormal(0.0, 1.5, customers), 60.0)  # cap: no single whale
    weight[rng.random(customers) < 0.15] = 0.0
    probs = np.array([p for _, p in CHANNELS])
    channel = rng.choice(len(CHANNELS), customers, p=probs / probs.sum()).astype(np.int8)
    return Business(customers, orders, t0, span, growth, signup, churn, weight, channel, seed)


def _growth_quantile(q: np.ndarray, growth: float) -> np.ndarray:
    """Inverse CDF on [0, 1] of a rate rising linearly from 1 to 1 + growth."""
    if growth <= 0:
        return q
    return (np.sqrt(1 + 2 * growth * q * (1 + growth / 2)) - 1) / growth


def _with_hours(seconds: np.ndarray) -> np.ndarray:
    """Spread uniform seconds of each day over the HOURLY profile (monotone: order is kept)."""
    days, within = np.divmod(seconds, DAY)
    cumulative = np.concatenate([[0.0], np.cumsum(HOURLY)]) / HOURLY.sum()
    hours = np.interp(within / DAY, cumulative, np.arange(25.0))
    return days * DAY + np.minimum((hours * 3600).astype(np.int64), DAY - 1)


def _pick(rng: np.random.Generator, cumulative: np.ndarray, n: int) -> np.ndarray:
    """n independent draws from the distribution whose normalised CDF is `cumulative`.

    Sorted uniforms (from exponential spacings) make the binary searches walk the array in
    order, which is ~20x faster than random probes on a 10M-entry array. The draws come out
    sorted: shuffle them to make them independent again.
    """
    gaps = rng.standard_exponential(n + 1)
    points = np.cumsum(gaps)
    found = np.searchsorted(cumulative, points[:-1] * (cumulative[-1] / points[-1]), side="right")
    np.minimum(found, len(cumulative) - 1, out=found)
    return found


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _id_width(count: int, minimum: int) -> int:
    return max(minimum, len(str(count)))


def _text_times(seconds: np.ndarray, with_time: bool = True) -> pa.Array:
    """'2024/01/05 13:45:10' (or '2024/01/05'), as Japanese exports write them."""
    if with_time:
        text = pc.cast(pa.array(seconds.astype("datetime64[s]")), pa.string())
    else:
        text = pc.cast(pa.array(seconds.astype("datetime64[s]").astype("datetime64[D]")), pa.string())
    return pc.replace_substring(text, "-", "/")


def _yen_text(amounts: np.ndarray) -> pa.Array:
    """'¥12,800': thousands separators, vectorised (amounts under ¥1,000,000,000)."""
    millions, rest = np.divmod(amounts, 1_000_000)
    thousands, units = np.divmod(rest, 1000)

    def text(a: np.ndarray, width: int = 0) -> pa.Array:
        s = pc.cast(pa.array(a), pa.string())
        return pc.utf8_lpad(s, width, "0") if width else s

    three = pc.binary_join_element_wise(text(thousands, 3), text(units, 3), ",")
    full = pc.if_else(
        pa.array(millions > 0),
        pc.binary_join_element_wise(text(millions), three, ","),
        pc.if_else(pa.array(thousands > 0),
                   pc.binary_join_element_wise(text(thousands), text(units, 3), ","),
                   text(units)),
    )
    return pc.binary_join_element_wise("¥", full, "")


def order_batches(biz: Business, *, chunk_rows: int = 1_000_000, typed: bool = False,
                  yen_strings: float = 0.03) -> Iterator[pa.Table]:
    """The orders, in time order, as tables of at most `chunk_rows` rows.

    Time runs in weekly slices. In each, the buyers who signed up the week before place their
    first order; the other orders go to earlier customers not yet churned, each in proportion
    to their propensity.
    """
    n, width = biz.orders, _id_width(biz.orders, 9)
    cust_width = _id_width(biz.customers, 7)
    weeks = max(1, -(-biz.span // WEEK))
    edges = np.minimum(np.arange(weeks + 1) * WEEK, biz.span)
    # Orders before each week's start, from the growth curve's CDF.
    share = edges / biz.span
    cdf = share if biz.growth <= 0 else (share + biz.growth * share**2 / 2) / (1 + biz.growth / 2)
    first_index = np.round(cdf * n).astype(np.int64)
    channels = pa.array([c for c, _ in CHANNELS])
    status_p = np.cumsum([p for _, p in STATUSES])
    pending: list[pa.Table] = []
    pending_rows = 0
    for week in range(weeks):
        week_start = biz.start + int(edges[week])
        lo_week, hi_week = first_index[week], first_index[week + 1]
        if hi_week <= lo_week:
            continue
        week_rng = _rng(biz.seed, 1, week)
        known = int(np.searchsorted(biz.signup, week_start - WEEK, side="right"))
        joined = int(np.searchsorted(biz.signup, week_start, side="right"))
        fresh = known + np.flatnonzero(biz.weight[known:joined] > 0)
        fresh = week_rng.permutation(fresh)[: hi_week - lo_week]
        active = np.where(biz.churn[:known] > week_start, biz.weight[:known], 0.0)
        cumulative = np.cumsum(active)
        if known == 0 or cumulative[-1] <= 0:  # nobody can order yet: the first customer does
            cumulative = np.ones(1)
        week_rows = hi_week - lo_week
        for lo in range(lo_week, hi_week, chunk_rows):
            hi = min(hi_week, lo + chunk_rows)
            rng = _rng(biz.seed, 1, week, lo)
            size = hi - lo
            firsts = fresh[len(fresh) * (lo - lo_week) // week_rows: len(fresh) * (hi - lo_week) // week_rows]
            # Global index i -> quantile (i + u) / n -> time: increasing with the order id.
            q = (np.arange(lo, hi) + rng.random(size)) / n
            offset = (biz.span * _growth_quantile(q, biz.growth)).astype(np.int64)
            seconds = _with_hours(biz.start + offset)
            customer = np.concatenate([firsts, _pick(rng, cumulative, size - len(firsts))])
            rng.shuffle(customer)
            amount = np.maximum(np.round(rng.lognormal(np.log(3800), 0.65, size), -1), 100).astype(np.int64)
            status = np.searchsorted(status_p, rng.random(size) * status_p[-1], side="right")
            returned = status == 2
            partial = np.round(amount * rng.uniform(0.2, 0.9, size), -1).astype(np.int64)
            refund = np.where(rng.random(size) < 0.7, amount, partial)
            usual = biz.channel[customer]
            other = rng.integers(0, len(CHANNELS), size).astype(np.int8)
            channel = np.where(rng.random(size) < 0.85, usual, other)
            columns = {
                "order_id": _ids("O", np.arange(lo + 1, hi + 1), width),
                "customer_id": _ids("C", customer + 1, cust_width),
                "ordered_at": (pa.array(seconds.astype("datetime64[s]")) if typed
                               else _text_times(seconds)),
                "amount": pa.array(amount),
                "status": pc.take(pa.array([s for s, _ in STATUSES]), pa.array(status)),
                "refund_amount": pa.array(refund, mask=~returned),
                "channel": pc.take(channels, pa.array(channel)),
            }
            if not typed and yen_strings > 0:
                as_yen = pa.array(rng.random(size) < yen_strings)
                columns["amount"] = pc.if_else(as_yen, _yen_text(amount),
                                               pc.cast(columns["amount"], pa.string()))
            pending.append(pa.table(columns))
            pending_rows += size
            if pending_rows >= chunk_rows:
                yield pa.concat_tables(pending)
                pending, pending_rows = [], 0
    if pending:
        yield pa.concat_tables(pending)


def customer_batches(biz: Business, *, chunk_rows: int = 1_000_000,
                     typed: bool = False) -> Iterator[pa.Table]:
    """The customers, in id (sign-up) order, as tables of at most `chunk_rows` rows."""
    width = _id_width(biz.customers, 7)
    family = pa.array([s for s, _ in SURNAMES])
    family_kana = pa.array([k for _, k in SURNAMES])
    given = pa.array([g for g, _ in GIVEN_NAMES])
    given_kana = pa.array([k for _, k in GIVEN_NAMES])
    prefectures = pa.array([p for p, _ in PREFECTURES])
    pref_p = np.cumsum([w for _, w in PREFECTURES], dtype=float)
    for lo in range(0, biz.customers, chunk_rows):
        hi = min(biz.customers, lo + chunk_rows)
        size = hi - lo
        rng = _rng(biz.seed, 2, lo)
        number = np.arange(lo + 1, hi + 1)
        ids = _ids("C", number, width)
        f = pa.array(rng.integers(0, len(SURNAMES), size))
        g = pa.array(rng.integers(0, len(GIVEN_NAMES), size))
        pref = np.searchsorted(pref_p, rng.random(size) * pref_p[-1], side="right")
        digits = pc.cast(pa.array(rng.integers(0, 10**8, size)), pa.string())
        digits = pc.utf8_lpad(digits, 8, "0")
        mobile = pc.take(pa.array(["090", "080", "070"]), pa.array(rng.integers(0, 3, size)))
        postal = pc.utf8_lpad(pc.cast(pa.array(rng.integers(0, 10**7, size)), pa.string()), 7, "0")
        born = (np.datetime64("1950-01-01", "D").astype(np.int64)
                + rng.integers(0, 55 * 365, size)) * DAY
        signup = biz.signup[lo:hi]
        email_opt = rng.random(size) < 0.6
        dm_opt = rng.random(size) < 0.3
        columns = {
            "customer_id": ids,
            "name": pc.binary_join_element_wise(pc.take(family, f), pc.take(given, g), " "),
            "name_kana": pc.binary_join_element_wise(pc.take(family_kana, f), pc.take(given_kana, g), " "),
            "email": pc.binary_join_element_wise(pc.utf8_lower(ids), "example.jp", "@"),
            "phone": pc.binary_join_element_wise(
                mobile, pc.utf8_slice_codeunits(digits, 0, 4), pc.utf8_slice_codeunits(digits, 4, 8), "-"
            ),
            "postal_code": pc.binary_join_element_wise(
                pc.utf8_slice_codeunits(postal, 0, 3), pc.utf8_slice_codeunits(postal, 3, 7), "-"
            ),
            "address": pc.take(prefectures, pa.array(pref)),
        }
        if typed:
            columns["signed_up_at"] = pa.array(signup.astype("datetime64[s]"))
            columns["birthday"] = pa.array((born // DAY).astype("datetime64[D]"))
            columns["email_opt_in"] = pa.array(email_opt)
            columns["dm_opt_in"] = pa.array(dm_opt)
        else:
            columns["signed_up_at"] = _text_times(signup)
            columns["birthday"] = _text_times(born, with_time=False)
            columns["email_opt_in"] = pa.array(email_opt.astype(np.int8))
            columns["dm_opt_in"] = pa.array(dm_opt.astype(np.int8))
        yield pa.table(columns)


def write(batches: Iterator[pa.Table], path: Path, fmt: str) -> int:
    """Stream tables into one CSV or Parquet file; returns the number of rows."""
    rows = 0
    writer = None
    tmp = path.with_name(path.name + ".part")
    try:
        for table in batches:
            if writer is None:
                writer = (pa_csv.CSVWriter(tmp, table.schema) if fmt == "csv"
                          else pq.ParquetWriter(tmp, table.schema, compression="zstd"))
            writer.write_table(table)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)  # a half-written file never carries the final name
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=lambda s: int(s.replace("_", "")), default=1_000_000)
    parser.add_argument("--customers", type=lambda s: int(s.replace("_", "")), default=None,
                        help="default: orders / 10")
    parser.add_argument("--out", type=Path, required=True, help="folder for the files")
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--seed", type=int, default=20240105)
    parser.add_argument("--start", default="2023-01-01", help="first day of the orders")
    parser.add_argument("--years", type=float, default=3.0, help="length of the order history")
    parser.add_argument("--growth", type=float, default=1.0,
                        help="order volume growth over the period (1.0: the last day has twice the first's)")
    parser.add_argument("--yen-strings", type=float, default=0.03,
                        help='share of CSV amounts written like "¥12,800"')
    parser.add_argument("--chunk-rows", type=lambda s: int(s.replace("_", "")), default=1_000_000)
    parser.add_argument("--only", choices=("customers", "orders"), help="write one file only")
    args = parser.parse_args(argv)
    customers = args.customers if args.customers is not None else max(1, args.orders // 10)
    args.out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    biz = make_business(customers, args.orders, seed=args.seed, start=args.start, years=args.years,
                        growth=args.growth)
    typed = args.format == "parquet"
    jobs = {
        "customers": lambda: customer_batches(biz, chunk_rows=args.chunk_rows, typed=typed),
        "orders": lambda: order_batches(biz, chunk_rows=args.chunk_rows, typed=typed,
                                        yen_strings=args.yen_strings),
    }
    for name, batches in jobs.items():
        if args.only and name != args.only:
            continue
        path = args.out / f"{name}.{args.format}"
        start = time.perf_counter()
        rows = write(batches(), path, args.format)
        print(f"{path}: {rows:,} rows, {path.stat().st_size / 2**20:,.0f} MiB, "
              f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
    # What made these files, so that a benchmark can tell whether they fit what it wants.
    manifest = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    manifest["customers"] = customers
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    print(f"done in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
