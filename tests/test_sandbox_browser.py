"""The sandbox's web page in a real browser (Playwright driving Debian's Chromium): the
whole lifecycle clicked through the three chat panes and the chargers column.

A merchant submits a listing (a real photo upload, a location picked on the map, the
sandbox's new plug paired in the wizard), an admin approves it in the group, the user
finds it, books it, the merchant accepts, the user scans the charger's QR label
(decoded from the bot's PNG), starts charging, the simulated plug turns on, the user
stops, and the order shows in all three panes.
A screenshot of the page after the flow is saved to test-artifacts/.
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from sqlalchemy import select, update

from models import Charger
from sandbox import demo
from sandbox.runner import Sandbox
from services.tx import transaction
from tests.support.waiting import wait_until

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="playwright is not installed (pip install -e '.[test]')"
)
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(
        f"Chromium is not installed at {CHROMIUM} (scripts/test.sh apt-get installs it; "
        "it could not be installed here)",
        allow_module_level=True,
    )

SHOP = "Tram Stop Bikes"
# the sandbox's new plug, online but nobody's: the merchant pairs it in the wizard
PLUG = demo.NEW_PLUGS[0][1]


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    sandbox = Sandbox(
        port=0,
        database=tmp_path / "sandbox.db",
        env_file=None,
        tele_period=0.5,
        scheduler_interval_seconds=0.5,
        device_confirm_seconds=5,
    )
    await sandbox.start()
    yield sandbox
    await sandbox.stop()


@pytest.fixture
async def page(sandbox: Sandbox, request: pytest.FixtureRequest) -> AsyncIterator[object]:
    # a test may ask for another screen size (indirect parametrisation)
    width, height = getattr(request, "param", (1600, 1000))
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        # a browser elsewhere than the bot's TIMEZONE (Asia/Shanghai)
        context = await browser.new_context(
            viewport={"width": width, "height": height}, timezone_id="America/New_York"
        )
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(15_000)
        await page.goto(sandbox.url + "/")
        try:
            yield page
        finally:
            await browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


# -- acting in the page ----------------------------------------------------------------


class Pane:
    """One chat pane of the page, used as a person would use it."""

    def __init__(self, page, name: str) -> None:
        self.page = page
        self.name = name
        self.root = page.locator(f"#pane-{name}")

    async def _snapshot(self) -> dict[str, str]:
        return await self.page.evaluate(
            """(name) => Object.fromEntries([...document.querySelectorAll(
                `#pane-${name} .msg.bot`)].map((m) => [m.dataset.id, m.innerText]))""",
            self.name,
        )

    async def expect_after(self, before: dict[str, str], text: str, seconds: float = 15) -> str:
        """Wait for a bot message, new or changed since ``before``, that shows ``text``
        (in its text or its buttons); returns its message id."""
        handle = await self.page.wait_for_function(
            """([name, before, text]) => {
                for (const m of document.querySelectorAll(`#pane-${name} .msg.bot`)) {
                    const old = before[m.dataset.id];
                    if (m.innerText.includes(text) && (old === undefined || !old.includes(text)))
                        return m.dataset.id;
                }
                return null;
            }""",
            arg=[self.name, before, text],
            timeout=seconds * 1000,
        )
        return str(await handle.json_value())

    async def act(self, action, expect: str, seconds: float = 15) -> str:
        before = await self._snapshot()
        await action()
        return await self.expect_after(before, expect, seconds)

    async def say(self, text: str, expect: str) -> str:
        async def type_it() -> None:
            box = self.root.locator("input.text")
            await box.fill(text)
            await box.press("Enter")

        return await self.act(type_it, expect)

    async def tap_key(self, label: str, expect: str) -> str:
        """A reply-keyboard button."""
        button = self.root.locator(".reply-keyboard button", has_text=label).first
        return await self.act(button.click, expect)

    async def press(self, message_id: str, label: str, expect: str) -> str:
        """An inline button of a message."""
        button = self.root.locator(
            f'.msg[data-id="{message_id}"] .kbd button', has_text=label
        ).first
        return await self.act(button.click, expect)

    def message(self, message_id: str):
        return self.root.locator(f'.msg[data-id="{message_id}"]')

    async def shows(self, message_id: str, text: str, seconds: float = 15) -> None:
        """Wait until the message (a card, edited as its state changes) shows ``text``."""
        await self.page.wait_for_function(
            """([name, id, text]) => document.querySelector(
                `#pane-${name} .msg[data-id="${id}"]`)?.innerText.includes(text)""",
            arg=[self.name, message_id, text],
            timeout=seconds * 1000,
        )

    async def no_buttons(self, message_id: str) -> None:
        assert await self.message(message_id).locator(".kbd button").count() == 0


def storefront() -> bytes:
    image = Image.new("RGB", (480, 320), (90, 140, 200))
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 40, 440, 110), fill=(250, 250, 240))
    draw.rectangle((200, 170, 280, 320), fill=(70, 50, 40))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


# -- the lifecycle ---------------------------------------------------------------------


async def test_whole_lifecycle_in_the_browser(sandbox: Sandbox, page) -> None:
    started = time.monotonic()
    try:
        await lifecycle(page)
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "sandbox-failure.png"))
        raise
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "sandbox-lifecycle.png"))
    print(f"browser lifecycle took {time.monotonic() - started:.1f}s")


async def lifecycle(page) -> None:
    user, merchant, group = Pane(page, "user"), Pane(page, "merchant"), Pane(page, "group")
    # the demo world is there: three approved shops with their labels and plugs
    await page.locator(".charger").nth(3).wait_for()
    assert await page.locator(".charger .relay.off").count() == 4

    # the merchant submits a listing: contact, name, photo, area, location, a charger
    await merchant.say("/newlisting", "Contact phone")
    await merchant.tap_key("Share my contact", "Shop name")
    await merchant.say(SHOP, "photo of the storefront")

    async def upload() -> None:
        await merchant.root.locator("input.file").set_input_files(
            files=[{"name": "shop.png", "mimeType": "image/png", "buffer": storefront()}]
        )

    await merchant.act(upload, "Shop area")
    await merchant.say("30", "Location")

    async def pick_on_map() -> None:
        await merchant.root.locator(".reply-keyboard button", has_text="Share location").click()
        svg = merchant.root.locator(".picker-map svg")
        box = await svg.bounding_box()
        assert box is not None
        # west of the centre, about a kilometre away
        await page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)

    await merchant.act(pick_on_map, "Address")
    await merchant.say("5 Huaihai Middle Rd", "Charger 1")
    await merchant.tap_key("Household socket", "which devices")
    await merchant.tap_key("E-bike", "Selected: E-bike")
    await merchant.tap_key("Done", "models")
    await merchant.tap_key("Any model", "Supply device kind")
    await merchant.say("Smart socket", "Supply device model")
    await merchant.say("Sonoff S31", "Rated power")
    await merchant.say("2.2", "When can it be used")
    await merchant.tap_key("24/7", "per hour")
    await merchant.tap_key("per hour", "Price")
    await merchant.say("2.5", "smart plug")
    await merchant.tap_key("Tasmota", "Tasmota")
    # the new plug waits beside the panes, off; typed in the wizard, the bot pairs it
    # (on for a moment, then off, each confirmed by the plug)
    await page.locator(f".spare-plug[data-plug='{PLUG}']").wait_for()
    paired = await merchant.say(PLUG, "is paired")
    assert PLUG in await merchant.message(paired).inner_text()
    summary = await merchant.tap_key("Done, review the listing", "Submit for review")
    assert SHOP in await merchant.message(summary).inner_text()
    assert "paired ✓" in await merchant.message(summary).inner_text()

    group_before = await group._snapshot()
    await merchant.press(summary, "Submit", "submitted for review")

    # an admin approves it in the group pane
    card = await group.expect_after(group_before, "New listing")
    assert SHOP in await group.message(card).inner_text()
    # one card (issue #16): the photo carries the caption and the buttons
    assert await page.locator(f'#pane-group .msg[data-id="{int(card)}"] img.photo').count()
    merchant_before = await merchant._snapshot()
    await group.press(card, "Approve", "Approved by")
    await group.shows(card, "Approved by")  # the review card says so, for good
    await merchant.expect_after(merchant_before, "is approved and now public")
    await merchant.expect_after(merchant_before, "Print this label")

    # its charger shows up beside the panes with the bot's label and a simulated plug
    charger = page.locator(".charger", has_text=SHOP)
    await charger.locator("img.label").wait_for()
    await page.wait_for_function(
        "(plug) => document.querySelector(`.charger[data-plug='${plug}']`)"
        "?.dataset.relay === 'off'",
        arg=PLUG,
    )

    # the user finds it near them and books it for now
    await user.say("/find", "Where are you")

    async def here() -> None:
        await user.root.locator(".reply-keyboard button", has_text="Share location").click()
        await user.root.locator(".picker-here").click()

    results = await user.act(here, "locations near you")
    card = await user.press(results, SHOP, "Book charger 1")
    assert await user.message(card).locator("img.photo").count()
    await user.press(card, "Book charger 1", "Which device")
    await user.tap_key("E-bike", "Which model")
    await user.say("Yadea G5", "When?")
    summary = await user.tap_key("Now for 1 h", "Confirm booking")
    assert "Paid in Telegram" in await user.message(summary).inner_text()
    user_before = await user._snapshot()
    await user.press(summary, "Confirm booking", "waits for your payment")
    # 2.50 CNY is under the smallest invoice: a wallet top-up of 10.00 CNY, paid with
    # the sandbox's test card; the booking is paid from the wallet, the merchant asked
    invoice = await user.expect_after(user_before, "Wallet top-up")
    assert "10.00" in await user.message(invoice).inner_text()
    merchant_before = await merchant._snapshot()

    async def pay() -> None:
        await user.message(invoice).locator("button.pay-button").click()
        await user.root.locator(".paysheet .pay-confirm").click()

    await user.act(pay, "booking #1 is paid")
    request = await merchant.expect_after(merchant_before, "New booking request from Lin")

    # the merchant accepts; the user gets the place as a venue on a map
    user_before = await user._snapshot()
    await merchant.press(request, "Accept", "accepted ✅")
    accepted = await user.expect_after(user_before, "accepted")
    # the merchant's request card shows the decision, with no buttons left
    await merchant.shows(request, "Accepted by you at")
    await merchant.no_buttons(request)
    await page.locator("#pane-user .msg.bot .venue-title", has_text=SHOP).last.wait_for()
    assert await page.locator("#pane-user .msg svg.map").count() >= 2  # own location, venue

    # the user scans the QR label at the charger: the camera's link opens the bot
    start = await user.act(charger.locator("button.scan").click, "press Start")
    # as in Telegram, the bubble says "/start": the link's token is not shown
    sent = page.locator("#pane-user .msg.me .text", has_text="/start").last
    assert (await sent.inner_text()).strip() == "/start"
    merchant_before = await merchant._snapshot()
    running = await user.press(start, "Start charging", "Charging started")
    merchant_card = await merchant.expect_after(merchant_before, "Charging started")

    # the plug turns on (live in the chargers column), energy flows
    plug = page.locator(f".charger[data-plug='{PLUG}']")
    await page.wait_for_function(
        "(plug) => document.querySelector(`.charger[data-plug='${plug}']`)?.dataset.relay === 'on'",
        arg=PLUG,
    )
    assert "350 W" in await plug.locator(".energy").inner_text()

    # stop: confirm, the plug turns off, the order reaches all three panes
    merchant_before, group_before = await merchant._snapshot(), await group._snapshot()
    confirm = await user.press(running, "Stop charging", "Stop charging now?")
    await user.press(confirm, "Yes, stop now", "Power off at")
    order = await user.expect_after({}, "Order #")
    await merchant.expect_after(merchant_before, "Order #")
    await group.expect_after(group_before, "Order #")
    await page.wait_for_function(
        "(plug) => document.querySelector(`.charger[data-plug='${plug}']`)"
        "?.dataset.relay === 'off'",
        arg=PLUG,
    )
    assert await plug.locator(".relay.off").count() == 1
    # every card that showed the session now says how it ended, on both sides
    found = re.search(r"Order #(\d+)", await user.message(order).inner_text())
    assert found is not None
    number = found.group(1)
    await user.shows(running, f"Finished: order #{number}")
    await user.no_buttons(running)
    await merchant.shows(merchant_card, f"Finished: order #{number}")
    await merchant.no_buttons(merchant_card)
    # ... and the booking's cards: the rider's acceptance, the merchant's request
    await user.shows(accepted, "Charged; your order was sent.")
    await user.no_buttons(accepted)
    await merchant.shows(request, "Charged and closed; the order was sent.")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "sandbox-lifecycle-en.png"))


@pytest.mark.parametrize("page", [(1024, 768)], indirect=True)
async def test_the_page_at_1024_px_with_its_guide_times_and_newest_messages(
    sandbox: Sandbox, page
) -> None:
    """From 1024 px wide nothing runs off the side; the guide says what to try; a
    bubble's time is the bot's TIMEZONE, not the browser's; a pane whose chat grows
    shows its newest message."""
    user = Pane(page, "user")
    await page.locator(".charger").nth(3).wait_for()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 1024
    for name in ("user", "merchant", "group"):
        box = await page.locator(f"#pane-{name}").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 1024, name
        assert box["width"] >= 280, name

    await page.locator(".guide summary").click()
    guide = page.locator(".guide ol")
    await guide.wait_for()
    assert "Approve" in await guide.inner_text() and "Scan" in await guide.inner_text()
    await page.locator(".guide summary").click()

    for _ in range(4):  # long answers: more than the pane holds
        await user.say("/help", "/newlisting")
    shanghai = {
        time.strftime("%H:%M", time.gmtime(time.time() + 8 * 3600 + delta))
        for delta in (-60, 0, 60)
    }
    last = page.locator("#pane-user .msg.me .meta").last
    assert (await last.inner_text()).strip() in shanghai
    at_bottom = await page.evaluate(
        """() => { const box = document.querySelector('#pane-user .messages');
        return box.scrollHeight > box.clientHeight
            && box.scrollHeight - box.scrollTop - box.clientHeight < 4; }"""
    )
    assert at_bottom
    # scrolled up, a new message still comes into view
    await page.evaluate("document.querySelector('#pane-user .messages').scrollTop = 0")
    await user.say("/help", "/newlisting")
    await page.wait_for_function(
        """() => { const box = document.querySelector('#pane-user .messages');
        return box.scrollHeight - box.scrollTop - box.clientHeight < 4; }"""
    )
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "sandbox-1024.png"))


# -- walk-up charging until full (issue #15) -------------------------------------------

FILLING_PLUG = "tasmota_bund_1"  # the demo plug whose battery "fills up"


@pytest.fixture
async def filling_sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    sandbox = Sandbox(
        port=0,
        database=tmp_path / "sandbox.db",
        env_file=None,
        tele_period=0.5,
        fill_seconds=4,
        scheduler_interval_seconds=0.5,
        device_confirm_seconds=5,
        # pay at the shop: this walk is about walking up and "full"; paying a walk-up
        # is tests/test_walkup_service.py's (prepaid, from the wallet or an invoice)
        payment_provider_token="",
    )
    await sandbox.start()
    yield sandbox
    await sandbox.stop()


async def test_walk_up_scan_charge_until_full_in_the_browser(filling_sandbox: Sandbox) -> None:
    """A rider walks up to a demo charger with no booking, scans it, charges until
    full, and gets the order: the plug's power falls to a trickle and the bot ends it."""
    app = filling_sandbox.app
    assert app is not None

    async def metering() -> bool:
        async with app.open_db() as db:
            return bool(
                await db.scalar(select(Charger.meters_power).where(Charger.plug_id == FILLING_PLUG))
            )

    # its plug has reported power: "until full" is offered; full at once under 10 W
    # after drawing (the minutes are the service tests' matter)
    await wait_until(metering, 20, what="the demo plug marked as metering power")
    async with app.open_db() as db, transaction(db):
        await db.execute(
            update(Charger).where(Charger.plug_id == FILLING_PLUG).values(full_minutes=0)
        )

    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        page = await (
            await browser.new_context(viewport={"width": 1600, "height": 1000})
        ).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(15_000)
        await page.goto(filling_sandbox.url + "/")
        try:
            user, merchant = Pane(page, "user"), Pane(page, "merchant")
            charger = page.locator(f".charger[data-plug='{FILLING_PLUG}']")
            await charger.locator("button.scan").wait_for()
            card = await user.act(charger.locator("button.scan").click, "Charge now?")
            text = await user.message(card).inner_text()
            assert "Bund Bike Hub" in text and "30 min" in text
            booked = await user.press(card, "Until full", "Booked now")
            merchant_before = await merchant._snapshot()
            await user.press(booked, "Start charging", "Charging until full")
            await merchant.expect_after(merchant_before, "Charging started")
            # the battery fills up; the bot switches the plug off and makes the order
            order = await user.expect_after({}, "Order #", seconds=40)
            assert "the battery was full" in await user.message(order).inner_text()
            await merchant.expect_after(merchant_before, "Order #")
            await page.wait_for_function(
                "(plug) => document.querySelector(`.charger[data-plug='${plug}']`)"
                "?.dataset.relay === 'off'",
                arg=FILLING_PLUG,
            )
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "sandbox-walkup.png"))
        except BaseException:
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "sandbox-walkup-failure.png"))
            raise
        finally:
            await browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"
