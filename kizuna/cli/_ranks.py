"""`kizuna ranks suggest`: RFM rank thresholds from the store's own customers (docs/measures.md#rank-suggestion).

Thin: one `Workspace.suggest_ranks` call (and `Workspace.write_rank_rules` with --write), then a
table of the thresholds with the customers and revenue each rank would hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kizuna.cli._app import AsOfOption, DbOption, DirOption, FormatOption, LangOption, _as_of, _check, app, mistake
from kizuna.cli._render import Percent, console, print_json, show_rows
from kizuna.i18n import SEGMENT_LABELS, label, segment_label

ranks_app = typer.Typer(help="RFM ranks: thresholds that fit the business.", no_args_is_help=True)
app.add_typer(ranks_app, name="ranks")

_COLUMNS = ("rank", "max_recency_days", "min_orders", "min_revenue", "top_share", "customers", "customer_share",
            "revenue", "revenue_share", "current_customers", "current_revenue_share")
_PERCENTS = ("top_share", "customer_share", "revenue_share", "current_revenue_share")


@ranks_app.command("suggest")
def suggest(
    top: Annotated[str, typer.Option(
        "--top", help="Per rank, best first: the top share (%) of the customers who ordered in the RFM window "
                      "whose orders and revenue set its thresholds; one per rank of [analysis] rfm_ranks.")]
    = "1,5,15",
    write: Annotated[bool, typer.Option("--write", help="Write the thresholds into kizuna.toml ([analysis] "
                                        "rfm_ranks), keeping the rest of the file and its comments.")] = False,
    as_of: AsOfOption = None,
    directory: DirOption = Path("."),
    db: DbOption = None,
    lang: LangOption = "ja",
    fmt: FormatOption = "table",
) -> None:
    """Propose RFM rank thresholds from this store's distribution (the top 1 / 5 / 15 % by orders and revenue)."""
    from kizuna.workspace import Workspace

    _check(lang, fmt)
    shares = _shares(top)
    with Workspace.open(directory, store_url=db, create=False) as ws:
        found = ws.suggest_ranks(_as_of(as_of), shares=shares)
        if write:
            ws.write_rank_rules(found.rules)
        path = ws.path / "kizuna.toml"
    rows = [_shown(row, lang) for row in found.table.to_pylist()]
    if fmt == "json":
        print_json({"as_of": found.as_of, "window_days": found.window_days,
                    "ordering_customers": found.ordering_customers, "written": write, "ranks": rows})
        return
    title = label("ranks.title", lang).format(as_of=found.as_of, days=found.window_days,
                                              customers=found.ordering_customers)
    show_rows(rows, [(c, label(f"ranks.{c}", lang)) for c in _COLUMNS], fmt, title=title)
    if fmt == "table":
        done = label("ranks.written", lang).format(path=path) if write else label("ranks.not_written", lang)
        console.print(done, markup=False, highlight=False)


def _shares(text: str) -> tuple[float, ...]:
    try:
        shares = tuple(float(part) / 100 for part in text.split(","))
    except ValueError:
        raise mistake("top_shares", value=text) from None
    return shares


def _shown(row: dict[str, Any], lang: str) -> dict[str, Any]:
    shown = dict(row)
    rank = f"rank_{row['rank']}"
    shown["rank"] = segment_label(rank, lang) if rank in SEGMENT_LABELS else row["rank"]
    for column in _PERCENTS:
        if row[column] is not None:
            shown[column] = Percent(round(100 * row[column], 1))
    return shown
