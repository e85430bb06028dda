"""Opening hours of a charger: parsing what a merchant types, and formatting.

Stored as ``{"0": [["08:00", "22:00"]], …}``: weekday (Monday = 0) to a list of
windows. An end earlier than the start means the window runs past midnight.
"""

import itertools
import re
from collections.abc import Sequence

from services.clock_words import clock_ranges
from services.errors import InvalidInput

Hours = dict[str, list[list[str]]]

ALL_DAYS = tuple(range(7))

_DAY_WORDS: dict[str, tuple[int, ...]] = {
    "daily": ALL_DAYS,
    "everyday": ALL_DAYS,
    "every day": ALL_DAYS,
    "每天": ALL_DAYS,
    "每日": ALL_DAYS,
    "weekdays": (0, 1, 2, 3, 4),
    "工作日": (0, 1, 2, 3, 4),
    "weekends": (5, 6),
    "weekend": (5, 6),
    "周末": (5, 6),
}
_EN_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ZH_DAYS = "一二三四五六日"

_TIME = r"(\d{1,2}):(\d{2})"
_WINDOW = re.compile(_TIME + r"\s*(?:-|–|—|~|～|to|至|到)\s*" + _TIME)
# clauses end at ";" or a line break, or at a comma between a window and a day
# ("Mon 20:00-02:00, Tue 01:00-03:00"); "Sat, Sun" and "08:00-12:00, 14:00-18:00"
# stay one clause
_CLAUSE_BREAK = re.compile(r"[;；\n]+|(?<=\d)\s*[,，]\s*(?=[^\d\s])")
_DAY_PART = re.compile(r"^(?P<days>.*?)\s*(?=\d{1,2}:\d{2})", re.S)


def _day(token: str) -> int | None:
    token = token.strip().lower()
    if len(token) >= 3 and token[:3] in _EN_DAYS:  # mon, monday, Mon.
        return _EN_DAYS.index(token[:3])
    match = re.fullmatch(r"(?:周|星期|礼拜)([一二三四五六日天])", token)
    if match:
        char = match.group(1)
        return 6 if char == "天" else _ZH_DAYS.index(char)
    return None


def _days(text: str) -> tuple[int, ...]:
    text = text.strip().strip(":：").strip().lower()
    if not text:
        return ALL_DAYS
    if text in _DAY_WORDS:
        return _DAY_WORDS[text]
    days: list[int] = []
    for part in re.split(r"\s*[,，、/]\s*|\s+", text):
        if not part:
            continue
        if part in _DAY_WORDS:
            days.extend(_DAY_WORDS[part])
            continue
        bounds = re.split(r"\s*(?:-|–|—|~|～|至|到)\s*", part)
        if len(bounds) == 2:
            first, last = _day(bounds[0]), _day(bounds[1])
            if first is None or last is None:
                raise InvalidInput("err.hours_day", value=part)
            day = first
            while True:
                days.append(day)
                if day == last:
                    break
                day = (day + 1) % 7
        else:
            single = _day(part)
            if single is None:
                raise InvalidInput("err.hours_day", value=part)
            days.append(single)
    return tuple(dict.fromkeys(days))


def _minutes(hour: str, minute: str) -> int:
    h, m = int(hour), int(minute)
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise InvalidInput("err.hours_time", value=f"{hour}:{minute}")
    return h * 60 + m


def _fmt(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_hours(text: str) -> Hours:
    """Parse e.g. ``Mon-Fri 08:00-20:00; Sat,Sun 10:00-18:00`` or ``24/7``.

    Days named nowhere are closed. Raises ``InvalidInput`` with a key that says
    what was wrong.
    """
    text = text.strip()
    if text.lower() in {"24/7", "24h", "always", "全天", "全天候", "24小时"}:
        return {str(d): [["00:00", "24:00"]] for d in ALL_DAYS}
    text = clock_ranges(text)  # "早上9点到晚上9点" → "09:00-21:00"
    result: dict[int, list[tuple[int, int]]] = {}
    clauses = [c for c in _CLAUSE_BREAK.split(text) if c.strip()]
    if not clauses:
        raise InvalidInput("err.hours_format")
    for clause in clauses:
        head = _DAY_PART.match(clause)
        windows = _WINDOW.findall(clause)
        if head is None or not windows:
            raise InvalidInput("err.hours_format")
        leftover = _WINDOW.sub("", clause[head.end() :]).replace(",", "").replace("，", "")
        if leftover.strip():
            raise InvalidInput("err.hours_format")
        for day in _days(head.group("days")):
            for h1, m1, h2, m2 in windows:
                start, end = _minutes(h1, m1), _minutes(h2, m2)
                if start == end or start == 24 * 60:
                    raise InvalidInput("err.hours_empty", value=f"{h1}:{m1}-{h2}:{m2}")
                result.setdefault(day, []).append((start, end))
    for day, windows in result.items():
        windows.sort()
        for (s1, e1), (s2, _e2) in itertools.pairwise(windows):
            end1 = e1 if e1 > s1 else 24 * 60  # past midnight counts to the day's end
            if s2 < end1:
                raise InvalidInput("err.hours_overlap", value=f"{_fmt(s1)}-{_fmt(e1)}")
        # the windows are kept even for days that wrap, in order
        result[day] = windows
    _refuse_overlap_past_midnight(result)
    return {str(d): [[_fmt(s), _fmt(e)] for s, e in result[d]] for d in sorted(result)}


def _refuse_overlap_past_midnight(days: dict[int, list[tuple[int, int]]]) -> None:
    """A window that runs past midnight (``Mon 20:00-02:00``) holds the next
    day's early hours (Tuesday 00:00-02:00, Sunday's into Monday's): no window
    of that next day may start before it ends."""
    for day, windows in days.items():
        for start, end in windows:
            if end >= start:
                continue
            for next_start, next_end in days.get((day + 1) % 7, []):
                if next_start < end:
                    raise InvalidInput(
                        "err.hours_overlap_night",
                        value=f"{_fmt(start)}-{_fmt(end)}",
                        other=f"{_fmt(next_start)}-{_fmt(next_end)}",
                    )


def format_hours(
    hours: Hours,
    day_names: Sequence[str],
    closed: str,
    *,
    every_day: str | None = None,
    day_range: str = "{first}–{last}",
    window_sep: str = ", ",
    day_sep: str = "; ",
) -> str:
    """``Mon–Fri 08:00–20:00; Sat 10:00–16:00; Sun closed`` with the given names
    and the language's separators (Chinese: ``周一至周五 08:00–20:00；周六 …``)."""
    per_day = [
        window_sep.join(f"{s}–{e}" for s, e in hours.get(str(d), [])) or closed for d in ALL_DAYS
    ]
    if len(set(per_day)) == 1:
        days = every_day or day_range.format(first=day_names[0], last=day_names[6])
        return f"{days} {per_day[0]}"
    parts: list[str] = []
    start = 0
    for d in range(1, 8):
        if d == 7 or per_day[d] != per_day[start]:
            days = (
                day_names[start]
                if d - 1 == start
                else day_range.format(first=day_names[start], last=day_names[d - 1])
            )
            parts.append(f"{days} {per_day[start]}")
            start = d
    return day_sep.join(parts)
