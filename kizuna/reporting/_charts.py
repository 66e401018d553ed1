"""Charts as inline SVG, drawn on the server for the web app's pages and the manager's report:
Vega-Lite specs rendered by vl-convert, and the migration flow drawn here (Vega-Lite has no
Sankey). No script, font or stylesheet is fetched from the internet: the page and the report
work offline, with the system's fonts (IPAex Gothic, Noto Sans CJK JP … by name).

Axis titles are left to the page (so that one SVG serves both languages, where the chart has no
words of its own); a chart that shows yen above ¥1,000,000 labels its axis in 万円 / 億円
(millions) through `kizuna.i18n.money`, in the language it is drawn for.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Sequence
from typing import Any

from kizuna.i18n import money

__all__ = ["bar_svg", "flow_svg", "interval_svg", "lorenz_svg", "money_axis", "sparkline_svg"]

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


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round tick values covering `low` … `high`: steps of 1, 2, 2.5 or 5 × a power of ten."""
    if not math.isfinite(low) or not math.isfinite(high) or high <= low:
        high = low + 1 if math.isfinite(low) else 1.0
        low = low if math.isfinite(low) else 0.0
    rough = (high - low) / count
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= rough)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [i * step for i in range(first, last + 1)]


def money_axis(values: Sequence[float | None], lang: str, *, zero: bool = True) -> dict[str, Any]:
    """A Vega-Lite axis for yen: ticks a person would pick (from 0 unless not `zero`), labelled by
    `kizuna.i18n.money` (万円 / 億円 above ¥1,000,000, whole yen below). Give the scale the domain
    [first tick, last tick] (`values`), so that every tick is drawn."""
    shown = [v for v in values if v is not None] or [0.0]
    low = min(0.0, *shown) if zero else min(shown)
    ticks = nice_ticks(low, max(shown), 4 if zero else 3)
    labels = {_key(t): money(t, lang) for t in ticks}
    return {"values": ticks, "labelExpr": json.dumps(labels, ensure_ascii=False) + "[datum.value]"}


def _key(value: float) -> str:
    # how Vega turns the tick into a property name: 2500000, not 2500000.0
    return str(int(value)) if float(value).is_integer() else repr(value)


def sparkline_svg(points: Sequence[tuple[str, float | None]], *, percent: bool = False, yen: str | None = None) -> str:
    """A small line of a KPI by month (x: "YYYY-MM", y: the value); empty when no point has a value.

    `yen`: the language of a yen axis (万円 / 億円 above ¥1,000,000), None for a plain number."""
    values = [{"month": m, "value": v * 100 if percent and v is not None else v} for m, v in points]
    if not any(v["value"] is not None for v in values):
        return ""
    y_axis: dict[str, Any] = {"title": None, "tickCount": 3, "grid": True}
    y_scale: dict[str, Any] = {"zero": False}
    if yen is not None:
        y_axis = {"title": None, "grid": True, **money_axis([v["value"] for v in values], yen, zero=False)}
        y_scale["domain"] = [y_axis["values"][0], y_axis["values"][-1]]
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "width": 240, "height": 64, "config": {**_CONFIG, "axis": {**_CONFIG["axis"], "labelFontSize": 9}},
        "data": {"values": values},
        "mark": {"type": "line", "point": {"filled": True, "size": 14}, "color": ACCENT, "strokeWidth": 2},
        "encoding": {
            "x": {"field": "month", "type": "ordinal", "axis": {"title": None, "labelAngle": 0,
                                                                "labelExpr": "substring(datum.value, 5, 7)"}},
            "y": {"field": "value", "type": "quantitative", "scale": y_scale, "axis": y_axis},
        },
    }
    return _render(spec)


