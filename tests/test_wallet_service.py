"""A user's wallet and refunds of its balance (services/wallet.py), on SQLite and
PostgreSQL."""

from datetime import timedelta

import pytest

from models import AccountKind, Invoice, RefundStatus
from services import ledger, payments, wallet
from services.errors import InvalidInput, NotFound
from tests.support.money import (
    ADMIN_CHAT,
    BASE,
    PREPAID,
    World,
    assert_sound,
    balance,
    charge_id,
    make_world,
    outbox_kinds,
    pay,
)

USER, ADMIN = 2001, 9

NOW = BASE


@pytest.fixture
async def world(open_db) -> World:
    return await make_world(open_db, [USER])


async def top_up(open_db, amount: int, charge: str | None = None) -> None:
    async with open_db() as db:
        view = await payments.topup(
            db, user_id=USER, amount_minor=amount, currency_code="CNY", rules=PREPAID, now=NOW
        )
        invoice = await db.get(Invoice, view.id)
    assert invoice is not None
    await pay(open_db, invoice, charge=charge, now=NOW)


async def test_the_wallet_shows_its_balance_and_history(open_db, world) -> None:
    await top_up(open_db, 2000)
    await top_up(open_db, 5000)
    async with open_db() as db:
        view = await wallet.wallet_of(db, user_id=USER, currency_code="CNY")
    assert (view.balance_minor, view.refunds_due_minor, view.open_refund) == (7000, 0, None)
    assert [(line.kind, line.amount_minor) for line in view.history] == [
        ("payment", 5000),
        ("payment", 2000),
    ]
    assert view.balances == {"CNY": 7000}


async def test_a_refund_request_holds_the_balance_until_an_admin_refunds_it(open_db, world) -> None:
    charge = charge_id()
    await top_up(open_db, 2000, charge=charge)
    async with open_db() as db:
        request = await wallet.request_refund(
            db, user_id=USER, currency_code="CNY", rules=PREPAID, now=NOW
        )
    assert (request.amount_minor, request.status) == (2000, RefundStatus.REQUESTED)
    assert await balance(open_db, ledger.wallet(USER, "CNY")) == 0
    assert await balance(open_db, ledger.refunds_due(USER, "CNY")) == 2000
    assert await outbox_kinds(open_db, ADMIN_CHAT) == ["refund_requested"]
    async with open_db() as db:
        with pytest.raises(InvalidInput) as nothing:  # the balance is already asked back
            await wallet.request_refund(
                db, user_id=USER, currency_code="CNY", rules=PREPAID, now=NOW
            )
        assert nothing.value.key == "err.refund_nothing"
        view = await wallet.refund_view(db, request.id)
        mine = await wallet.wallet_of(db, user_id=USER, currency_code="CNY")
    # what the admin refunds in the provider's dashboard
    assert [(p.provider_charge_id, p.amount_minor) for p in view.payments] == [
        (f"prov-{charge}", 2000)
    ]
    assert mine.open_refund is not None and mine.open_refund.id == request.id
    async with open_db() as db:
        done = await wallet.mark_refunded(
            db, refund_id=request.id, admin_id=ADMIN, reference=" re_123 ", now=NOW
        )
        assert (done.status, done.reference, done.decided_by) == (
            RefundStatus.DONE,
            "re_123",
            ADMIN,
        )
        with pytest.raises(InvalidInput) as twice:  # a second press changes nothing
            await wallet.decline_refund(
                db, refund_id=request.id, admin_id=ADMIN, reason="no", now=NOW
            )
        assert twice.value.key == "err.refund_decided"
    assert await balance(open_db, ledger.refunds_due(USER, "CNY")) == 0
    assert await balance(open_db, ledger.clearing("CNY")) == 0  # in, and out again
    assert await outbox_kinds(open_db, USER) == ["invoice", "payment_received", "refund_done"]
    await assert_sound(open_db)


async def test_a_declined_refund_goes_back_to_the_wallet(open_db, world) -> None:
    await top_up(open_db, 2000)
    async with open_db() as db:
        request = await wallet.request_refund(
            db, user_id=USER, currency_code="CNY", rules=PREPAID, now=NOW
        )
        declined = await wallet.decline_refund(
            db,
            refund_id=request.id,
            admin_id=ADMIN,
            reason="paid for a booking\nthat ran",
            now=NOW + timedelta(hours=1),
        )
        with pytest.raises(NotFound):
            await wallet.mark_refunded(db, refund_id=999, admin_id=ADMIN, reference="x", now=NOW)
    assert declined.status == RefundStatus.DECLINED
    assert declined.reason == "paid for a booking\nthat ran"
    assert await balance(open_db, ledger.wallet(USER, "CNY")) == 2000
    assert await outbox_kinds(open_db, USER) == [
        "invoice",
        "payment_received",
        "refund_declined",
    ]
    async with open_db() as db:
        assert await ledger.balances(db, AccountKind.REFUNDS_DUE, USER) == {"CNY": 0}
    await assert_sound(open_db)


async def test_an_empty_or_negative_wallet_has_nothing_to_refund(open_db, world) -> None:
    async with open_db() as db:
        with pytest.raises(InvalidInput) as refused:
            await wallet.request_refund(
                db, user_id=USER, currency_code="CNY", rules=PREPAID, now=NOW
            )
    assert refused.value.key == "err.refund_nothing"
    assert await outbox_kinds(open_db, ADMIN_CHAT) == []
