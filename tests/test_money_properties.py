"""The money invariants under random flows with faults (issue #14), on SQLite and
PostgreSQL.

Hypothesis draws sequences of steps: bookings (some paid from a topped-up
wallet), payments (delivered once, twice, or by two instances at once), payments
that slip through for a booking closed meanwhile, accepts, rejects, cancels,
expiries (of requests and of unpaid bookings), starts that fail, sessions per
hour and per kWh (some past their prepayment), no-shows (50 % kept), refund
requests (refunded or declined) and payouts. Any unit of work of a step may be
killed right before its commit (an exception in the session's before_commit: the
unit rolls back whole) and is then retried as the bot would after a restart
(Telegram delivers the payment again, the scheduler runs the job again).

After every step: every ledger transaction sums to zero, every account's cached
balance is the sum of its entries, the accounts of each currency sum to zero,
each Telegram charge id is credited exactly once with its amount (no payment
lost or doubled), the provider clearing account is exactly what came in less
what went out, no closed booking holds money, and every prepaid order is settled
once.

The examples share one database per run (the invariants are global), each with
fresh users and windows of its own.
"""

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select
from sqlalchemy.orm import ORMExecuteState, Session

from models import (
    AccountKind,
    Booking,
    BookingStatus,
    Invoice,
    InvoiceStatus,
    LedgerAccount,
    LedgerTransaction,
    Order,
    OrderPayment,
    Payment,
    User,
)
from models.db import create_engine, create_session_factory
from services import bookings, charging, ledger, payments, payouts, wallet
from services.errors import DomainError
from tests.support.money import (
    MERCHANT,
    PREPAID,
    ZONE,
    World,
    booking_rules,
    charging_rules,
    make_world,
)

MONEY = replace(PREPAID, no_show_fee_percent=Decimal(50))
ADMIN = 9
MINUTE = timedelta(minutes=1)
EXAMPLES = 30


class Crash(Exception):
    """The bot killed right before a commit."""


class Faults:
    """Kills the next unit of work that wrote something, right before its commit."""

    def __init__(self) -> None:
        self.armed = False
        self.fired = 0

    def wrote(self, session: Session) -> None:
        session.info["wrote"] = True

    def on_execute(self, state: ORMExecuteState) -> None:
        if state.is_insert or state.is_update or state.is_delete:
            self.wrote(state.session)

    def before_commit(self, session: Session) -> None:
        wrote = session.info.get("wrote") or session.new or session.dirty or session.deleted
        if self.armed and wrote:
            self.armed = False
            self.fired += 1
            raise Crash

    def reset(self, session: Session, *_: object) -> None:
        session.info.pop("wrote", None)


@pytest.fixture
def faults() -> Iterator[Faults]:
    found = Faults()
    hooks: list[tuple[str, Callable[..., None]]] = [
        ("do_orm_execute", found.on_execute),
        ("after_flush", lambda session, _ctx: found.wrote(session)),
        ("before_commit", found.before_commit),
        ("after_commit", found.reset),
        ("after_rollback", found.reset),
    ]
    for name, hook in hooks:
        event.listen(Session, name, hook)
    yield found
    for name, hook in hooks:
        event.remove(Session, name, hook)