def lorenz_svg(curve: Sequence[dict[str, float]]) -> str:
    """The concentration (Lorenz) curve: cumulative revenue share by top share of customers."""
    points = [{"customers": 0.0, "revenue": 0.0, "line": "kizuna"}]
    points += [{"customers": r["customer_share"] * 100, "revenue": r["revenue_share"] * 100, "line": "kizuna"}
               for r in curve]
    equal = [{"customers": 0.0, "revenue": 0.0}, {"customers": 100.0, "revenue": 100.0}]
    top20 = [{**p, "label": f"{p['revenue']:.0f}%"} for p in points if abs(p["customers"] - 20) < 1e-9]
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
                          "text": {"field": "label", "type": "nominal"}}},
        ],
    }
    return _render(spec)


def flow_svg(rows: Sequence[dict[str, Any]], order: Sequence[str], names: dict[str, str], *,
             width: int = 900, height: int = 460) -> str:
    """A two-column flow (Sankey) chart: segments at the first date on the left, at the second on the
    right, a band per (from, to) pair as wide as its customers (every node at least `MIN_NODE` high,
    so that small segments keep a readable label)."""
    total = sum(int(r["customers"] or 0) for r in rows)
    if not total:
        return ""
    keys = [k for k in order if any(r["from_segment"] == k or r["to_segment"] == k for r in rows)]
    keys += sorted(({r["from_segment"] for r in rows} | {r["to_segment"] for r in rows}) - set(keys), key=str)
    gap, top, label_w, node_w, min_node = 4, 8, 210, 14, 16
    left = {k: sum(int(r["customers"]) for r in rows if r["from_segment"] == k) for k in keys}
    right = {k: sum(int(r["customers"]) for r in rows if r["to_segment"] == k) for k in keys}

    def stack(sizes: dict[str, int]) -> tuple[dict[str, float], dict[str, float]]:
        shown = [k for k in keys if sizes[k]]
        scale = max(0.0, height - 2 * top - gap * (len(shown) - 1) - min_node * len(shown)) / total
        y, at, high = float(top), {}, {}
        for k in shown:
            at[k], high[k] = y, min_node + sizes[k] * scale
            y += high[k] + gap
        return at, high

    (ly, lh), (ry, rh) = stack(left), stack(right)
    x0, x1 = label_w, width - label_w
    colors = ["#d64545", "#e8a33d", "#2f855a", "#9b2c2c", "#8d99ae", "#1f6f78", "#b0567a", "#6b7a8f", "#7b5ea7"]
    color = {k: colors[i % len(colors)] for i, k in enumerate(keys)}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'font-family="{html.escape(FONT)}" font-size="12">']
    out_y, in_y = dict(ly), dict(ry)
    mid = (x0 + node_w + x1) / 2
    for r in sorted(rows, key=lambda r: (keys.index(r["from_segment"]), keys.index(r["to_segment"]))):
        n = int(r["customers"] or 0)
        if not n:
            continue
        a_key, b_key = r["from_segment"], r["to_segment"]
        ha, hb = n * lh[a_key] / left[a_key], n * rh[b_key] / right[b_key]
        a, b = out_y[a_key], in_y[b_key]
        out_y[a_key] += ha
        in_y[b_key] += hb
        path = (f"M{x0 + node_w},{a:.1f} C{mid},{a:.1f} {mid},{b:.1f} {x1},{b:.1f} "
                f"L{x1},{b + hb:.1f} C{mid},{b + hb:.1f} {mid},{a + ha:.1f} {x0 + node_w},{a + ha:.1f} Z")
        title = f"{names.get(a_key, a_key)} → {names.get(b_key, b_key)}"
        parts.append(f'<path d="{path}" fill="{color[a_key]}" fill-opacity="0.3">'
                     f'<title>{html.escape(title)}: {n:,}</title></path>')
    for at, high, sizes, x, anchor, tx in ((ly, lh, left, x0, "end", x0 - 6),
                                           (ry, rh, right, x1, "start", x1 + node_w + 6)):
        for k in at:
            parts.append(f'<rect x="{x}" y="{at[k]:.1f}" width="{node_w}" height="{high[k]:.1f}" fill="{color[k]}"/>')
            parts.append(f'<text x="{tx}" y="{at[k] + high[k] / 2 + 4:.1f}" text-anchor="{anchor}">'
                         f'{html.escape(names.get(k, k))} ({sizes[k]:,})</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_svg(rows: Sequence[tuple[str, float | None]], *, yen: str | None = None, percent: bool = False,
            highlight: Sequence[str] = (), width: int = 520, vertical: bool = False) -> str:
    """Bars of (label, value): horizontal (one a row, labels on the left) or `vertical` (months along x).

    `yen`: the language of a yen axis; `percent`: values are fractions, shown in %; `highlight`:
    labels drawn in the accent colour (the others muted). Empty when no bar has a value.
    """
    values = [{"label": name, "value": (v * 100 if percent else v) if v is not None else None,
               "on": name in highlight or not highlight} for name, v in rows]
    if not any(v["value"] is not None for v in values):
        return ""
    axis: dict[str, Any] = {"title": None, "grid": True}
    scale: dict[str, Any] = {}
    if yen is not None:
        axis |= money_axis([v["value"] for v in values], yen)
        scale["domain"] = [axis["values"][0], axis["values"][-1]]
    elif percent:
        axis |= {"labelExpr": "datum.value + '%'"}
    else:  # counts: whole numbers only
        axis |= {"format": ",d", "tickMinStep": 1}
    names = {"field": "label", "type": "nominal", "sort": None, "axis": {"title": None, "labelLimit": 220}}
    amounts = {"field": "value", "type": "quantitative", "axis": axis, "scale": scale}
    colour = {"condition": {"test": "datum.on", "value": ACCENT}, "value": MUTED}
    if vertical:
        names["axis"] |= {"labelAngle": 0, "labelExpr": "substring(datum.value, 2)"}
        encoding = {"x": names, "y": amounts, "color": colour}
        size = {"width": width, "height": 180}
    else:
        encoding = {"y": names, "x": amounts, "color": colour}
        size = {"width": width, "height": {"step": 24}}
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json", **size, "config": _CONFIG,
        "data": {"values": values}, "mark": {"type": "bar", "cornerRadiusEnd": 2}, "encoding": encoding,
    }
    return _render(spec)


