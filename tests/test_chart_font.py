"""The charts' Japanese needs no font of the machine's (issue #22): the font comes with kizuna's
dependencies (noto-cjk-sans-jp-regular), has the glyphs of every Japanese label of the backtest
chart, and vl-convert draws with it; without the package, a Japanese font of the system is used
and a warning says so."""

from __future__ import annotations

import shutil
import subprocess
import warnings

import pytest
from fontTools.ttLib import TTFont

from kizuna.i18n import section
from kizuna.prediction._chart import FontWarning, chart_font, holdout_chart_spec
from kizuna.prediction._evaluation import holdout_table


def glyphs(path) -> set[int]:
    """The characters a font file has glyphs for (the first font of a collection)."""
    with TTFont(path, fontNumber=0, lazy=True) as font:
        return set(font.getBestCmap())


def chart_words() -> str:
    return "離脱" + "".join(section("chart.", "ja")[k] for k in ("title", "x", "y", "actual", "predicted"))


@pytest.mark.slow
def test_the_charts_font_comes_with_kizuna_and_has_every_glyph_of_their_labels():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the packaged font: nothing to warn about
        font = chart_font()
    assert (font.source, font.family) == ("package", "Noto Sans CJK JP")
    assert font.file is not None and font.file.is_file()
    missing = {c for c in chart_words() if not c.isspace() and ord(c) not in glyphs(font.file)}
    assert not missing
    rows = holdout_table([0, 1, 2], [0.3, 0.9, 1.8], [0, 1, 2])
    assert holdout_chart_spec(rows, "ja")["config"]["font"].startswith("Noto Sans CJK JP, ")


def test_vl_convert_draws_the_japanese_with_it():
    import vl_convert

    def png(family: str) -> bytes:
        spec = {"data": {"values": [{"t": "離脱"}]}, "mark": {"type": "text", "fontSize": 40, "font": family},
                "encoding": {"text": {"field": "t"}}, "width": 120, "height": 60}
        return vl_convert.vegalite_to_png(spec)

    chart_font()
    nothing = png("A family nobody has")  # vl-convert leaves such text out: a blank picture
    drawn = png("Noto Sans CJK JP")
    assert drawn != nothing and len(drawn) > len(nothing) + 500


def test_without_the_package_a_japanese_font_of_the_system_is_used_and_said_once():
    listed = subprocess.run(["fc-list", ":lang=ja", "file"], capture_output=True, text=True, check=False).stdout \
        if shutil.which("fc-list") else ""
    if not listed.strip():
        with pytest.warns(FontWarning, match="pip install noto-cjk-sans-jp-regular"):
            assert chart_font("en", packages=()).source is None
        return
    with pytest.warns(FontWarning, match="not installed: they use the system's") as said:
        font = chart_font("en", packages=())
    assert len(said) == 1 and font.source == "system"
    assert {ord("離"), ord("脱")} <= glyphs(font.file)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert chart_font("en", packages=()) == font  # said once