@dataclass
class Model:
    """What the test did, to check the database against."""

    world: World
    open_db: Any
    other: Any  # another instance's session factory (its own engine and pool)
    faults: Faults
    cursor: datetime = datetime(2027, 6, 1, 8, 0, tzinfo=ZONE)
    users: list[int] = field(default_factory=list)
    bookings: list[int] = field(default_factory=list)
    charges: dict[str, int] = field(default_factory=dict)  # credited, with its amount
    refunded: int = 0
    paid_out: int = 0
    steps: int = 0
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(50_000))
    # the unit of work of the current step that is killed before its commit (None: none)
    crash_at: int | None = None
    units: int = 0

    def window(self, hours: int) -> datetime:
        start = self.cursor
        self.cursor += timedelta(hours=hours + 1)
        return start

    async def unit(self, work: Callable[[], Awaitable[Any]]) -> Any:
        """Run the step's next unit of work; killed before its commit when it is the
        step's ``crash_at``, it is retried. A refusal (DomainError) is an answer,
        not a failure: None."""
        self.faults.armed = self.units == self.crash_at
        self.units += 1
        try:
            return await work()
        except Crash:
            pass
        except DomainError:
            return None
        finally:
            self.faults.armed = False
        try:  # after the restart
            return await work()
        except DomainError:
            return None

    async def booking(self, index: int) -> Booking | None:
        if not self.bookings:
            return None
        async with self.open_db() as db:
            return await db.get(Booking, self.bookings[index % len(self.bookings)])

    async def deliver(self, invoice: Invoice, charge: str, open_db: Any = None) -> Any:
        """A successful_payment update for ``invoice`` (the same charge each time)."""
        async with (open_db or self.open_db)() as db:
            return await payments.record_payment(
                db,
                user_id=invoice.user_id,
                payload=invoice.payload,
                total_amount=invoice.amount_minor,
                currency_code=invoice.currency,
                telegram_charge_id=charge,
                provider_charge_id=f"p-{charge}",
                rules=MONEY,
                now=invoice.expires_at - 5 * MINUTE,  # while the booking waits for it
            )

    async def pay(self, invoice: Invoice, how: str) -> None:
        charge = f"charge-{next(self.ids)}"
        if how == "two_instances":

            async def both() -> list[Any]:
                results = await asyncio.gather(
                    self.deliver(invoice, charge),
                    self.deliver(invoice, charge, self.other),
                    return_exceptions=True,
                )
                for result in results:
                    if isinstance(result, BaseException):
                        raise result  # one died: Telegram delivers the update again
                return list(results)

            outcomes = await self.unit(both)
        else:
            outcomes = [await self.unit(lambda: self.deliver(invoice, charge))]
            if how == "twice":
                outcomes.append(await self.deliver(invoice, charge))
        firsts = [o for o in outcomes if not o.duplicate]
        assert len(firsts) <= 1, outcomes
        assert {o.payment_id for o in outcomes} == {outcomes[0].payment_id}
        self.charges[charge] = invoice.amount_minor


# -- the steps ---------------------------------------------------------------------------


async def book(m: Model, who: int, unit: str, hours: int, topup: int) -> None:
    user = m.users[who]
    start = m.window(hours)
    charger = m.world.per_hour if unit == "hour" else m.world.per_kwh
    if topup:

        async def top_up() -> Any:
            async with m.open_db() as db:
                return await payments.topup(
                    db,
                    user_id=user,
                    amount_minor=topup,
                    currency_code="CNY",
                    rules=MONEY,
                    now=start - timedelta(hours=1),
                )

        view = await m.unit(top_up)
        assert view is not None
        async with m.open_db() as db:
            invoice = await db.get(Invoice, view.id)
        await m.pay(invoice, "once")

    async def request() -> Booking:
        async with m.open_db() as db:
            return await bookings.request(
                db,
                user_id=user,
                charger_id=charger,
                device_kind="e_bike",
                device_model="",
                start=start,
                end=start + timedelta(hours=hours),
                rules=booking_rules(MONEY),
                now=start - 30 * MINUTE,
            )

    booking = await m.unit(request)
    if booking is not None:
        m.bookings.append(booking.id)


async def pay(m: Model, index: int, how: str) -> None:
    booking = await m.booking(index)
    if booking is None:
        return
    async with m.open_db() as db:
        invoice = (
            await db.scalars(
                select(Invoice).where(
                    Invoice.booking_id == booking.id, Invoice.status == InvoiceStatus.OPEN
                )
            )
        ).first()
    if invoice is not None:
        await m.pay(invoice, how)


async def pay_late(m: Model, index: int) -> None:
    """A payment that slipped past the pre-checkout: its invoice may be closed."""
    booking = await m.booking(index)
    if booking is None:
        return
    async with m.open_db() as db:
        invoice = (
            await db.scalars(
                select(Invoice).where(Invoice.booking_id == booking.id).order_by(Invoice.id.desc())
            )
        ).first()
    if invoice is not None:
        await m.pay(invoice, "once")


async def decide(m: Model, index: int, action: str) -> None:
    booking = await m.booking(index)
    if booking is None:
        return

    async def work() -> Any:
        async with m.open_db() as db:
            if action == "accept":
                return await bookings.accept(
                    db,
                    booking_id=booking.id,
                    merchant_id=MERCHANT,
                    now=booking.respond_by - MINUTE,
                )
            if action == "reject":
                return await bookings.reject(
                    db, booking_id=booking.id, merchant_id=MERCHANT, reason="busy"
                )
            return await bookings.cancel(
                db, booking_id=booking.id, user_id=booking.user_id, now=booking.start_at - MINUTE
            )

    await m.unit(work)


async def expire(m: Model, index: int) -> None:
    booking = await m.booking(index)
    if booking is None:
        return

    async def requests() -> int:
        async with m.open_db() as db:
            return await bookings.expire_due(db, now=booking.respond_by)

    async def unpaid() -> int:
        async with m.open_db() as db:
            return await payments.expire_unpaid(
                db, (booking.pay_by or booking.created_at) + payments.PRE_CHECKOUT_GRACE
            )

    await m.unit(requests)
    await m.unit(unpaid)