def interval_svg(rows: Sequence[tuple[str, float | None, float | None, float | None]], *, width: int = 520,
                 zero: bool = True) -> str:
    """Estimates with their intervals, one a row (label, estimate, low, high), as fractions shown in %:
    a dot and a line, and (`zero`) a rule at 0 — a difference whose interval leaves 0 out shows an
    effect. Rows without an estimate are left out; empty when none has one."""
    values = [{"label": name, "value": 100 * v, "low": 100 * (lo if lo is not None else v),
               "high": 100 * (hi if hi is not None else v)} for name, v, lo, hi in rows if v is not None]
    if not values:
        return ""
    names = {"field": "label", "type": "nominal", "sort": None, "axis": {"title": None, "labelLimit": 220}}
    scale = {"domain": [min(0.0, *(v["low"] for v in values)), max(0.0, *(v["high"] for v in values))],
             "nice": True}
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json", "width": width, "height": {"step": 28},
        "config": _CONFIG, "data": {"values": values},
        "layer": [
            {"mark": {"type": "rule", "color": ACCENT, "strokeWidth": 2.5},
             "encoding": {"y": names, "x": {"field": "low", "type": "quantitative", "scale": scale,
                                            "axis": {"title": None, "labelExpr": "datum.value + '%'", "grid": True}},
                          "x2": {"field": "high"}}},
            {"mark": {"type": "point", "filled": True, "size": 70, "color": ACCENT},
             "encoding": {"y": names, "x": {"field": "value", "type": "quantitative"}}},
        ],
    }
    if zero:
        spec["layer"].append({"data": {"values": [{"zero": 0}]},
                              "mark": {"type": "rule", "color": "#d64545", "strokeDash": [3, 3]},
                              "encoding": {"x": {"field": "zero", "type": "quantitative"}}})
    return _render(spec)
