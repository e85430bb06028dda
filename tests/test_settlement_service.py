"""Settling orders, no-shows and failed starts (services/settlement.py and its
call sites in services/charging.py), and orders paid at the shop, on SQLite and
PostgreSQL."""

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from models import (
    Booking,
    BookingStatus,
    Invoice,
    InvoicePurpose,
    InvoiceStatus,
    OrderPayment,
)
from services import bookings, charging, ledger, settlement
from services.errors import InvalidInput, NotAllowed
from services.money import PAY_AT_SHOP
from tests.support.money import (
    BASE,
    MERCHANT,
    MINUTE,
    PREPAID,
    World,
    assert_sound,
    balance,
    charging_rules,
    make_world,
    outbox_kinds,
    paid_booking,
    request,
    run_session,
)

USER = 2001
START = BASE + timedelta(hours=2)


@pytest.fixture
async def world(open_db) -> World:
    return await make_world(open_db, [USER])


async def test_an_order_is_paid_from_its_prepayment_and_the_rest_returns(open_db, world) -> None:
    booking = await paid_booking(open_db, world.per_hour, USER, START, hours=2)  # 12.00 held
    order = await run_session(open_db, booking, minutes=45)  # 45 min at 6.00/h = 4.50
    assert order.cost_minor == 450
    assert (order.payment, order.prepaid_minor) == (OrderPayment.PREPAID, 1200)
    assert (order.fee_minor, order.merchant_minor) == (45, 405)  # 10 %
    assert order.settled_at is not None
    assert await balance(open_db, ledger.hold(booking.id, "CNY")) == 0
    assert await balance(open_db, ledger.wallet(USER, "CNY")) == 750
    assert await balance(open_db, ledger.payable(MERCHANT, "CNY")) == 405
    assert await balance(open_db, ledger.fees("CNY")) == 45
    assert await balance(open_db, ledger.clearing("CNY")) == -1200
    await assert_sound(open_db)


async def test_the_fee_is_rounded_half_up_to_the_minor_unit(open_db, world) -> None:
    booking = await paid_booking(open_db, world.per_hour, USER, START, hours=2)
    order = await run_session(open_db, booking, minutes=15)  # 1.50: fee 0.15
    assert (order.cost_minor, order.fee_minor) == (150, 15)
    booking = await paid_booking(open_db, world.per_hour, USER, START + timedelta(hours=3), 2)
    order = await run_session(open_db, booking, minutes=5)  # 0.50: fee 0.05
    assert (order.cost_minor, order.fee_minor, order.merchant_minor) == (50, 5, 45)


async def test_a_session_past_its_prepayment_is_settled_from_the_wallet_and_a_top_up_owed(
    open_db, world
) -> None:
    booking = await paid_booking(open_db, world.per_kwh, USER, START, hours=1)  # 10.50 held
    assert booking.prepaid_minor == 1050
    order = await run_session(open_db, booking, minutes=60, kwh=10.0)  # 15.00: 4.50 over
    assert order.cost_minor == 1500
    assert await balance(open_db, ledger.wallet(USER, "CNY")) == -450
    assert await balance(open_db, ledger.payable(MERCHANT, "CNY")) == 1350
    assert await balance(open_db, ledger.fees("CNY")) == 150
    async with open_db() as db:
        invoice = (await db.scalars(select(Invoice).where(Invoice.order_id == order.id))).one()
    # the shortfall is under the minimum invoice: a top-up of the minimum
    assert (invoice.purpose, invoice.amount_minor, invoice.status) == (
        InvoicePurpose.TOPUP,
        1000,
        InvoiceStatus.OPEN,
    )
    assert (await outbox_kinds(open_db, USER)).count("invoice") == 2  # booking's, shortfall
    await assert_sound(open_db)


