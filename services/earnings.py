"""What merchants earn and what the platform takes: figures for /earnings, the
CSV export of a merchant's orders, and /report for the moderation group.

Days, weeks (from Monday) and months are those of the configured time zone; an
order counts on the day it ended. Revenue is the orders' cost, fees the
platform's fee agreed at each order, payable the merchant's share; no-show fees
are the merchant's part of what no-shows kept. Sums are per currency (a merchant
may price chargers in several). Read-only: no unit of work.
"""

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from models import (
    AccountKind,
    Booking,
    Charger,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Listing,
    Order,
)
from services import ledger
from services.money import TABLE, format_minor
from services.payouts import PayoutView, payouts_of
from services.tx import Db

DAYS = 30  # the daily series: the last 30 days, today included
PERIODS = ("today", "week", "month")


@dataclass(frozen=True)
class Totals:
    orders: int = 0
    kwh: Decimal = Decimal(0)
    revenue_minor: int = 0
    fee_minor: int = 0
    payable_minor: int = 0
    no_show_minor: int = 0  # the merchant's part of what no-shows kept


@dataclass
class _Sum:
    """Totals while they are added up."""

    orders: int = 0
    kwh: Decimal = Decimal(0)
    revenue_minor: int = 0
    fee_minor: int = 0
    payable_minor: int = 0
    no_show_minor: int = 0

    def add_order(self, order: Order) -> None:
        self.orders += 1
        self.kwh += order.energy_kwh or 0
        self.revenue_minor += order.cost_minor
        self.fee_minor += order.fee_minor
        self.payable_minor += order.merchant_minor

    def done(self) -> Totals:
        return Totals(
            self.orders,
            self.kwh,
            self.revenue_minor,
            self.fee_minor,
            self.payable_minor,
            self.no_show_minor,
        )


@dataclass(frozen=True)
class ChargerTotals:
    charger_id: int
    position: int  # 0-based, within its listing
    method: str
    shop_name: str
    currency: str
    totals: Totals


@dataclass(frozen=True)
class Period:
    name: str  # today, week, month
    since: datetime
    chargers: tuple[ChargerTotals, ...]
    total: dict[str, Totals]  # per currency


@dataclass(frozen=True)
class DayPoint:
    day: date
    orders: int
    revenue_minor: int
    kwh: Decimal


@dataclass(frozen=True)
class Earnings:
    merchant_id: int
    periods: tuple[Period, ...]
    daily: dict[str, tuple[DayPoint, ...]]  # per currency, every one of the last DAYS
    payable: dict[str, int]  # what the platform owes the merchant now, per currency
    payouts: list[PayoutView]


@dataclass(frozen=True)
class Report:
    periods: tuple[Period, ...]
    top_chargers: tuple[ChargerTotals, ...]  # by revenue over the last DAYS days
    daily: dict[str, tuple[DayPoint, ...]]
    # the ledger's platform-wide figures, per currency
    fees_booked: dict[str, int] = field(default_factory=dict)  # platform_fees
    wallets: dict[str, int] = field(default_factory=dict)  # owed to users
    payable: dict[str, int] = field(default_factory=dict)  # owed to merchants
    refunds_due: dict[str, int] = field(default_factory=dict)  # asked back, not refunded
    clearing: dict[str, int] = field(default_factory=dict)  # money in (negative) and out


def period_starts(now: datetime, zone: ZoneInfo) -> dict[str, datetime]:
    local = now.astimezone(zone)
    today = datetime.combine(local.date(), time(), tzinfo=zone)
    return {
        "today": today,
        "week": today - timedelta(days=local.weekday()),
        "month": today.replace(day=1),
    }


async def _orders(
    db: Db, since: datetime, merchant_id: int | None
) -> list[tuple[Order, Charger, str]]:
    query = (
        select(Order, Charger, Listing.shop_name)
        .join(Charger, Charger.id == Order.charger_id)
        .join(Listing, Listing.id == Charger.listing_id)
        .where(Order.ended_at >= since)
        .order_by(Order.ended_at, Order.id)
    )
    if merchant_id is not None:
        query = query.where(Order.merchant_id == merchant_id)
    return [(o, c, s or "") for o, c, s in (await db.execute(query)).all()]


