"""Time windows: typed windows, opening hours across midnight and across a
daylight-saving change, free windows."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.errors import InvalidInput
from services.hours import parse_hours
from services.windows import fits_hours, free_windows, is_open, next_opening, parse_window

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=SHANGHAI)  # a Saturday


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("18:00-20:00", (28, 18), (28, 20)),
        ("tomorrow 09:00-11:00", (29, 9), (29, 11)),
        ("明天 9:00-10:30", (29, 9), (29, 10, 30)),
        ("11-30 22:00-01:00", (30, 22), (12, 1, 1)),
        ("2026-11-29 10:00-24:00", (29, 10), (30, 0)),
    ],
)
def test_typed_windows(text: str, start: tuple, end: tuple) -> None:
    def moment(parts: tuple) -> datetime:
        if len(parts) == 3 and parts[0] == 12:
            return datetime(2026, 12, parts[1], parts[2], tzinfo=SHANGHAI)
        day, hour, *minute = parts
        return datetime(2026, 11, day, hour, *(minute or [0]), tzinfo=SHANGHAI)

    assert parse_window(text, NOW, SHANGHAI) == (moment(start), moment(end))


@pytest.mark.parametrize("text", ["whenever", "25:00-26:00", "18:00-17:00", "02-30 10:00-11:00"])
def test_bad_typed_windows(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_window(text, NOW, SHANGHAI)


def test_hours_past_midnight_and_next_opening() -> None:
    late = parse_hours("Fri,Sat 20:00-02:00")
    saturday = datetime(2026, 11, 28, tzinfo=SHANGHAI)
    assert fits_hours(
        late, saturday.replace(hour=23), saturday + timedelta(hours=25, minutes=30), SHANGHAI
    )
    assert not fits_hours(
        late, saturday + timedelta(hours=25), saturday + timedelta(hours=27), SHANGHAI
    )
    assert is_open(late, saturday.replace(hour=1), SHANGHAI)  # Friday's window, after midnight
    assert not is_open(late, saturday.replace(hour=3), SHANGHAI)
    assert next_opening(late, saturday.replace(hour=3), SHANGHAI) == saturday.replace(hour=20)


def test_the_day_the_clocks_change() -> None:
    """Berlin springs forward on 29 March 2026 (02:00 → 03:00): a 01:30–03:30 window
    lasts one real hour and fits hours of 00:00–24:00; a window 08:00–10:00 fits
    08:00–22:00 hours on that day as on any other."""
    always = parse_hours("daily 00:00-24:00")
    start = datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN)
    end = datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN)
    assert end - start == timedelta(hours=2)  # wall clock; aware subtraction is below
    assert end.astimezone(ZoneInfo("UTC")) - start.astimezone(ZoneInfo("UTC")) == timedelta(hours=1)
    assert fits_hours(always, start, end, BERLIN)
    day = parse_hours("daily 08:00-22:00")
    assert fits_hours(
        day,
        datetime(2026, 3, 29, 8, tzinfo=BERLIN),
        datetime(2026, 3, 29, 10, tzinfo=BERLIN),
        BERLIN,
    )
    assert not fits_hours(
        day,
        datetime(2026, 3, 29, 7, tzinfo=BERLIN),
        datetime(2026, 3, 29, 9, tzinfo=BERLIN),
        BERLIN,
    )


def test_free_windows_leave_out_booked_and_past_parts() -> None:
    hours = parse_hours("daily 08:00-22:00")
    day = NOW.date()
    busy = [(NOW.replace(hour=12), NOW.replace(hour=14))]
    windows = free_windows(hours, day, busy, SHANGHAI, NOW.replace(hour=10))
    assert [(s.hour, e.hour) for s, e in windows] == [(10, 12), (14, 22)]
