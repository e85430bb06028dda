"""Finding the nearest chargers: a bounding box on the indexed latitude and
longitude columns narrows the rows in SQL; exact distances are computed only for
the few rows inside it, and full rows are read only for the page shown."""

import json
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import String, bindparam, cast, or_, select

from models import Booking, Charger, Listing
from models.enums import BOOKING_TAKEN
from services.dto import LISTINGS_WITH_CHARGERS, ChargerInfo, ListingInfo, listing_and_charger
from services.errors import InvalidInput
from services.paging import Page, clamp
from services.text import clean
from services.tx import Db, read
from services.windows import Interval, free_windows, is_open, next_opening

EARTH_KM = 6371.0088
FIRST_REACH_KM = 1.0  # nearest(): the first box's half-width


@dataclass(frozen=True)
class Ranked:
    """A listing found, before its rows are read: /find shows a page of them."""

    listing_id: int
    charger_ids: list[int]  # active chargers that match the filters
    distance_km: float


@dataclass(frozen=True)
class Hit:
    listing: ListingInfo
    chargers: list[ChargerInfo]  # active chargers that match the filters
    distance_km: float


def opening(hit: Hit, now: datetime, zone: ZoneInfo) -> tuple[bool, datetime | None]:
    """Open now, or when it next opens: computed only for the hits shown."""
    if any(is_open(c.hours, now, zone) for c in hit.chargers):
        return True, None
    times = [t for c in hit.chargers if (t := next_opening(c.hours, now, zone))]
    return False, min(times, default=None)


# the shortest window worth offering as "free" (a booking's shortest)
SHORTEST_FREE = timedelta(minutes=15)


# /find's statements, built once (building one costs more than running it)
# the chargers' taken windows around today and tomorrow
_TAKEN = select(Booking.charger_id, Booking.start_at, Booking.end_at).where(
    Booking.charger_id.in_(bindparam("ids", expanding=True)),
    Booking.status.in_(BOOKING_TAKEN),
    Booking.end_at > bindparam("start"),
    Booking.start_at < bindparam("end"),
)
# the rows of a page's chargers, each beside its listing's
_ROWS = LISTINGS_WITH_CHARGERS.where(Charger.id.in_(bindparam("ids", expanding=True)))
# the public listings' active chargers inside a box of latitude and longitude
_IN_BOX = (
    select(
        Listing.id,
        Listing.latitude,
        Listing.longitude,
        Charger.id,
        cast(Charger.device_kinds, String),
        cast(Charger.hours, String),
    )
    .join(Charger, Charger.listing_id == Listing.id)
    .where(
        Listing.published.is_(True),
        Listing.paused.is_(False),
        Charger.active.is_(True),
        Listing.latitude.between(bindparam("south"), bindparam("north")),
        Listing.longitude.between(bindparam("west"), bindparam("east")),
    )
)


async def next_free(
    db: Db, chargers: Sequence[ChargerInfo], now: datetime, zone: ZoneInfo
) -> dict[int, datetime | None]:
    """Charger id → when it is next free to book (open and not booked, for at least
    15 minutes; ``now`` or before when it is free now), within today and tomorrow;
    None when it is not. One query for all the chargers a page of /find shows."""
    ids = [c.id for c in chargers]
    busy: dict[int, list[Interval]] = {i: [] for i in ids}
    if ids:
        async with read(db):
            span = {"ids": ids, "start": now - timedelta(days=1), "end": now + timedelta(days=3)}
            rows = await db.execute(_TAKEN, span)
            for charger_id, start, end in rows.all():
                busy[charger_id].append((start, end))
    today = now.astimezone(zone).date()
    found: dict[int, datetime | None] = {}
    for charger in chargers:
        # today's and tomorrow's free spans, joined where one runs on past midnight
        # (free from 23:50 and all night is free now, not "free from tomorrow 00:00")
        spans: list[Interval] = []
        for day in (today, today + timedelta(days=1)):
            pieces = free_windows(charger.hours, day, busy[charger.id], zone, now, timedelta(0))
            for start, end in sorted(pieces):
                if spans and spans[-1][1] == start:
                    spans[-1] = (spans[-1][0], end)
                else:
                    spans.append((start, end))
        found[charger.id] = next((s for s, e in spans if e - s >= SHORTEST_FREE), None)
    return found


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
    db: Db,
    lat: float,
    lon: float,
    *,
    now: datetime,
    zone: ZoneInfo,
    kind: str | None = None,
    open_now: bool = False,
    radius_km: float = 20.0,
    limit: int = 50,
) -> list[Ranked]:
    """Public, unpaused listings within ``radius_km``, nearest first (at most ``limit``):
    plain columns only (no ORM objects, no JSON decoding unless a filter needs it);
    ``load`` reads the full rows of the ones shown.
    """
    # A small box first, grown until it holds ``limit`` hits within its radius (any
    # listing outside that circle is farther than each of them) or reaches
    # ``radius_km``: in a dense city the nearest fifty are a few hundred metres
    # away, and a 20 km box would read a third of the catalogue to find them.
    reach = min(radius_km, FIRST_REACH_KM)
    while True:
        candidates = await _candidates(db, lat, lon, reach, kind, open_now, now, zone)
        if len(candidates) >= limit or reach >= radius_km:
            break
        reach = min(radius_km, reach * 2)
    nearest_ids = sorted(candidates, key=lambda i: candidates[i][0])[:limit]
    return [Ranked(i, candidates[i][1], candidates[i][0]) for i in nearest_ids]


