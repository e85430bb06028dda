"""The daily chart (ui/charts.py): a PNG of the agreed size, drawn in a thread, and
Chinese labels only with a font that has their glyphs."""

import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from PIL import Image

from services.earnings import DayPoint
from ui import charts
from ui.i18n import translator


def points() -> list[DayPoint]:
    first = date(2026, 11, 3)
    return [
        DayPoint(first + timedelta(days=i), i % 3, 250 * (i % 5), Decimal(i % 4) / 2)
        for i in range(30)
    ]


async def test_a_png_of_a_sensible_size() -> None:
    labels = charts.chart_labels(translator("en"), "earn.chart_title", "CNY")
    assert labels.revenue == "Revenue (CNY)" and labels.family is None
    png = await charts.daily_chart(points(), "CNY", labels)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (1000, 600)
    assert 5_000 < len(png) < 500_000


def test_chinese_labels_fall_back_to_english_without_a_cjk_font(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(charts, "CJK_FONTS", ("/nonexistent/font.ttc",))
    charts._cjk_family.cache_clear()
    try:
        labels = charts.chart_labels(translator("zh"), "earn.chart_title", "CNY")
    finally:
        charts._cjk_family.cache_clear()
    assert labels.title == "Daily revenue and energy, last 30 days" and labels.family is None


def test_chinese_labels_with_a_cjk_font() -> None:
    if charts._cjk_family() is None:
        pytest.skip("no CJK font installed (fonts-wqy-microhei or fonts-noto-cjk)")
    labels = charts.chart_labels(translator("zh"), "earn.chart_title", "CNY")
    assert labels.title == "近 30 天每日营收和电量" and labels.family
