"""The merchant's answer time follows the lead time (issue #16): a quarter of it, at
least BOOKING_RESPONSE_MINUTES, never past the start; and the nudge before it."""

from datetime import UTC, datetime, timedelta

from services.deadlines import answer_by

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


def test_tonight_asked_this_morning_is_not_due_in_15_minutes() -> None:
    start = NOW + timedelta(hours=10)  # 19:00
    assert answer_by(start, NOW, 15) == NOW + timedelta(hours=2, minutes=30)


def test_at_least_the_response_minutes() -> None:
    start = NOW + timedelta(minutes=40)
    assert answer_by(start, NOW, 15) == NOW + timedelta(minutes=15)


def test_never_past_the_start() -> None:
    start = NOW + timedelta(minutes=10)
    assert answer_by(start, NOW, 15) == start


def test_a_window_starting_now_gets_the_full_answer_time() -> None:
    assert answer_by(NOW + timedelta(minutes=2), NOW, 15) == NOW + timedelta(minutes=15)
