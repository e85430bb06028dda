"""A user's wallet: its balance and history, and refunds of the balance.

The Bot API cannot refund a provider's payment, so a refund is a request: the
positive balance moves to refunds_due at once (it can no longer pay a booking),
the admins get the request in the moderation group with the provider's charge
ids of the user's payments, refund them in the provider's dashboard and mark the
request done (refunds_due → provider clearing: the money left the platform), or
decline it (back to the wallet). Each step is one unit of work whose ledger
transaction is keyed by the request (``refund:<id>:requested|done|declined``).
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from models import AccountKind, Payment, RefundRequest, RefundStatus
from services import audit, ledger, outbox
from services.errors import InvalidInput, NotFound
from services.money import MoneyRules
from services.outbox import OutboxKind
from services.text import clean_reason
from services.tx import Db, transaction

REFERENCE_MAX = 128


@dataclass(frozen=True)
class PaymentRef:
    telegram_charge_id: str
    provider_charge_id: str
    amount_minor: int
    currency: str
    received_at: datetime


@dataclass(frozen=True)
class RefundView:
    id: int
    user_id: int
    amount_minor: int
    currency: str
    status: RefundStatus
    requested_at: datetime
    decided_by: int | None
    decided_at: datetime | None
    reference: str | None
    reason: str | None
    card_chat_id: int | None
    card_message_id: int | None
    # the user's payments in this currency, newest first: what the admin refunds
    payments: tuple[PaymentRef, ...] = ()


@dataclass(frozen=True)
class WalletView:
    user_id: int
    currency: str
    balance_minor: int  # may be below zero after a session ran past its prepayment
    refunds_due_minor: int  # asked back, not yet refunded
    history: tuple[ledger.Line, ...]
    open_refund: RefundView | None
    # every currency the user has money in (a wallet per currency)
    balances: dict[str, int]


async def wallet_of(
    db: Db, *, user_id: int, currency_code: str, limit: int = 10, before_id: int | None = None
) -> WalletView:
    """The user's wallet in this currency: balance, history (newest first; a page
    older than transaction ``before_id``), the refund waiting for an admin."""
    wallet_key = ledger.wallet(user_id, currency_code)
    open_refund = (
        await db.scalars(
            select(RefundRequest)
            .where(
                RefundRequest.user_id == user_id,
                RefundRequest.currency == currency_code,
                RefundRequest.status == RefundStatus.REQUESTED,
            )
            .order_by(RefundRequest.id.desc())
            .limit(1)
        )
    ).one_or_none()
    return WalletView(
        user_id,
        currency_code,
        await ledger.balance(db, wallet_key),
        await ledger.balance(db, ledger.refunds_due(user_id, currency_code)),
        tuple(await ledger.history(db, wallet_key, limit=limit, before_id=before_id)),
        _view(open_refund) if open_refund else None,
        await ledger.balances(db, AccountKind.USER_WALLET, user_id),
    )


def _view(request: RefundRequest, payments: tuple[PaymentRef, ...] = ()) -> RefundView:
    return RefundView(
        request.id,
        request.user_id,
        request.amount_minor,
        request.currency,
        request.status,
        request.requested_at,
        request.decided_by,
        request.decided_at,
        request.reference,
        request.reason,
        request.card_chat_id,
        request.card_message_id,
        payments,
    )


async def request_refund(
    db: Db, *, user_id: int, currency_code: str, rules: MoneyRules, now: datetime
) -> RefundView:
    """One unit of work: ask for the whole positive balance back. It moves to
    refunds_due, and the moderation group is owed the request
    (``refund_requested``). Nothing to refund: a refusal, nothing changes."""
    async with transaction(db):
        wallet_key, due_key = (
            ledger.wallet(user_id, currency_code),
            ledger.refunds_due(user_id, currency_code),
        )
        balance = (await ledger.lock(db, [wallet_key, due_key]))[wallet_key]
        if balance <= 0:
            raise InvalidInput("err.refund_nothing")
        request = RefundRequest(
            user_id=user_id,
            amount_minor=balance,
            currency=currency_code,
            status=RefundStatus.REQUESTED,
            requested_at=now,
        )
        db.add(request)
        await db.flush()
        await ledger.post(
            db,
            kind="refund_request",
            key=f"refund:{request.id}:requested",
            legs=[(wallet_key, -balance), (due_key, balance)],
            actor_id=user_id,
        )
        audit.record(db, "refund", request.id, "request", user_id, None, "requested")
        if rules.admin_chat_id is not None:
            outbox.enqueue(
                db, rules.admin_chat_id, OutboxKind.REFUND_REQUESTED, refund_id=request.id
            )
        return _view(request)


async def refund_view(db: Db, refund_id: int, *, payments: int = 10) -> RefundView:
    """The request, with the user's latest payments in its currency (their
    provider charge ids are what the admin refunds in the provider's dashboard)."""
    request = await db.get(RefundRequest, refund_id, populate_existing=True)
    if request is None:
        raise NotFound("err.refund_not_found")
    rows = (
        await db.scalars(
            select(Payment)
            .where(Payment.user_id == request.user_id, Payment.currency == request.currency)
            .order_by(Payment.id.desc())
            .limit(payments)
        )
    ).all()
    refs = tuple(
        PaymentRef(
            p.telegram_payment_charge_id,
            p.provider_payment_charge_id,
            p.amount_minor,
            p.currency,
            p.received_at,
        )
        for p in rows
    )
    return _view(request, refs)


