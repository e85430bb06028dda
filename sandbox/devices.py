"""Simulated smart plugs for every charger in the sandbox's database.

Each charger's plug (a Tasmota topic or a Shelly device id, as the merchant entered
it) gets a simulated device on the broker as soon as the charger exists, so a
listing submitted in the web page can be charged at once after approval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from models import Charger, Listing
from sandbox.demo import FILLS_UP
from sandbox.plugs import SimPlug, SimShelly, SimTasmota
from services.tx import OpenDb

log = logging.getLogger(__name__)

# what the simulated load draws, by charging method (W)
WATTS = {"ac_slow": 7000.0, "dc_fast": 30000.0, "socket": 350.0, "usb": 45.0, "other": 500.0}


@dataclass
class ChargerView:
    id: int
    listing_id: int
    shop: str
    latitude: float | None
    longitude: float | None
    position: int
    method: str
    driver: str
    plug_id: str
    token: str


class PlugFarm:
    """Keeps one simulated plug per (driver, plug id) of the database's chargers."""

    def __init__(
        self,
        mqtt_url: str,
        open_db: OpenDb,
        *,
        tele_period: float = 2.0,
        interval: float = 1.0,
        fill_seconds: float = 90.0,
    ) -> None:
        self.mqtt_url = mqtt_url
        self.open_db = open_db
        self.tele_period = tele_period
        self.interval = interval
        self.fill_seconds = fill_seconds
        self.plugs: dict[tuple[str, str], SimPlug] = {}
        self.chargers: list[ChargerView] = []
        # plugs online before any charger names them, to pair from the wizard
        self.spare: tuple[tuple[str, str], ...] = ()
        self._task: asyncio.Task[None] | None = None

    async def add_spare(self, *plugs: tuple[str, str]) -> None:
        """Plugs online on the broker that no charger has yet (issue #15: pairing)."""
        self.spare += plugs
        for driver, plug_id in plugs:
            await self._start_plug(driver, plug_id, "socket")

    async def _start_plug(self, driver: str, plug_id: str, method: str) -> None:
        cls = SimShelly if driver == "shelly" else SimTasmota
        plug = cls(
            self.mqtt_url, plug_id, watts=WATTS.get(method, 500.0), tele_period=self.tele_period
        )
        if plug_id in FILLS_UP:  # the demo battery that fills up (walk-up until full)
            plug.fill_seconds = self.fill_seconds
        self.plugs[(driver, plug_id)] = plug
        await plug.start()
        log.info("simulated %s plug %s is online", driver, plug_id)

    def spare_snapshot(self) -> list[dict[str, Any]]:
        """The spare plugs no charger has yet, with their relay, for the page."""
        used = {(view.driver, view.plug_id) for view in self.chargers}
        out = []
        for driver, plug_id in self.spare:
            plug = self.plug(driver, plug_id)
            if (driver, plug_id) in used or plug is None:
                continue
            out.append({"driver": driver, "plug_id": plug_id, "online": plug.online, "on": plug.on})
        return out

    async def sync(self) -> None:
        async with self.open_db() as db:
            rows = (
                await db.execute(
                    select(Charger, Listing)
                    .join(Listing, Charger.listing_id == Listing.id)
                    .where(Charger.active, Listing.published)
                    .order_by(Listing.id, Charger.position)
                )
            ).all()
        self.chargers = [
            ChargerView(
                id=charger.id,
                listing_id=listing.id,
                shop=listing.shop_name or "",
                latitude=listing.latitude,
                longitude=listing.longitude,
                position=charger.position,
                method=charger.method,
                driver=charger.plug_driver,
                plug_id=charger.plug_id,
                token=charger.qr_token,
            )
            for charger, listing in rows
        ]
        for view in self.chargers:
            key = (view.driver, view.plug_id)
            if key in self.plugs or not view.plug_id:
                continue
            await self._start_plug(view.driver, view.plug_id, view.method)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception:  # a busy database now and then: try again shortly
                log.exception("could not sync the simulated plugs")
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for plug in self.plugs.values():
            with contextlib.suppress(Exception):
                await plug.stop()

    def plug(self, driver: str, plug_id: str) -> SimPlug | None:
        return self.plugs.get((driver, plug_id))

    def snapshot(self) -> list[dict[str, Any]]:
        """The chargers with their plugs' live state, for the page."""
        out = []
        for view in self.chargers:
            plug = self.plug(view.driver, view.plug_id)
            out.append(
                {
                    "id": view.id,
                    "listing_id": view.listing_id,
                    "shop": view.shop,
                    "number": view.position + 1,
                    "method": view.method,
                    "driver": view.driver,
                    "plug_id": view.plug_id,
                    "online": bool(plug and plug.online),
                    "on": bool(plug and plug.on),
                    "watts": (plug.watts if plug and plug.on else 0.0),
                    "energy_kwh": round(plug.energy_wh() / 1000.0, 5) if plug else 0.0,
                }
            )
        return out
