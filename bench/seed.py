"""A seeded city: approved listings with one 24/7 charger each (a smart plug,
Tasmota and Shelly alternating), their merchants and riders, inserted in bulk."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime

from sqlalchemy import insert

from migrations.runner import upgrade
from models import Charger, Listing, ListingStatus, User
from models.db import create_engine
from models.listing import SHORT_CODE_ALPHABET, SHORT_CODE_LENGTH

CENTRE = (31.2304, 121.4737)  # Shanghai
CITY_KM = 30.0  # the city spans ±30 km around the centre
HOURS = {str(d): [["00:00", "24:00"]] for d in range(7)}
MERCHANT_BASE = 10_000
RIDER_BASE = 100_000


def random_point(rng: random.Random) -> tuple[float, float]:
    return (
        CENTRE[0] + rng.uniform(-1, 1) * CITY_KM / 111,
        CENTRE[1] + rng.uniform(-1, 1) * CITY_KM / 95,
    )


def plug_of(charger_id: int) -> tuple[str, str]:
    """(driver, device id) of the seeded charger's smart plug."""
    if charger_id % 2:
        return "shelly", f"shellyplugs-{charger_id:06d}"
    return "tasmota", f"tasmota_{charger_id:06d}"


def token_of(charger_id: int) -> str:
    return hashlib.sha256(f"bench-{charger_id}".encode()).hexdigest()[:32]


def code_of(charger_id: int) -> str:
    """A label's short code, unique per charger id (its digits in the code alphabet)."""
    digits = []
    for _ in range(SHORT_CODE_LENGTH):
        charger_id, digit = divmod(charger_id, len(SHORT_CODE_ALPHABET))
        digits.append(SHORT_CODE_ALPHABET[digit])
    return "".join(digits)


def merchant_of(listing_id: int, merchants: int) -> int:
    return MERCHANT_BASE + (listing_id - 1) % merchants


async def seed(
    url: str,
    count: int,
    *,
    merchants: int = 1,
    riders: int = 0,
    photo_file_id: str = "x",
    hours: dict | None = None,
) -> None:
    engine = create_engine(url)
    await upgrade(engine)
    rng = random.Random(7)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        # as the bench's Bot API server presents them (language "en"): people the bot
        # has met before, whose first update of a run has no profile to refresh
        people = [
            {"id": MERCHANT_BASE + i, "first_name": f"Merchant{i}", "created_at": now}
            for i in range(merchants)
        ] + [
            {"id": RIDER_BASE + i, "first_name": f"Rider{i}", "created_at": now}
            for i in range(riders)
        ]
        for person in people:
            person["telegram_language"] = "en"
        await conn.execute(insert(User), people)
        for start in range(0, count, 5000):
            rows = []
            for i in range(start, min(count, start + 5000)):
                lat, lon = random_point(rng)
                rows.append(
                    {
                        "id": i + 1,
                        "merchant_id": merchant_of(i + 1, merchants),
                        "status": ListingStatus.APPROVED,
                        "published": True,
                        "paused": False,
                        "shop_name": f"Shop {i + 1}",
                        "address": f"{i + 1} Bench Road",
                        "latitude": lat,
                        "longitude": lon,
                        "created_at": now,
                        "area_m2": 30.0,
                        "photo_file_id": photo_file_id,
                        "contact_phone": "+8613800000000",
                    }
                )
            await conn.execute(insert(Listing), rows)
            await conn.execute(
                insert(Charger),
                [
                    {
                        "id": r["id"],
                        "listing_id": r["id"],
                        "position": 0,
                        "active": True,
                        "method": "ac_slow",
                        "device_kinds": ["e_bike"],
                        "device_models": "",
                        "supply_kind": "socket",
                        "supply_model": "Sonoff S31",
                        "hours": hours or HOURS,
                        "price_minor": 250,
                        "price_unit": "hour",
                        "currency": "CNY",
                        "plug_driver": plug_of(r["id"])[0],
                        "plug_id": plug_of(r["id"])[1],
                        "qr_token": token_of(r["id"]),
                        "short_code": code_of(r["id"]),
                        "paired_at": now,  # a proven plug: bookable (issue #15)
                        "created_at": now,
                    }
                    for r in rows
                ],
            )
    await engine.dispose()
