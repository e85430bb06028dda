"""Times of day as people type them, in Chinese and English: "晚上8点到10点",
"上午9点半-11点", "下午3点~5点", "8pm-10pm", rewritten as ``20:00-22:00`` for the
window and opening-hours parsers.

A part of the day (上午, 下午, 晚上, pm …) written before the first time holds for
the second too ("晚上8点到10点" is 20:00-22:00), unless that would end the window
before it starts ("上午11点到1点" is 11:00-13:00).
"""

import re

_CN_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6}
_CN_DIGITS |= {"七": 7, "八": 8, "九": 9}

_PERIOD = r"凌晨|清晨|早上|早晨|上午|中午|下午|傍晚|晚上|夜里|夜间|晚"
_NUMBER = r"\d{1,2}|[零一二两三四五六七八九十]{1,3}"
_TIME = (
    r"(?:(?P<p{i}>{period})\s*)?(?<![\d:])(?P<h{i}>{number})(?!\d)"
    r"(?:[:：](?P<mm{i}>\d{{2}})|\s*(?P<dot{i}>[点點时])(?:\s*(?:(?P<half{i}>半)|(?P<q{i}>[一三])刻"
    r"|(?P<m{i}>\d{{1,2}}|[零一二三四五六七八九十]{{1,3}})分?))?)?"
    r"(?:\s*(?P<ap{i}>am|pm|a\.m\.|p\.m\.))?"
)
_RANGE = re.compile(
    _TIME.format(i=1, period=_PERIOD, number=_NUMBER)
    + r"\s*(?:-|–|—|~|～|到|至|to)\s*"
    + _TIME.format(i=2, period=_PERIOD, number=_NUMBER),
    re.IGNORECASE,
)
_LATE = ("下午", "傍晚", "晚上", "夜里", "夜间", "晚")


def _number(text: str) -> int:
    """12, 八, 十二, 二十三; -1 for what is not a number (十十)."""
    if text.isdigit():
        return int(text)
    tens, ten, units = text.partition("十")
    try:
        if ten:  # 十 10, 十二 12, 二十 20, 二十三 23
            return (_CN_DIGITS[tens] if tens else 1) * 10 + (_CN_DIGITS[units] if units else 0)
        return _CN_DIGITS[text]
    except KeyError:
        return -1


def _hour(period: str | None, hour: int) -> int:
    """A 12-hour clock read with its part of the day; 24 is midnight at the end."""
    if period is None:
        return hour
    period = period.lower().replace(".", "")
    if period in ("pm", *_LATE):
        if period in ("晚上", "夜里", "夜间", "晚") and 1 <= hour <= 4:
            return hour  # 晚上1点: after midnight
        return hour + 12 if hour < 12 else 24 if hour == 12 and period != "pm" else hour
    if period == "中午":
        return hour + 12 if hour <= 5 else hour
    if period in ("am", "凌晨") and hour == 12:
        return 0
    return hour


def _parts(match: re.Match[str], i: int) -> tuple[str | None, str | None, int, int, bool]:
    """Part of the day, am/pm, hour, minute, and whether it was written as a time
    (a part of the day, ":mm", 点 or am/pm) rather than as a bare number."""
    hour = _number(match[f"h{i}"])
    minute = 0
    if match[f"mm{i}"]:
        minute = int(match[f"mm{i}"])
    elif match[f"half{i}"]:
        minute = 30
    elif match[f"q{i}"]:
        minute = 15 if match[f"q{i}"] == "一" else 45
    elif match[f"m{i}"]:
        minute = _number(match[f"m{i}"])
    written = bool(match[f"p{i}"] or match[f"mm{i}"] or match[f"dot{i}"] or match[f"ap{i}"])
    return match[f"p{i}"], match[f"ap{i}"], hour, minute, written


def _rewrite(match: re.Match[str], default_period: str | None) -> str:
    p1, ap1, h1, m1, written1 = _parts(match, 1)
    p2, ap2, h2, m2, written2 = _parts(match, 2)
    if not (written1 or written2):
        return match[0]  # "12-01" of a date: two bare numbers are not times
    first = p1 or ap1 or (None if ap2 else default_period)
    if first is None and ap2 and h1 + 12 <= (h2 % 12) + 12 and h1 < 12:  # "8-10pm"
        first = ap2
    second = p2 or ap2 or first
    start, end = _hour(first, h1), _hour(second, h2)
    if not (p2 or ap2) and first and end * 60 + m2 <= start * 60 + m1 and end < 12:
        end += 12  # 上午11点到1点
    if min(h1, h2) < 0 or min(m1, m2) < 0:
        return match[0]  # not a number we read: the parser will say so
    return f"{start:02d}:{m1:02d}-{end:02d}:{m2:02d}"


def clock_ranges(text: str, default_period: str | None = None) -> str:
    """Every time range in the text as ``HH:MM-HH:MM`` (24 hours); the rest as is."""
    return _RANGE.sub(lambda m: _rewrite(m, default_period), text)
