"""Pairing's rules without a broker (a PowerSwitch that plays the device), the short
code's reading, the label link's reading, and the draft's rule that only a paired plug
(or one kept for later on purpose) is submitted. The same paths run against a real
mosquitto and simulated plugs in tests/test_flow_pairing.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from hardware_bridge.port import (
    BridgeUnavailable,
    DeviceEvent,
    DeviceOfflineError,
    DeviceRef,
    EventCallback,
    NotConfirmed,
    PlugState,
    PowerChanged,
)
from models.listing import SHORT_CODE_ALPHABET, new_short_code
from services.charging import normalize_code
from services.errors import InvalidInput
from services.listing_draft import new_plug_id, parse_plug_id
from services.pairing import AccountStatus, Pairing, PairOutcome
from tests import factories
from tests.support.waiting import wait_until
from ui.qr_decode import label_token, start_token
from ui.qr_labels import render_label


def state(on: bool | None, online: bool | None = True) -> PlugState:
    return PlugState(on, online, None, datetime.now(UTC))


class FakeSwitch:
    """A plug as the bridge reports it: ``answers`` False = never heard; ``switches``
    False = online but never confirms a switching; ``broker`` False = broker down."""

    def __init__(self, *, on: bool = False, answers: bool = True, switches: bool = True) -> None:
        self.on = on
        self.answers, self.switches, self.broker = answers, switches, True
        self.commands: list[tuple[str, int | None]] = []
        self.callbacks: list[EventCallback] = []

    async def power_on(
        self,
        device: DeviceRef,
        *,
        failsafe_seconds: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> PlugState:
        return self._switch(True, failsafe_seconds)

    async def power_off(self, device: DeviceRef, timeout: float = 10.0) -> PlugState:  # noqa: ASYNC109
        return self._switch(False, None)

    def _switch(self, on: bool, failsafe: int | None) -> PlugState:
        if not self.broker:
            raise BridgeUnavailable("down")
        self.commands.append(("on" if on else "off", failsafe))
        if not self.switches:
            raise NotConfirmed("no")
        self.on = on
        return state(on)

    async def state(self, device: DeviceRef, timeout: float = 5.0) -> PlugState:  # noqa: ASYNC109
        if not self.broker:
            raise BridgeUnavailable("down")
        if not self.answers:
            raise NotConfirmed("never heard")
        return state(self.on)

    def known(self, device: DeviceRef) -> PlugState:
        return state(self.on, online=None if not self.answers else True)

    def on_event(self, callback: EventCallback) -> None:
        self.callbacks.append(callback)

    def emit(self, event: DeviceEvent) -> None:
        for callback in self.callbacks:
            callback(event)


def pairing(switch: FakeSwitch) -> Pairing:
    return Pairing(switch, pulse_seconds=0.01, button_timeout=2)


async def test_a_plug_that_answers_and_switches_is_paired_and_left_as_it_was() -> None:
    off = FakeSwitch(on=False)
    result = await pairing(off).prove_by_switching("tasmota", "t1")
    assert result.outcome is PairOutcome.PAIRED and result.at is not None
    # on with a device-side failsafe (it switches itself off if we cannot), then off
    assert [c for c, _ in off.commands] == ["on", "off"] and off.commands[0][1]
    assert off.on is False
    # a plug that was on (something charging from it): off for a moment, then on again
    on = FakeSwitch(on=True)
    assert (await pairing(on).prove_by_switching("shelly", "s1")).paired
    assert [c for c, _ in on.commands] == ["off", "on"] and on.on is True


@pytest.mark.parametrize(
    ("switch", "outcome"),
    [
        (FakeSwitch(answers=False), PairOutcome.OFFLINE),
        (FakeSwitch(switches=False), PairOutcome.NOT_SWITCHED),
    ],
)
async def test_a_plug_that_does_not_prove_itself_is_not_paired(
    switch: FakeSwitch, outcome: PairOutcome
) -> None:
    result = await pairing(switch).prove_by_switching("tasmota", "t1")
    assert result.outcome is outcome and result.at is None


async def test_a_broker_down_or_a_plug_known_offline_say_so() -> None:
    down = FakeSwitch()
    down.broker = False
    assert (await pairing(down).prove_by_switching("tasmota", "t1")).outcome is (
        PairOutcome.BROKER_DOWN
    )

    class Offline(FakeSwitch):
        async def state(self, device: DeviceRef, timeout: float = 5.0) -> PlugState:  # noqa: ASYNC109  # noqa: ASYNC109
            raise DeviceOfflineError(device)

    assert (await pairing(Offline()).prove_by_switching("tasmota", "t1")).outcome is (
        PairOutcome.OFFLINE
    )


async def test_a_button_press_pairs_only_when_seen_live() -> None:
    switch = FakeSwitch(switches=False)
    pair = pairing(switch)
    device = DeviceRef("tasmota", "t1")
    waiting = asyncio.create_task(pair.prove_by_button("tasmota", "t1"))
    await wait_until(lambda: device in pair._presses)
    (waiter,) = pair._presses[device]
    # a state re-read after a reconnection is not a press; another plug's press neither
    switch.emit(PowerChanged(device, on=True, discovered=True))
    switch.emit(PowerChanged(DeviceRef("tasmota", "t2"), on=True))
    assert not waiter.done()
    switch.emit(PowerChanged(device, on=False))
    assert (await waiting).paired
    # nobody presses: said so after the wait
    assert (await pairing(switch).prove_by_button("tasmota", "t1")).outcome is (
        PairOutcome.NO_PRESS
    )


async def test_setup_without_account_administration_asks_the_admin() -> None:
    setup = await Pairing(FakeSwitch(), plug_host="mqtt.example.com").setup("shelly", "cs-abc")
    assert setup.status is AccountStatus.BY_ADMIN and setup.password is None
    assert (setup.host, setup.port, setup.user, setup.topic) == (
        "mqtt.example.com",
        8883,
        "cs-abc",
        "cs-abc",
    )


def test_short_codes_read_as_typed() -> None:
    for _ in range(200):
        code = new_short_code()
        assert len(code) == 6 and set(code) <= set(SHORT_CODE_ALPHABET)
    assert not set("0O1I") & set(SHORT_CODE_ALPHABET)
    assert normalize_code(" k7p-2qx ") == "K7P2QX"
    assert normalize_code("k7p 2qx") == "K7P2QX"
    for bad in ("K7P2Q", "K7P2QXX", "K7P2Q0", "KOP2QX", "K1P2QX", "K7P2Q!", ""):
        with pytest.raises(InvalidInput) as refused:
            normalize_code(bad)
        assert refused.value.key == "label.err_format"


def test_a_plug_named_by_the_bot_is_a_valid_plug_id_for_both_families() -> None:
    name = new_plug_id()
    assert name.startswith("cs-")
    assert parse_plug_id(name, "tasmota") == name == parse_plug_id(name, "shelly")
    assert new_plug_id() != name


def test_only_this_bots_start_links_are_read() -> None:
    assert start_token("https://t.me/ChargeShareBot?start=abc_123", "chargeshare_bot") is None
    assert start_token("https://t.me/chargeshare_bot?start=abc_123", "ChargeShare_Bot") == (
        "abc_123"
    )
    assert start_token("https://evil.example/chargeshare_bot?start=x", "chargeshare_bot") is None
    assert start_token("https://t.me/chargeshare_bot", "chargeshare_bot") is None
    assert start_token("not a link", "chargeshare_bot") is None


async def test_a_label_is_read_back_from_its_picture() -> None:
    png = render_label(
        "https://t.me/chargeshare_bot?start=tok-123", "Volt", "Charger 1", "2.50 CNY", "K7P2QX"
    )
    assert await label_token(png, "chargeshare_bot") == "tok-123"
    assert await label_token(png, "other_bot") is None
    assert await label_token(b"not an image", "chargeshare_bot") is None


def test_only_a_paired_plug_or_one_kept_for_later_is_submitted() -> None:
    draft = factories.listing(chargers=2)
    draft.validate_complete()
    draft.chargers[1].paired_at = None
    with pytest.raises(InvalidInput) as refused:
        draft.validate_complete()
    assert refused.value.key == "pairing.err_unpaired" and refused.value.params == {"n": 2}
    draft.chargers[1].plug_later = True  # "No plug yet" / "Pair later": on purpose
    draft.validate_complete()


# -- a plug paired while its listing waits for review, and after (PostgreSQL and SQLite) --


async def test_a_plug_paired_under_review_stays_paired_when_approved(open_db) -> None:
    from sqlalchemy import select

    from models import Charger, User
    from services import bookings, listings

    merchant, other = 3001, 3002
    async with open_db() as db:
        db.add_all([User(id=i, first_name=str(i)) for i in (merchant, other)])
        await db.commit()
    draft = factories.listing(chargers=2)
    draft.chargers[1].paired_at, draft.chargers[1].plug_later = None, True  # "Pair later"
    later = draft.chargers[1].plug_key
    assert later is not None
    async with open_db() as db:
        revision = await listings.submit(
            db, merchant_id=merchant, draft=draft, moderation_chat_id=-1
        )
        assert later in await listings.owned_plugs(db, merchant_id=merchant)
        assert later not in await listings.owned_plugs(db, merchant_id=other)
        at = datetime.now(UTC)
        # not public yet: no charger marked, but the version under review is
        assert (
            await listings.mark_paired(
                db, merchant_id=merchant, driver=later[0], plug_id=later[1], at=at
            )
            == 0
        )
        await listings.approve(db, revision_id=revision.id, admin_id=1, moderation_chat_id=-1)
        chargers = (await db.scalars(select(Charger).order_by(Charger.position))).all()
        assert [c.paired_at is not None for c in chargers] == [True, True]
        assert abs((chargers[1].paired_at - at).total_seconds()) < 1
        assert (await bookings.bookable_charger(db, chargers[1].id)).id == chargers[1].id
