"""Payouts: an admin records money paid to a merchant outside the bot (a bank
transfer), with its reference; the merchant's payable goes down by it (merchant
payable → provider clearing) and the merchant is told."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from models import Payout
from services import audit, ledger, outbox
from services.errors import InvalidInput, NotFound
from services.money import TABLE, format_minor, parse_amount
from services.outbox import OutboxKind
from services.text import clean
from services.tx import Db, transaction

REFERENCE_MAX = 128


@dataclass(frozen=True)
class PayoutView:
    id: int
    merchant_id: int
    amount_minor: int
    currency: str
    reference: str
    admin_id: int
    created_at: datetime
    payable_minor: int  # what the platform still owes the merchant after it
    repeat: bool = False  # the same command recorded before: nothing was recorded now


def _view(payout: Payout, payable: int, repeat: bool = False) -> PayoutView:
    return PayoutView(
        payout.id,
        payout.merchant_id,
        payout.amount_minor,
        payout.currency,
        payout.reference,
        payout.admin_id,
        payout.created_at,
        payable,
        repeat,
    )


async def record_payout(
    db: Db,
    *,
    admin_id: int,
    merchant_id: int,
    amount_minor: int,
    currency_code: str,
    reference: str,
    now: datetime,
    key: str | None = None,
) -> PayoutView:
    """One unit of work: record a payout. ``key`` names the admin's command (chat
    and message id), so a repeated delivery records it once. Refused: a currency
    we do not have, a non-positive amount, more than the merchant is owed."""
    reference = clean(reference, max_len=REFERENCE_MAX)
    if currency_code not in TABLE:
        raise InvalidInput("err.currency", currencies=", ".join(TABLE))
    if amount_minor <= 0:
        raise InvalidInput("err.amount", currency=currency_code)
    async with transaction(db):
        payable_key = ledger.payable(merchant_id, currency_code)
        if key is not None:
            first = (await db.scalars(select(Payout).where(Payout.key == key))).one_or_none()
            if first is not None:
                return _view(first, await ledger.balance(db, payable_key), repeat=True)
        clearing_key = ledger.clearing(currency_code)
        owed = (await ledger.lock(db, [payable_key, clearing_key]))[payable_key]
        if amount_minor > owed:
            raise InvalidInput(
                "err.payout_too_much",
                owed=format_minor(max(owed, 0), currency_code),
                currency=currency_code,
            )
        payout = Payout(
            merchant_id=merchant_id,
            amount_minor=amount_minor,
            currency=currency_code,
            reference=reference,
            admin_id=admin_id,
            created_at=now,
            key=key,
        )
        try:
            async with db.begin_nested():
                db.add(payout)
                await db.flush()
        except IntegrityError:  # the same command, recorded by another instance
            first = (await db.scalars(select(Payout).where(Payout.key == key))).one()
            return _view(first, await ledger.balance(db, payable_key), repeat=True)
        await ledger.post(
            db,
            kind="payout",
            key=f"payout:{payout.id}",
            legs=[(payable_key, -amount_minor), (clearing_key, amount_minor)],
            actor_id=admin_id,
            memo=reference,
        )
        audit.record(db, "payout", payout.id, "create", admin_id, None, "paid")
        outbox.enqueue(db, merchant_id, OutboxKind.PAYOUT_RECORDED, payout_id=payout.id)
        return _view(payout, owed - amount_minor)


async def payouts_of(db: Db, merchant_id: int, *, limit: int = 10) -> list[PayoutView]:
    """The merchant's latest payouts, newest first (payable: the balance now)."""
    rows = (
        await db.scalars(
            select(Payout)
            .where(Payout.merchant_id == merchant_id)
            .order_by(Payout.id.desc())
            .limit(limit)
        )
    ).all()
    now_owed: dict[str, int] = {}
    for payout in rows:
        if payout.currency not in now_owed:
            now_owed[payout.currency] = await ledger.balance(
                db, ledger.payable(merchant_id, payout.currency)
            )
    return [_view(p, now_owed[p.currency]) for p in rows]


async def payout_view(db: Db, payout_id: int) -> PayoutView:
    """One payout (for the message that tells its merchant)."""
    payout = await db.get(Payout, payout_id)
    if payout is None:
        raise NotFound("err.payout_not_found")
    owed = await ledger.balance(db, ledger.payable(payout.merchant_id, payout.currency))
    return _view(payout, owed)


async def owed(db: Db, merchant_id: int, currency_code: str) -> int:
    """What the platform owes the merchant now, in that currency."""
    return await ledger.balance(db, ledger.payable(merchant_id, currency_code))


@dataclass(frozen=True)
class PayoutCommand:
    """``/payout <merchant id or @username> <amount> <reference>`` as typed."""

    merchant: int | None  # a numeric id
    username: str | None  # or an @username, to look up
    amount_minor: int
    reference: str


def parse_payout(args: str | None, currency_code: str) -> PayoutCommand:
    """The command's arguments; anything else is refused with its usage."""
    parts = (args or "").split(maxsplit=2)
    if len(parts) != 3:
        raise InvalidInput("err.payout_usage")
    who, amount, reference = parts
    amount_minor = parse_amount(amount, currency_code)
    reference = clean(reference, max_len=REFERENCE_MAX)
    if who.isdigit():
        return PayoutCommand(int(who), None, amount_minor, reference)
    if who.startswith("@") and len(who) > 1:
        return PayoutCommand(None, who[1:], amount_minor, reference)
    raise InvalidInput("err.payout_usage")
