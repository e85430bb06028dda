"""Settling an order, a no-show, and an order paid at the shop.

``settle`` runs in the transaction that makes the order (services.charging.finish),
``no_show`` in the one that marks a booking NO_SHOW; each posts one balanced
ledger transaction keyed by its cause (``settle:order:<id>``,
``no_show:booking:<id>``), so the money moves exactly when the state changes.

The platform's fee is PLATFORM_FEE_PERCENT of the cost, rounded half up to the
minor unit; the merchant's share is the rest. In pay-at-shop mode (the booking
was not prepaid) nothing moves at the order: the user pays the merchant, and
when the merchant marks the order paid (``mark_paid_at_shop``) the fee is booked
as owed by the merchant (merchant payable − fee, platform fees + fee).
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update

from models import Booking, Order, OrderPayment
from services import audit, ledger, outbox, payments
from services.errors import InvalidInput, NotAllowed, NotFound
from services.money import MoneyRules, percent_of
from services.outbox import OutboxKind
from services.tx import Db, transaction


@dataclass(frozen=True)
class Settlement:
    order_id: int
    payment: OrderPayment
    currency: str
    cost_minor: int
    prepaid_minor: int | None  # held for the booking when the order was made
    fee_minor: int
    merchant_minor: int
    # + returned to the wallet from the prepayment; − taken from the wallet beyond it
    wallet_change_minor: int
    wallet_minor: int | None  # the wallet after the settlement (None: pay at the shop)
    shortfall_invoice_id: int | None  # owed when the wallet went below zero


def split(order: Order, rules: MoneyRules) -> None:
    """The order's cost split into the platform's fee and the merchant's share
    (``settle`` does it too; called before the order is first written, it saves
    writing them in an UPDATE after)."""
    fee = percent_of(order.cost_minor, rules.platform_fee_percent)
    order.fee_minor, order.merchant_minor = fee, order.cost_minor - fee


async def settle(
    db: Db, order: Order, booking: Booking, rules: MoneyRules, now: datetime
) -> Settlement:
    """In the order's transaction: split the cost C into the platform's fee and the
    merchant's share, and, when the booking was prepaid, take C from its hold H:
    the rest of the hold to the wallet (C ≤ H), or the excess from the wallet
    (C > H, per kWh), which may go below zero; a top-up invoice for the shortfall
    (at least the currency's minimum) is then owed to the user."""
    code = order.currency
    cost = order.cost_minor
    split(order, rules)
    fee = order.fee_minor
    wallet_key = ledger.wallet(order.user_id, code)
    if booking.prepaid_minor is None:  # pay at the shop: nothing moves now
        order.payment = OrderPayment.PAY_AT_SHOP
        await db.flush()
        return Settlement(order.id, order.payment, code, cost, None, fee, cost - fee, 0, None, None)
    hold_key = ledger.hold(booking.id, code)
    payable_key, fees_key = ledger.payable(order.merchant_id, code), ledger.fees(code)
    held = (await ledger.lock(db, [hold_key, wallet_key, payable_key, fees_key]))[hold_key]
    order.payment = OrderPayment.PREPAID
    order.prepaid_minor = held
    order.settled_at = now
    await ledger.post(
        db,
        kind="settle",
        key=f"settle:order:{order.id}",
        legs=[
            (hold_key, -held),
            (wallet_key, held - cost),
            (payable_key, cost - fee),
            (fees_key, fee),
        ],
        booking_id=booking.id,
        order_id=order.id,
    )
    wallet = await ledger.balance(db, wallet_key)
    shortfall = None
    if wallet < 0:
        shortfall = await payments.owe_shortfall(
            db, user_id=order.user_id, debt_minor=-wallet, code=code, order_id=order.id, now=now
        )
    await db.flush()
    return Settlement(
        order.id,
        order.payment,
        code,
        cost,
        held,
        fee,
        cost - fee,
        held - cost,
        wallet,
        shortfall,
    )


@dataclass(frozen=True)
class NoShow:
    booking_id: int
    currency: str
    held_minor: int
    kept_minor: int  # NO_SHOW_FEE_PERCENT of the hold
    merchant_minor: int  # the merchant's part of what was kept
    fee_minor: int  # the platform's fee on what was kept
    returned_minor: int  # back to the wallet


async def no_show(db: Db, booking: Booking, rules: MoneyRules) -> NoShow:
    """In the NO_SHOW transaction: keep NO_SHOW_FEE_PERCENT of the hold for the
    merchant (less the platform's fee on it) and return the rest to the wallet."""
    code = booking.currency
    if booking.prepaid_minor is None:  # booked at the shop (or never paid): nothing held
        return NoShow(booking.id, code, 0, 0, 0, 0, 0)
    hold_key, wallet_key = ledger.hold(booking.id, code), ledger.wallet(booking.user_id, code)
    payable_key, fees_key = ledger.payable(booking.merchant_id, code), ledger.fees(code)
    held = (await ledger.lock(db, [hold_key, wallet_key, payable_key, fees_key]))[hold_key]
    kept = percent_of(held, rules.no_show_fee_percent)
    fee = percent_of(kept, rules.platform_fee_percent)
    await ledger.post(
        db,
        kind="no_show",
        key=f"no_show:booking:{booking.id}",
        legs=[
            (hold_key, -held),
            (wallet_key, held - kept),
            (payable_key, kept - fee),
            (fees_key, fee),
        ],
        booking_id=booking.id,
    )
    return NoShow(booking.id, code, held, kept, kept - fee, fee, held - kept)


async def mark_paid_at_shop(
    db: Db, *, order_id: int, merchant_id: int, now: datetime
) -> Settlement:
    """One unit of work: the merchant says the user paid at the shop. The fee
    agreed at the order is booked as owed by the merchant; a second press (or a
    prepaid order) changes nothing."""
    async with transaction(db):
        order = await db.get(Order, order_id, populate_existing=True)
        if order is None:
            raise NotFound("err.order_not_found")
        if order.merchant_id != merchant_id:
            raise NotAllowed("err.not_your_order")
        changed = await db.execute(
            update(Order)
            .where(Order.id == order_id, Order.payment == OrderPayment.PAY_AT_SHOP)
            .values(payment=OrderPayment.PAID_AT_SHOP, settled_at=now)
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            raise InvalidInput("err.order_settled", payment=order.payment.value)
        await ledger.post(
            db,
            kind="shop_fee",
            key=f"shop_fee:order:{order_id}",
            legs=[
                (ledger.payable(merchant_id, order.currency), -order.fee_minor),
                (ledger.fees(order.currency), order.fee_minor),
            ],
            booking_id=order.booking_id,
            order_id=order_id,
            actor_id=merchant_id,
        )
        audit.record(db, "order", order_id, "paid_at_shop", merchant_id, "pay_at_shop", "paid")
        outbox.enqueue(db, order.user_id, OutboxKind.ORDER_PAID_AT_SHOP, order_id=order_id)
        return Settlement(
            order.id,
            OrderPayment.PAID_AT_SHOP,
            order.currency,
            order.cost_minor,
            None,
            order.fee_minor,
            order.merchant_minor,
            0,
            None,
            None,
        )
