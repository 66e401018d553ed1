"""Segment migration (docs/measures.md §2, §5): how customers moved between matrix cells or RFM ranks between two dates.

"The real measure of success is churn candidates becoming loyal" (000). Both snapshots are
`customer_scores` with the same settings, as of the end of each day, so the table can be
reproduced for any past period and runs on every engine; only the counts per
(from, to) pair come back.

A customer belongs to a snapshot from their first counted order or their sign-up date on,
whichever comes first; one who was not yet a customer at the start counts from the row
`NEW`. Customers with neither a sign-up date nor an order by the end date are left out:
nothing places them in time.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import ibis
import pyarrow as pa
from ibis import _

from kizuna._errors import KizunaError
from kizuna.analytics._scores import MATRIX_CELLS, customer_scores
from kizuna.i18n import label, segment_label
from kizuna.store import to_arrow

if TYPE_CHECKING:
    from kizuna.analytics._settings import AnalysisSettings

__all__ = [
    "MIGRATION_BY", "NEW", "migration_headline", "migration_label", "migration_order", "migration_sankey_svg",
    "segment_migration",
]

MIGRATION_BY = ("cell", "rank")
NEW = "new"  # the `from_segment` of customers who were not customers yet at the start date

SCHEMA = pa.schema([("from_segment", pa.string()), ("to_segment", pa.string()), ("customers", pa.int64())])


def migration_order(settings: AnalysisSettings, by: str = "cell") -> tuple[str, ...]:
    """The segment ids of a migration table in display order (`NEW` last): matrix cells as in
    `MATRIX_CELLS`, or ranks best first as `rank_<label>` (the ids of `kizuna segments`)."""
    _check_by(by)
    if by == "cell":
        return (*MATRIX_CELLS, NEW)
    return (*(f"rank_{r.label}" for r in settings.rfm_ranks), "rank_other", NEW)


def migration_label(key: str, lang: str = "ja") -> str:
    """The label of a segment id of a migration table, `NEW` included."""
    return label("migration_new", lang) if key == NEW else segment_label(key, lang)


def segment_migration(
    tables: dict[str, ibis.Table], settings: AnalysisSettings, from_day: dt.date, to_day: dt.date, *, by: str = "cell"
) -> pa.Table:
    """Customers per (segment at `from_day`, segment at `to_day`), as of the end of each day.

    Parameters
    ----------
    tables : the canonical tables (`Workspace.tables()`).
    settings : the [analysis] settings; both snapshots use them.
    from_day, to_day : the two dates, `from_day` before `to_day`.
    by : "cell" (NPS × LTV matrix cell) or "rank" (RFM rank, as `rank_<label>`).

    Returns
    -------
    pyarrow.Table with from_segment, to_segment, customers: one row per pair with customers,
    in `migration_order` (from, then to). `from_segment` is `NEW` for customers who were not
    customers yet at `from_day`. The schema metadata holds `by`, `order` (the ids in
    `migration_order`, comma-separated), `from_day` and `to_day` (ISO dates).

    Examples
    --------
    >>> segment_migration(ws.tables(), ws.settings.analysis, date(2025, 11, 1), date(2026, 11, 1))  # doctest: +SKIP
    from_segment: ["churn_candidate", "churn_candidate", ...]
    to_segment: ["churn_candidate", "loyal", ...]
    customers: [412, 57, ...]
    """
    _check_by(by)
    if from_day >= to_day:
        raise KizunaError.keyed("error.migration_days_reversed", start=str(from_day), end=str(to_day))
    before = _snapshot(tables, settings, from_day, by)
    after = _snapshot(tables, settings, to_day, by)
    after = after.filter(after.present)
    joined = after.inner_join(before, "customer_id")  # every snapshot has a row for every customer
    pairs = joined.select(
        from_segment=ibis.cases((joined.present_right, joined.segment_right), else_=NEW),
        to_segment=joined.segment,
    ).group_by(["from_segment", "to_segment"]).aggregate(customers=_.count())
    rows = to_arrow(pairs).to_pylist()
    order = migration_order(settings, by)
    position = {key: i for i, key in enumerate(order)}
    rows.sort(key=lambda r: (position[r["from_segment"]], position[r["to_segment"]]))
    metadata = {"by": by, "order": ",".join(order), "from_day": from_day.isoformat(), "to_day": to_day.isoformat()}
    return pa.Table.from_pylist([{**r, "customers": int(r["customers"])} for r in rows],
                                schema=SCHEMA.with_metadata(metadata))


def _described(table: pa.Table) -> tuple[str, tuple[str, ...]]:
    """The breakdown and the segment order `segment_migration` wrote into the schema metadata."""
    meta = table.schema.metadata or {}
    if b"by" not in meta or b"order" not in meta:
        raise KizunaError("this table does not come from segment_migration (its schema metadata has no breakdown).")
    return meta[b"by"].decode(), tuple(meta[b"order"].decode().split(","))


def _snapshot(tables: dict[str, ibis.Table], settings: AnalysisSettings, day: dt.date, by: str) -> ibis.Table:
    """customer_id, segment, present (a customer by the end of `day`) for every customer."""
    scores = customer_scores(tables, settings, day, gross_margin_rate=1.0)  # ltv_profit is not selected
    segment = scores.matrix_cell if by == "cell" else "rank_" + scores.rfm_rank
    # tenure counts from the first order or the sign-up, whichever is earlier: it is negative
    # for a customer who signs up later, and NULL for one with neither date
    return scores.select("customer_id", segment=segment, present=(scores.tenure_days >= 0).fill_null(False))


def migration_headline(table: pa.Table) -> dict[str, int | float | None]:
    """The figures that say whether it worked, from a `segment_migration` table.

    Always: `customers` (at the end date), `customers_before` (at the start date), `new`,
    `stayed` (same segment), `moved` (another segment). For `by="cell"` also
    `churn_candidates_before` / `_after`, `loyal_before` / `_after`,
    `churn_candidate_to_loyal` and its `churn_candidate_to_loyal_share` of the churn
    candidates at the start (None when there were none). For `by="rank"` also
    `moved_up` / `moved_down` (between ranks, best first in the table's order of ranks) and
    `reached_top` (in the best rank at the end, not at the start). The breakdown and the
    order of the ranks come from the table's schema metadata, written by `segment_migration`.

    >>> migration_headline(table)["churn_candidate_to_loyal_share"]  # doctest: +SKIP
    0.138
    """
    by, order = _described(table)
    rows = table.to_pylist()

    def total(keep) -> int:
        return sum(r["customers"] for r in rows if keep(r["from_segment"], r["to_segment"]))

    figures: dict[str, int | float | None] = {
        "customers": total(lambda a, b: True),
        "customers_before": total(lambda a, b: a != NEW),
        "new": total(lambda a, b: a == NEW),
        "stayed": total(lambda a, b: a == b),
        "moved": total(lambda a, b: a not in (NEW, b)),
    }
    if by == "cell":
        candidates = total(lambda a, b: a == "churn_candidate")
        converted = total(lambda a, b: a == "churn_candidate" and b == "loyal")
        figures |= {
            "churn_candidates_before": candidates,
            "churn_candidates_after": total(lambda a, b: b == "churn_candidate"),
            "loyal_before": total(lambda a, b: a == "loyal"),
            "loyal_after": total(lambda a, b: b == "loyal"),
            "churn_candidate_to_loyal": converted,
            "churn_candidate_to_loyal_share": converted / candidates if candidates else None,
        }
    else:
        ranks = {key: i for i, key in enumerate(order)}  # best first
        figures |= {
            "moved_up": total(lambda a, b: a != NEW and ranks[b] < ranks[a]),
            "moved_down": total(lambda a, b: a != NEW and ranks[b] > ranks[a]),
            "reached_top": total(lambda a, b: b == order[0] and a != order[0]),
        }
    return figures


def _check_by(by: str) -> None:
    if by not in MIGRATION_BY:
        raise KizunaError.keyed("error.migration_by_unknown", by=repr(by), first=MIGRATION_BY[0],
                                second=MIGRATION_BY[1])


# -- the flow (Sankey) chart ------------------------------------------------------------------

_COLOURS = {
    "churn_candidate": "#d9534f", "loyal_candidate": "#9ccc65", "loyal": "#2e7d32", "non_cooperative": "#f0ad4e",
    "indifferent": "#a0a0a0", "advocate": "#42a5f5", "unanswered_high": "#8e7cc3", "unanswered_low": "#d0d0d0",
    "rank_loyal": "#2e7d32", "rank_a": "#42a5f5", "rank_b": "#90caf9", "rank_other": "#d0d0d0", NEW: "#26a69a",
}
_OTHER_COLOUR = "#b0b0b0"


def migration_sankey_svg(table: pa.Table, lang: str = "ja", *, width: int = 760, height: int = 480) -> str:
    """The flow chart of a `segment_migration` table as a standalone SVG document (no script).

    Start-date segments on the left, end-date segments on the right, node and band heights in
    proportion to customers; each band has a tooltip "from → to: customers". The web app can
    inline it, `kizuna migration --chart FILE.svg` writes it.
    """
    from xml.sax.saxutils import escape

    by, order = _described(table)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    rows = [r for r in table.to_pylist() if r["customers"] > 0]
    title = label(f"title_migration_{by}", lang).format(d1=meta.get("from_day", ""), d2=meta.get("to_day", ""))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="{width / 2:.1f}" y="18" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    total = sum(r["customers"] for r in rows)
    left = [k for k in order if any(r["from_segment"] == k for r in rows)]
    right = [k for k in order if any(r["to_segment"] == k for r in rows)]
    top, bottom, gap, node = 34.0, 8.0, 6.0, 12.0
    # room for the longest label (12 px type: a CJK character ~12 px, a Latin one ~7 px)
    longest = max((_text_width(f"{migration_label(k, lang)} {total:,}") for k in order), default=0.0)
    side = min(longest + 26.0, width * 0.36)
    scale = (height - top - bottom - gap * (max(len(left), len(right), 1) - 1)) / total if total else 0.0

    def stack(keys: list[str], column: str) -> dict[str, float]:
        y, start = top, {}
        for k in keys:
            start[k] = y
            y += sum(r["customers"] for r in rows if r[column] == k) * scale + gap
        return start

    y_left, y_right = stack(left, "from_segment"), stack(right, "to_segment")
    x0, x1 = side + node, width - side - node
    mid = (x0 + x1) / 2
    out, into = dict(y_left), dict(y_right)  # where the next band leaves / arrives
    for r in rows:  # sorted by (from, to): bands stack in segment order at both ends
        a, b, h = r["from_segment"], r["to_segment"], r["customers"] * scale
        ya, yb = out[a], into[b]
        out[a], into[b] = ya + h, yb + h
        tip = f"{migration_label(a, lang)} → {migration_label(b, lang)}: {r['customers']:,}"
        parts.append(
            f'<path d="M{x0:.1f},{ya:.2f} C{mid:.1f},{ya:.2f} {mid:.1f},{yb:.2f} {x1:.1f},{yb:.2f} '
            f'L{x1:.1f},{yb + h:.2f} C{mid:.1f},{yb + h:.2f} {mid:.1f},{ya + h:.2f} {x0:.1f},{ya + h:.2f} Z" '
            f'fill="{_COLOURS.get(a, _OTHER_COLOUR)}" fill-opacity="0.45"><title>{escape(tip)}</title></path>'
        )
    for keys, start, column, x, anchor, text_x in (
        (left, y_left, "from_segment", side, "end", side - 18),
        (right, y_right, "to_segment", x1, "start", x1 + node + 18),
    ):
        sizes = [sum(r["customers"] for r in rows if r[column] == k) for k in keys]
        centres = [start[k] + n * scale / 2 for k, n in zip(keys, sizes, strict=True)]
        for k, n, centre, y in zip(keys, sizes, centres, _spread(centres, 15.0, top, height - bottom), strict=True):
            name = escape(f"{migration_label(k, lang)} {n:,}")
            edge = x if anchor == "end" else x + node
            parts.append(
                f'<rect x="{x:.1f}" y="{start[k]:.2f}" width="{node:.1f}" height="{max(n * scale, 1.5):.2f}" '
                f'fill="{_COLOURS.get(k, _OTHER_COLOUR)}"><title>{name}</title></rect>'
                f'<path d="M{edge:.1f},{centre:.2f} L{text_x + (2 if anchor == "end" else -2):.1f},{y:.2f}" '
                f'stroke="#888" stroke-width="0.6" fill="none"/>'
                f'<text x="{text_x:.1f}" y="{y:.2f}" dominant-baseline="middle" text-anchor="{anchor}">{name}</text>'
            )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _spread(centres: list[float], spacing: float, low: float, high: float) -> list[float]:
    """Label positions as near `centres` as can be, at least `spacing` apart, within low … high.

    Small segments (often the ones that matter: churn candidates, loyal) have thin nodes
    whose labels would overlap; nodes keep their true size and the labels move apart.
    """
    ys = list(centres)
    for i in range(len(ys)):  # push down
        ys[i] = max(ys[i], low + spacing / 2 if i == 0 else ys[i - 1] + spacing)
    for i in reversed(range(len(ys))):  # then up, from the bottom
        ys[i] = min(ys[i], high - spacing / 2 if i == len(ys) - 1 else ys[i + 1] - spacing)
    return ys


def _text_width(text: str) -> float:
    return sum(12.0 if ord(ch) > 0x2E80 else 7.0 for ch in text)