async def _decide(
    db: Db,
    refund_id: int,
    admin_id: int,
    to: RefundStatus,
    now: datetime,
    reference: str | None,
    reason: str | None,
) -> RefundRequest:
    request = await db.get(RefundRequest, refund_id, populate_existing=True)
    if request is None:
        raise NotFound("err.refund_not_found")
    changed = await db.execute(
        update(RefundRequest)
        .where(RefundRequest.id == refund_id, RefundRequest.status == RefundStatus.REQUESTED)
        .values(status=to, decided_by=admin_id, decided_at=now, reference=reference, reason=reason)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidInput("err.refund_decided", status=request.status.value)
    await db.refresh(request)
    audit.record(db, "refund", refund_id, to.value, admin_id, "requested", to.value, reason)
    return request


async def mark_refunded(
    db: Db, *, refund_id: int, admin_id: int, reference: str, now: datetime
) -> RefundView:
    """One unit of work: an admin refunded the request in the provider's dashboard
    (``reference``: the provider's refund id). refunds_due → provider clearing; the
    user is told (``refund_done``). A second press changes nothing."""
    reference = reference.strip()[:REFERENCE_MAX]
    async with transaction(db):
        request = await _decide(db, refund_id, admin_id, RefundStatus.DONE, now, reference, None)
        code = request.currency
        await ledger.post(
            db,
            kind="refund",
            key=f"refund:{refund_id}:done",
            legs=[
                (ledger.refunds_due(request.user_id, code), -request.amount_minor),
                (ledger.clearing(code), request.amount_minor),
            ],
            actor_id=admin_id,
            memo=reference or None,
        )
        outbox.enqueue(db, request.user_id, OutboxKind.REFUND_DONE, refund_id=refund_id)
        return _view(request)


async def decline_refund(
    db: Db, *, refund_id: int, admin_id: int, reason: str, now: datetime
) -> RefundView:
    """One unit of work: an admin declines the request; the amount goes back to the
    wallet and the user is told why (``refund_declined``)."""
    reason = clean_reason(reason)
    async with transaction(db):
        request = await _decide(db, refund_id, admin_id, RefundStatus.DECLINED, now, None, reason)
        code = request.currency
        await ledger.post(
            db,
            kind="refund_declined",
            key=f"refund:{refund_id}:declined",
            legs=[
                (ledger.refunds_due(request.user_id, code), -request.amount_minor),
                (ledger.wallet(request.user_id, code), request.amount_minor),
            ],
            actor_id=admin_id,
            memo=reason,
        )
        outbox.enqueue(db, request.user_id, OutboxKind.REFUND_DECLINED, refund_id=refund_id)
        return _view(request)


async def record_refund_card(db: Db, *, refund_id: int, chat_id: int, message_id: int) -> None:
    """Remember where the request's card was posted in the group, for later edits."""
    async with transaction(db):
        await db.execute(
            update(RefundRequest)
            .where(RefundRequest.id == refund_id)
            .values(card_chat_id=chat_id, card_message_id=message_id)
        )