async def _no_shows(
    db: Db, since: datetime, merchant_id: int | None
) -> list[tuple[datetime, int, str, int]]:
    """(window's end, charger id, currency, merchant's part) of the no-shows that kept
    money; a no-show counts on the day its window ended."""
    query = (
        select(
            Booking.end_at,
            Booking.charger_id,
            LedgerAccount.currency,
            LedgerEntry.amount_minor,
        )
        .select_from(LedgerTransaction)
        .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .join(Booking, Booking.id == LedgerTransaction.booking_id)
        .where(
            LedgerTransaction.kind == "no_show",
            Booking.end_at >= since,
            LedgerAccount.kind == AccountKind.MERCHANT_PAYABLE,
            LedgerEntry.amount_minor != 0,
        )
    )
    if merchant_id is not None:
        query = query.where(LedgerAccount.owner_id == merchant_id)
    return [tuple(row) for row in (await db.execute(query)).all()]  # type: ignore[misc]


def _periods(
    rows: list[tuple[Order, Charger, str]],
    no_shows: list[tuple[datetime, int, str, int]],
    chargers: dict[int, tuple[Charger, str]],
    starts: dict[str, datetime],
) -> tuple[Period, ...]:
    periods = []
    for name in PERIODS:
        since = starts[name]
        per: dict[tuple[int, str], _Sum] = defaultdict(_Sum)
        total: dict[str, _Sum] = defaultdict(_Sum)
        for order, _charger, _shop in rows:
            if order.ended_at >= since:
                per[(order.charger_id, order.currency)].add_order(order)
                total[order.currency].add_order(order)
        for at, charger_id, code, amount in no_shows:
            if at >= since:
                per[(charger_id, code)].no_show_minor += amount
                total[code].no_show_minor += amount
        listed = tuple(
            ChargerTotals(
                charger_id,
                chargers[charger_id][0].position,
                chargers[charger_id][0].method,
                chargers[charger_id][1],
                code,
                totals.done(),
            )
            for (charger_id, code), totals in sorted(per.items())
            if charger_id in chargers
        )
        periods.append(Period(name, since, listed, {c: t.done() for c, t in total.items()}))
    return tuple(periods)


def _daily(
    rows: list[tuple[Order, Charger, str]], now: datetime, zone: ZoneInfo
) -> dict[str, tuple[DayPoint, ...]]:
    today = now.astimezone(zone).date()
    days = [today - timedelta(days=n) for n in range(DAYS - 1, -1, -1)]
    sums: dict[str, dict[date, list[Any]]] = defaultdict(
        lambda: {d: [0, 0, Decimal(0)] for d in days}
    )
    for order, _charger, _shop in rows:
        day = order.ended_at.astimezone(zone).date()
        point = sums[order.currency].get(day)
        if point is None:
            continue
        point[0] += 1
        point[1] += order.cost_minor
        point[2] += order.energy_kwh or 0
    return {code: tuple(DayPoint(d, *per_day[d]) for d in days) for code, per_day in sums.items()}


async def _charger_names(db: Db, charger_ids: set[int]) -> dict[int, tuple[Charger, str]]:
    if not charger_ids:
        return {}
    rows = await db.execute(
        select(Charger, Listing.shop_name)
        .join(Listing, Listing.id == Charger.listing_id)
        .where(Charger.id.in_(charger_ids))
    )
    return {c.id: (c, s or "") for c, s in rows.all()}


async def earnings(db: Db, *, merchant_id: int, now: datetime, zone: ZoneInfo) -> Earnings:
    """Today, this week and this month per charger (orders, kWh, revenue, fees,
    payable, no-show fees); the last 30 days day by day; what is owed and paid out."""
    starts = period_starts(now, zone)
    since = min(starts["month"], starts["week"], _series_start(now, zone))
    rows = await _orders(db, since, merchant_id)
    no_shows = await _no_shows(db, since, merchant_id)
    names = await _charger_names(db, {c.id for _, c, _ in rows} | {n[1] for n in no_shows})
    return Earnings(
        merchant_id,
        _periods(rows, no_shows, names, starts),
        _daily(rows, now, zone),
        await ledger.balances(db, AccountKind.MERCHANT_PAYABLE, merchant_id),
        await payouts_of(db, merchant_id),
    )


