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


async def make_world(open_db: Sessions, users: list[int]) -> World:
    async with open_db() as db:
        db.add_all([User(id=i, first_name=f"u{i}") for i in [MERCHANT, *users]])
        await db.commit()
    draft = factories.listing(chargers=2)
    hourly, metered = draft.chargers
    hourly.price, hourly.price_unit = "6.00", "hour"
    metered.price, metered.price_unit, metered.power_kw = "1.50", "kwh", "7"
    for item in draft.chargers:
        item.hours = {str(d): [["00:00", "24:00"]] for d in range(7)}
    async with open_db() as db:
        revision = await listings.submit(
            db, merchant_id=MERCHANT, draft=draft, moderation_chat_id=-1
        )
        await listings.approve(db, revision_id=revision.id, admin_id=9, moderation_chat_id=-1)
        ids = (await db.scalars(select(Charger.id).order_by(Charger.position))).all()
        await db.execute(delete(OutboxMessage))  # the listing's own messages: not ours
        await db.commit()
    return World(per_hour=ids[0], per_kwh=ids[1])


async def add_users(open_db: Sessions, *ids: int) -> None:
    async with open_db() as db:
        db.add_all([User(id=i, first_name=f"u{i}") for i in ids])
        await db.commit()


async def request(
    open_db: Sessions,
    charger_id: int,
    user: int,
    start: datetime,
    hours: float = 1.0,
    *,
    money: MoneyRules = PREPAID,
    now: datetime | None = None,
) -> Booking:
    async with open_db() as db:
        made = await bookings.request(
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
    return await booking_row(open_db, made.id)


async def booking_row(open_db: Sessions, booking_id: int) -> Booking:
    """The booking's row as it is now (the services hand out plain values; the
    money tests look at the columns they do not show, such as pay_by)."""
    async with open_db() as db:
        found = await db.get(Booking, booking_id)
    assert found is not None
    return found


async def open_invoice(open_db: Sessions, booking_id: int) -> Invoice | None:
    async with open_db() as db:
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
    open_db: Sessions,
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
    async with open_db() as db:
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
    open_db: Sessions, charger_id: int, user: int, start: datetime, hours: float = 1.0
) -> Booking:
    """A booking paid by invoice and accepted by the merchant."""
    booking = await request(open_db, charger_id, user, start, hours)
    invoice = await open_invoice(open_db, booking.id)
    if invoice is not None:
        await pay(open_db, invoice, now=start - 29 * MINUTE)
    async with open_db() as db:
        await bookings.accept(
            db, booking_id=booking.id, merchant_id=MERCHANT, now=start - 28 * MINUTE
        )
    return await booking_row(open_db, booking.id)


async def run_session(
    open_db: Sessions,
    booking: Booking,
    *,
    minutes: int,
    kwh: float | None = None,
    money: MoneyRules = PREPAID,
) -> Order:
    """A session from the window's start for ``minutes``, using ``kwh``."""
    rules = charging_rules(money)
    async with open_db() as db:
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


async def balance(open_db: Sessions, account: ledger.AccountKey) -> int:
    async with open_db() as db:
        return await ledger.balance(db, account)


async def assert_sound(open_db: Sessions) -> None:
    async with open_db() as db:
        audit = await ledger.audit(db)
    assert audit.sound, audit


async def outbox_kinds(open_db: Sessions, chat_id: int) -> list[str]:
    async with open_db() as db:
        return list(
            (
                await db.scalars(
                    select(OutboxMessage.kind)
                    .where(OutboxMessage.chat_id == chat_id)
                    .order_by(OutboxMessage.id)
                )
            ).all()
        )


async def count_key(open_db: Sessions, key: str) -> int:
    async with open_db() as db:
        return (
            await db.scalar(
                select(func.count())
                .select_from(LedgerTransaction)
                .where(LedgerTransaction.key == key)
            )
        ) or 0
