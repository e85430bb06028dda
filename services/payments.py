"""Paying for bookings in Telegram (prepaid mode: a payment provider is set).

At Confirm a booking is UNPAID; ``checkout`` estimates its prepayment and takes
it from the wallet at once when the wallet covers it (the merchant is asked
then), else owes the user an invoice for the rest, or, when the rest is under
the currency's minimum invoice, a wallet top-up of at least that minimum.
``pre_checkout`` checks a payment against the invoice row its payload points to
(never against an amount from the client); ``record_payment`` credits a
successful payment exactly once (the unique Telegram charge id) and pays the
booking from the wallet. A booking's hold goes back to the wallet whole when it
ends without a session (``release_hold``); unpaid bookings expire
(``expire_unpaid``).

Functions that say "in the caller's transaction" write nothing on their own and
are called inside the unit of work of the state change they belong to; the
others are one unit of work each (services.tx.transaction).

Ledger keys: ``payment:<telegram charge id>``, ``hold:booking:<id>``,
``release:booking:<id>:<why>``.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from sqlalchemy import and_, exists, select, update
from sqlalchemy.exc import IntegrityError

from models import (
    Booking,
    BookingStatus,
    Charger,
    Invoice,
    InvoicePurpose,
    InvoiceStatus,
    Payment,
)
from models.base import utcnow
from services import audit, cards, ledger, outbox
from services.cards import Subject
from services.deadlines import answer_by
from services.errors import InvalidInput, NotAllowed, NotFound
from services.money import TABLE, MoneyRules, currency, format_minor, topup_choices
from services.outbox import OutboxKind
from services.tx import Db, lock_rows, transaction

# a pre-checkout we approved keeps its booking payable this much longer: the
# provider may take a while (3-D Secure) after Telegram's 10 seconds
PRE_CHECKOUT_GRACE = timedelta(minutes=2)
TOPUP_VALID = timedelta(days=1)  # a top-up invoice that pays no booking
SHORTFALL_VALID = timedelta(days=7)  # a top-up owed after a session ran past its prepayment
MAX_PAYLOAD = 128  # Telegram's limit on an invoice payload (bytes)

# what a per-kWh booking is prepaid on when its charger has no rated power yet
# (listed before the wizard asked for it): typical ratings of each method, kW
DEFAULT_POWER_KW = {
    "ac_slow": Decimal(7),
    "dc_fast": Decimal(60),
    "socket": Decimal("2.2"),
    "usb": Decimal("0.1"),
    "other": Decimal("3.5"),
}

# Payment.outcome
BOOKING_PAID = "booking_paid"  # the payment (with the wallet) paid its booking
SHORT = "short"  # credited, but the booking still needs more: a new invoice is owed
BOOKING_GONE = "booking_gone"  # its booking was cancelled or expired meanwhile: kept in wallet
TOPUP = "topup"  # a wallet top-up
MISMATCH = "mismatch"  # amount, currency or payer differ from the invoice: kept in wallet
UNKNOWN = "unknown"  # no invoice has that payload: kept in the payer's wallet


class CheckoutState(StrEnum):
    PAID = "paid"  # held from the wallet; the merchant is asked
    INVOICE = "invoice"  # an invoice is owed (the outbox sends it)
    PAY_AT_SHOP = "pay_at_shop"  # no provider: the merchant is asked at once


@dataclass(frozen=True)
class InvoiceView:
    id: int
    user_id: int
    purpose: InvoicePurpose
    status: InvoiceStatus
    amount_minor: int
    currency: str
    payload: str
    expires_at: datetime
    booking_id: int | None
    order_id: int | None
    message_id: int | None = None  # where it was sent (None: not yet)

    @classmethod
    def of(cls, invoice: Invoice) -> "InvoiceView":
        return cls(
            invoice.id,
            invoice.user_id,
            invoice.purpose,
            invoice.status,
            invoice.amount_minor,
            invoice.currency,
            invoice.payload,
            invoice.expires_at,
            invoice.booking_id,
            invoice.order_id,
            invoice.message_id,
        )


@dataclass(frozen=True)
class Checkout:
    booking_id: int
    state: CheckoutState
    currency: str
    estimate_minor: int  # the prepayment the booking needs
    held_minor: int  # taken from the wallet for it (PAID)
    wallet_minor: int  # the wallet now
    due_minor: int  # what the wallet lacks (INVOICE)
    invoice: InvoiceView | None
    # a top-up invoice: the amounts a person may choose instead (minor units, ascending)
    choices_minor: tuple[int, ...] = ()


@dataclass(frozen=True)
class PaymentOutcome:
    payment_id: int
    duplicate: bool  # this charge was recorded before: nothing was credited now
    outcome: str  # BOOKING_PAID, SHORT, BOOKING_GONE, TOPUP, MISMATCH, UNKNOWN
    amount_minor: int
    currency: str
    wallet_minor: int
    invoice_id: int | None
    booking_id: int | None


@dataclass(frozen=True)
class BookingMoney:
    """What a booking's money did, for its messages and receipts."""

    booking_id: int
    currency: str
    prepaid_minor: int | None  # held when it was paid; None: not prepaid
    held_minor: int  # still held
    released_minor: int  # returned to the wallet (rejected, expired, cancelled, failed start)
    invoice: InvoiceView | None  # the open invoice it waits for (UNPAID)


