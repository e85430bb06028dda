"""Time windows against a charger's opening hours, in the configured zone.

Opening hours are local wall-clock times per weekday (``services.hours``). To
check a booking they are laid out as concrete intervals over the days around
it; touching intervals are joined, so 24/7 or "until 24:00, from 00:00" lets a
booking cross midnight.
"""

import re
import unicodedata
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.clock_words import clock_ranges
from services.errors import InvalidInput
from services.hours import Hours

Interval = tuple[datetime, datetime]


def _local(day: date, hhmm: str, zone: ZoneInfo) -> datetime:
    """A wall-clock time on a local day; "24:00" is the next day's midnight."""
    hours, minutes = (int(x) for x in hhmm.split(":"))
    if hours == 24:
        return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=zone)
    return datetime.combine(day, time(hours, minutes), tzinfo=zone)


def open_intervals(hours: Hours, first: date, last: date, zone: ZoneInfo) -> list[Interval]:
    """The charger's open intervals (aware datetimes) that start between two days."""
    intervals: list[Interval] = []
    day = first
    while day <= last:
        for start, end in hours.get(str(day.weekday()), []):
            begins = _local(day, start, zone)
            # an end before the start is on the next day (past midnight)
            ends = _local(day if end > start else day + timedelta(days=1), end, zone)
            intervals.append((begins, ends))
        day += timedelta(days=1)
    return _merge(intervals)


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def fits_hours(hours: Hours, start: datetime, end: datetime, zone: ZoneInfo) -> bool:
    local_start = start.astimezone(zone)
    first = local_start.date() - timedelta(days=1)
    last = end.astimezone(zone).date()
    return any(s <= start and end <= e for s, e in open_intervals(hours, first, last, zone))


def is_open(hours: Hours, moment: datetime, zone: ZoneInfo) -> bool:
    return fits_hours(hours, moment, moment + timedelta(minutes=1), zone)


def next_opening(hours: Hours, moment: datetime, zone: ZoneInfo) -> datetime | None:
    """When the charger next opens after ``moment`` (within a week), if closed now."""
    day = moment.astimezone(zone).date()
    for start, _end in open_intervals(
        hours, day - timedelta(days=1), day + timedelta(days=7), zone
    ):
        if start > moment:
            return start
    return None


def free_windows(
    hours: Hours,
    day: date,
    busy: Iterable[Interval],
    zone: ZoneInfo,
    now: datetime,
    shortest: timedelta = timedelta(minutes=15),
) -> list[Interval]:
    """The open, unbooked parts of a local day (from now on) of at least ``shortest``,
    for a refusal's help."""
    day_start = datetime.combine(day, time(0, 0), tzinfo=zone)
    day_end = day_start + timedelta(days=1)
    windows = [
        (max(s, day_start, now), min(e, day_end))
        for s, e in open_intervals(hours, day - timedelta(days=1), day, zone)
        if e > day_start and s < day_end
    ]
    for b_start, b_end in sorted(busy):
        cut: list[Interval] = []
        for s, e in windows:
            if b_end <= s or b_start >= e:
                cut.append((s, e))
                continue
            if s < b_start:
                cut.append((s, b_start))
            if b_end < e:
                cut.append((b_end, e))
        windows = cut
    return [(s, e) for s, e in windows if e - s >= shortest]


_DAY_WORDS = {"today": 0, "今天": 0, "tomorrow": 1, "明天": 1, "后天": 2}
_WINDOW_TEXT = re.compile(
    r"^\s*(?:(?P<word>today|tomorrow|今天|明天|后天)|(?:(?P<y>\d{4})-)?(?P<m>\d{1,2})-(?P<d>\d{1,2}))?"
    r"\s*(?P<h1>\d{1,2}):(?P<m1>\d{2})\s*(?:-|–|—|~|～|to|至|到)\s*(?P<h2>\d{1,2}):(?P<m2>\d{2})\s*$",
    re.IGNORECASE,
)


