"""Percentiles, machine facts and the one table the bench prints."""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import dataclass


def pct(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) by the nearest-rank method; NaN without samples."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


@dataclass
class Row:
    figure: str
    what: str
    median: float
    p99: float
    n: int
    unit: str
    target: str = ""
    met: bool | None = None  # None: no target, or not measurable

    @classmethod
    def of(
        cls,
        figure: str,
        what: str,
        samples: list[float],
        unit: str,
        target: str = "",
        met: bool | None = None,
    ) -> Row:
        return cls(
            figure, what, median(samples), pct(samples, 0.99), len(samples), unit, target, met
        )


def _num(value: float) -> str:
    if value != value:  # NaN
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def machine() -> str:
    return (
        f"{os.cpu_count()} cores, Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.machine()}"
    )


def table(rows: list[Row], header: list[str]) -> str:
    cols = ["fig", "figure", "median", "p99", "n", "unit", "target", "met"]
    body = [
        [
            r.figure,
            r.what,
            _num(r.median),
            _num(r.p99),
            str(r.n),
            r.unit,
            r.target or "",
            {True: "yes", False: "NO", None: ""}[r.met],
        ]
        for r in rows
    ]
    widths = [
        max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(cols)
    ]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [*header, "", line(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(b) for b in body]
    return "\n".join(out)
