"""Paying for bookings (services/payments.py and its call sites in
services/bookings.py), on SQLite and PostgreSQL: checkout at Confirm, the
pre-checkout check, a successful payment credited exactly once, top-ups, the
hold released when a booking ends without a session, unpaid bookings expiring,
and pay-at-shop mode left as it was."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models import (
    AuditEntry,
    Booking,
    BookingStatus,
    Charger,
    Invoice,
    InvoicePurpose,
    InvoiceStatus,
    LedgerEntry,
    Payment,
    User,
)
from models.db import create_engine, create_session_factory
from services import bookings, ledger, payments, payouts
from services import wallet as wallet_service
from services.errors import DomainError, InvalidInput, NotAllowed, NotFound
from services.money import PAY_AT_SHOP
from services.payments import BOOKING_GONE, BOOKING_PAID, MISMATCH, SHORT, TOPUP, CheckoutState
from tests.support.money import (
    BASE,
    MERCHANT,
    MINUTE,
    PREPAID,
    World,
    assert_sound,
    balance,
    charge_id,
    count_key,
    make_world,
    open_invoice,
    outbox_kinds,
    pay,
    request,
)

USER, OTHER = 2001, 2002
START = BASE + timedelta(hours=2)  # 11:00
ASKED = START - 30 * MINUTE


@pytest.fixture
async def world(open_db) -> World:
    return await make_world(open_db, [USER, OTHER])


async def booking_row(open_db, booking_id: int) -> Booking:
    async with open_db() as db:
        found = await db.get(Booking, booking_id)
    assert found is not None
    return found


async def pre_checkout(open_db, invoice: Invoice, **overrides):
    values = {
        "payload": invoice.payload,
        "user_id": invoice.user_id,
        "total_amount": invoice.amount_minor,
        "currency_code": invoice.currency,
        "now": ASKED + MINUTE,
    } | overrides
    async with open_db() as db:
        return await payments.pre_checkout(db, **values)


# -- checkout ----------------------------------------------------------------------------


async def test_a_booking_the_wallet_cannot_pay_waits_for_an_invoice_of_what_it_lacks(
    open_db, world
) -> None:
    booking = await request(open_db, world.per_hour, USER, START, hours=2)  # 12.00 CNY
    assert booking.status == BookingStatus.UNPAID
    assert booking.pay_by == ASKED + timedelta(minutes=10)
    invoice = await open_invoice(open_db, booking.id)
    assert invoice is not None
    assert (invoice.purpose, invoice.amount_minor, invoice.currency) == (
        InvoicePurpose.BOOKING,
        1200,
        "CNY",
    )
    assert invoice.expires_at == booking.pay_by
    assert len(invoice.payload) >= 32  # random, unguessable
    # the merchant is not asked before the booking is paid; the user is owed the invoice
    assert await outbox_kinds(open_db, MERCHANT) == []
    assert await outbox_kinds(open_db, USER) == ["invoice"]
    async with open_db() as db:
        state = await payments.checkout_state(
            db, booking_id=booking.id, user_id=USER, rules=PREPAID
        )
    assert (state.state, state.estimate_minor, state.due_minor) == (
        CheckoutState.INVOICE,
        1200,
        1200,
    )
    assert state.invoice is not None and state.invoice.id == invoice.id


async def test_per_kwh_prepayment_is_rated_power_times_hours_times_price(open_db, world) -> None:
    booking = await request(open_db, world.per_kwh, USER, START, hours=1)
    invoice = await open_invoice(open_db, booking.id)
    assert invoice is not None
    assert invoice.amount_minor == 1050  # 7 kW × 1 h × 1.50 CNY/kWh


async def test_a_small_amount_is_a_top_up_of_at_least_the_minimum_then_paid_from_the_wallet(
    open_db, world
) -> None:
    booking = await request(open_db, world.per_hour, USER, START, hours=1)  # 6.00 < 10.00
    invoice = await open_invoice(open_db, booking.id)
    assert invoice is not None
    assert (invoice.purpose, invoice.amount_minor) == (InvoicePurpose.TOPUP, 1000)
    async with open_db() as db:
        state = await payments.checkout_state(
            db, booking_id=booking.id, user_id=USER, rules=PREPAID
        )
    assert state.choices_minor == (1000, 2000, 5000, 10000)  # the minimum, then 20/50/100
    outcome = await pay(open_db, invoice, now=ASKED + MINUTE)
    assert outcome.outcome == BOOKING_PAID
    assert outcome.wallet_minor == 400  # 10.00 in, 6.00 held
    paid = await booking_row(open_db, booking.id)
    assert (paid.status, paid.prepaid_minor) == (BookingStatus.REQUESTED, 600)
    assert await balance(open_db, ledger.hold(booking.id, "CNY")) == 600
    assert await outbox_kinds(open_db, MERCHANT) == ["booking_request"]
    await assert_sound(open_db)


async def test_a_wallet_that_covers_the_booking_pays_it_at_once(open_db, world) -> None:
    first = await request(open_db, world.per_hour, USER, START, hours=1)
    invoice = await open_invoice(open_db, first.id)
    assert invoice is not None
    async with open_db() as db:  # a larger top-up instead of the minimum
        bigger = await payments.topup(
            db,
            user_id=USER,
            amount_minor=5000,
            currency_code="CNY",
            rules=PREPAID,
            now=ASKED,
            booking_id=first.id,
        )
    assert (await open_invoice(open_db, first.id)).id == bigger.id  # type: ignore[union-attr]
    async with open_db() as db:  # the replaced invoice can no longer be paid
        old = await db.get(Invoice, invoice.id)
    assert old is not None and old.status == InvoiceStatus.CANCELLED
    with pytest.raises(InvalidInput) as refused:
        await pre_checkout(open_db, invoice)
    assert refused.value.key == "err.pay_closed"
    async with open_db() as db:
        bigger_row = await db.get(Invoice, bigger.id)
    await pay(open_db, bigger_row, now=ASKED + MINUTE)  # type: ignore[arg-type]
    assert await balance(open_db, ledger.wallet(USER, "CNY")) == 4400
    # the next booking is paid from the wallet at Confirm: no invoice, the merchant asked
    second = await request(open_db, world.per_hour, USER, START + timedelta(hours=3), hours=2)
    assert second.status == BookingStatus.REQUESTED
    assert second.prepaid_minor == 1200
    assert await open_invoice(open_db, second.id) is None
    assert await balance(open_db, ledger.wallet(USER, "CNY")) == 3200
    assert (await outbox_kinds(open_db, MERCHANT)).count("booking_request") == 2
    await assert_sound(open_db)


async def test_a_booking_beyond_the_largest_invoice_is_refused_and_nothing_stays(
    open_db, world
) -> None:
    async with open_db() as db:
        charger = await db.get(Charger, world.per_hour)
        assert charger is not None
        charger.price_minor = 200_000  # 2,000 CNY/h × 24 h > 30,000 CNY
        await db.commit()
    with pytest.raises(InvalidInput) as refused:
        await request(open_db, world.per_hour, USER, START, hours=24)
    assert refused.value.key == "err.pay_too_much"
    async with open_db() as db:
        assert await db.scalar(select(func.count()).select_from(Booking)) == 0


# -- pre-checkout ------------------------------------------------------------------------


async def test_pre_checkout_checks_the_row_the_payload_points_to(open_db, world) -> None:
    booking = await request(open_db, world.per_hour, USER, START, hours=2)
    invoice = await open_invoice(open_db, booking.id)
    assert invoice is not None
    view = await pre_checkout(open_db, invoice)
    assert view.id == invoice.id
    refusals = {
        "err.pay_unknown": {"payload": "forged"},
        "err.pay_not_yours": {"user_id": OTHER},
        "err.pay_mismatch": {"total_amount": 1},
        "err.pay_expired": {"now": booking.pay_by},
    }
    for key, change in refusals.items():
        with pytest.raises(DomainError) as refused:
            await pre_checkout(open_db, invoice, **change)
        assert refused.value.key == key, change
    with pytest.raises(InvalidInput) as refused:
        await pre_checkout(open_db, invoice, currency_code="USD")
    assert refused.value.key == "err.pay_mismatch"
    assert refused.value.params == {"amount": "12.00", "currency": "CNY"}
    async with open_db() as db:
        await bookings.cancel(db, booking_id=booking.id, user_id=USER, now=ASKED)
    with pytest.raises(InvalidInput) as refused:  # its invoice closed with it
        await pre_checkout(open_db, invoice)
    assert refused.value.key == "err.pay_closed"


async def test_a_cancelled_unpaid_booking_tells_the_merchant_nothing(open_db, world) -> None:
    booking = await request(open_db, world.per_hour, USER, START, hours=2)
    async with open_db() as db:
        await bookings.cancel(db, booking_id=booking.id, user_id=USER, now=ASKED)
    assert await outbox_kinds(open_db, MERCHANT) == []
    invoice = await open_invoice(open_db, booking.id)
    assert invoice is None


# -- the payment -------------------------------------------------------------------------


async def test_a_payment_pays_its_booking_once_and_asks_the_merchant(open_db, world) -> None:
    booking = await request(open_db, world.per_hour, USER, START, hours=2)
    invoice = await open_invoice(open_db, booking.id)
    assert invoice is not None
    paid_at = ASKED + 3 * MINUTE
    charge = charge_id()
    outcome = await pay(open_db, invoice, charge=charge, now=paid_at)
    assert (outcome.outcome, outcome.duplicate, outcome.amount_minor) == (BOOKING_PAID, False, 1200)
    assert outcome.booking_id == booking.id and outcome.wallet_minor == 0
    paid = await booking_row(open_db, booking.id)
    assert paid.status == BookingStatus.REQUESTED
    assert paid.respond_by == paid_at + timedelta(minutes=15)  # the answer time runs from now
    async with open_db() as db:
        row = await db.get(Invoice, invoice.id)
    assert row is not None
    assert (row.status, row.telegram_payment_charge_id) == (InvoiceStatus.PAID, charge)
    # the same update again (Telegram redelivers it): nothing more is credited
    again = await pay(open_db, invoice, charge=charge, now=paid_at + MINUTE)
    assert again.duplicate and again.payment_id == outcome.payment_id
    assert again.outcome == BOOKING_PAID
    assert await count_key(open_db, f"payment:{charge}") == 1
    assert await balance(open_db, ledger.clearing("CNY")) == -1200
    assert await outbox_kinds(open_db, MERCHANT) == ["booking_request"]
    assert await outbox_kinds(open_db, USER) == ["invoice", "payment_received"]
    async with open_db() as db:
        audits = (
            await db.scalars(
                select(AuditEntry.action).where(
                    AuditEntry.entity == "booking", AuditEntry.entity_id == booking.id
                )
            )
        ).all()
    assert list(audits) == ["request", "paid"]
    await assert_sound(open_db)


async def test_one_payment_recorded_by_two_instances_at_once_is_credited_once(
    database_url, open_db, world
) -> None:
    booking = await request(open_db, world.per_hour, USER, START, hours=2)
    invoice = await open_invoice(open_db, booking.id)
    assert invoice is not None
    other = create_engine(database_url)  # another instance: its own pool
    try:
        other_sessions = create_session_factory(other)
        charge = charge_id()
        outcomes = await asyncio.gather(
            pay(open_db, invoice, charge=charge, now=ASKED + MINUTE),
            pay(other_sessions, invoice, charge=charge, now=ASKED + MINUTE),
        )
    finally:
        await other.dispose()
    assert sorted(o.duplicate for o in outcomes) == [False, True]
    assert {o.payment_id for o in outcomes} == {outcomes[0].payment_id}
    assert await count_key(open_db, f"payment:{charge}") == 1
    assert await balance(open_db, ledger.hold(booking.id, "CNY")) == 1200
    assert await balance(open_db, ledger.wallet(USER, "CNY")) == 0
    assert await outbox_kinds(open_db, MERCHANT) == ["booking_request"]
    await assert_sound(open_db)


async def test_a_payment_for_a_booking_cancelled_meanwhile_stays_in_the_wallet(
    open_db, world
) -> None:
    booking = await request(open_db, world.per_hour, USER, START, hours=2)
    invoice = await open_invoice(open_db, booking.id)
    assert invoice is not None
    await pre_checkout(open_db, invoice)  # approved, then the user cancels
    async with open_db() as db:
        await bookings.cancel(db, booking_id=booking.id, user_id=USER, now=ASKED)
    outcome = await pay(open_db, invoice, now=ASKED + MINUTE)  # it slipped through
    assert outcome.outcome == BOOKING_GONE
    assert outcome.wallet_minor == 1200
    assert (await booking_row(open_db, booking.id)).status == BookingStatus.CANCELLED
    async with open_db() as db:  # it was paid after all: the invoice says so
        row = await db.get(Invoice, invoice.id)
    assert row is not None and row.status == InvoiceStatus.PAID
    assert await outbox_kinds(open_db, USER) == ["invoice", "payment_received"]
    assert await outbox_kinds(open_db, MERCHANT) == []
    await assert_sound(open_db)


async def test_a_payment_that_does_not_match_its_invoice_is_kept_not_applied(
    open_db, world
) -> None:
    booking = await request(open_db, world.per_hour, USER, START, hours=2)
    invoice = await open_invoice(open_db, booking.id)
    assert invoice is not None
    odd = await pay(open_db, invoice, amount=700, now=ASKED + MINUTE)
    assert (odd.outcome, odd.wallet_minor) == (MISMATCH, 700)
    assert (await booking_row(open_db, booking.id)).status == BookingStatus.UNPAID
    # someone else paying the user's invoice (a forwarded one): their wallet, not the booking
    stranger = await pay(open_db, invoice, user=OTHER, now=ASKED + MINUTE)
    assert stranger.outcome == MISMATCH
    assert await balance(open_db, ledger.wallet(OTHER, "CNY")) == 1200
    assert (await booking_row(open_db, booking.id)).status == BookingStatus.UNPAID
    # an unknown payload: the money still reaches the payer's wallet
    async with open_db() as db:
        lost = await payments.record_payment(
            db,
            user_id=USER,
            payload="nothing-of-ours",
            total_amount=300,
            currency_code="CNY",
            telegram_charge_id=charge_id(),
            provider_charge_id="p",
            rules=PREPAID,
            now=ASKED,
        )
    assert lost.outcome == payments.UNKNOWN and lost.wallet_minor == 1000
    await assert_sound(open_db)


async def test_a_payment_short_of_the_booking_owes_a_new_invoice(open_db, world) -> None:
    booking = await request(open_db, world.per_hour, USER, START, hours=2)
    invoice = await open_invoice(open_db, booking.id)
    assert invoice is not None
    async with open_db() as db:  # the wallet went below zero meanwhile (an earlier session)
        await ledger.post(
            db,
            kind="test",
            key="test:debt",
            legs=[(ledger.wallet(USER, "CNY"), -300), (ledger.payable(MERCHANT, "CNY"), 300)],
        )
        await db.commit()
    outcome = await pay(open_db, invoice, now=ASKED + MINUTE)
    assert (outcome.outcome, outcome.wallet_minor) == (SHORT, 900)
    fresh = await open_invoice(open_db, booking.id)
    assert fresh is not None and fresh.id != invoice.id
    assert (fresh.purpose, fresh.amount_minor) == (InvoicePurpose.TOPUP, 1000)  # 3.00 < minimum
    await pay(open_db, fresh, now=ASKED + 2 * MINUTE)
    assert (await booking_row(open_db, booking.id)).status == BookingStatus.REQUESTED
    assert await balance(open_db, ledger.wallet(USER, "CNY")) == 700
    await assert_sound(open_db)


async def test_a_plain_top_up_and_its_bounds(open_db, world) -> None:
    async with open_db() as db:
        for amount in (999, 3_000_001):
            with pytest.raises(InvalidInput) as refused:
                await payments.topup(
                    db,
                    user_id=USER,
                    amount_minor=amount,
                    currency_code="CNY",
                    rules=PREPAID,
                    now=ASKED,
                )
            assert refused.value.key == "err.topup_range"
            assert refused.value.params["min"] == "10.00"
        with pytest.raises(InvalidInput) as off:
            await payments.topup(
                db,
                user_id=USER,
                amount_minor=2000,
                currency_code="CNY",
                rules=PAY_AT_SHOP,
                now=ASKED,
            )
        assert off.value.key == "err.payments_off"
        view = await payments.topup(
            db, user_id=USER, amount_minor=2000, currency_code="CNY", rules=PREPAID, now=ASKED
        )
        invoice = await db.get(Invoice, view.id)
    assert invoice is not None and invoice.booking_id is None
    outcome = await pay(open_db, invoice, now=ASKED)
    assert (outcome.outcome, outcome.wallet_minor) == (TOPUP, 2000)
    async with open_db() as db:  # someone else's booking cannot be topped up for
        booking = await request(open_db, world.per_hour, OTHER, START, hours=2)
        with pytest.raises(NotAllowed):
            await payments.topup(
                db,
                user_id=USER,
                amount_minor=2000,
                currency_code="CNY",
                rules=PREPAID,
                now=ASKED,
                booking_id=booking.id,
            )


# -- holds released, unpaid bookings expiring --------------------------------------------


async def paid(open_db, world, start=START, hours=2.0) -> Booking:
    booking = await request(open_db, world.per_hour, USER, start, hours=hours)
    invoice = await open_invoice(open_db, booking.id)
    assert invoice is not None
    await pay(open_db, invoice, now=start - 29 * MINUTE)
    return await booking_row(open_db, booking.id)


@pytest.mark.parametrize("ending", ["rejected", "expired", "cancelled", "cancelled_accepted"])
async def test_a_booking_that_ends_without_a_session_returns_its_hold_to_the_wallet(
    open_db, world, ending
) -> None:
    booking = await paid(open_db, world)
    assert await balance(open_db, ledger.hold(booking.id, "CNY")) == 1200
    async with open_db() as db:
        if ending == "rejected":
            await bookings.reject(db, booking_id=booking.id, merchant_id=MERCHANT, reason="busy")
        elif ending == "expired":
            assert await bookings.expire_due(db, now=booking.respond_by) == 1
        elif ending == "cancelled":
            await bookings.cancel(db, booking_id=booking.id, user_id=USER, now=ASKED)
        else:
            await bookings.accept(db, booking_id=booking.id, merchant_id=MERCHANT, now=ASKED)
            await bookings.cancel(db, booking_id=booking.id, user_id=USER, now=ASKED)
    assert await balance(open_db, ledger.hold(booking.id, "CNY")) == 0
    assert await balance(open_db, ledger.wallet(USER, "CNY")) == 1200
    async with open_db() as db:
        money = await payments.booking_money(db, booking.id)
    assert (money.prepaid_minor, money.held_minor, money.released_minor) == (1200, 0, 1200)
    await assert_sound(open_db)


async def test_an_unpaid_booking_expires_after_pay_by_and_says_so(open_db, world) -> None:
    booking = await request(open_db, world.per_hour, USER, START, hours=2)
    invoice = await open_invoice(open_db, booking.id)
    assert invoice is not None and booking.pay_by is not None
    async with open_db() as db:
        assert await payments.expire_unpaid(db, booking.pay_by - MINUTE) == 0
        # a payment approved a moment before pay_by keeps it a little longer
        await payments.pre_checkout(
            db,
            payload=invoice.payload,
            user_id=USER,
            total_amount=invoice.amount_minor,
            currency_code="CNY",
            now=booking.pay_by - MINUTE,
        )
        assert await payments.expire_unpaid(db, booking.pay_by) == 0
        later = booking.pay_by + payments.PRE_CHECKOUT_GRACE
        assert await payments.expire_unpaid(db, later) == 1
        assert await payments.expire_unpaid(db, later) == 0  # once
    expired = await booking_row(open_db, booking.id)
    assert expired.status == BookingStatus.EXPIRED
    async with open_db() as db:
        row = await db.get(Invoice, invoice.id)
    assert row is not None and row.status == InvoiceStatus.EXPIRED
    assert await outbox_kinds(open_db, USER) == ["invoice", "booking_payment_expired"]
    assert await outbox_kinds(open_db, MERCHANT) == []
    # a payment that slips through after the expiry is kept in the wallet
    outcome = await pay(open_db, invoice, now=later + MINUTE)
    assert (outcome.outcome, outcome.wallet_minor) == (BOOKING_GONE, 1200)
    with pytest.raises(NotFound):  # stale status buttons find nothing to show
        async with open_db() as db:
            await payments.checkout_state(db, booking_id=10_000, user_id=USER, rules=PREPAID)
    async with open_db() as db:
        with pytest.raises(InvalidInput):
            await payments.checkout_state(db, booking_id=booking.id, user_id=USER, rules=PREPAID)


async def test_an_unpaid_booking_counts_against_the_open_requests_and_as_a_repeat(
    open_db, world
) -> None:
    booking = await request(open_db, world.per_hour, USER, START, hours=2)
    with pytest.raises(InvalidInput) as repeat:
        await request(open_db, world.per_hour, USER, START, hours=2)
    assert repeat.value.key == "err.booking_repeat"
    assert repeat.value.params == {"id": booking.id}


# -- pay at the shop: as before ----------------------------------------------------------


async def test_pay_at_shop_books_as_before_and_moves_no_money(open_db, world) -> None:
    booking = await request(open_db, world.per_hour, USER, START, hours=2, money=PAY_AT_SHOP)
    assert booking.status == BookingStatus.REQUESTED
    assert (booking.pay_by, booking.prepaid_minor) == (None, None)
    assert await outbox_kinds(open_db, MERCHANT) == ["booking_request"]
    assert await outbox_kinds(open_db, USER) == []
    async with open_db() as db:
        await bookings.reject(db, booking_id=booking.id, merchant_id=MERCHANT, reason="busy")
        assert await db.scalar(select(func.count()).select_from(LedgerEntry)) == 0
        assert await db.scalar(select(func.count()).select_from(Invoice)) == 0
        assert await db.scalar(select(func.count()).select_from(Payment)) == 0
        state = await payments.checkout_state(
            db, booking_id=booking.id, user_id=USER, rules=PAY_AT_SHOP
        )
    assert state.state == CheckoutState.PAY_AT_SHOP


async def test_many_payments_refunds_and_payouts_at_once_on_two_instances(
    database_url, open_db, world
) -> None:
    """The platform-wide accounts are shared by every payment: units of work that
    touch them at once (two instances) wait for each other and never deadlock."""
    users = list(range(3001, 3011))
    async with open_db() as db:
        db.add_all([User(id=u, first_name="u") for u in users])
        await ledger.post(  # the merchant is owed something to pay out
            db,
            kind="test",
            key="test:owed",
            legs=[(ledger.payable(MERCHANT, "CNY"), 5000), (ledger.fees("CNY"), -5000)],
        )
        await db.commit()
    invoices = []
    for user in users:
        async with open_db() as db:
            view = await payments.topup(
                db, user_id=user, amount_minor=2000, currency_code="CNY", rules=PREPAID, now=ASKED
            )
            invoices.append(await db.get(Invoice, view.id))
    other = create_engine(database_url)
    try:
        instances = (open_db, create_session_factory(other))

        async def refund(user: int, factory) -> None:
            async with factory() as db:
                await wallet_service.request_refund(
                    db, user_id=user, currency_code="CNY", rules=PREPAID, now=ASKED
                )

        async def payout(factory) -> None:
            async with factory() as db:
                await payouts.record_payout(
                    db,
                    admin_id=9,
                    merchant_id=MERCHANT,
                    amount_minor=500,
                    currency_code="CNY",
                    reference="bank",
                    now=ASKED,
                )

        await asyncio.gather(
            *(pay(instances[i % 2], invoice, now=ASKED) for i, invoice in enumerate(invoices)),
            *(payout(instances[i % 2]) for i in range(4)),
        )
        await asyncio.gather(*(refund(user, instances[i % 2]) for i, user in enumerate(users)))
    finally:
        await other.dispose()
    assert await balance(open_db, ledger.clearing("CNY")) == -20_000 + 2000
    assert await balance(open_db, ledger.payable(MERCHANT, "CNY")) == 3000
    for user in users:
        assert await balance(open_db, ledger.refunds_due(user, "CNY")) == 2000
    await assert_sound(open_db)
