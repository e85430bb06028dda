"""The sandbox's web page: three chat panes (a user, a merchant, the admins' group)
over the local Bot API server, and the demo chargers with their QR labels and plugs.

Plain HTML/CSS/JS from ``sandbox/static`` (no build step) and a small JSON API:

- ``GET  /api/state?v=N``   the three chats (long-polls while the version is N)
- ``GET  /api/chargers``    chargers with their plugs' live relay state and energy
- ``GET  /api/map``         the city centre and the shops, for the little maps
- ``GET  /api/file/{id}``   a stored file (photos; documents, ``?download=1`` to save one
  under its name)
- ``GET  /api/label/{id}``  a charger's QR label: the PNG the bot sent the merchant
- ``POST /api/send``        text (``chat``, ``text``, optional ``actor``, ``reply_to``)
- ``POST /api/photo``       multipart ``chat``, ``file``, optional ``caption``, ``actor``
- ``POST /api/location``    ``chat``, ``latitude``, ``longitude``
- ``POST /api/contact``     ``chat``: the acting person shares their own phone number
- ``POST /api/press``       ``chat``, ``message_id``, ``data``: an inline button; waits
  for the bot's callback answer and returns it
- ``POST /api/button``      ``driver``, ``plug_id``: a simulated plug's own button pressed
- ``POST /api/scan``        ``charger_id``, optional ``actor``: decodes the label like a
  phone camera and sends what the camera's link opens (``/start <token>``) as the user
  chosen on the page
- ``POST /api/pay``         ``chat``, ``message_id``, optional ``decline``: pays the
  invoice in that message with the test card (or the provider declines it); waits
  for the outcome (the bot has Telegram's 10 s to answer the pre-checkout query)

Only the page itself may drive it, not another web page open in the same browser:
every request must name this server as its ``Host`` (a loopback name and the port;
a foreign name is DNS rebinding), and a POST must come from the page's own origin
(``Origin``, ``Sec-Fetch-Site``) with a JSON body (multipart for the photo), which
a foreign page cannot send without the browser asking first (CORS), and we never
say yes.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from aiohttp import web

from sandbox import demo
from sandbox.botapi import FakeBotAPI, Payment
from sandbox.devices import PlugFarm
from services.tx import OpenDb
from ui.callbacks import QrAction, QrRenewCb

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
JSON = "application/json"
JsonDict = dict[str, Any]

PANES: dict[str, JsonDict] = {
    "user": {"chat": demo.USER.id, "actors": [demo.USER], "role": "User"},
    "merchant": {"chat": demo.MERCHANT.id, "actors": [demo.MERCHANT], "role": "Merchant"},
    "group": {"chat": demo.GROUP_ID, "actors": list(demo.ADMINS), "role": "Admins' group"},
}


def decode_qr(png: bytes) -> str | None:
    """The text of the QR code in an image, as a phone's camera reads it."""
    try:
        import zxingcpp
        from PIL import Image
    except ImportError:  # pragma: no cover - zxing-cpp is a sandbox dependency
        return None
    codes = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return codes[0].text if codes else None