async def fail_start(m: Model, index: int) -> None:
    booking = await m.booking(index)
    if booking is None:
        return
    rules = charging_rules(MONEY)

    async def begin() -> Any:
        async with m.open_db() as db:
            return await charging.begin_start(
                db,
                booking_id=booking.id,
                user_id=booking.user_id,
                rules=rules,
                now=booking.start_at,
            )

    started = await m.unit(begin)
    if started is None:
        return

    async def fail() -> Any:
        async with m.open_db() as db:
            return await charging.fail_start(db, session_id=started.id, why="no_confirm")

    await m.unit(fail)


async def session(m: Model, index: int, minutes: int, kwh: int) -> None:
    booking = await m.booking(index)
    if booking is None:
        return
    rules = charging_rules(MONEY)

    async def begin() -> Any:
        async with m.open_db() as db:
            return await charging.begin_start(
                db,
                booking_id=booking.id,
                user_id=booking.user_id,
                rules=rules,
                now=booking.start_at,
            )

    started = await m.unit(begin)
    if started is None:
        return

    async def confirm() -> Any:
        async with m.open_db() as db:
            return await charging.confirm_start(
                db, session_id=started.id, at=booking.start_at, energy_kwh=0.0
            )

    if await m.unit(confirm) is None:
        return

    async def finish() -> Any:
        async with m.open_db() as db:
            return await charging.finish(
                db,
                session_id=started.id,
                rules=rules,
                ended_at=booking.start_at + timedelta(minutes=minutes),
                end_kwh=float(kwh),
            )

    await m.unit(finish)


async def no_show(m: Model, index: int) -> None:
    booking = await m.booking(index)
    if booking is None:
        return

    async def work() -> int:
        async with m.open_db() as db:
            return await charging.mark_no_shows(db, booking.end_at, MONEY)

    await m.unit(work)


async def refund(m: Model, who: int, decision: str) -> None:
    user = m.users[who]

    async def ask() -> Any:
        async with m.open_db() as db:
            return await wallet.request_refund(
                db, user_id=user, currency_code="CNY", rules=MONEY, now=m.cursor
            )

    request = await m.unit(ask)
    if request is None or decision == "open":
        return

    async def settle() -> Any:
        async with m.open_db() as db:
            if decision == "done":
                return await wallet.mark_refunded(
                    db, refund_id=request.id, admin_id=ADMIN, reference="re_1", now=m.cursor
                )
            return await wallet.decline_refund(
                db, refund_id=request.id, admin_id=ADMIN, reason="no", now=m.cursor
            )

    if await m.unit(settle) is not None and decision == "done":
        m.refunded += request.amount_minor


