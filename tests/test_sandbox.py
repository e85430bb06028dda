"""The offline sandbox without a browser: `python -m bot` without BOT_TOKEN starts it
(with the embedded amqtt broker here), the token switch, a charge driven through
the page's JSON API on amqtt (the browser test uses mosquitto where it is installed),
that no other web page can drive the page's API (issue #12), and paying an invoice
through it (issue #14)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import BufferedInputFile, LabeledPrice, Message, PreCheckoutQuery

from models.base import utcnow
from sandbox import demo
from sandbox.botapi import FakeBotAPI, plain
from sandbox.env import has_bot_token
from sandbox.runner import Sandbox
from sandbox.web import WebPage
from services import bookings
from services.bookings import BookingRules
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent


def test_bot_token_switch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOT_TOKEN", raising=False)
    env_file = tmp_path / ".env"
    assert not has_bot_token(env_file)  # no .env
    env_file.write_text("BOT_TOKEN=\nSANDBOX_PORT=0\n")
    assert not has_bot_token(env_file)  # empty
    env_file.write_text("BOT_TOKEN=123456:replace-with-your-token\n")
    assert not has_bot_token(env_file)  # .env.example's placeholder
    env_file.write_text("BOT_TOKEN=42:real\n")
    assert has_bot_token(env_file)
    env_file.write_text("")
    monkeypatch.setenv("BOT_TOKEN", "42:from-the-environment")
    assert has_bot_token(env_file)


async def test_python_m_bot_without_token_starts_the_sandbox(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k.upper() != "BOT_TOKEN"}
    env |= {"PYTHONPATH": str(ROOT), "SANDBOX_PORT": "0", "SANDBOX_BROKER": "amqtt"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,  # no .env there; the demo database goes to tmp_path/data
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    output: list[str] = []
    try:
        url = ""
        async with asyncio.timeout(90):
            while not url:
                line = (await process.stdout.readline()).decode()
                assert line, "the sandbox exited:\n" + "".join(output)
                output.append(line)
                if line.strip().startswith("http://127.0.0.1:"):
                    url = line.strip().rstrip("/")
        assert any("amqtt" in line for line in output), "".join(output)
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/") as response:
                assert response.status == 200
                assert "ChargeShare sandbox" in await response.text()

            async def chargers_up() -> bool:
                async with http.get(url + "/api/chargers") as response:
                    chargers = (await response.json())["chargers"]
                return len(chargers) == 4 and all(c["online"] and c["label"] for c in chargers)

            await wait_until(chargers_up, 30, interval=0.1, what="four chargers online")
        assert (tmp_path / "data" / "sandbox.db").exists()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        try:
            rest, _ = await asyncio.wait_for(process.communicate(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
    assert process.returncode == 0, "".join(output) + rest.decode()
    assert "Traceback" not in rest.decode()


def charger_kind(method: str) -> str:
    """A device kind the demo charger with that method fits."""
    return {"usb": "phone_laptop", "ac_slow": "ev_car"}.get(method, "e_bike")


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    sandbox = Sandbox(
        port=0,
        database=tmp_path / "sandbox.db",
        env_file=None,
        broker="amqtt",
        tele_period=0.3,
        scheduler_interval_seconds=0.5,
        device_confirm_seconds=5,
    )
    await sandbox.start()
    yield sandbox
    await sandbox.stop()


async def test_scan_and_charge_through_the_page_api_on_amqtt(sandbox: Sandbox) -> None:
    assert sandbox.broker is not None and sandbox.broker.kind == "amqtt"
    assert sandbox.app is not None and sandbox.farm is not None
    api = sandbox.api
    charger = next(c for c in sandbox.farm.chargers if c.driver == "shelly")
    # an accepted booking for now (the booking flow itself is clicked in the browser test)
    now = utcnow()
    async with sandbox.app.open_db() as db:
        booking = await bookings.request(
            db,
            user_id=demo.USER.id,
            charger_id=charger.id,
            device_kind=charger_kind(charger.method),
            device_model="",
            start=now,
            end=now + timedelta(hours=1),
            rules=BookingRules(zone=sandbox.app.settings.zone),
            now=now,
        )
        await bookings.accept(db, booking_id=booking.id, merchant_id=demo.MERCHANT.id, now=now)

    async with aiohttp.ClientSession(base_url=sandbox.url) as http:

        async def post(path: str, body: dict) -> dict:
            async with http.post(path, json=body) as response:
                assert response.status == 200, await response.text()
                return await response.json()

        async def labelled() -> bool:  # the bot sends the demo labels at start
            async with http.get("/api/chargers") as response:
                listed = {c["id"]: c for c in (await response.json())["chargers"]}
            return bool(listed[charger.id]["label"])

        await wait_until(labelled, 20, interval=0.1, what="the charger's label")

        after = api.last_message_id(demo.USER.id)
        scanned = await post("/api/scan", {"charger_id": charger.id})
        assert scanned["link"] == f"https://t.me/{api.bot_username}?start={charger.token}"
        assert scanned["text"] == f"/start {charger.token}"
        card = await api.wait_for_message(
            demo.USER.id, lambda m: "press Start" in m.get("text", ""), after=after
        )
        data = card["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        pressed = await post(
            "/api/press", {"chat": "user", "message_id": card["message_id"], "data": data}
        )
        assert "Switching on" in pressed["answer"]["text"]
        await api.wait_for_message(
            demo.USER.id, lambda m: "Charging started" in m.get("text", ""), after=after
        )
        async with http.get("/api/chargers") as response:
            state = {c["id"]: c for c in (await response.json())["chargers"]}[charger.id]
        assert state["on"] and state["online"] and state["watts"] > 0

        # the other panes' endpoints: a text, a location and a contact from the group
        await post("/api/send", {"chat": "group", "actor": demo.ADMINS[1].id, "text": "/pending"})
        await post("/api/location", {"chat": "user", "latitude": 31.23, "longitude": 121.47})
        await post("/api/contact", {"chat": "merchant"})
        async with http.post("/api/send", json={"chat": "group", "actor": demo.USER.id}) as r:
            assert r.status == 400  # the user is not in the admins' group pane
        async with http.get("/api/state?v=-1") as response:
            state = await response.json()
        assert {"user", "merchant", "group"} == set(state["chats"])
        group = state["chats"]["group"]["messages"]
        assert any(m.get("text") == "/pending" for m in group)


# -- only the page itself may drive it (issue #12) ----------------------------------------


@pytest.fixture
async def page() -> AsyncIterator[tuple[WebPage, FakeBotAPI]]:
    """The page's server alone, over a local Bot API server with the demo people."""
    api = FakeBotAPI()
    await api.start()
    for person in demo.PEOPLE:
        api.add_user(person.id, person.name, language_code=person.language)
    api.add_group(demo.GROUP_ID, demo.GROUP_TITLE)
    web = WebPage(api, farm=None, open_db=None)  # type: ignore[arg-type]
    await web.start("127.0.0.1", 0)
    yield web, api
    await web.stop()
    await api.stop()