async def test_a_failed_start_returns_the_hold_and_a_later_start_pays_from_the_wallet(
    open_db, world
) -> None:
    booking = await paid_booking(open_db, world.per_hour, USER, START, hours=2)
    rules = charging_rules()
    async with open_db() as db:
        started = await charging.begin_start(
            db, booking_id=booking.id, user_id=USER, rules=rules, now=START
        )
        assert await charging.fail_start(db, session_id=started.id, why="no_confirm")
    assert await balance(open_db, ledger.hold(booking.id, "CNY")) == 0
    assert await balance(open_db, ledger.wallet(USER, "CNY")) == 1200
    async with open_db() as db:  # the booking stays usable; the retry works
        assert (await db.get(Booking, booking.id)).status == BookingStatus.ACCEPTED  # type: ignore[union-attr]
    order = await run_session(open_db, booking, minutes=30)  # 3.00, from the wallet
    assert order.prepaid_minor == 0
    assert await balance(open_db, ledger.wallet(USER, "CNY")) == 900
    assert await balance(open_db, ledger.payable(MERCHANT, "CNY")) == 270
    await assert_sound(open_db)


async def test_a_start_confirmed_too_late_returns_the_hold(open_db, world) -> None:
    booking = await paid_booking(open_db, world.per_hour, USER, START, hours=1)
    rules = charging_rules()
    async with open_db() as db:
        started = await charging.begin_start(
            db, booking_id=booking.id, user_id=USER, rules=rules, now=START
        )
        with pytest.raises(InvalidInput):
            await charging.confirm_start(
                db, session_id=started.id, at=booking.end_at + MINUTE, energy_kwh=None
            )
    assert await balance(open_db, ledger.hold(booking.id, "CNY")) == 0
    assert await balance(open_db, ledger.wallet(USER, "CNY")) == 1000  # the 10.00 top-up
    await assert_sound(open_db)


@pytest.mark.parametrize(("percent", "kept", "to_merchant"), [("0", 0, 0), ("50", 600, 540)])
async def test_a_no_show_keeps_its_fee_for_the_merchant_and_returns_the_rest(
    open_db, world, percent, kept, to_merchant
) -> None:
    booking = await paid_booking(open_db, world.per_hour, USER, START, hours=2)
    money = replace(PREPAID, no_show_fee_percent=Decimal(percent))
    async with open_db() as db:
        assert await charging.mark_no_shows(db, booking.end_at, money) == 1
        assert await charging.mark_no_shows(db, booking.end_at, money) == 0  # once
    assert await balance(open_db, ledger.hold(booking.id, "CNY")) == 0
    assert await balance(open_db, ledger.wallet(USER, "CNY")) == 1200 - kept
    assert await balance(open_db, ledger.payable(MERCHANT, "CNY")) == to_merchant
    assert await balance(open_db, ledger.fees("CNY")) == kept - to_merchant
    await assert_sound(open_db)


async def test_pay_at_shop_orders_book_the_fee_when_the_merchant_marks_them_paid(
    open_db, world
) -> None:
    booking = await request(open_db, world.per_hour, USER, START, hours=2, money=PAY_AT_SHOP)
    async with open_db() as db:
        await bookings.accept(
            db, booking_id=booking.id, merchant_id=MERCHANT, now=START - 20 * MINUTE
        )
    order = await run_session(open_db, booking, minutes=60, money=PAY_AT_SHOP)
    assert (order.payment, order.prepaid_minor, order.settled_at) == (
        OrderPayment.PAY_AT_SHOP,
        None,
        None,
    )
    assert (order.cost_minor, order.fee_minor, order.merchant_minor) == (600, 60, 540)
    assert await balance(open_db, ledger.fees("CNY")) == 0  # nothing moves at the order
    async with open_db() as db:
        with pytest.raises(NotAllowed):
            await settlement.mark_paid_at_shop(db, order_id=order.id, merchant_id=USER, now=START)
        marked = await settlement.mark_paid_at_shop(
            db, order_id=order.id, merchant_id=MERCHANT, now=START + timedelta(hours=2)
        )
        assert marked.payment == OrderPayment.PAID_AT_SHOP
        with pytest.raises(InvalidInput) as again:
            await settlement.mark_paid_at_shop(
                db, order_id=order.id, merchant_id=MERCHANT, now=START
            )
        assert again.value.key == "err.order_settled"
    # the merchant kept the whole 6.00 and owes the platform its 0.60
    assert await balance(open_db, ledger.payable(MERCHANT, "CNY")) == -60
    assert await balance(open_db, ledger.fees("CNY")) == 60
    assert await outbox_kinds(open_db, USER) == [
        "booking_accepted",
        "order",
        "order_paid_at_shop",
    ]
    await assert_sound(open_db)
