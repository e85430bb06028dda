"""The sandbox's web page in a real browser (Playwright driving Debian's Chromium): the
whole lifecycle clicked through the three chat panes and the chargers column.

A merchant submits a listing (a real photo upload, a location picked on the map), an
admin approves it in the group, the user finds it, books it, the merchant accepts,
the user scans the charger's QR label (decoded from the bot's PNG), starts charging,
the simulated plug turns on, the user stops, and the order shows in all three panes.
A screenshot of the page after the flow is saved to test-artifacts/.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from sandbox.runner import Sandbox

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
PLUG = "tasmota_tram_1"


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
async def page(sandbox: Sandbox) -> AsyncIterator[object]:
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        context = await browser.new_context(viewport={"width": 1600, "height": 1000})
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
    await merchant.say("Sonoff S31", "When can it be used")
    await merchant.tap_key("24/7", "per hour")
    await merchant.tap_key("per hour", "Price")
    await merchant.say("2.5", "smart plug")
    await merchant.tap_key("Tasmota", "Tasmota")
    await merchant.say(PLUG, "Add another")
    summary = await merchant.tap_key("Done, review the listing", "Submit for review")
    assert SHOP in await merchant.message(summary).inner_text()

    group_before = await group._snapshot()
    await merchant.press(summary, "Submit", "submitted for review")

    # an admin approves it in the group pane
    card = await group.expect_after(group_before, "New listing")
    assert SHOP in await group.message(card).inner_text()
    # one card (issue #16): the photo carries the caption and the buttons
    assert await page.locator(f'#pane-group .msg[data-id="{int(card)}"] img.photo').count()
    merchant_before = await merchant._snapshot()
    await group.press(card, "Approve", "Approved by")
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

    results = await user.act(here, "location(s) near you")
    card = await user.press(results, SHOP, "Book charger 1")
    assert await user.message(card).locator("img.photo").count()
    await user.press(card, "Book charger 1", "Which device")
    await user.tap_key("E-bike", "Which model")
    await user.say("Yadea G5", "When?")
    summary = await user.tap_key("Now for 1 h", "Confirm booking")
    merchant_before = await merchant._snapshot()
    await user.press(summary, "Confirm booking", "is requested")
    request = await merchant.expect_after(merchant_before, "New booking request from Lin")

    # the merchant accepts; the user gets the place as a venue on a map
    user_before = await user._snapshot()
    await merchant.press(request, "Accept", "accepted ✅")
    await user.expect_after(user_before, "accepted")
    await page.locator("#pane-user .msg.bot .venue-title", has_text=SHOP).last.wait_for()
    assert await page.locator("#pane-user .msg svg.map").count() >= 2  # own location, venue

    # the user scans the QR label at the charger: the camera's link opens the bot
    start = await user.act(charger.locator("button.scan").click, "press Start")
    sent = page.locator("#pane-user .msg.me", has_text="/start ").last
    assert len((await sent.inner_text()).split("/start ", 1)[1].split()[0]) >= 22
    merchant_before = await merchant._snapshot()
    running = await user.press(start, "Start charging", "Charging started")
    await merchant.expect_after(merchant_before, "Charging started")

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
    await user.expect_after({}, "Order #")
    await merchant.expect_after(merchant_before, "Order #")
    await group.expect_after(group_before, "Order #")
    await page.wait_for_function(
        "(plug) => document.querySelector(`.charger[data-plug='${plug}']`)"
        "?.dataset.relay === 'off'",
        arg=PLUG,
    )
    assert await plug.locator(".relay.off").count() == 1