SEND = json.dumps({"chat": "user", "text": "/start"})


@pytest.mark.parametrize(
    ("headers", "data", "status"),
    [
        # what a form or fetch() on any other web page can send without asking (CORS)
        ({"Content-Type": "text/plain", "Origin": "http://evil.example"}, SEND, 403),
        ({"Content-Type": "text/plain"}, SEND, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "chat=user&text=hi", 415),
        # JSON from another page (the browser would ask first; and says who asks)
        ({"Content-Type": "application/json", "Origin": "http://evil.example"}, SEND, 403),
        ({"Content-Type": "application/json", "Origin": "null"}, SEND, 403),
        ({"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, SEND, 403),
        # a foreign name for this machine: DNS rebinding
        ({"Content-Type": "application/json", "Host": "evil.example"}, SEND, 403),
    ],
)
async def test_other_web_pages_cannot_drive_it(
    page: tuple[WebPage, FakeBotAPI], headers: dict[str, str], data: str, status: int
) -> None:
    web, api = page
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{web.url}/api/send", data=data, headers=headers) as response:
            assert response.status == status, await response.text()
        form = aiohttp.FormData({"chat": "user"})
        form.add_field("file", b"\x89PNG", filename="x.png", content_type="image/png")
        async with http.post(
            f"{web.url}/api/photo", data=form, headers={"Origin": "http://evil.example"}
        ) as response:
            assert response.status == 403
    assert api.history(demo.USER.id) == []  # nothing was sent


async def test_a_foreign_host_reads_nothing(page: tuple[WebPage, FakeBotAPI]) -> None:
    web, _api = page
    port = web.url.rsplit(":", 1)[1]
    async with aiohttp.ClientSession() as http:
        for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}"):
            async with http.get(f"{web.url}/api/state", headers={"Host": host}) as response:
                assert response.status == 403, host


async def test_the_page_itself_may(page: tuple[WebPage, FakeBotAPI]) -> None:
    web, api = page
    port = web.url.rsplit(":", 1)[1]
    async with aiohttp.ClientSession() as http:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
            headers = {
                "Host": host,
                "Origin": f"http://{host}",
                "Sec-Fetch-Site": "same-origin",
                "Content-Type": "application/json",
            }
            async with http.post(f"{web.url}/api/send", data=SEND, headers=headers) as response:
                assert response.status == 200, await response.text()
            async with http.get(f"{web.url}/api/state", headers={"Host": host}) as response:
                assert response.status == 200
    assert [m["text"] for m in api.history(demo.USER.id)] == ["/start", "/start"]


# -- paying an invoice and downloading a document (issue #14) -----------------------------


def payments_bot(api: FakeBotAPI) -> tuple[Bot, Dispatcher]:
    """A bot that confirms every order except the one whose payload is "taken"."""
    bot = Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(api.url)))
    router = Router()

    @router.pre_checkout_query()
    async def confirm(query: PreCheckoutQuery) -> None:
        taken = query.invoice_payload == "taken"
        await query.answer(ok=not taken, error_message="Sorry, that charger was just taken")

    @router.message(F.successful_payment)
    async def thanks(message: Message) -> None:
        await message.answer("Thank you for paying")

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    return bot, dispatcher


