"""The double-entry ledger: balanced transactions, each posted once.

Every function works inside the caller's database transaction (the one that
makes the state change a movement of money follows from), so the money moves
exactly when the change is committed. ``post`` checks that the entries sum to
zero per currency before anything is written, and updates each account's cached
balance with its entries; a repeat of a key posts nothing and returns the first
transaction.

Accounts are named by a key (kind, owner, currency) and made on first use. A
unit of work that moves money first takes the row locks of every account it will
touch with ``lock`` (in account id order, after the locks of the rows whose state
it changes), so two units never wait on each other in a cycle on PostgreSQL, also
when one checks a balance before it posts; SQLite serialises writers anyway.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from models import AccountKind, LedgerAccount, LedgerEntry, LedgerTransaction
from models.base import utcnow
from models.db import upsert_insert
from models.money import PLATFORM
from services.tx import Db

# (kind, owner id, currency); owner is PLATFORM (0) for platform-wide accounts
AccountKey = tuple[AccountKind, int, str]
Leg = tuple[AccountKey, int]


def wallet(user_id: int, currency: str) -> AccountKey:
    return AccountKind.USER_WALLET, user_id, currency


def hold(booking_id: int, currency: str) -> AccountKey:
    return AccountKind.BOOKING_HOLD, booking_id, currency


def payable(merchant_id: int, currency: str) -> AccountKey:
    return AccountKind.MERCHANT_PAYABLE, merchant_id, currency


def refunds_due(user_id: int, currency: str) -> AccountKey:
    return AccountKind.REFUNDS_DUE, user_id, currency


def fees(currency: str) -> AccountKey:
    return AccountKind.PLATFORM_FEES, PLATFORM, currency


def clearing(currency: str) -> AccountKey:
    return AccountKind.PROVIDER_CLEARING, PLATFORM, currency


class Unbalanced(ValueError):
    """A transaction whose entries do not sum to zero: a programming error."""


@dataclass(frozen=True)
class Posted:
    transaction_id: int
    key: str
    repeat: bool  # the key was posted before: nothing was posted now


@dataclass(frozen=True)
class Line:
    """One entry of an account's history."""

    transaction_id: int
    kind: str
    amount_minor: int  # signed, for this account
    created_at: datetime
    booking_id: int | None
    order_id: int | None
    memo: str | None


def _balanced(legs: Iterable[Leg]) -> dict[AccountKey, int]:
    merged: dict[AccountKey, int] = defaultdict(int)
    for account, amount in legs:
        merged[account] += int(amount)
    nonzero = {account: amount for account, amount in merged.items() if amount}
    per_currency: dict[str, int] = defaultdict(int)
    for (_kind, _owner, currency), amount in nonzero.items():
        per_currency[currency] += amount
    off = {currency: total for currency, total in per_currency.items() if total}
    if off:
        raise Unbalanced(f"entries do not sum to zero: {off} in {nonzero}")
    return nonzero


async def account_id(db: Db, account: AccountKey) -> int:
    """The account's id, made on first use (two makers at once: one insert wins)."""
    kind, owner, currency = account
    where = (
        LedgerAccount.kind == kind,
        LedgerAccount.owner_id == owner,
        LedgerAccount.currency == currency,
    )
    found = await db.scalar(select(LedgerAccount.id).where(*where))
    if found is not None:
        return found
    await db.execute(
        upsert_insert(db.get_bind().dialect.name, LedgerAccount)
        .values(kind=kind, owner_id=owner, currency=currency, balance_minor=0, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["kind", "owner_id", "currency"])
    )
    made = await db.scalar(select(LedgerAccount.id).where(*where))
    assert made is not None
    return made


async def lock(db: Db, accounts: Iterable[AccountKey]) -> dict[AccountKey, int]:
    """Lock these accounts' rows (made first when new) in id order until the
    transaction ends, and return their balances, which stay true until it posts."""
    ids = {account: await account_id(db, account) for account in sorted(set(accounts))}
    rows = await db.execute(
        select(LedgerAccount.id, LedgerAccount.balance_minor)
        .where(LedgerAccount.id.in_(ids.values()))
        .order_by(LedgerAccount.id)
        .with_for_update()
    )
    by_id = {account_id: amount for account_id, amount in rows.all()}
    return {account: by_id[ident] for account, ident in ids.items()}