def _series_start(now: datetime, zone: ZoneInfo) -> datetime:
    first = now.astimezone(zone).date() - timedelta(days=DAYS - 1)
    return datetime.combine(first, time(), tzinfo=zone)


async def report(db: Db, *, now: datetime, zone: ZoneInfo, top: int = 5) -> Report:
    """The platform's figures for the moderation group: totals per period, the top
    chargers of the last 30 days, the daily series, and the ledger's balances."""
    starts = period_starts(now, zone)
    series_start = _series_start(now, zone)
    since = min(starts["month"], starts["week"], series_start)
    rows = await _orders(db, since, None)
    no_shows = await _no_shows(db, since, None)
    names = await _charger_names(db, {c.id for _, c, _ in rows} | {n[1] for n in no_shows})
    recent = [r for r in rows if r[0].ended_at >= series_start]
    thirty = _periods(recent, [], names, {name: series_start for name in PERIODS})[0]
    ranked = sorted(thirty.chargers, key=lambda c: (-c.totals.revenue_minor, c.charger_id))
    sums = await _platform_sums(db)
    return Report(
        _periods(rows, no_shows, names, starts),
        tuple(ranked[:top]),
        _daily(rows, now, zone),
        fees_booked=sums[AccountKind.PLATFORM_FEES],
        wallets=sums[AccountKind.USER_WALLET],
        payable=sums[AccountKind.MERCHANT_PAYABLE],
        refunds_due=sums[AccountKind.REFUNDS_DUE],
        clearing=sums[AccountKind.PROVIDER_CLEARING],
    )


async def _platform_sums(db: Db) -> dict[AccountKind, dict[str, int]]:
    rows = await db.execute(
        select(LedgerAccount.kind, LedgerAccount.currency, func.sum(LedgerAccount.balance_minor))
        .where(LedgerAccount.kind != AccountKind.BOOKING_HOLD)
        .group_by(LedgerAccount.kind, LedgerAccount.currency)
    )
    sums: dict[AccountKind, dict[str, int]] = {kind: {} for kind in AccountKind}
    for kind, code, total in rows.all():
        sums[AccountKind(kind)][code] = int(total or 0)
    return sums


CSV_HEADER = (
    "order",
    "charger",
    "shop",
    "date",
    "start",
    "end",
    "minutes",
    "kwh",
    "tariff",
    "unit",
    "currency",
    "cost",
    "fee",
    "payable",
    "payment",
    "end_reason",
)


def _cell(text: str) -> str:
    # a spreadsheet would run a cell that starts like a formula (CSV injection)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _amount(minor: int, code: str) -> str:
    return format_minor(minor, code) if code in TABLE else str(minor)


async def orders_csv(
    db: Db,
    *,
    merchant_id: int,
    zone: ZoneInfo,
    since: datetime | None = None,
    limit: int = 10_000,
) -> str:
    """The merchant's orders (oldest first) as CSV text with a header row; times in
    ``zone``, amounts in major units."""
    query = (
        select(Order, Charger.position, Listing.shop_name)
        .join(Charger, Charger.id == Order.charger_id)
        .join(Listing, Listing.id == Charger.listing_id)
        .where(Order.merchant_id == merchant_id)
        .order_by(Order.ended_at, Order.id)
        .limit(limit)
    )
    if since is not None:
        query = query.where(Order.ended_at >= since)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for order, position, shop in (await db.execute(query)).all():
        start, end = order.started_at.astimezone(zone), order.ended_at.astimezone(zone)
        code = order.currency
        writer.writerow(
            (
                order.id,
                position + 1,
                _cell(shop or ""),
                end.date().isoformat(),
                start.strftime("%Y-%m-%d %H:%M"),
                end.strftime("%Y-%m-%d %H:%M"),
                order.minutes,
                "" if order.energy_kwh is None else str(order.energy_kwh),
                _amount(order.price_minor, code),
                order.price_unit,
                code,
                _amount(order.cost_minor, code),
                _amount(order.fee_minor, code),
                _amount(order.merchant_minor, code),
                order.payment.value,
                order.end_reason,
            )
        )
    return out.getvalue()
