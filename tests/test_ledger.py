"""The double-entry ledger (services/ledger.py), on SQLite and PostgreSQL."""

import asyncio

import pytest
from sqlalchemy import func, select

from models import AccountKind, LedgerAccount, LedgerEntry, LedgerTransaction
from models.db import create_engine, create_session_factory
from services import ledger
from services.tx import transaction

USER, MERCHANT = 2001, 1001


async def post(open_db, key: str, legs, kind: str = "test"):
    async with open_db() as db, transaction(db):
        return await ledger.post(db, kind=kind, key=key, legs=legs, memo="m")


async def counts(open_db) -> tuple[int, int, int]:
    async with open_db() as db:
        return tuple(
            [
                await db.scalar(select(func.count()).select_from(model)) or 0
                for model in (LedgerAccount, LedgerTransaction, LedgerEntry)
            ]
        )  # type: ignore[return-value]


async def test_a_balanced_transaction_is_posted_with_its_balances(open_db) -> None:
    posted = await post(
        open_db,
        "payment:1",
        [(ledger.clearing("CNY"), -1000), (ledger.wallet(USER, "CNY"), 1000)],
    )
    assert posted is not None and not posted.repeat
    split = await post(
        open_db,
        "split:1",
        [
            (ledger.wallet(USER, "CNY"), -600),
            (ledger.payable(MERCHANT, "CNY"), 540),
            (ledger.fees("CNY"), 60),
        ],
    )
    assert split is not None
    async with open_db() as db:
        assert await ledger.balance(db, ledger.wallet(USER, "CNY")) == 400
        assert await ledger.balance(db, ledger.payable(MERCHANT, "CNY")) == 540
        assert await ledger.balance(db, ledger.clearing("CNY")) == -1000
        assert await ledger.balance(db, ledger.wallet(USER, "USD")) == 0  # none yet
        lines = await ledger.history(db, ledger.wallet(USER, "CNY"))
        assert [(line.kind, line.amount_minor) for line in lines] == [
            ("test", -600),
            ("test", 1000),
        ]
        older = await ledger.history(
            db, ledger.wallet(USER, "CNY"), before_id=lines[0].transaction_id
        )
        assert [line.amount_minor for line in older] == [1000]
        assert await ledger.balances(db, AccountKind.USER_WALLET, USER) == {"CNY": 400}
        audit = await ledger.audit(db)
    assert audit.sound and audit.totals == {"CNY": 0}


async def test_a_repeated_key_posts_nothing(open_db) -> None:
    legs = [(ledger.clearing("CNY"), -1000), (ledger.wallet(USER, "CNY"), 1000)]
    first = await post(open_db, "payment:1", legs)
    again = await post(open_db, "payment:1", legs)
    assert first is not None and again is not None
    assert again.repeat and again.transaction_id == first.transaction_id
    assert await counts(open_db) == (2, 1, 2)


async def test_an_unbalanced_transaction_is_refused_before_anything_is_written(open_db) -> None:
    with pytest.raises(ledger.Unbalanced):
        await post(open_db, "bad", [(ledger.wallet(USER, "CNY"), 1000)])
    with pytest.raises(ledger.Unbalanced):  # balanced in sum, not per currency
        await post(
            open_db, "bad", [(ledger.wallet(USER, "CNY"), 1000), (ledger.clearing("USD"), -1000)]
        )
    assert await counts(open_db) == (0, 0, 0)
    # legs that cancel out, or are all zero, move nothing and record nothing
    assert (
        await post(
            open_db, "nothing", [(ledger.wallet(USER, "CNY"), 5), (ledger.wallet(USER, "CNY"), -5)]
        )
        is None
    )
    assert await counts(open_db) == (0, 0, 0)


async def test_two_instances_posting_one_key_at_once_post_it_once(database_url, open_db) -> None:
    other = create_engine(database_url)
    try:
        other_sessions = create_session_factory(other)
        legs = [(ledger.clearing("CNY"), -1000), (ledger.wallet(USER, "CNY"), 1000)]
        results = await asyncio.gather(
            *(post(s, "payment:race", legs) for s in (open_db, other_sessions, open_db))
        )
    finally:
        await other.dispose()
    assert sorted(r.repeat for r in results if r) == [False, True, True]
    async with open_db() as db:
        assert await ledger.balance(db, ledger.wallet(USER, "CNY")) == 1000
        assert (await ledger.audit(db)).sound
