"""When a merchant must answer a booking request: shared by the request
(services.bookings) and a prepaid booking's payment (services.payments), which
asks the merchant only once the booking is paid."""

from datetime import datetime, timedelta

# a window that starts within this long counts as "now": the merchant then has
# the full answer time rather than until a start that has already come
IMMEDIATE = timedelta(minutes=5)
# the answer time is this share of the lead time (a request for tonight made this
# morning is not expired in 15 minutes), at least ``response_minutes``
LEAD_SHARE = 4
# the merchant is nudged this long before the answer is due (services.bookings.remind_due)
NUDGE_BEFORE = timedelta(minutes=5)


def answer_by(start: datetime, now: datetime, response_minutes: int) -> datetime:
    """A quarter of the lead time, at least ``response_minutes`` from ``now``, never
    past the window's start (unless it starts about now)."""
    answer_time = max(timedelta(minutes=response_minutes), (start - now) / LEAD_SHARE)
    if start - now <= IMMEDIATE:
        return now + timedelta(minutes=response_minutes)
    return min(now + answer_time, start)
