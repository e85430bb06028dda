"""A world for the money tests: a merchant with an approved listing of a per-hour
charger (6.00 CNY/h) and a per-kWh one (1.50 CNY/kWh, rated 7 kW), open all day,
and helpers that drive bookings and sessions through the services' own steps
with explicit times."""

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import (
    Booking,
    Charger,
    Invoice,
    InvoiceStatus,
    LedgerTransaction,
    Order,
    OutboxMessage,
    User,
)
from services import bookings, charging, ledger, listings, payments
from services.bookings import BookingRules
from services.charging import ChargingRules
from services.money import MoneyRules
from tests import factories

ZONE = ZoneInfo("Asia/Shanghai")
MERCHANT = 1001
ADMIN_CHAT = -100555
PLATFORM_CHAT = -100777
PREPAID = MoneyRules(
    prepaid=True,
    platform_fee_percent=Decimal(10),
    payment_minutes=10,
    response_minutes=15,
    admin_chat_id=ADMIN_CHAT,
)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
# a Monday morning in Shanghai, far from the clock's own present
BASE = datetime(2027, 3, 1, 9, 0, tzinfo=ZONE)

Sessions = async_sessionmaker[AsyncSession]


@dataclass(frozen=True)
class World:
    per_hour: int  # charger ids
    per_kwh: int


def booking_rules(money: MoneyRules = PREPAID) -> BookingRules:
    return BookingRules(zone=ZONE, response_minutes=money.response_minutes, money=money)


def charging_rules(money: MoneyRules = PREPAID) -> ChargingRules:
    return ChargingRules(zone=ZONE, platform_chat_id=PLATFORM_CHAT, money=money)


async def make_world(sessions: Sessions, users: list[int]) -> World:
    async with sessions() as db:
        db.add_all([User(id=i, first_name=f"u{i}") for i in [MERCHANT, *users]])
        await db.commit()
    draft = factories.listing(chargers=2)
    hourly, metered = draft.chargers
    hourly.price, hourly.price_unit = "6.00", "hour"
    metered.price, metered.price_unit, metered.power_kw = "1.50", "kwh", "7"
    for item in draft.chargers:
        item.hours = {str(d): [["00:00", "24:00"]] for d in range(7)}
    async with sessions() as db:
        revision = await listings.submit(
            db, merchant_id=MERCHANT, draft=draft, moderation_chat_id=-1
        )
        await listings.approve(db, revision_id=revision.id, admin_id=9, moderation_chat_id=-1)
        ids = (await db.scalars(select(Charger.id).order_by(Charger.position))).all()
        await db.execute(delete(OutboxMessage))  # the listing's own messages: not ours
        await db.commit()
    return World(per_hour=ids[0], per_kwh=ids[1])


async def add_users(sessions: Sessions, *ids: int) -> None:
    async with sessions() as db:
        db.add_all([User(id=i, first_name=f"u{i}") for i in ids])
        await db.commit()


async def request(
    sessions: Sessions,
    charger_id: int,
    user: int,
    start: datetime,
    hours: float = 1.0,
    *,
    money: MoneyRules = PREPAID,
    now: datetime | None = None,
) -> Booking:
    async with sessions() as db:
        return await bookings.request(
            db,
            user_id=user,
            charger_id=charger_id,
            device_kind="e_bike",
            device_model="Yadea G5",
            start=start,
            end=start + timedelta(hours=hours),
            rules=booking_rules(money),
            now=now or start - 30 * MINUTE,
        )


async def open_invoice(sessions: Sessions, booking_id: int) -> Invoice | None:
    async with sessions() as db:
        return (
            await db.scalars(
                select(Invoice).where(
                    Invoice.booking_id == booking_id, Invoice.status == InvoiceStatus.OPEN
                )
            )
        ).one_or_none()


_charges = itertools.count(1)


def charge_id() -> str:
    return f"tg-charge-{next(_charges)}"


async def pay(
    sessions: Sessions,
    invoice: Invoice,
    *,
    user: int | None = None,
    charge: str | None = None,
    amount: int | None = None,
    currency: str | None = None,
    now: datetime,
    money: MoneyRules = PREPAID,
) -> payments.PaymentOutcome:
    """What the bot does on a successful_payment for this invoice."""
    charge = charge or charge_id()
    async with sessions() as db:
        return await payments.record_payment(
            db,
            user_id=user if user is not None else invoice.user_id,
            payload=invoice.payload,
            total_amount=amount if amount is not None else invoice.amount_minor,
            currency_code=currency or invoice.currency,
            telegram_charge_id=charge,
            provider_charge_id=f"prov-{charge}",
            rules=money,
            now=now,
        )


async def paid_booking(
    sessions: Sessions, charger_id: int, user: int, start: datetime, hours: float = 1.0
) -> Booking:
    """A booking paid by invoice and accepted by the merchant."""
    booking = await request(sessions, charger_id, user, start, hours)
    invoice = await open_invoice(sessions, booking.id)
    if invoice is not None:
        await pay(sessions, invoice, now=start - 29 * MINUTE)
    async with sessions() as db:
        return await bookings.accept(
            db, booking_id=booking.id, merchant_id=MERCHANT, now=start - 28 * MINUTE
        )


async def run_session(
    sessions: Sessions,
    booking: Booking,
    *,
    minutes: int,
    kwh: float | None = None,
    money: MoneyRules = PREPAID,
) -> Order:
    """A session from the window's start for ``minutes``, using ``kwh``."""
    rules = charging_rules(money)
    async with sessions() as db:
        started = await charging.begin_start(
            db, booking_id=booking.id, user_id=booking.user_id, rules=rules, now=booking.start_at
        )
        await charging.confirm_start(
            db, session_id=started.id, at=booking.start_at, energy_kwh=0.0 if kwh else None
        )
        order = await charging.finish(
            db,
            session_id=started.id,
            rules=rules,
            ended_at=booking.start_at + timedelta(minutes=minutes),
            end_kwh=kwh,
        )
    assert order is not None
    return order


async def balance(sessions: Sessions, account: ledger.AccountKey) -> int:
    async with sessions() as db:
        return await ledger.balance(db, account)


async def assert_sound(sessions: Sessions) -> None:
    async with sessions() as db:
        audit = await ledger.audit(db)
    assert audit.sound, audit


async def outbox_kinds(sessions: Sessions, chat_id: int) -> list[str]:
    async with sessions() as db:
        return list(
            (
                await db.scalars(
                    select(OutboxMessage.kind)
                    .where(OutboxMessage.chat_id == chat_id)
                    .order_by(OutboxMessage.id)
                )
            ).all()
        )


async def count_key(sessions: Sessions, key: str) -> int:
    async with sessions() as db:
        return (
            await db.scalar(
                select(func.count())
                .select_from(LedgerTransaction)
                .where(LedgerTransaction.key == key)
            )
        ) or 0
