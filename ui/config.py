"""What handlers and ui need of the settings, as plain values.

The composition root (bot/settings.py ``ui_config``) builds it from ``Settings`` once; handlers
get it by dependency injection as ``config``, the outbox's renderers with each
message. Nothing below the root reads the environment.
"""

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from services.bookings import BookingRules
from services.money import PAY_AT_SHOP, MoneyRules


@dataclass(frozen=True)
class Config:
    zone: ZoneInfo  # times are shown and typed in this zone
    admin_ids: frozenset[int]  # who may moderate listings and close sessions
    moderation_chat_id: int  # the admins' group
    group_language: str  # one language for the moderation group's many readers
    currency: str  # the default currency of a typed price
    booking_rules: BookingRules
    max_listings_under_review: int  # per merchant at once
    # money (#14): prepaid or pay at the shop, fees; the provider token sends invoices
    money: MoneyRules = PAY_AT_SHOP
    provider_token: str | None = field(default=None, repr=False)
