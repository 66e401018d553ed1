"""NPS score and the 2:8 share: the two docs/measures.md §1 measures other reports build on."""

from __future__ import annotations

import ibis

__all__ = ["nps_summary", "top_share"]


def nps_summary(latest: ibis.Table) -> dict[str, float | int | None]:
    """NPS = % promoters − % detractors among answering customers (−100…100)."""
    counts = latest.aggregate(
        promoter=(latest.nps_class == "promoter").sum(),
        passive=(latest.nps_class == "passive").sum(),
        detractor=(latest.nps_class == "detractor").sum(),
        n=latest.count(),
    ).to_pyarrow().to_pylist()[0]
    n = int(counts["n"] or 0)
    result: dict[str, float | int | None] = {k: int(counts[k] or 0) for k in ("promoter", "passive", "detractor")}
    result["answered"] = n
    result["score"] = (
        100.0 * (int(result["promoter"] or 0) - int(result["detractor"] or 0)) / n if n else None
    )
    return result


def top_share(values: ibis.Column, share: float) -> float | None:
    """Share of the total held by the top `share` of rows (ties broken by rank order)."""
    table = values.name("v").as_table()
    ranked = table.mutate(_rank=ibis.row_number().over(order_by=ibis.desc(table.v)), _n=table.count().over())
    row = ranked.aggregate(
        top=ranked.v.sum(where=ranked._rank < (ranked._n * share).ceil()),
        total=ranked.v.sum(),
    ).to_pyarrow().to_pylist()[0]
    total = row["total"] or 0
    return (row["top"] or 0) / total if total else None
