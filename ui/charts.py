"""Charts of daily revenue and energy (/earnings, /report) as PNG bytes.

matplotlib with its Agg backend (no display), drawn in a worker thread
(``asyncio.to_thread``): drawing takes tens of milliseconds, too long for the
event loop. Chinese labels need a CJK font (Debian: fonts-wqy-microhei or
fonts-noto-cjk); without one the chart is labelled in English instead of boxes.
"""

import asyncio
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from types import ModuleType

from services.earnings import DayPoint
from services.money import currency as currency_row
from ui.i18n import Translator, translator

CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.otf",
)
SIZE_INCHES, DPI = (10.0, 6.0), 100  # 1000 × 600 px


@cache
def _matplotlib() -> ModuleType:
    """matplotlib, imported on the first chart, not at start-up (about 40 MB and a
    second that most processes never need)."""
    import matplotlib

    matplotlib.use("Agg")  # before pyplot: no display, thread-safe figures of our own
    import matplotlib.figure
    import matplotlib.font_manager

    return matplotlib


@cache
def _cjk_family() -> str | None:
    font_manager = _matplotlib().font_manager
    for path in CJK_FONTS:
        if Path(path).exists():
            font_manager.fontManager.addfont(path)
            return str(font_manager.FontProperties(fname=path).get_name())
    return None


@dataclass(frozen=True)
class ChartLabels:
    title: str
    revenue: str
    energy: str
    family: str | None  # a CJK font's family, when the labels need one


def chart_labels(t: Translator, title_key: str, code: str) -> ChartLabels:
    """The chart's words in the reader's language, or English when no CJK font is
    installed (rather than boxes)."""
    family = None
    if t.language == "zh":
        family = _cjk_family()
        if family is None:
            t = translator("en")
    return ChartLabels(
        t(title_key), t("earn.chart_revenue", currency=code), t("earn.chart_energy"), family
    )


def _draw(points: Sequence[DayPoint], code: str, labels: ChartLabels) -> bytes:
    unit = currency_row(code).unit
    days: list[date] = [p.day for p in points]
    revenue = [p.revenue_minor / unit for p in points]
    energy = [float(p.kwh) for p in points]
    figure = _matplotlib().figure.Figure(figsize=SIZE_INCHES, dpi=DPI)
    font = {"family": labels.family} if labels.family else {}
    top, bottom = figure.subplots(2, 1, sharex=True)
    top.bar(days, revenue, color="#2e7d32")
    top.set_ylabel(labels.revenue, **font)
    top.set_title(labels.title, **font)
    bottom.plot(days, energy, marker="o", color="#1565c0")
    bottom.set_ylabel(labels.energy, **font)
    bottom.set_ylim(bottom=0)
    for axis in (top, bottom):
        axis.grid(axis="y", alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


async def daily_chart(points: Sequence[DayPoint], code: str, labels: ChartLabels) -> bytes:
    """The PNG, drawn off the event loop."""
    return await asyncio.to_thread(_draw, tuple(points), code, labels)