async def payout(m: Model, percent: int) -> None:
    async with m.open_db() as db:
        owed = await ledger.balance(db, ledger.payable(MERCHANT, "CNY"))
    if owed <= 0:
        return
    amount = max(1, owed * percent // 100)

    async def work() -> Any:
        async with m.open_db() as db:
            return await payouts.record_payout(
                db,
                admin_id=ADMIN,
                merchant_id=MERCHANT,
                amount_minor=amount,
                currency_code="CNY",
                reference="bank",
                now=m.cursor,
            )

    if await m.unit(work) is not None:
        m.paid_out += amount


async def flow(
    m: Model,
    who: int,
    unit: str,
    hours: int,
    topup: int,
    how: str,
    decision: str,
    ending: str,
    minutes: int,
    kwh: int,
) -> None:
    """A booking's whole life, one unit of work after another (any may be killed)."""
    before = len(m.bookings)
    await book(m, who, unit, hours, topup)
    if len(m.bookings) == before:
        return
    if how != "none":
        await pay(m, -1, how)
    if decision == "expire":
        await expire(m, -1)
    elif decision != "none":
        await decide(m, -1, decision)
    if ending == "session":
        await session(m, -1, minutes, kwh)
    elif ending == "fail_then_session":
        await fail_start(m, -1)
        await session(m, -1, minutes, kwh)
    elif ending == "no_show":
        await no_show(m, -1)


index = st.integers(-3, 9)  # mostly the latest bookings
who = st.integers(0, 1)
FLOW = st.tuples(
    st.just(flow),
    who,
    st.sampled_from(["hour", "kwh"]),
    st.sampled_from([1, 2, 3]),
    st.sampled_from([0, 0, 2000, 5000]),
    st.sampled_from(["once", "twice", "two_instances", "none"]),
    st.sampled_from(["accept"] * 4 + ["reject", "cancel", "expire", "none"]),
    st.sampled_from(["session"] * 4 + ["fail_then_session", "no_show", "none"]),
    st.integers(1, 200),  # minutes charged (the window caps them)
    st.integers(0, 25),  # kWh used
)
OTHER = st.one_of(
    st.tuples(
        st.just(book), who, st.sampled_from(["hour", "kwh"]), st.sampled_from([1, 2]), st.just(0)
    ),
    st.tuples(st.just(pay), index, st.sampled_from(["once", "twice", "two_instances"])),
    st.tuples(st.just(pay_late), index),
    st.tuples(st.just(decide), index, st.sampled_from(["accept", "reject", "cancel"])),
    st.tuples(st.just(expire), index),
    st.tuples(st.just(fail_start), index),
    st.tuples(st.just(session), index, st.integers(1, 200), st.integers(0, 25)),
    st.tuples(st.just(no_show), index),
    st.tuples(st.just(refund), who, st.sampled_from(["done", "declined", "open"])),
    st.tuples(st.just(payout), st.integers(1, 100)),
)
# half of the steps are whole flows (one_of would flatten OTHER: 1 in 13)
STEP = st.booleans().flatmap(lambda whole: FLOW if whole else OTHER)
# each step with the unit of work that is killed before its commit, if any
# (most steps have one to three units of work, a flow up to about eight)
CRASH_AT = st.sampled_from([None, None, 0, 0, 1, 1, 2, 3, 4, 5, 6])
STEPS = st.lists(st.tuples(STEP, CRASH_AT), min_size=1, max_size=10)

CLOSED = (
    BookingStatus.UNPAID,  # holds nothing until paid
    BookingStatus.REJECTED,
    BookingStatus.EXPIRED,
    BookingStatus.CANCELLED,
    BookingStatus.COMPLETED,
    BookingStatus.NO_SHOW,
)


async def check(m: Model) -> None:
    async with m.open_db() as db:
        audit = await ledger.audit(db)
        assert audit.sound, audit
        # each charge credited exactly once, with its amount: none lost, none doubled
        credited = dict(
            (
                await db.execute(select(Payment.telegram_payment_charge_id, Payment.amount_minor))
            ).all()
        )
        assert credited == m.charges
        keys = (
            await db.scalars(
                select(LedgerTransaction.key).where(LedgerTransaction.kind == "payment")
            )
        ).all()
        assert sorted(keys) == sorted(f"payment:{c}" for c in m.charges)
        # what came in, less what went out to users (refunds) and merchants (payouts)
        clearing = await ledger.balance(db, ledger.clearing("CNY"))
        assert clearing == -sum(m.charges.values()) + m.refunded + m.paid_out
        # no closed booking holds money
        stuck = (
            await db.execute(
                select(Booking.id, Booking.status, LedgerAccount.balance_minor)
                .join(
                    LedgerAccount,
                    (LedgerAccount.owner_id == Booking.id)
                    & (LedgerAccount.kind == AccountKind.BOOKING_HOLD),
                )
                .where(Booking.status.in_(CLOSED), LedgerAccount.balance_minor != 0)
            )
        ).all()
        assert not stuck, stuck
        # every prepaid order settled once
        prepaid = await db.scalar(
            select(func.count()).select_from(Order).where(Order.payment == OrderPayment.PREPAID)
        )
        settled = await db.scalar(
            select(func.count())
            .select_from(LedgerTransaction)
            .where(LedgerTransaction.kind == "settle")
        )
        zero_cost = await db.scalar(
            select(func.count())
            .select_from(Order)
            .where(
                Order.payment == OrderPayment.PREPAID,
                Order.cost_minor == 0,
                Order.prepaid_minor == 0,
            )
        )
        assert settled == prepaid - zero_cost  # an order of 0 from an empty hold moves nothing


@pytest.fixture
async def model(database_url, open_db, faults) -> Any:
    world = await make_world(open_db, [])
    other = create_engine(database_url)
    model = Model(world, open_db, create_session_factory(other), faults)
    yield model
    await other.dispose()
    # the run was not vacuous: units were killed, orders settled, no-shows and refunds made
    async with open_db() as db:
        kinds = set((await db.scalars(select(LedgerTransaction.kind).distinct())).all())
    assert faults.fired > 0
    assert {"payment", "hold", "release", "settle"} <= kinds, kinds


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
async def test_money_is_conserved_and_every_payment_credited_once(model: Model, steps) -> None:
    model.bookings = []
    model.users = [next(model.ids), next(model.ids)]
    async with model.open_db() as db:
        db.add_all([User(id=u, first_name="u") for u in model.users])
        await db.commit()
    for (step, *args), crash_at in steps:
        model.crash_at, model.units = crash_at, 0
        await step(model, *args)
        model.steps += 1
        await check(model)