# -- estimates ---------------------------------------------------------------------------


def prepayment_minor(booking: Booking, charger: Charger) -> int:
    """What a booking is prepaid: per hour, price × the window (as the estimate);
    per kWh, the charger's rated power × the window's hours × price. Half up."""
    minutes = Decimal(int((booking.end_at - booking.start_at).total_seconds() // 60))
    amount = Decimal(booking.price_minor) * minutes / 60
    if booking.price_unit == "kwh":
        rated = charger.power_kw
        amount *= Decimal(rated) if rated else DEFAULT_POWER_KW.get(charger.method, Decimal("3.5"))
    return int(amount.quantize(Decimal(1), ROUND_HALF_UP))


async def _accepts_walkups(db: Db, booking: Booking) -> bool:
    charger = await db.get(Charger, booking.charger_id)
    return charger is not None and charger.walkup_auto


async def _prepayment(db: Db, booking: Booking) -> int:
    charger = await db.get(Charger, booking.charger_id)
    assert charger is not None
    return prepayment_minor(booking, charger)


# -- checkout ----------------------------------------------------------------------------


async def checkout(db: Db, booking: Booking, rules: MoneyRules, now: datetime) -> Checkout:
    """In the caller's transaction (the request's): pay the UNPAID booking from the
    wallet, or owe the user an invoice for what the wallet lacks."""
    return await _pay_or_invoice(db, booking, rules, now)


async def _pay_or_invoice(db: Db, booking: Booking, rules: MoneyRules, now: datetime) -> Checkout:
    """The booking is locked (or new) and UNPAID."""
    estimate = await _prepayment(db, booking)
    code = booking.currency
    wallet_key, hold_key = ledger.wallet(booking.user_id, code), ledger.hold(booking.id, code)
    wallet = (await ledger.lock(db, [wallet_key, hold_key]))[wallet_key]
    if wallet >= estimate:
        # a walk-up on a charger that accepts them itself is accepted once paid; one
        # asked of its merchant keeps its short answer time, counted from the payment
        walkup_auto = booking.walkup and await _accepts_walkups(db, booking)
        paid_to = BookingStatus.ACCEPTED if walkup_auto else BookingStatus.REQUESTED
        if booking.walkup:
            respond_by = now + (booking.respond_by - booking.created_at)
        else:
            respond_by = answer_by(booking.start_at, now, rules.response_minutes)
        moved = await db.execute(
            update(Booking)
            .where(Booking.id == booking.id, Booking.status == BookingStatus.UNPAID)
            .values(
                status=paid_to,
                prepaid_minor=estimate,
                respond_by=respond_by,
                decided_at=now if walkup_auto else None,
            )
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise InvalidInput("err.pay_booking_gone")
        await ledger.post(
            db,
            kind="hold",
            key=f"hold:booking:{booking.id}",
            legs=[(wallet_key, -estimate), (hold_key, estimate)],
            booking_id=booking.id,
            actor_id=booking.user_id,
        )
        await _close_invoices(db, booking.id, InvoiceStatus.CANCELLED)
        audit.record(db, "booking", booking.id, "paid", booking.user_id, "unpaid", paid_to.value)
        if walkup_auto:  # the rider gets Start
            outbox.enqueue(db, booking.user_id, OutboxKind.BOOKING_ACCEPTED, booking_id=booking.id)
        else:
            outbox.enqueue(
                db, booking.merchant_id, OutboxKind.BOOKING_REQUEST, booking_id=booking.id
            )
        # the rider's "waiting for payment" card says paid now
        await cards.refresh(db, Subject.BOOKING, booking.id)
        await db.refresh(booking)
        return Checkout(
            booking.id, CheckoutState.PAID, code, estimate, estimate, wallet - estimate, 0, None
        )
    due = estimate - wallet
    row = currency(code)
    if due > row.max_invoice_minor:
        raise InvalidInput(
            "err.pay_too_much", max=format_minor(row.max_invoice_minor, code), currency=code
        )
    await _close_invoices(db, booking.id, InvoiceStatus.CANCELLED)  # the newest one counts
    small = due < row.min_invoice_minor
    invoice = _new_invoice(
        db,
        user_id=booking.user_id,
        purpose=InvoicePurpose.TOPUP if small else InvoicePurpose.BOOKING,
        amount=row.min_invoice_minor if small else due,
        code=code,
        expires_at=booking.pay_by or now + timedelta(minutes=rules.payment_minutes),
        booking_id=booking.id,
    )
    await db.flush()
    outbox.enqueue(db, booking.user_id, OutboxKind.INVOICE, invoice_id=invoice.id)
    return Checkout(
        booking.id,
        CheckoutState.INVOICE,
        code,
        estimate,
        0,
        wallet,
        due,
        InvoiceView.of(invoice),
        topup_choices(due, code) if small else (),
    )


def _new_invoice(
    db: Db,
    *,
    user_id: int,
    purpose: InvoicePurpose,
    amount: int,
    code: str,
    expires_at: datetime,
    booking_id: int | None = None,
    order_id: int | None = None,
) -> Invoice:
    invoice = Invoice(
        user_id=user_id,
        booking_id=booking_id,
        order_id=order_id,
        purpose=purpose,
        amount_minor=amount,
        currency=code,
        payload=secrets.token_urlsafe(24),  # 192 random bits, 32 characters
        status=InvoiceStatus.OPEN,
        created_at=utcnow(),
        expires_at=expires_at,
    )
    db.add(invoice)
    return invoice


async def owe_shortfall(
    db: Db, *, user_id: int, debt_minor: int, code: str, order_id: int, now: datetime
) -> int:
    """In the caller's transaction (the settlement's): the wallet went below zero
    (a session ran past its prepayment): owe the user a top-up invoice for the debt,
    at least the currency's minimum. Returns the invoice's id."""
    row = currency(code)
    invoice = _new_invoice(
        db,
        user_id=user_id,
        purpose=InvoicePurpose.TOPUP,
        amount=min(max(debt_minor, row.min_invoice_minor), row.max_invoice_minor),
        code=code,
        expires_at=now + SHORTFALL_VALID,
        order_id=order_id,
    )
    await db.flush()
    outbox.enqueue(db, user_id, OutboxKind.INVOICE, invoice_id=invoice.id)
    return invoice.id


async def _close_invoices(db: Db, booking_id: int, status: InvoiceStatus) -> None:
    await db.execute(
        update(Invoice)
        .where(Invoice.booking_id == booking_id, Invoice.status == InvoiceStatus.OPEN)
        .values(status=status)
    )


async def checkout_state(db: Db, *, booking_id: int, user_id: int, rules: MoneyRules) -> Checkout:
    """What the user's booking waits for now (e.g. to show its invoice again)."""
    booking = await db.get(Booking, booking_id, populate_existing=True)
    if booking is None:
        raise NotFound("err.booking_not_found")
    if booking.user_id != user_id:
        raise NotAllowed("err.not_your_booking")
    code = booking.currency
    wallet = await ledger.balance(db, ledger.wallet(user_id, code))
    if booking.status != BookingStatus.UNPAID:
        if booking.prepaid_minor is not None:
            paid = booking.prepaid_minor
            return Checkout(booking.id, CheckoutState.PAID, code, paid, paid, wallet, 0, None)
        if rules.prepaid:  # expired or cancelled before it was paid
            raise InvalidInput("err.pay_booking_gone")
        return Checkout(booking.id, CheckoutState.PAY_AT_SHOP, code, 0, 0, wallet, 0, None)
    estimate = await _prepayment(db, booking)
    invoice = await _open_invoice(db, booking.id)
    due = max(0, estimate - wallet)
    small = invoice is not None and invoice.purpose == InvoicePurpose.TOPUP
    return Checkout(
        booking.id,
        CheckoutState.INVOICE,
        code,
        estimate,
        0,
        wallet,
        due,
        InvoiceView.of(invoice) if invoice else None,
        topup_choices(due, code) if small else (),
    )


async def _open_invoice(db: Db, booking_id: int) -> Invoice | None:
    return (
        await db.scalars(
            select(Invoice)
            .where(Invoice.booking_id == booking_id, Invoice.status == InvoiceStatus.OPEN)
            .order_by(Invoice.id.desc())
            .limit(1)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()


async def topup(
    db: Db,
    *,
    user_id: int,
    amount_minor: int,
    currency_code: str,
    rules: MoneyRules,
    now: datetime,
    booking_id: int | None = None,
) -> InvoiceView:
    """One unit of work: a wallet top-up invoice (a quick choice or a typed amount),
    for the user's UNPAID booking when ``booking_id`` is given (it then replaces the
    booking's open invoice and is payable only while the booking waits)."""
    if not rules.prepaid:
        raise InvalidInput("err.payments_off")
    if currency_code not in TABLE:
        raise InvalidInput("err.currency", currencies=", ".join(TABLE))
    row = currency(currency_code)
    if not row.min_invoice_minor <= amount_minor <= row.max_invoice_minor:
        raise InvalidInput(
            "err.topup_range",
            min=format_minor(row.min_invoice_minor, currency_code),
            max=format_minor(row.max_invoice_minor, currency_code),
            currency=currency_code,
        )
    async with transaction(db):
        expires_at = now + TOPUP_VALID
        if booking_id is not None:
            booking = await _lock_booking(db, booking_id)
            if booking is None:
                raise NotFound("err.booking_not_found")
            if booking.user_id != user_id:
                raise NotAllowed("err.not_your_booking")
            if booking.status != BookingStatus.UNPAID or booking.currency != currency_code:
                raise InvalidInput("err.pay_booking_gone")
            await _close_invoices(db, booking_id, InvoiceStatus.CANCELLED)
            expires_at = booking.pay_by or expires_at
        invoice = _new_invoice(
            db,
            user_id=user_id,
            purpose=InvoicePurpose.TOPUP,
            amount=amount_minor,
            code=currency_code,
            expires_at=expires_at,
            booking_id=booking_id,
        )
        await db.flush()
        outbox.enqueue(db, user_id, OutboxKind.INVOICE, invoice_id=invoice.id)
        return InvoiceView.of(invoice)


async def record_invoice_message(db: Db, *, invoice_id: int, chat_id: int, message_id: int) -> None:
    """Remember where an invoice was sent, for later edits."""
    async with transaction(db):
        await db.execute(
            update(Invoice)
            .where(Invoice.id == invoice_id)
            .values(chat_id=chat_id, message_id=message_id)
        )


# -- the payment -------------------------------------------------------------------------


async def pre_checkout(
    db: Db,
    *,
    payload: str,
    user_id: int,
    total_amount: int,
    currency_code: str,
    now: datetime,
) -> InvoiceView:
    """One unit of work (fast: Telegram waits 10 seconds): may this payment go
    ahead? The invoice exists, is the payer's, open and unexpired, its amount and
    currency are the ones being paid, and its booking (if any) still waits for its
    payment. A refusal is a DomainError whose key the bot shows the payer."""
    async with transaction(db):
        invoice = await _invoice_by_payload(db, payload, lock=True)
        if invoice is None:
            raise NotFound("err.pay_unknown")
        if invoice.user_id != user_id:
            raise NotAllowed("err.pay_not_yours")
        if invoice.status != InvoiceStatus.OPEN:
            raise InvalidInput("err.pay_closed")
        if invoice.expires_at <= now:
            raise InvalidInput("err.pay_expired")
        if invoice.currency != currency_code or invoice.amount_minor != total_amount:
            raise InvalidInput(
                "err.pay_mismatch",
                amount=format_minor(invoice.amount_minor, invoice.currency),
                currency=invoice.currency,
            )
        if invoice.booking_id is not None:
            booking = await db.get(Booking, invoice.booking_id, populate_existing=True)
            if (
                booking is None
                or booking.status != BookingStatus.UNPAID
                or (booking.pay_by is not None and booking.pay_by <= now)
            ):
                raise InvalidInput("err.pay_booking_gone")
        invoice.pre_checkout_at = now
        return InvoiceView.of(invoice)


async def _invoice_by_payload(db: Db, payload: str, *, lock: bool) -> Invoice | None:
    if not payload or len(payload.encode()) > MAX_PAYLOAD:
        return None
    query = select(Invoice).where(Invoice.payload == payload)
    if lock:
        query = query.with_for_update()
    return (await db.scalars(query.execution_options(populate_existing=True))).one_or_none()


async def _lock_booking(db: Db, booking_id: int) -> Booking | None:
    """The booking, locked as services.bookings locks it: its charger's row first
    (deciders of one charger queue there), then its own."""
    charger_id = await db.scalar(select(Booking.charger_id).where(Booking.id == booking_id))
    if charger_id is None:
        return None
    await lock_rows(db, select(Charger.id).where(Charger.id == charger_id).with_for_update())
    await lock_rows(db, select(Booking.id).where(Booking.id == booking_id).with_for_update())
    return await db.get(Booking, booking_id, populate_existing=True)


async def _payment_of(db: Db, charge_id: str) -> Payment | None:
    return (
        await db.scalars(
            select(Payment)
            .where(Payment.telegram_payment_charge_id == charge_id)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()


async def _outcome(db: Db, payment: Payment, *, duplicate: bool) -> PaymentOutcome:
    invoice = await db.get(Invoice, payment.invoice_id) if payment.invoice_id else None
    wallet = await ledger.balance(db, ledger.wallet(payment.user_id, payment.currency))
    return PaymentOutcome(
        payment.id,
        duplicate,
        payment.outcome,
        payment.amount_minor,
        payment.currency,
        wallet,
        payment.invoice_id,
        invoice.booking_id if invoice else None,
    )


async def record_payment(
    db: Db,
    *,
    user_id: int,
    payload: str,
    total_amount: int,
    currency_code: str,
    telegram_charge_id: str,
    provider_charge_id: str,
    rules: MoneyRules,
    now: datetime,
) -> PaymentOutcome:
    """One unit of work: a successful_payment, credited exactly once.

    The money the provider took always reaches the payer's wallet (provider
    clearing → wallet), keyed by the Telegram charge id: a repeat of the update
    (redelivered, or seen by another instance) credits nothing and returns the
    first outcome. Then the invoice is marked paid and its booking, if it still
    waits, is paid from the wallet (the merchant is asked); a booking cancelled or
    expired meanwhile leaves the money in the wallet, and the payer is told.
    """
    if not telegram_charge_id or total_amount <= 0 or len(currency_code) != 3:
        raise InvalidInput("err.pay_unknown")
    async with transaction(db):
        first = await _payment_of(db, telegram_charge_id)
        if first is not None:
            return await _outcome(db, first, duplicate=True)
        invoice = await _invoice_by_payload(db, payload, lock=False)
        booking = None
        if invoice is not None and invoice.booking_id is not None:
            booking = await _lock_booking(db, invoice.booking_id)  # booking, then invoice
        if invoice is not None:
            invoice = await _invoice_by_payload(db, payload, lock=True)
            first = await _payment_of(db, telegram_charge_id)  # recorded while we waited
            if first is not None:
                return await _outcome(db, first, duplicate=True)
        payment = Payment(
            telegram_payment_charge_id=telegram_charge_id[:255],
            provider_payment_charge_id=provider_charge_id[:255],
            user_id=user_id,
            invoice_id=invoice.id if invoice else None,
            amount_minor=total_amount,
            currency=currency_code,
            outcome=UNKNOWN,
            received_at=now,
        )
        try:
            async with db.begin_nested():  # the unique charge id: another instance won
                db.add(payment)
                await db.flush()
        except IntegrityError:
            first = await _payment_of(db, telegram_charge_id)
            if first is None:
                raise
            return await _outcome(db, first, duplicate=True)
        accounts = [ledger.clearing(currency_code), ledger.wallet(user_id, currency_code)]
        if booking is not None:  # it may be paid from the wallet now
            accounts += [
                ledger.wallet(user_id, booking.currency),
                ledger.hold(booking.id, booking.currency),
            ]
        await ledger.lock(db, accounts)
        await ledger.post(
            db,
            kind="payment",
            key=f"payment:{telegram_charge_id}",
            legs=[
                (ledger.clearing(currency_code), -total_amount),
                (ledger.wallet(user_id, currency_code), total_amount),
            ],
            actor_id=user_id,
            memo=provider_charge_id[:255],
        )
        payment.outcome = await _apply(db, payment, invoice, booking, rules, now)
        outbox.enqueue(db, user_id, OutboxKind.PAYMENT_RECEIVED, payment_id=payment.id)
        await db.flush()
        return await _outcome(db, payment, duplicate=False)


async def _apply(
    db: Db,
    payment: Payment,
    invoice: Invoice | None,
    booking: Booking | None,
    rules: MoneyRules,
    now: datetime,
) -> str:
    """What the credited payment pays; returns its outcome."""
    if invoice is None:
        return UNKNOWN
    matches = (
        invoice.user_id == payment.user_id
        and invoice.currency == payment.currency
        and invoice.amount_minor == payment.amount_minor
    )
    if not matches:
        return MISMATCH
    if invoice.status == InvoiceStatus.OPEN or invoice.telegram_payment_charge_id is None:
        # also an invoice cancelled or expired meanwhile: it was paid after all
        invoice.status = InvoiceStatus.PAID
        invoice.paid_at = now
        invoice.telegram_payment_charge_id = payment.telegram_payment_charge_id
        invoice.provider_payment_charge_id = payment.provider_payment_charge_id
    if booking is None:
        return TOPUP
    if booking.status != BookingStatus.UNPAID or booking.user_id != payment.user_id:
        return BOOKING_GONE
    paid = await _pay_or_invoice(db, booking, rules, now)
    return BOOKING_PAID if paid.state == CheckoutState.PAID else SHORT


# -- holds -------------------------------------------------------------------------------


async def release_hold(db: Db, booking: Booking, why: str, actor_id: int | None = None) -> int:
    """In the caller's transaction (the booking's state change): the whole hold back
    to the wallet, and its open invoices cancelled. Returns what was released (0 in
    pay-at-shop mode, or when nothing is held). ``why`` names the event once per
    booking (rejected, expired, cancelled, unpaid, failed_start:<session id>)."""
    if booking.pay_by is None:  # booked at the shop: no hold, no invoice, no query
        return 0
    code = booking.currency
    hold_key, wallet_key = ledger.hold(booking.id, code), ledger.wallet(booking.user_id, code)
    held = (await ledger.lock(db, [hold_key, wallet_key]))[hold_key]
    if held:
        await ledger.post(
            db,
            kind="release",
            key=f"release:booking:{booking.id}:{why}",
            legs=[(hold_key, -held), (wallet_key, held)],
            booking_id=booking.id,
            actor_id=actor_id,
            memo=why,
        )
    await _close_invoices(db, booking.id, InvoiceStatus.CANCELLED)
    return held


async def expire_unpaid(db: Db, now: datetime) -> int:
    """Scheduler job: UNPAID bookings past pay_by expire (the user is told), each
    once, one unit of work each; a pre-checkout approved within the last
    PRE_CHECKOUT_GRACE keeps its booking a little longer. Stale top-up invoices
    expire too."""
    paying = exists().where(
        Invoice.booking_id == Booking.id,
        Invoice.status == InvoiceStatus.OPEN,
        Invoice.pre_checkout_at > now - PRE_CHECKOUT_GRACE,
    )
    due = (
        await db.scalars(
            select(Booking.id)
            .where(Booking.status == BookingStatus.UNPAID, Booking.pay_by <= now, ~paying)
            .limit(100)
        )
    ).all()
    expired = 0
    for booking_id in due:
        async with transaction(db):
            changed = await db.execute(
                update(Booking)
                .where(
                    Booking.id == booking_id,
                    Booking.status == BookingStatus.UNPAID,
                    Booking.pay_by <= now,
                    ~paying,
                )
                .values(status=BookingStatus.EXPIRED, decided_at=now)
            )
            if changed.rowcount != 1:  # type: ignore[attr-defined]
                continue
            booking = await db.get(Booking, booking_id, populate_existing=True)
            assert booking is not None
            audit.record(db, "booking", booking_id, "expired", None, "unpaid", "expired")
            await _close_invoices(db, booking_id, InvoiceStatus.EXPIRED)
            await release_hold(db, booking, "unpaid")  # nothing is held; kept for safety
            outbox.enqueue(
                db, booking.user_id, OutboxKind.BOOKING_PAYMENT_EXPIRED, booking_id=booking_id
            )
            await cards.refresh(db, Subject.BOOKING, booking_id)
            expired += 1
    async with transaction(db):
        await db.execute(
            update(Invoice)
            .where(
                and_(
                    Invoice.status == InvoiceStatus.OPEN,
                    Invoice.booking_id.is_(None),
                    Invoice.expires_at <= now,
                )
            )
            .values(status=InvoiceStatus.EXPIRED)
        )
    return expired


async def booking_money(db: Db, booking_id: int) -> BookingMoney:
    """What the booking's money did (for its messages): held, released, owed."""
    booking = await db.get(Booking, booking_id, populate_existing=True)
    if booking is None:
        raise NotFound("err.booking_not_found")
    hold_key = ledger.hold(booking.id, booking.currency)
    held = await ledger.balance(db, hold_key)
    released = -await ledger.moved(db, hold_key, kinds=("release",))
    invoice = (
        await _open_invoice(db, booking.id) if booking.status == BookingStatus.UNPAID else None
    )
    return BookingMoney(
        booking.id,
        booking.currency,
        booking.prepaid_minor,
        held,
        released,
        InvoiceView.of(invoice) if invoice else None,
    )


# -- reads for the bot's messages --------------------------------------------------------


@dataclass(frozen=True)
class InvoiceCard:
    """An invoice as the bot sends it: what it is for, and what else the payer may
    choose (a larger top-up)."""

    invoice: InvoiceView
    estimate_minor: int  # its booking's prepayment (0 without a booking)
    wallet_minor: int  # the payer's wallet now, in the invoice's currency
    due_minor: int  # what the wallet lacks for the booking (0 without one)
    # larger top-ups the payer may choose instead (a booking's small rest)
    choices_minor: tuple[int, ...] = ()


async def invoice_card(db: Db, invoice_id: int) -> InvoiceCard | None:
    """The invoice to send; None when it is no longer open (paid, replaced, expired):
    a message owed for it then has nothing to show."""
    invoice = await db.get(Invoice, invoice_id, populate_existing=True)
    if invoice is None or invoice.status != InvoiceStatus.OPEN:
        return None
    code = invoice.currency
    wallet = await ledger.balance(db, ledger.wallet(invoice.user_id, code))
    estimate = due = 0
    choices: tuple[int, ...] = ()
    if invoice.booking_id is not None:
        booking = await db.get(Booking, invoice.booking_id)
        assert booking is not None
        estimate = await _prepayment(db, booking)
        due = max(0, estimate - wallet)
        if invoice.purpose == InvoicePurpose.TOPUP:
            choices = tuple(c for c in topup_choices(due, code) if c > invoice.amount_minor)
    return InvoiceCard(InvoiceView.of(invoice), estimate, wallet, due, choices)


async def payment_outcome(db: Db, payment_id: int) -> PaymentOutcome:
    """What a recorded payment did (for the message that says so)."""
    payment = await db.get(Payment, payment_id, populate_existing=True)
    if payment is None:
        raise NotFound("err.pay_unknown")
    return await _outcome(db, payment, duplicate=False)
