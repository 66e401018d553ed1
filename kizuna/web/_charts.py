"""Charts as inline SVG, drawn on the server: Vega-Lite specs rendered by vl-convert, and the
migration flow drawn here (Vega-Lite has no Sankey). No script, font or stylesheet is fetched
from the internet: the page works offline.

Axis titles are left to the page (so that one SVG serves both languages); the charts are
computed once per store version with the figures they show.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["flow_svg", "lorenz_svg", "sparkline_svg"]

FONT = "IPAexGothic, 'Noto Sans CJK JP', 'Hiragino Sans', sans-serif"
ACCENT = "#1f6f78"
MUTED = "#9aa5b1"
_CONFIG = {"view": {"stroke": None}, "font": FONT, "axis": {"labelColor": "#52606d", "gridColor": "#e4e7eb",
                                                            "domainColor": "#cbd2d9", "tickColor": "#cbd2d9"}}


def _render(spec: dict[str, Any]) -> str:
    import vl_convert

    svg = vl_convert.vegalite_to_svg(spec)
    # the page sizes the chart: drop the fixed size, keep the viewBox
    return re.sub(r'^<svg([^>]*?) width="[\d.]+" height="[\d.]+"', r'<svg\1 preserveAspectRatio="xMinYMin meet"', svg)


def sparkline_svg(points: Sequence[tuple[str, float | None]], *, percent: bool = False) -> str:
    """A small line of a KPI by month (x: "YYYY-MM", y: the value); empty when no point has a value."""
    values = [{"month": m, "value": v * 100 if percent and v is not None else v} for m, v in points]
    if not any(v["value"] is not None for v in values):
        return ""
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "width": 240, "height": 64, "config": {**_CONFIG, "axis": {**_CONFIG["axis"], "labelFontSize": 9}},
        "data": {"values": values},
        "mark": {"type": "line", "point": {"filled": True, "size": 14}, "color": ACCENT, "strokeWidth": 2},
        "encoding": {
            "x": {"field": "month", "type": "ordinal", "axis": {"title": None, "labelAngle": 0,
                                                                "labelExpr": "substring(datum.value, 5, 7)"}},
            "y": {"field": "value", "type": "quantitative", "scale": {"zero": False},
                  "axis": {"title": None, "tickCount": 3, "grid": True}},
        },
    }
    return _render(spec)


def lorenz_svg(curve: Sequence[dict[str, float]]) -> str:
    """The concentration (Lorenz) curve: cumulative revenue share by top share of customers."""
    points = [{"customers": 0.0, "revenue": 0.0, "line": "kizuna"}]
    points += [{"customers": r["customer_share"] * 100, "revenue": r["revenue_share"] * 100, "line": "kizuna"}
               for r in curve]
    equal = [{"customers": 0.0, "revenue": 0.0}, {"customers": 100.0, "revenue": 100.0}]
    top20 = [p for p in points if abs(p["customers"] - 20) < 1e-9]
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "width": 380, "height": 240, "config": _CONFIG,
        "layer": [
            {"data": {"values": equal}, "mark": {"type": "line", "strokeDash": [4, 4], "color": MUTED},
             "encoding": {"x": {"field": "customers", "type": "quantitative"},
                          "y": {"field": "revenue", "type": "quantitative"}}},
            {"data": {"values": points}, "mark": {"type": "line", "point": True, "color": ACCENT, "strokeWidth": 2.5},
             "encoding": {
                 "x": {"field": "customers", "type": "quantitative", "scale": {"domain": [0, 100]},
                       "axis": {"title": None, "labelExpr": "datum.value + '%'", "values": [0, 20, 40, 60, 80, 100]}},
                 "y": {"field": "revenue", "type": "quantitative", "scale": {"domain": [0, 100]},
                       "axis": {"title": None, "labelExpr": "datum.value + '%'"}}}},
            {"data": {"values": top20}, "mark": {"type": "rule", "color": "#d64545", "strokeDash": [2, 2]},
             "encoding": {"x": {"field": "customers", "type": "quantitative"}}},
            {"data": {"values": top20},
             "mark": {"type": "text", "align": "left", "dx": 6, "dy": 14, "color": "#d64545", "fontWeight": "bold"},
             "encoding": {"x": {"field": "customers", "type": "quantitative"},
                          "y": {"field": "revenue", "type": "quantitative"},
                          "text": {"field": "revenue", "type": "quantitative", "format": ".0f"}}},
        ],
    }
    return _render(spec).replace(">20</text>", ">20%</text>")


def flow_svg(rows: Sequence[dict[str, Any]], order: Sequence[str], names: dict[str, str], *,
             width: int = 760, height: int = 420) -> str:
    """A two-column flow (Sankey) chart: segments at the first date on the left, at the second on the
    right, a band per (from, to) pair as wide as its customers."""
    total = sum(int(r["customers"] or 0) for r in rows)
    if not total:
        return ""
    keys = [k for k in order if any(r["from_segment"] == k or r["to_segment"] == k for r in rows)]
    keys += sorted({r["from_segment"] for r in rows} | {r["to_segment"] for r in rows} - set(keys), key=str)
    gap, top, label_w, node_w = 6, 10, 150, 14
    usable = height - top * 2 - gap * (len(keys) - 1)
    scale = usable / total
    left = {k: sum(int(r["customers"]) for r in rows if r["from_segment"] == k) for k in keys}
    right = {k: sum(int(r["customers"]) for r in rows if r["to_segment"] == k) for k in keys}

    def stack(sizes: dict[str, int]) -> dict[str, float]:
        y, out = float(top), {}
        for k in keys:
            out[k] = y
            y += sizes[k] * scale + (gap if sizes[k] else 0)
        return out

    ly, ry = stack(left), stack(right)
    x0, x1 = label_w, width - label_w
    colors = ["#1f6f78", "#d64545", "#e8a33d", "#3e7cb1", "#7b5ea7", "#5a9e6f", "#b0567a", "#8d99ae", "#6b705c"]
    color = {k: colors[i % len(colors)] for i, k in enumerate(keys)}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'font-family="{html.escape(FONT)}" font-size="12">']
    out_y, in_y = dict(ly), dict(ry)
    for r in sorted(rows, key=lambda r: (keys.index(r["from_segment"]), keys.index(r["to_segment"]))):
        n = int(r["customers"] or 0)
        if not n:
            continue
        h = n * scale
        a, b = out_y[r["from_segment"]], in_y[r["to_segment"]]
        out_y[r["from_segment"]] += h
        in_y[r["to_segment"]] += h
        mid = (x0 + node_w + x1) / 2
        path = (f"M{x0 + node_w},{a:.1f} C{mid},{a:.1f} {mid},{b:.1f} {x1},{b:.1f} "
                f"L{x1},{b + h:.1f} C{mid},{b + h:.1f} {mid},{a + h:.1f} {x0 + node_w},{a + h:.1f} Z")
        title = f"{names.get(r['from_segment'], r['from_segment'])} → {names.get(r['to_segment'], r['to_segment'])}"
        parts.append(f'<path d="{path}" fill="{color[r["from_segment"]]}" fill-opacity="0.28">'
                     f'<title>{html.escape(title)}: {n:,}</title></path>')
    for k in keys:
        name = html.escape(names.get(k, k))
        if left[k]:
            h = left[k] * scale
            parts.append(f'<rect x="{x0}" y="{ly[k]:.1f}" width="{node_w}" height="{max(h, 1):.1f}" fill="{color[k]}"/>')
            parts.append(f'<text x="{x0 - 6}" y="{ly[k] + h / 2 + 4:.1f}" text-anchor="end">{name} '
                         f'({left[k]:,})</text>')
        if right[k]:
            h = right[k] * scale
            parts.append(f'<rect x="{x1}" y="{ry[k]:.1f}" width="{node_w}" height="{max(h, 1):.1f}" fill="{color[k]}"/>')
            parts.append(f'<text x="{x1 + node_w + 6}" y="{ry[k] + h / 2 + 4:.1f}">{name} ({right[k]:,})</text>')
    parts.append("</svg>")
    return "".join(parts)
