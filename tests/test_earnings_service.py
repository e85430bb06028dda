"""What merchants earn, payouts, the CSV export and the platform's report
(services/earnings.py, services/payouts.py), on SQLite and PostgreSQL."""

import csv
import io
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

import pytest

from services import charging, earnings, ledger, payouts
from services.errors import InvalidInput
from tests.support.money import (
    MERCHANT,
    PREPAID,
    ZONE,
    World,
    assert_sound,
    balance,
    make_world,
    outbox_kinds,
    paid_booking,
    run_session,
)

USER, ADMIN = 2001, 9
# Wednesday evening; the week and the month began on Monday 1 March
NOW = datetime(2027, 3, 3, 20, 0, tzinfo=ZONE)


def day(d: int, month: int = 3, hour: int = 10) -> datetime:
    return datetime(2027, month, d, hour, 0, tzinfo=ZONE)


@pytest.fixture
async def world(open_db) -> World:
    world = await make_world(open_db, [USER])
    # last month (still in the 30 days): an hour at 6.00
    old = await paid_booking(open_db, world.per_hour, USER, day(27, month=2), hours=1)
    await run_session(open_db, old, minutes=60)
    # Monday: 4 kWh at 1.50
    metered = await paid_booking(open_db, world.per_kwh, USER, day(1), hours=1)
    await run_session(open_db, metered, minutes=60, kwh=4.0)
    # Tuesday: a no-show that keeps half its 12.00
    missed = await paid_booking(open_db, world.per_hour, USER, day(2), hours=2)
    async with open_db() as db:
        money = replace(PREPAID, no_show_fee_percent=Decimal(50))
        assert await charging.mark_no_shows(db, missed.end_at, money) == 1
    # today: half an hour
    today = await paid_booking(open_db, world.per_hour, USER, day(3, hour=12), hours=2)
    await run_session(open_db, today, minutes=30)
    return world


async def test_earnings_per_period_and_charger(open_db, world) -> None:
    async with open_db() as db:
        figures = await earnings.earnings(db, merchant_id=MERCHANT, now=NOW, zone=ZONE)
    periods = {p.name: p for p in figures.periods}
    today = periods["today"]
    assert today.since == datetime(2027, 3, 3, tzinfo=ZONE)
    assert [(c.charger_id, c.totals.orders, c.totals.revenue_minor) for c in today.chargers] == [
        (world.per_hour, 1, 300)
    ]
    week = periods["week"]
    assert week.since == datetime(2027, 3, 1, tzinfo=ZONE)
    rows = {c.charger_id: c.totals for c in week.chargers}
    hourly, metered = rows[world.per_hour], rows[world.per_kwh]
    assert (hourly.orders, hourly.revenue_minor, hourly.fee_minor, hourly.payable_minor) == (
        1,
        300,
        30,
        270,
    )
    assert hourly.no_show_minor == 540  # 6.00 kept, less the platform's 10 %
    assert (metered.orders, metered.kwh, metered.revenue_minor, metered.payable_minor) == (
        1,
        Decimal("4.000"),
        600,
        540,
    )
    total = week.total["CNY"]
    assert (total.orders, total.revenue_minor, total.fee_minor, total.no_show_minor) == (
        2,
        900,
        90,
        540,
    )
    assert periods["month"].total["CNY"].revenue_minor == 900  # February's order is not in it
    # the last 30 days, day by day, February's order included
    series = figures.daily["CNY"]
    assert len(series) == 30
    assert series[0].day.isoformat() == "2027-02-02" and series[-1].day.isoformat() == "2027-03-03"
    by_day = {p.day.isoformat(): p for p in series if p.orders}
    assert {d: p.revenue_minor for d, p in by_day.items()} == {
        "2027-02-27": 600,
        "2027-03-01": 600,
        "2027-03-03": 300,
    }
    assert by_day["2027-03-01"].kwh == Decimal("4.000")
    assert figures.payable == {"CNY": 540 + 540 + 540 + 270}
    await assert_sound(open_db)


