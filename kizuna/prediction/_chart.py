"""The calibration/holdout chart as a PNG: mean actual vs mean predicted holdout purchases by the
number of repeat purchases in the calibration period (Fader, Hardie & Lee 2005, figure 4).

A Vega-Lite chart (Altair), as the web app draws its charts, rendered offline to PNG by
vl-convert (no browser, no network). vl-convert draws text only with fonts it knows, and a
family it cannot find is left out (no boxes: no text at all). The Japanese font comes with
kizuna: the `noto-cjk-sans-jp-regular` package carries Noto Sans CJK JP, which `chart_font`
registers with vl-convert, so the labels need nothing of the machine. Without that package
(installed without its dependencies) a Japanese font of the system (`fc-list :lang=ja`) is used
instead, and a `FontWarning` says so once.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kizuna.i18n import LANGS, label, section

__all__ = ["FONT_PACKAGE", "ChartFont", "FontWarning", "chart_font", "holdout_chart_spec", "write_holdout_chart"]

# The package that carries the charts' Japanese font, and the font's file and family in it.
FONT_PACKAGE = "noto_cjk_sans_jp_regular"
_FONT_FILE = "NotoSansCJKjp-Regular.otf"
_FONT_FAMILY = "Noto Sans CJK JP"
# After the chosen family, in order: Japanese fonts a machine may have, then any (Latin letters).
FALLBACK = "IPAexGothic, IPAGothic, Noto Sans CJK JP, sans-serif"


class FontWarning(UserWarning):
    """The charts' own Japanese font is missing: they use the system's, or have no Japanese."""


@dataclass(frozen=True)
class ChartFont:
    """The font the charts draw with: its `family`, its `file`, and where it came from
    (`package`, `system` or None when no Japanese font was found)."""

    family: str
    file: Path | None
    source: str | None

    @property
    def families(self) -> str:
        """The font list a chart asks for: this family first."""
        rest = [name for name in FALLBACK.split(", ") if name != self.family]
        return ", ".join([self.family, *rest])


def chart_font(lang: str = "ja", *, packages: tuple[str, ...] = (FONT_PACKAGE,)) -> ChartFont:
    """The Japanese font of the charts, registered with vl-convert (once a process).

    The font of the first of `packages` installed; else the first Japanese font `fc-list` knows,
    with a `FontWarning` (in `lang`); else none, with a `FontWarning` saying what to install.

    >>> chart_font().family  # doctest: +SKIP
    'Noto Sans CJK JP'
    """
    return _chart_font(lang, packages)


@functools.cache
def _chart_font(lang: str, packages: tuple[str, ...]) -> ChartFont:
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            folder = Path(next(iter(spec.submodule_search_locations)))
            if (folder / _FONT_FILE).is_file():
                import vl_convert

                vl_convert.register_font_directory(str(folder))
                return ChartFont(_FONT_FAMILY, folder / _FONT_FILE, "package")
    found = _system_font()
    if found is not None:  # vl-convert loads the system's fonts itself
        warnings.warn(label("chart.font_system", lang).format(family=found.family, file=found.file),
                      FontWarning, stacklevel=3)
        return found
    warnings.warn(label("chart.font_missing", lang), FontWarning, stacklevel=3)
    return ChartFont("sans-serif", None, None)


def _system_font() -> ChartFont | None:
    """The first Japanese font fontconfig lists (by family name), or None."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return None
    try:
        listed = subprocess.run([fc_list, ":lang=ja", "family", "file"], capture_output=True, text=True,
                                timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    fonts = []
    for line in listed.splitlines():
        file, _, families = line.partition(": ")
        if families.strip():
            fonts.append((families.split(",")[0].strip(), file.strip()))
    if not fonts:
        return None
    family, file = sorted(fonts)[0]  # the same one whatever order fontconfig lists them in
    return ChartFont(family, Path(file), "system")


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
        .configure(font=chart_font(lang).families)
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