async def test_paying_an_invoice_through_the_page_api(page: tuple[WebPage, FakeBotAPI]) -> None:
    web, api = page
    bot, dispatcher = payments_bot(api)
    polling = asyncio.create_task(
        dispatcher.start_polling(
            bot, handle_signals=False, allowed_updates=dispatcher.resolve_used_update_types()
        )
    )
    await api.wait_for_poller()

    async def invoice(payload: str) -> int:
        sent = await bot.send_invoice(
            demo.USER.id,
            title="Charging 2 h",
            description="Shop 1, charger 2",
            payload=payload,
            provider_token="TEST:provider",
            currency="CNY",
            prices=[LabeledPrice(label="2 h", amount=1200)],
        )
        return sent.message_id

    try:
        async with aiohttp.ClientSession(base_url=web.url) as http:

            async def pay(body: dict, status: int = 200) -> dict:
                async with http.post("/api/pay", json={"chat": "user", **body}) as response:
                    assert response.status == status, await response.text()
                    return await response.json() if status == 200 else {}

            first = await invoice("booking:1")
            declined = await pay({"message_id": first, "decline": True})
            assert declined["payment"]["status"] == "declined"
            paid = await pay({"message_id": first})
            assert paid["payment"] | {"message_id": 0} == {
                "invoice_message_id": first,
                "status": "paid",
                "error_message": None,
                "currency": "CNY",
                "total_amount": 1200,
                "message_id": 0,
            }
            thanks = await api.wait_for_message(
                demo.USER.id, lambda m: plain(m) == "Thank you for paying"
            )
            await pay({"message_id": first}, 400)  # paid already
            taken = await pay({"message_id": await invoice("taken")})
            assert taken["payment"]["status"] == "rejected"
            assert taken["payment"]["error_message"] == "Sorry, that charger was just taken"
            await pay({"message_id": 1, "decline": "yes"}, 400)
            await pay({"message_id": thanks["message_id"]}, 400)  # not an invoice

            async with http.get("/api/state?v=-1") as response:
                chat = (await response.json())["chats"]["user"]
            assert [p["status"] for p in chat["payments"]] == ["declined", "paid", "rejected"]
            receipt = next(m for m in chat["messages"] if "successful_payment" in m)
            assert receipt["successful_payment"]["total_amount"] == 1200
            assert chat["payments"][1]["message_id"] == receipt["message_id"]

            # only the page itself may pay
            async with http.post(
                "/api/pay",
                json={"chat": "user", "message_id": first},
                headers={"Origin": "http://evil.example"},
            ) as response:
                assert response.status == 403
    finally:
        await dispatcher.stop_polling()
        await polling
        await bot.session.close()
    assert len(api.payments) == 3


async def test_a_document_downloads_under_its_name(page: tuple[WebPage, FakeBotAPI]) -> None:
    web, api = page
    bot = Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(api.url)))
    try:
        sent = await bot.send_document(
            demo.MERCHANT.id, BufferedInputFile(b"order,total\n1,12.00\n", "订单.csv")
        )
    finally:
        await bot.session.close()
    assert sent.document is not None
    url = f"{web.url}/api/file/{sent.document.file_id}?download=1"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert response.content_type == "text/csv"
        assert response.headers["Content-Disposition"] == (
            "attachment; filename*=UTF-8''%E8%AE%A2%E5%8D%95.csv"
        )
        assert await response.read() == b"order,total\n1,12.00\n"


async def test_scan_acts_only_as_a_user_of_the_page_and_the_state_has_the_zone(
    page: tuple[WebPage, FakeBotAPI],
) -> None:
    """Scan sends /start as the user chosen on the page: never as the merchant or an
    admin. The page shows bubble times in the bot's TIMEZONE, which the state names."""
    web, api = page
    async with aiohttp.ClientSession() as http:
        for actor in (demo.MERCHANT.id, demo.ADMINS[0].id, "x"):
            async with http.post(
                f"{web.url}/api/scan", json={"charger_id": 1, "actor": actor}
            ) as response:
                assert response.status == 400, await response.text()
        async with http.get(f"{web.url}/api/state") as response:
            assert (await response.json())["timezone"] == "UTC"  # WebPage's default
    assert api.history(demo.USER.id) == [] and api.history(demo.MERCHANT.id) == []
