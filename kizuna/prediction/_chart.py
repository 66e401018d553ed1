"""The calibration/holdout chart as a PNG: mean actual vs mean predicted holdout purchases by the
number of repeat purchases in the calibration period (Fader, Hardie & Lee 2005, figure 4).

A Vega-Lite chart (Altair), as the web app draws its charts, rendered offline to PNG by
vl-convert (no browser, no network). Japanese labels need a Japanese font on the machine
(.ci/install-system.sh installs IPAex Gothic); the chart asks for it first and falls back to
the usual sans-serif fonts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from kizuna.i18n import LANGS, section

__all__ = ["holdout_chart_spec", "write_holdout_chart"]

# Fonts in order of preference: a Japanese one first (its Latin letters are fine for English too).
FONT = "IPAexGothic, Noto Sans CJK JP, IPAGothic, sans-serif"


def holdout_chart_spec(table: list[dict[str, Any]], lang: str = "ja") -> dict[str, Any]:
    """The Vega-Lite spec (a dict) of the chart for rows of ``holdout_table``."""
    import altair as alt

    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}: use one of {', '.join(LANGS)}.")
    words = section("chart.", lang)
    values = []
    for row in table:
        label = str(row.get("label", row["frequency"]))
        for series, key in (("actual", "mean_actual"), ("predicted", "mean_predicted")):
            value = row[key]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue  # nobody with that frequency: no point
            values.append({"frequency": label, "order": int(row["frequency"]), "series": words[series],
                           "value": float(value), "customers": int(row["customers"])})
    order = [str(row.get("label", row["frequency"])) for row in sorted(table, key=lambda r: r["frequency"])]
    chart = (
        alt.Chart(alt.Data(values=values))
        .mark_line(point=True, strokeWidth=2.5)
        .encode(
            x=alt.X("frequency:O", sort=order, title=words["x"], axis=alt.Axis(labelAngle=0)),
            y=alt.Y("value:Q", title=words["y"]),
            color=alt.Color("series:N", title=None, sort=[words["actual"], words["predicted"]],
                            scale=alt.Scale(range=["#1f4e79", "#e07b39"])),
            strokeDash=alt.StrokeDash("series:N", sort=[words["actual"], words["predicted"]], legend=None,
                                      scale=alt.Scale(range=[[1, 0], [6, 4]])),
        )
        .properties(title=words["title"], width=520, height=320)
        .configure(font=FONT)
        .configure_legend(orient="top-left", labelFontSize=13)
        .configure_axis(labelFontSize=12, titleFontSize=13)
        .configure_title(fontSize=15)
    )
    return chart.to_dict()


def write_holdout_chart(table: list[dict[str, Any]], path: Path | str, lang: str = "ja") -> Path:
    """Write the calibration/holdout chart of `table` (rows of ``holdout_table``) as a PNG at
    `path`; returns the path.

    >>> from kizuna.prediction._evaluation import holdout_table
    >>> rows = holdout_table([0, 1, 2], [0.3, 0.9, 1.8], [0, 1, 2])
    >>> write_holdout_chart(rows, "holdout.png", lang="en")  # doctest: +SKIP
    PosixPath('holdout.png')
    """
    import vl_convert

    spec = holdout_chart_spec(table, lang)
    png = vl_convert.vegalite_to_png(spec, scale=2)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(png)
    return target
