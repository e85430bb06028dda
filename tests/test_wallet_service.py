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
async def world(sessions) -> World:
    return await make_world(sessions, [USER])


async def top_up(sessions, amount: int, charge: str | None = None) -> None:
    async with sessions() as db:
        view = await payments.topup(
            db, user_id=USER, amount_minor=amount, currency_code="CNY", rules=PREPAID, now=NOW
        )
        invoice = await db.get(Invoice, view.id)
    assert invoice is not None
    await pay(sessions, invoice, charge=charge, now=NOW)


async def test_the_wallet_shows_its_balance_and_history(sessions, world) -> None:
    await top_up(sessions, 2000)
    await top_up(sessions, 5000)
    async with sessions() as db:
        view = await wallet.wallet_of(db, user_id=USER, currency_code="CNY")
    assert (view.balance_minor, view.refunds_due_minor, view.open_refund) == (7000, 0, None)
    assert [(line.kind, line.amount_minor) for line in view.history] == [
        ("payment", 5000),
        ("payment", 2000),
    ]
    assert view.balances == {"CNY": 7000}


async def test_a_refund_request_holds_the_balance_until_an_admin_refunds_it(
    sessions, world
) -> None:
    charge = charge_id()
    await top_up(sessions, 2000, charge=charge)
    async with sessions() as db:
        request = await wallet.request_refund(
            db, user_id=USER, currency_code="CNY", rules=PREPAID, now=NOW
        )
    assert (request.amount_minor, request.status) == (2000, RefundStatus.REQUESTED)
    assert await balance(sessions, ledger.wallet(USER, "CNY")) == 0
    assert await balance(sessions, ledger.refunds_due(USER, "CNY")) == 2000
    assert await outbox_kinds(sessions, ADMIN_CHAT) == ["refund_requested"]
    async with sessions() as db:
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
    async with sessions() as db:
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
    assert await balance(sessions, ledger.refunds_due(USER, "CNY")) == 0
    assert await balance(sessions, ledger.clearing("CNY")) == 0  # in, and out again
    assert await outbox_kinds(sessions, USER) == ["invoice", "payment_received", "refund_done"]
    await assert_sound(sessions)


async def test_a_declined_refund_goes_back_to_the_wallet(sessions, world) -> None:
    await top_up(sessions, 2000)
    async with sessions() as db:
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
    assert await balance(sessions, ledger.wallet(USER, "CNY")) == 2000
    assert await outbox_kinds(sessions, USER) == [
        "invoice",
        "payment_received",
        "refund_declined",
    ]
    async with sessions() as db:
        assert await ledger.balances(db, AccountKind.REFUNDS_DUE, USER) == {"CNY": 0}
    await assert_sound(sessions)


async def test_an_empty_or_negative_wallet_has_nothing_to_refund(sessions, world) -> None:
    async with sessions() as db:
        with pytest.raises(InvalidInput) as refused:
            await wallet.request_refund(
                db, user_id=USER, currency_code="CNY", rules=PREPAID, now=NOW
            )
    assert refused.value.key == "err.refund_nothing"
    assert await outbox_kinds(sessions, ADMIN_CHAT) == []
