"""When a merchant must answer a booking request: shared by the request
(services.bookings) and a prepaid booking's payment (services.payments), which
asks the merchant only once the booking is paid."""

from datetime import datetime, timedelta

# a window that starts within this long counts as "now": the merchant then has
# the full answer time rather than until a start that has already come
IMMEDIATE = timedelta(minutes=5)


def answer_by(start: datetime, now: datetime, response_minutes: int) -> datetime:
    """``response_minutes`` from ``now``, never past the window's start (unless it
    starts about now)."""
    answer_time = timedelta(minutes=response_minutes)
    return now + answer_time if start - now <= IMMEDIATE else min(now + answer_time, start)