class WebPage:
    def __init__(
        self,
        api: FakeBotAPI,
        farm: PlugFarm,
        open_db: OpenDb,
        timezone: str = "UTC",
    ) -> None:
        self.api = api
        self.farm = farm
        self.open_db = open_db
        self.timezone = timezone  # TIMEZONE: the page shows bubble times in it
        self.url = ""
        self._hosts: set[str] = set()  # the Host values that name this server
        self._runner: web.AppRunner | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def application(self) -> web.Application:
        app = web.Application(client_max_size=20 * 1024 * 1024, middlewares=[self._own_page_only])
        app.router.add_get("/", self.index)
        app.router.add_static("/static/", STATIC)
        app.router.add_get("/api/state", self.state)
        app.router.add_get("/api/chargers", self.chargers)
        app.router.add_get("/api/map", self.map_data)
        app.router.add_get("/api/file/{file_id}", self.file)
        app.router.add_get("/api/label/{charger_id}", self.label)
        app.router.add_post("/api/send", self.send)
        app.router.add_post("/api/photo", self.photo)
        app.router.add_post("/api/location", self.location)
        app.router.add_post("/api/contact", self.contact)
        app.router.add_post("/api/press", self.press)
        app.router.add_post("/api/scan", self.scan)
        app.router.add_post("/api/button", self.button)
        app.router.add_post("/api/pay", self.pay)
        return app

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(
            self.application(), access_log=None, handler_cancellation=True, shutdown_timeout=1
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.url = f"http://{bound_host}:{bound_port}"
        names = {"127.0.0.1", "localhost", "[::1]", host, bound_host}
        self._hosts = {f"{name}:{bound_port}" for name in names}
        if bound_port == 80:  # a browser leaves the default port out
            self._hosts |= names

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- who may drive the page ---------------------------------------------------------
    @web.middleware
    async def _own_page_only(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.host.lower() not in self._hosts:  # DNS rebinding: a foreign name
            raise web.HTTPForbidden(text=f"unknown host {request.host!r}: use {self.url}")
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("Origin")
            site = request.headers.get("Sec-Fetch-Site")
            # (a browser sends both; other programs, like the tests, need neither)
            if origin is not None and origin.lower().removeprefix("http://") not in self._hosts:
                raise web.HTTPForbidden(text="only the sandbox's own page may do this")
            if site is not None and site not in ("same-origin", "none"):
                raise web.HTTPForbidden(text="only the sandbox's own page may do this")
            expected = "multipart/form-data" if request.path == "/api/photo" else JSON
            if request.content_type != expected:
                raise web.HTTPUnsupportedMediaType(text=f"expected a {expected} body")
        return await handler(request)

    # -- helpers ------------------------------------------------------------------------
    @staticmethod
    def _pane(name: str) -> JsonDict:
        pane = PANES.get(name)
        if pane is None:
            raise web.HTTPBadRequest(text=f"unknown chat {name!r}")
        return pane

    def _actor(self, pane: JsonDict, raw: object) -> demo.Person:
        actors: list[demo.Person] = pane["actors"]
        if raw in (None, ""):
            return actors[0]
        for person in actors:
            if str(person.id) == str(raw):
                return person
        raise web.HTTPBadRequest(text=f"{raw} cannot write in this chat")

    @staticmethod
    async def _body(request: web.Request) -> JsonDict:
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="expected a JSON body") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="expected a JSON object")
        return body

    def _message_ref(self, message: JsonDict) -> JsonDict:
        return {"message_id": message["message_id"]}

    # -- pages --------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def state(self, request: web.Request) -> web.Response:
        try:
            since = int(request.query.get("v", "-1"))
        except ValueError:
            since = -1
        version = self.api.version
        if since == version:
            version = await self.api.wait_for_change(since, 20.0)
        chats = {}
        for name, pane in PANES.items():
            chat_id = pane["chat"]
            chats[name] = {
                "id": chat_id,
                "title": (
                    demo.GROUP_TITLE if chat_id < 0 else self.api.user_info(chat_id)["first_name"]
                ),
                "role": pane["role"],
                "actors": [{"id": p.id, "name": p.name} for p in pane["actors"]],
                "messages": [m for m in self.api.history(chat_id) if not m.get("deleted")],
                "keyboard": self.api.keyboard_markup(chat_id),
                "payments": [
                    self._payment_view(p) for p in self.api.payments if p.chat_id == chat_id
                ],
            }
        return web.json_response(
            {
                "version": version,
                "bot": {"id": self.api.bot_id, "username": self.api.bot_username},
                "timezone": self.timezone,
                "chats": chats,
            }
        )

    async def chargers(self, request: web.Request) -> web.Response:
        items = self.farm.snapshot()
        for item in items:
            label = self._label_message(item["id"])
            item["label"] = f"/api/label/{item['id']}?m={label['message_id']}" if label else None
        return web.json_response({"chargers": items, "spare_plugs": self.farm.spare_snapshot()})

    async def button(self, request: web.Request) -> web.Response:
        """Someone presses a simulated plug's own button (pairing by button)."""
        body = await self._body(request)
        plug = self.farm.plug(str(body.get("driver")), str(body.get("plug_id")))
        if plug is None:
            raise web.HTTPNotFound(text="no such simulated plug")
        await plug.press_button()
        return web.json_response({"on": plug.on})

    async def map_data(self, request: web.Request) -> web.Response:
        shops: dict[int, JsonDict] = {}
        for view in self.farm.chargers:
            if view.latitude is not None and view.longitude is not None:
                shops.setdefault(
                    view.listing_id,
                    {"name": view.shop, "latitude": view.latitude, "longitude": view.longitude},
                )
        return web.json_response(
            {
                "centre": {"latitude": demo.CENTRE[0], "longitude": demo.CENTRE[1]},
                "shops": list(shops.values()),
            }
        )

    async def file(self, request: web.Request) -> web.Response:
        try:
            data, mime = self.api.file_info(request.match_info["file_id"])
        except KeyError:
            raise web.HTTPNotFound() from None
        if data.startswith(b"\x89PNG"):
            mime = "image/png"
        headers = {"Cache-Control": "max-age=3600"}
        name = self.api.file_name(request.match_info["file_id"])
        if name and request.query.get("download"):
            # RFC 6266 / 5987: a UTF-8 name (an order export may be called 订单.csv)
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name)}"
        return web.Response(body=data, content_type=mime, headers=headers)

    # -- QR labels ----------------------------------------------------------------------
    def _label_message(self, charger_id: int) -> JsonDict | None:
        """The newest label the bot sent the merchant for that charger (its photo has
        the "Renew this QR code" button that names the charger)."""
        found = None
        for message in self.api.bot_messages(demo.MERCHANT.id):
            # a PNG document since issue #15 (a photo before: JPEG, blurred for print)
            if "document" not in message and "photo" not in message:
                continue
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    data = button.get("callback_data") or ""
                    if not data.startswith(QrRenewCb.__prefix__ + ":"):
                        continue
                    try:
                        payload = QrRenewCb.unpack(data)
                    except (ValueError, TypeError):
                        continue
                    if payload.action == QrAction.RENEW and payload.charger_id == charger_id:
                        found = message
        return found

    def _label_png(self, charger_id: int) -> bytes:
        message = self._label_message(charger_id)
        if message is None:
            raise web.HTTPNotFound(text="the bot has not sent this charger's label yet")
        file_id = (
            message["document"]["file_id"]
            if "document" in message
            else message["photo"][-1]["file_id"]
        )
        data, _ = self.api.file_info(file_id)
        return data

    async def label(self, request: web.Request) -> web.Response:
        try:
            charger_id = int(request.match_info["charger_id"])
        except ValueError:
            raise web.HTTPNotFound() from None
        return web.Response(body=self._label_png(charger_id), content_type="image/png")

    async def scan(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            charger_id = int(body.get("charger_id", 0))
        except (TypeError, ValueError):
            raise web.HTTPBadRequest(text="charger_id must be a number") from None
        person = self._actor(PANES["user"], body.get("actor"))  # the user chosen on the page
        png = self._label_png(charger_id)
        link = await asyncio.to_thread(decode_qr, png)
        if link is None:
            raise web.HTTPUnprocessableEntity(text="no QR code could be read from the label")
        parts = urlsplit(link)
        start = parse_qs(parts.query).get("start", [""])[0]
        # the camera opens https://t.me/<bot>?start=<token>; Telegram sends "/start <token>"
        text = f"/start {start}" if start else "/start"
        message = self.api.send_text(person.id, person.id, text)
        return web.json_response({"link": link, "text": text, **self._message_ref(message)})

    # -- acting -------------------------------------------------------------------------
    async def send(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        pane = self._pane(str(body.get("chat")))
        person = self._actor(pane, body.get("actor"))
        text = str(body.get("text") or "").strip()
        if not text:
            raise web.HTTPBadRequest(text="empty message")
        reply_to = body.get("reply_to")
        try:
            message = self.api.send_text(
                pane["chat"],
                person.id,
                text,
                reply_to_message_id=int(reply_to) if reply_to else None,
            )
        except ValueError as error:
            raise web.HTTPBadRequest(text=str(error)) from None
        return web.json_response(self._message_ref(message))

    async def photo(self, request: web.Request) -> web.Response:
        form = await request.post()
        pane = self._pane(str(form.get("chat")))
        person = self._actor(pane, form.get("actor"))
        upload = form.get("file")
        if upload is None or not hasattr(upload, "file"):
            raise web.HTTPBadRequest(text="no file")
        data = upload.file.read()
        caption = str(form.get("caption") or "") or None
        try:
            message = self.api.send_photo(pane["chat"], person.id, data=data, caption=caption)
        except ValueError as error:
            raise web.HTTPBadRequest(text=str(error)) from None
        return web.json_response(self._message_ref(message))

    async def location(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        pane = self._pane(str(body.get("chat")))
        person = self._actor(pane, body.get("actor"))
        try:
            latitude = float(body["latitude"])
            longitude = float(body["longitude"])
        except (KeyError, TypeError, ValueError):
            raise web.HTTPBadRequest(text="latitude and longitude are required") from None
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise web.HTTPBadRequest(text="not a place on Earth")
        message = self.api.send_location(pane["chat"], person.id, latitude, longitude)
        return web.json_response(self._message_ref(message))

    async def contact(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        pane = self._pane(str(body.get("chat")))
        person = self._actor(pane, body.get("actor"))
        message = self.api.send_contact(
            pane["chat"], person.id, person.phone, person.name, contact_user_id=person.id
        )
        return web.json_response(self._message_ref(message))

    async def press(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        pane = self._pane(str(body.get("chat")))
        person = self._actor(pane, body.get("actor"))
        try:
            message_id = int(body["message_id"])
            data = str(body["data"])
        except (KeyError, TypeError, ValueError):
            raise web.HTTPBadRequest(text="message_id and data are required") from None
        try:
            query_id = self.api.press(pane["chat"], person.id, message_id, data)
        except AssertionError as error:
            raise web.HTTPBadRequest(text=str(error)) from None
        try:
            answer = await self.api.wait_for_callback_answer(query_id, timeout=10)
        except AssertionError:
            answer = {"text": None, "show_alert": False, "unanswered": True}
        return web.json_response({"answer": answer})

    # -- payments -----------------------------------------------------------------------
    @staticmethod
    def _payment_view(payment: Payment) -> JsonDict:
        return {
            "invoice_message_id": payment.invoice_message_id,
            "status": payment.status,
            "error_message": payment.error_message,
            "currency": payment.currency,
            "total_amount": payment.total_amount,
            "message_id": payment.message_id,
        }

    async def pay(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        pane = self._pane(str(body.get("chat")))
        person = self._actor(pane, body.get("actor"))
        try:
            message_id = int(body["message_id"])
        except (KeyError, TypeError, ValueError):
            raise web.HTTPBadRequest(text="message_id is required") from None
        decline = body.get("decline", False)
        if not isinstance(decline, bool):
            raise web.HTTPBadRequest(text="decline must be true or false")
        try:
            payment = await self.api.pay_invoice(
                pane["chat"], person.id, message_id, decline=decline
            )
        except ValueError as error:
            raise web.HTTPBadRequest(text=str(error)) from None
        return web.json_response({"payment": self._payment_view(payment)})
