"""Finding the nearest chargers: a bounding box on the indexed latitude and
longitude columns narrows the rows in SQL; exact distances are computed only for
the few rows inside it."""

import math
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Charger, Listing
from services.windows import is_open, next_opening

EARTH_KM = 6371.0088


@dataclass(frozen=True)
class Hit:
    listing: Listing
    chargers: list[Charger]  # active chargers that match the filters
    distance_km: float
    open_now: bool
    opens_at: datetime | None


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_KM * math.asin(math.sqrt(a))


def bounding_box(lat: float, lon: float, radius_km: float) -> tuple[float, float, float, float]:
    dlat = math.degrees(radius_km / EARTH_KM)
    dlon = math.degrees(radius_km / (EARTH_KM * max(math.cos(math.radians(lat)), 1e-6)))
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon


async def nearest(
    session: AsyncSession,
    lat: float,
    lon: float,
    *,
    now: datetime,
    zone: ZoneInfo,
    kind: str | None = None,
    open_now: bool = False,
    radius_km: float = 20.0,
    limit: int = 200,
) -> list[Hit]:
    """Public, unpaused listings within ``radius_km``, nearest first."""
    south, north, west, east = bounding_box(lat, lon, radius_km)
    rows = await session.execute(
        select(Listing, Charger)
        .join(Charger, Charger.listing_id == Listing.id)
        .where(
            Listing.published.is_(True),
            Listing.paused.is_(False),
            Charger.active.is_(True),
            Listing.latitude.between(south, north),
            Listing.longitude.between(west, east),
        )
        .order_by(Listing.id, Charger.position)
    )
    by_listing: dict[int, tuple[Listing, list[Charger]]] = {}
    for listing, charger in rows.all():
        if kind and kind not in charger.device_kinds:
            continue
        if open_now and not is_open(charger.hours, now, zone):
            continue
        by_listing.setdefault(listing.id, (listing, []))[1].append(charger)
    hits = []
    for listing, chargers in by_listing.values():
        assert listing.latitude is not None and listing.longitude is not None
        distance = distance_km(lat, lon, listing.latitude, listing.longitude)
        if distance > radius_km:
            continue
        opens = [is_open(c.hours, now, zone) for c in chargers]
        next_times = [t for c in chargers if (t := next_opening(c.hours, now, zone))]
        hits.append(
            Hit(
                listing,
                chargers,
                distance,
                any(opens),
                None if any(opens) else min(next_times, default=None),
            )
        )
    hits.sort(key=lambda h: h.distance_km)
    return hits[:limit]


async def by_text(session: AsyncSession, text: str, limit: int = 20) -> list[Listing]:
    """Listings whose address or shop name contains the words (no geocoder offline)."""
    pattern = f"%{text.strip()}%"
    return list(
        (
            await session.scalars(
                select(Listing)
                .where(
                    Listing.published.is_(True),
                    Listing.paused.is_(False),
                    Listing.address.ilike(pattern) | Listing.shop_name.ilike(pattern),
                )
                .limit(limit)
            )
        ).all()
    )