async def load(db: Db, ranked: Sequence[Ranked]) -> list[Hit]:
    """The rows of ``ranked`` (a page of ``nearest``'s answer), in its order, read as
    plain columns straight into the values shown (no ORM objects to build first).

    A listing or charger gone since (deleted) is left out."""
    if not ranked:
        return []
    # one statement: each charger's columns beside its listing's
    listings: dict[int, ListingInfo] = {}
    chargers: dict[int, ChargerInfo] = {}
    wanted = [c for r in ranked for c in r.charger_ids]
    for row in await db.execute(_ROWS, {"ids": wanted}):
        listing, charger = listing_and_charger(row)
        listings.setdefault(listing.id, listing)
        chargers[charger.id] = charger
    hits = []
    for r in ranked:
        found = sorted((chargers[c] for c in r.charger_ids if c in chargers), key=_position)
        if r.listing_id in listings and found:
            hits.append(Hit(listings[r.listing_id], found, r.distance_km))
    return hits


def _position(charger: ChargerInfo) -> int:
    return charger.position


async def nearest_page(
    db: Db,
    lat: float,
    lon: float,
    *,
    now: datetime,
    zone: ZoneInfo,
    kind: str | None = None,
    open_now: bool = False,
    number: int = 0,
    size: int = 5,
) -> tuple[Page[Hit], dict[int, datetime | None]]:
    """/find: one page of ``nearest``'s answer, with the full rows of those shown and
    when each of their chargers is next free (``next_free``), in one read."""
    async with read(db):
        ranked = await nearest(db, lat, lon, now=now, zone=zone, kind=kind, open_now=open_now)
        number, pages = clamp(len(ranked), number, size)
        shown = await load(db, ranked[number * size : (number + 1) * size])
        free = await next_free(db, [c for hit in shown for c in hit.chargers], now, zone)
    return Page(shown, len(ranked), number, pages, size), free


async def _candidates(
    db: Db,
    lat: float,
    lon: float,
    radius_km: float,
    kind: str | None,
    open_now: bool,
    now: datetime,
    zone: ZoneInfo,
) -> dict[int, tuple[float, list[int]]]:
    """listing id → (distance, matching charger ids) for listings within ``radius_km``."""
    south, north, west, east = bounding_box(lat, lon, radius_km)
    box = {"south": south, "north": north, "west": west, "east": east}
    rows = await db.execute(_IN_BOX, box)
    wanted_kind = f'"{kind}"' if kind else None
    candidates: dict[int, tuple[float, list[int]]] = {}
    for listing_id, lat2, lon2, charger_id, kinds_json, hours_json in rows.all():
        if wanted_kind and wanted_kind not in kinds_json:  # a JSON list of short codes
            continue
        if open_now and not is_open(json.loads(hours_json), now, zone):
            continue
        if listing_id not in candidates:
            assert lat2 is not None and lon2 is not None  # BETWEEN leaves no NULL
            distance = distance_km(lat, lon, lat2, lon2)
            if distance > radius_km:
                continue
            candidates[listing_id] = (distance, [])
        candidates[listing_id][1].append(charger_id)
    return candidates


# what a typed place is split into: runs of Chinese characters, numbers, Latin words
_TERM = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+|[0-9]+|[^\W\d_\u3400-\u9fff\uf900-\ufaff]+")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
# "上海市黄浦区南京西路": a city or district written before the street is not in
# most addresses as merchants type them
_CJK_PREFIX = re.compile(r"^(?:[\u4e00-\u9fff]{2,4}?[市省])?(?:[\u4e00-\u9fff]{2,4}?[区县])?")
# the same word in the short and the long form, as addresses are written both ways
_ALIASES = {
    "rd": ("rd", "road"),
    "road": ("rd", "road"),
    "st": ("st", "street"),
    "street": ("st", "street"),
    "ave": ("ave", "avenue"),
    "avenue": ("ave", "avenue"),
    "sq": ("sq", "square"),
    "square": ("sq", "square"),
    "no": (),  # "No. 120"
    "路": ("路",),
}


def search_terms(text: str) -> list[tuple[str, ...]]:
    """A typed place as terms that must all appear (in any order), each with its
    alternatives: "Nanjing West Road 120" → (nanjing,) (west,) (rd, road) (120,);
    "上海市南京西路120号" → (南京西路,) (120,) (号,). Full-width letters and digits
    count as their ASCII forms."""
    terms: list[tuple[str, ...]] = []
    for word in _TERM.findall(unicodedata.normalize("NFKC", text).casefold()):
        if _CJK.match(word):
            word = _CJK_PREFIX.sub("", word) or word
        alternatives = _ALIASES.get(word, (word,))
        if alternatives:
            terms.append(alternatives)
    return terms


async def by_text(db: Db, text: str, limit: int = 20) -> list[ListingInfo]:
    """Listings whose address or shop name holds every word of the text, in any
    order and in Chinese or English as the merchant wrote them ("南京西路",
    "人民广场", "Nanjing West Rd"); there is no geocoder offline.

    The text is cleaned as every typed answer is (a NUL would fail the query on
    PostgreSQL); text that cleaning refuses, or with no word in it, matches nothing.
    """
    try:
        terms = search_terms(clean(text, max_len=200))
    except InvalidInput:
        return []
    if not terms:
        return []
    conditions = []
    for alternatives in terms:
        matches = []
        for word in alternatives:
            pattern = "%" + re.sub(r"([\\%_])", r"\\\1", word) + "%"
            matches.append(Listing.address.ilike(pattern, escape="\\"))
            matches.append(Listing.shop_name.ilike(pattern, escape="\\"))
        conditions.append(or_(*matches))
    async with read(db):
        found = (
            await db.scalars(
                select(Listing)
                .where(Listing.published.is_(True), Listing.paused.is_(False), *conditions)
                .order_by(Listing.id)
                .limit(limit)
            )
        ).all()
        return [ListingInfo.of(listing) for listing in found]