async def test_a_payout_lowers_what_the_merchant_is_owed_once(open_db, world) -> None:
    owed = 1890
    async with open_db() as db:
        with pytest.raises(InvalidInput) as too_much:
            await payouts.record_payout(
                db,
                admin_id=ADMIN,
                merchant_id=MERCHANT,
                amount_minor=owed + 1,
                currency_code="CNY",
                reference="bank 1",
                now=NOW,
            )
        assert too_much.value.key == "err.payout_too_much"
        assert too_much.value.params == {"owed": "18.90", "currency": "CNY"}
        first = await payouts.record_payout(
            db,
            admin_id=ADMIN,
            merchant_id=MERCHANT,
            amount_minor=1000,
            currency_code="CNY",
            reference="  bank 1  ",
            now=NOW,
            key="-100555:42",
        )
        again = await payouts.record_payout(  # the same command delivered again
            db,
            admin_id=ADMIN,
            merchant_id=MERCHANT,
            amount_minor=1000,
            currency_code="CNY",
            reference="bank 1",
            now=NOW,
            key="-100555:42",
        )
        listed = await payouts.payouts_of(db, MERCHANT)
        figures = await earnings.earnings(db, merchant_id=MERCHANT, now=NOW, zone=ZONE)
    assert (first.reference, first.payable_minor, first.repeat) == ("bank 1", owed - 1000, False)
    assert again.repeat and again.id == first.id
    assert [p.id for p in listed] == [first.id]
    assert figures.payable == {"CNY": owed - 1000}
    assert await balance(open_db, ledger.payable(MERCHANT, "CNY")) == owed - 1000
    assert (await outbox_kinds(open_db, MERCHANT)).count("payout_recorded") == 1
    await assert_sound(open_db)


async def test_the_orders_as_csv(open_db, world) -> None:
    async with open_db() as db:
        text = await earnings.orders_csv(db, merchant_id=MERCHANT, zone=ZONE)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["date"] for r in rows] == ["2027-02-27", "2027-03-01", "2027-03-03"]
    metered = rows[1]
    assert metered["kwh"] == "4.000"
    assert (metered["tariff"], metered["unit"], metered["cost"], metered["fee"]) == (
        "1.50",
        "kwh",
        "6.00",
        "0.60",
    )
    assert (metered["payable"], metered["payment"], metered["shop"]) == (
        "5.40",
        "prepaid",
        "Volt Café",
    )
    assert rows[2]["start"] == "2027-03-03 12:00" and rows[2]["end"] == "2027-03-03 12:30"
    async with open_db() as db:
        since = await earnings.orders_csv(
            db, merchant_id=MERCHANT, zone=ZONE, since=datetime(2027, 3, 2, tzinfo=ZONE)
        )
    assert len(list(csv.DictReader(io.StringIO(since)))) == 1


async def test_the_platform_report(open_db, world) -> None:
    async with open_db() as db:
        report = await earnings.report(db, now=NOW, zone=ZONE)
    assert [(c.charger_id, c.totals.revenue_minor) for c in report.top_chargers] == [
        (world.per_hour, 900),
        (world.per_kwh, 600),
    ]
    week = {p.name: p for p in report.periods}["week"].total["CNY"]
    assert (week.orders, week.revenue_minor, week.fee_minor) == (2, 900, 90)
    assert report.fees_booked == {"CNY": 60 + 60 + 60 + 30}
    assert report.payable == {"CNY": 1890}
    # paid in: three top-ups of the 10.00 minimum (the wallet's rest paid the others)
    assert report.clearing == {"CNY": -3000}
    assert report.wallets == {"CNY": 3000 - 1890 - 210}
    assert sum(p.revenue_minor for p in report.daily["CNY"]) == 1500
    assert report.refunds_due == {}