async def post(
    db: Db,
    *,
    kind: str,
    key: str,
    legs: Sequence[Leg],
    booking_id: int | None = None,
    order_id: int | None = None,
    actor_id: int | None = None,
    memo: str | None = None,
) -> Posted | None:
    """Post a balanced transaction once per ``key``; None when every leg is zero
    (nothing moves, nothing is recorded). Raises Unbalanced before writing."""
    entries = _balanced(legs)
    if not entries:
        return None
    first = await db.scalar(select(LedgerTransaction.id).where(LedgerTransaction.key == key))
    if first is not None:
        return Posted(first, key, repeat=True)
    ids = {account: await account_id(db, account) for account in sorted(entries)}
    record = LedgerTransaction(
        kind=kind,
        key=key,
        booking_id=booking_id,
        order_id=order_id,
        actor_id=actor_id,
        memo=memo,
        created_at=utcnow(),
    )
    try:
        async with db.begin_nested():  # another instance may post the same key now
            db.add(record)
            await db.flush()
    except IntegrityError:
        first = await db.scalar(select(LedgerTransaction.id).where(LedgerTransaction.key == key))
        if first is None:
            raise
        return Posted(first, key, repeat=True)
    for account, amount in sorted(entries.items(), key=lambda item: ids[item[0]]):
        db.add(LedgerEntry(transaction_id=record.id, account_id=ids[account], amount_minor=amount))
        await db.execute(
            update(LedgerAccount)
            .where(LedgerAccount.id == ids[account])
            .values(balance_minor=LedgerAccount.balance_minor + amount)
        )
    await db.flush()
    return Posted(record.id, key, repeat=False)


async def balance(db: Db, account: AccountKey) -> int:
    """The account's balance (0 when it has none yet). A unit of work that decides
    on it takes it from ``lock`` instead."""
    kind, owner, currency = account
    query = select(LedgerAccount.balance_minor).where(
        LedgerAccount.kind == kind,
        LedgerAccount.owner_id == owner,
        LedgerAccount.currency == currency,
    )
    return (await db.scalar(query)) or 0


async def balances(db: Db, kind: AccountKind, owner: int) -> dict[str, int]:
    """The owner's balance of this kind in each currency it has one in."""
    rows = await db.execute(
        select(LedgerAccount.currency, LedgerAccount.balance_minor).where(
            LedgerAccount.kind == kind, LedgerAccount.owner_id == owner
        )
    )
    return {currency: amount for currency, amount in rows.all()}


async def history(
    db: Db, account: AccountKey, *, limit: int = 20, before_id: int | None = None
) -> list[Line]:
    """The account's latest entries, newest first (``before_id``: the page after)."""
    kind, owner, currency = account
    query = (
        select(
            LedgerTransaction.id,
            LedgerTransaction.kind,
            LedgerEntry.amount_minor,
            LedgerTransaction.created_at,
            LedgerTransaction.booking_id,
            LedgerTransaction.order_id,
            LedgerTransaction.memo,
        )
        .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .where(
            LedgerAccount.kind == kind,
            LedgerAccount.owner_id == owner,
            LedgerAccount.currency == currency,
        )
        .order_by(LedgerTransaction.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(LedgerTransaction.id < before_id)
    return [Line(*row) for row in (await db.execute(query)).all()]


async def moved(db: Db, account: AccountKey, *, kinds: Sequence[str]) -> int:
    """The sum of the account's entries in transactions of these kinds."""
    kind, owner, currency = account
    total = await db.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0))
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .where(
            LedgerAccount.kind == kind,
            LedgerAccount.owner_id == owner,
            LedgerAccount.currency == currency,
            LedgerTransaction.kind.in_(kinds),
        )
    )
    return int(total or 0)


@dataclass(frozen=True)
class Audit:
    """What must always hold; empty lists and zero totals when the books are sound."""

    unbalanced: list[tuple[int, str, int]]  # transaction id, currency, sum
    stale_balances: list[tuple[int, int, int]]  # account id, cached, sum of entries
    totals: dict[str, int]  # per currency, over every account: zero

    @property
    def sound(self) -> bool:
        return not self.unbalanced and not self.stale_balances and not any(self.totals.values())


async def audit(db: Db) -> Audit:
    """Check the whole ledger: every transaction sums to zero, every cached balance
    is the sum of its entries, and the accounts of each currency sum to zero."""
    unbalanced = (
        await db.execute(
            select(
                LedgerEntry.transaction_id,
                LedgerAccount.currency,
                func.sum(LedgerEntry.amount_minor),
            )
            .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
            .group_by(LedgerEntry.transaction_id, LedgerAccount.currency)
            .having(func.sum(LedgerEntry.amount_minor) != 0)
        )
    ).all()
    sums = (
        select(LedgerEntry.account_id, func.sum(LedgerEntry.amount_minor).label("total"))
        .group_by(LedgerEntry.account_id)
        .subquery()
    )
    stale = (
        await db.execute(
            select(LedgerAccount.id, LedgerAccount.balance_minor, func.coalesce(sums.c.total, 0))
            .outerjoin(sums, sums.c.account_id == LedgerAccount.id)
            .where(LedgerAccount.balance_minor != func.coalesce(sums.c.total, 0))
        )
    ).all()
    totals = (
        await db.execute(
            select(LedgerAccount.currency, func.sum(LedgerAccount.balance_minor)).group_by(
                LedgerAccount.currency
            )
        )
    ).all()
    return Audit(
        unbalanced=[(t, c, int(s)) for t, c, s in unbalanced],
        stale_balances=[(a, int(b), int(s)) for a, b, s in stale],
        totals={c: int(s) for c, s in totals},
    )