# a day as people say it before a time: the day, and the part of it the times are in
_SPOKEN_DAYS = {
    "today": (0, None),
    "今天": (0, None),
    "今日": (0, None),
    "tonight": (0, "晚上"),
    "今晚": (0, "晚上"),
    "今早": (0, "早上"),
    "tomorrow": (1, None),
    "明天": (1, None),
    "明日": (1, None),
    "明晚": (1, "晚上"),
    "明早": (1, "早上"),
    "后天": (2, None),
}
_SPOKEN = re.compile(
    r"^\s*(?:(?P<word>"
    + "|".join(_SPOKEN_DAYS)
    + r")|(?:周|星期|礼拜)(?P<weekday>[一二三四五六日天])"
    r"|(?P<month>\d{1,2})月(?P<day>\d{1,2})[日号])?\s*(?P<times>.+?)\s*$",
    re.IGNORECASE,
)
_CLOCK_RANGE = re.compile(r"\d{2}:\d{2}-\d{2}:\d{2}")


def _spoken(text: str, today: date) -> str:
    """ "今晚8点到10点", "明天上午9点-11点", "周六 10:00-12:00", "12月1日 9点到11点",
    "tonight 8-10pm" as ``YYYY-MM-DD HH:MM-HH:MM``; "" when it is none of those."""
    match = _SPOKEN.match(text)
    if not match:
        return ""
    period = None
    if match["word"]:
        ahead, period = _SPOKEN_DAYS[match["word"].lower()]
        day = today + timedelta(days=ahead)
    elif match["weekday"]:  # the next such day, today included
        weekday = 6 if match["weekday"] == "天" else "一二三四五六日".index(match["weekday"])
        day = today + timedelta(days=(weekday - today.weekday()) % 7)
    elif match["month"]:
        try:
            day = date(today.year, int(match["month"]), int(match["day"]))
        except ValueError:
            return ""
        if day < today:
            day = day.replace(year=today.year + 1)
    else:
        day = today
    times = clock_ranges(match["times"], period)
    if not _CLOCK_RANGE.fullmatch(times):
        return ""
    return f"{day:%Y-%m-%d} {times}"


def parse_window(text: str, now: datetime, zone: ZoneInfo) -> Interval:
    """``18:00-20:00`` (today), ``tomorrow 09:00-11:00``, ``2026-12-01 22:00-01:00``,
    and as said in Chinese: ``今晚8点到10点``, ``明天上午9点-11点``, ``周六 10:00-12:00``.

    An end at or before the start is on the next day (past midnight), when that
    makes a window of at most 12 hours; otherwise it is refused as end-before-start.
    """
    text = unicodedata.normalize("NFKC", text)  # full-width digits, "：" and "～"
    today = now.astimezone(zone).date()
    match = _WINDOW_TEXT.match(text) or _WINDOW_TEXT.match(_spoken(text, today))
    if not match:
        raise InvalidInput("err.window_format")
    try:
        if match["word"]:
            day = today + timedelta(days=_DAY_WORDS[match["word"].lower()])
        elif match["m"]:
            day = date(int(match["y"] or today.year), int(match["m"]), int(match["d"]))
            if not match["y"] and day < today:
                day = date(today.year + 1, day.month, day.day)  # "01-05" in December
        else:
            day = today
        start = datetime.combine(day, time(int(match["h1"]), int(match["m1"])), tzinfo=zone)
        end_clock = (int(match["h2"]), int(match["m2"]))
        end_day = day + timedelta(days=1) if end_clock == (24, 0) else day
        end = datetime.combine(
            end_day, time(*end_clock) if end_clock != (24, 0) else time(0), tzinfo=zone
        )
    except ValueError:
        raise InvalidInput("err.window_format") from None
    if end <= start:
        # "22:00-01:00" runs past midnight; "18:00-17:00" is a typing mistake
        end += timedelta(days=1)
        if end - start > timedelta(hours=12):
            raise InvalidInput("err.window_order")
    return start, end


def starting_now(hours: int, now: datetime) -> Interval:
    """A window of ``hours`` from the next whole minute ("now, for 1 hour")."""
    start = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return start, start + timedelta(hours=hours)
