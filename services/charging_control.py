"""Charging through the PowerSwitch port: start, stop, device events, timed
stops and recovery after a restart or a broker outage.

The order of steps is what makes it safe:
- start: STARTING is committed before the power-on is sent; CHARGING only on
  the device's own confirmation (the clock starts then); no confirmation →
  FAILED, nothing billed, and a late "on" is switched off by reconciliation;
- stop: STOPPING (with the time asked) is committed before the power-off, so
  a crash in between still ends the session at that time after a restart;
- whatever the device does by itself (off, offline) closes a CHARGING session
  at the last moment it was known to be on.
A plug that is on with no session of ours is switched off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hardware_bridge.port import (
    BridgeError,
    BridgeUnavailable,
    DeviceEvent,
    DeviceOffline,
    DeviceOnline,
    DeviceRef,
    EnergyReading,
    NotConfirmed,
    PlugState,
    PowerChanged,
    PowerSwitch,
)
from models import Charger, ChargingSession, EndReason, Order, SessionStatus
from models.base import utcnow
from services import charging
from services.charging import ChargingRules
from services.errors import DomainError, InvalidInput

log = logging.getLogger(__name__)

# the device switches itself off this long after the window's end, should the bot
# and the broker both be down then (Shelly toggle_after, Tasmota PulseTime)
FAILSAFE_SLACK = timedelta(minutes=2)
# meter readings while charging are written at most this often per session
SEEN_WRITE_SECONDS = 30.0
SEEN_EVERY = timedelta(seconds=SEEN_WRITE_SECONDS)
# a STOPPING session this old was left by a process that died while stopping
STOP_STALE = timedelta(seconds=30)
_NOW_KNOWN = object()  # _last_on: ask the bridge what it knows now


def device_of(item: Charger | ChargingSession) -> DeviceRef:
    """A charger's plug, or the plug a session switched (copied at its start)."""
    return DeviceRef(item.plug_driver, item.plug_id)  # type: ignore[arg-type]


def bridge_error_key(error: BridgeError) -> str:
    if isinstance(error, DeviceOffline):
        return "err.device_offline"
    if isinstance(error, BridgeUnavailable):
        return "err.bridge_down"
    return "err.start_not_confirmed"


class ChargingControl:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        power: PowerSwitch,
        rules: ChargingRules,
        *,
        confirm_timeout: float = 10.0,
        offline_grace: float = 60.0,
        silent_after: timedelta = timedelta(minutes=15),
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self.power = power
        self.rules = rules
        self.confirm_timeout = confirm_timeout
        # how long a plug may be offline before its session is closed (at the last
        # moment it was heard), and how long it may stay silent before it is asked
        self.offline_grace = offline_grace
        self.silent_after = silent_after
        self._on_change = on_change
        # device → its CHARGING session, so meter readings need no query
        self._charging: dict[DeviceRef, int] = {}
        self._seen_written: dict[int, float] = {}
        self._locks: dict[DeviceRef, asyncio.Lock] = {}
        self._checking: set[DeviceRef] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        power.on_event(self.on_event)

    # -- people's actions ------------------------------------------------------------------
    async def start(
        self,
        booking_id: int,
        user_id: int,
        *,
        progress: Callable[[], Awaitable[None]] | None = None,
    ) -> ChargingSession:
        """Power on for the user's booking and wait for the device; raises a refusal
        (a DomainError with the reason's key) when it cannot start. ``progress`` runs
        once the start is accepted, while the command goes to the device."""
        async with self._sessions() as session:
            started = await charging.begin_start(
                session, booking_id=booking_id, user_id=user_id, rules=self.rules
            )
            device = device_of(started)
            end_at = started.booking.end_at
        failsafe = int((end_at + FAILSAFE_SLACK - utcnow()).total_seconds())
        # the command leaves first; telling the user (a round trip to Telegram)
        # goes on while the device switches, not before it
        switching = asyncio.ensure_future(
            self.power.power_on(
                device, failsafe_seconds=max(failsafe, 60), timeout=self.confirm_timeout
            )
        )
        try:
            if progress is not None:
                try:
                    await progress()
                except Exception:  # telling the user must not leave the session STARTING
                    log.warning("start progress message failed", exc_info=True)
            state = await switching
        except BridgeError as error:
            log.info("start of session %s failed: %s", started.id, error)
            async with self._sessions() as session:
                await charging.fail_start(session, session_id=started.id, why="no_confirm")
            # a confirmation after we gave up must not leave the power on
            self._spawn(self._switch_off_quietly(device))
            raise InvalidInput(bridge_error_key(error)) from error
        except BaseException:
            switching.cancel()  # cancelled (shutdown): recovery closes the stale start
            raise
        try:
            async with self._sessions() as session:
                confirmed = await charging.confirm_start(
                    session, session_id=started.id, at=utcnow(), energy_kwh=state.energy_kwh
                )
        except DomainError:  # the window ended (or the booking closed) meanwhile
            self._spawn(self._switch_off_quietly(device))
            raise
        if confirmed is None:  # recovery gave up on it meanwhile: it must not run
            self._spawn(self._switch_off_quietly(device))
            raise InvalidInput("err.start_not_confirmed")
        self._charging[device] = confirmed.id
        self._changed()
        # a fresh meter total (Tasmota reports only every TelePeriod); without one at
        # the start the first reading that comes is taken, never a zero
        self._spawn(self._read_meter(device, confirmed.id))
        return confirmed

    async def stop(
        self,
        session_id: int,
        *,
        actor: int | None,
        reason: EndReason | None = None,
        at: datetime | None = None,
        admin: bool = False,
    ) -> tuple[Order | None, bool]:
        """Switch off and close the session; returns (the order, whether this call
        made it). A session that was stopped already returns its order. Without
        ``reason`` it follows from who stops (services.charging.request_stop)."""
        async with self._sessions() as session:
            stopping = await charging.request_stop(
                session,
                session_id=session_id,
                actor=actor,
                reason=reason,
                at=at or utcnow(),
                admin=admin,
            )
            if stopping is None:
                current = await charging.get(session, session_id)
                order = await charging.order_of(session, session_id)
                if order is not None:
                    return order, False
                if current.status == SessionStatus.STOPPING:
                    raise InvalidInput("err.session_stopping")
                if current.status == SessionStatus.STARTING:
                    raise InvalidInput("err.session_starting")
                raise InvalidInput("err.session_not_running")
            device = device_of(stopping)
        return await self._close_stopping(device, session_id), True

    async def _close_stopping(self, device: DeviceRef, session_id: int) -> Order | None:
        self._forget(device, session_id)
        confirmed, offline, kwh = await self._power_off(device)
        ended_at = None  # when Stop was asked for
        async with self._sessions() as session:
            if offline:  # it dropped off before the Stop: bill to when it was last heard
                current = await charging.get(session, session_id)
                asked = current.stop_requested_at or utcnow()
                ended_at = min(asked, self._last_on(device, current))
            order = await charging.finish(
                session,
                session_id=session_id,
                rules=self.rules,
                ended_at=ended_at,
                end_kwh=kwh,
                power_off_confirmed=confirmed,
                from_status=(SessionStatus.STOPPING,),
            )
        self._changed()
        return order

    async def status(self, session_id: int) -> tuple[ChargingSession, PlugState]:
        async with self._sessions() as session:
            current = await charging.get(session, session_id)
        return current, self.power.known(device_of(current))

    # -- device events (from the bridge; handled off its message loop) ---------------------
    def on_event(self, event: DeviceEvent) -> None:
        if isinstance(event, EnergyReading) and event.device not in self._charging:
            return  # the common case with many plugs: nothing of ours is running there
        self._spawn(self._locked(event.device, self._handle(event)))

    async def _handle(self, event: DeviceEvent) -> None:
        device = event.device
        if isinstance(event, EnergyReading):
            session_id = self._charging.get(device)
            last = self._seen_written.get(session_id or 0, 0.0)
            if session_id is not None and time.monotonic() - last >= SEEN_WRITE_SECONDS:
                self._seen_written[session_id] = time.monotonic()
                async with self._sessions() as session:
                    await charging.record_reading(
                        session, session_id=session_id, kwh=event.total_kwh, at=event.at
                    )
            return
        if isinstance(event, DeviceOnline):
            await self.reconcile_device(device)
            return
        running = await self._open_session_of(device)
        if isinstance(event, PowerChanged):
            if event.on and running is None and await self._is_ours(device):
                log.warning("%s switched on with no session: switching it off", device)
                await self._switch_off_quietly(device)
            elif not event.on and running and running.status == SessionStatus.CHARGING:
                # an OFF learned on (re)connection may be old: bill to the last contact
                at = (
                    self._last_on(device, running, event.last_heard_at)
                    if event.discovered
                    else event.at
                )
                await self._close_by_device(device, running, at, EndReason.DEVICE_OFF)
        elif (
            isinstance(event, DeviceOffline)
            and running
            and running.status == SessionStatus.CHARGING
        ):
            # a broker that restarts publishes every plug's last will: wait to see if
            # the plug comes back (the failsafe keeps it safe meanwhile)
            self._spawn(self._close_if_still_offline(device, running.id))

    async def _close_by_device(
        self, device: DeviceRef, running: ChargingSession, at: datetime, reason: EndReason
    ) -> None:
        log.info("session %s on %s closed by the device: %s at %s", running.id, device, reason, at)
        self._forget(device, running.id)
        known = self.power.known(device)
        async with self._sessions() as session:
            await charging.finish(
                session,
                session_id=running.id,
                rules=self.rules,
                ended_at=at,
                end_kwh=known.energy_kwh,
                reason=reason,
                power_off_confirmed=reason == EndReason.DEVICE_OFF,
                from_status=(SessionStatus.CHARGING,),
            )
        self._changed()

    async def _close_if_still_offline(self, device: DeviceRef, session_id: int) -> None:
        await asyncio.sleep(self.offline_grace)

        async def work() -> None:
            if self.power.known(device).online is not False:
                return  # back online: DeviceOnline reconciled it
            await self._close_unreachable(device, session_id)

        await self._locked(device, work())

    async def _check_silent(self, device: DeviceRef, session_id: int) -> None:
        """A plug not heard from for long (its will may have been lost with a broker
        restart): ask it; no answer closes the session at the last moment heard."""
        heard_before = self.power.known(device).heard_at
        reason = EndReason.DEVICE_OFFLINE
        try:
            if (await self.power.state(device, timeout=5)).on is not False:
                return
            reason = EndReason.DEVICE_OFF  # off, and no event told us
        except BridgeUnavailable:
            return
        except (NotConfirmed, DeviceOffline):
            pass
        finally:
            self._checking.discard(device)
        await self._locked(
            device, self._close_unreachable(device, session_id, reason, heard_before)
        )

    async def _close_unreachable(
        self,
        device: DeviceRef,
        session_id: int,
        reason: EndReason = EndReason.DEVICE_OFFLINE,
        heard: object = _NOW_KNOWN,
    ) -> None:
        async with self._sessions() as session:
            running = await charging.get(session, session_id)
        if running.status == SessionStatus.CHARGING:
            at = self._last_on(device, running, heard)
            await self._close_by_device(device, running, at, reason)

    def _last_on(
        self, device: DeviceRef, running: ChargingSession, heard: object = _NOW_KNOWN
    ) -> datetime:
        """The last moment the plug was known to be on: the later of the session's
        stored last reading and the bridge's last live message (or ``heard``, what
        the bridge knew before a question whose answer said OFF)."""
        if heard is _NOW_KNOWN:
            heard = self.power.known(device).heard_at
        assert heard is None or isinstance(heard, datetime)
        seen = running.last_seen_at or running.started_at or utcnow()
        return max(seen, heard) if heard else seen

    # -- reconciliation --------------------------------------------------------------------
    async def reconcile_all(self) -> None:
        """After a start or a reconnection: compare every open session with its device."""
        async with self._sessions() as session:
            open_ = await charging.open_sessions(session)
            # a process that died right after giving up a start may have left its plug
            # on (a late confirmation); nothing else would tell us until it reports
            failed = await charging.recently_failed(session, utcnow() - timedelta(hours=1))
        for item in open_:
            await self._locked(device_of(item), self._reconcile(device_of(item), item))
        busy = {device_of(item) for item in open_}
        for device in {device_of(item) for item in failed} - busy:
            self._spawn(self._locked(device, self.reconcile_device(device)))

    async def reconcile_device(self, device: DeviceRef) -> None:
        running = await self._open_session_of(device)
        if running is None:
            if await self._is_ours(device):
                with contextlib.suppress(BridgeError):
                    if (await self.power.state(device, timeout=3)).on:
                        await self._switch_off_quietly(device)
            return
        await self._reconcile(device, running)

    async def _reconcile(self, device: DeviceRef, running: ChargingSession) -> None:
        now = utcnow()
        if running.status == SessionStatus.STARTING:
            if running.requested_at <= now - self.rules.start_stale:
                await self._fail_stale_start(device, running.id)
            return
        if running.status == SessionStatus.STOPPING:
            if running.stop_requested_at and running.stop_requested_at <= now - STOP_STALE:
                await self._close_stopping(device, running.id)
            return
        # the answer itself is a live message: when the plug says OFF, it was last known
        # on before the question, not at the answer
        heard_before = self.power.known(device).heard_at
        try:
            state = await self.power.state(device, timeout=3)
        except BridgeUnavailable:
            return  # the broker is down: nothing can be known; the next connection retries
        except NotConfirmed:
            # no answer yet, e.g. the plug is still reconnecting after the broker came
            # back: its last will, or the silence check of tick(), decides later
            self._charging[device] = running.id
            return
        except DeviceOffline:
            # a retained last will may be old news: give the plug the grace to return
            self._charging[device] = running.id
            self._spawn(self._close_if_still_offline(device, running.id))
            return
        async with self._sessions() as session:
            running = await charging.get(session, running.id)
        if running.status != SessionStatus.CHARGING:
            return
        if not state.on:
            at = self._last_on(device, running, heard_before)
            await self._close_by_device(device, running, at, EndReason.DEVICE_OFF)
        elif running.booking.end_at <= now:
            await self.stop(
                running.id, actor=None, reason=EndReason.WINDOW_END, at=running.booking.end_at
            )
        else:
            self._charging[device] = running.id

    async def _fail_stale_start(self, device: DeviceRef, session_id: int) -> None:
        async with self._sessions() as session:
            failed = await charging.fail_start(
                session, session_id=session_id, why="stale", notify_user=True
            )
        if failed:
            await self._switch_off_quietly(device)
            self._changed()

    # -- timed work (the scheduler calls this every few seconds) ---------------------------
    async def tick(self) -> int:
        now = utcnow()
        done = 0
        async with self._sessions() as session:
            done += await charging.warn_due(session, self.rules, now)
            ended = await charging.window_ended(session, now)
            stale_starts = await charging.stale_starts(session, self.rules, now)
            stale_stops = await charging.stale_stops(session, now, STOP_STALE)
        for item in ended:  # at once, not one plug's confirmation after another
            self._spawn(self._stop_at_window_end(item.id, item.booking.end_at))
            done += 1
        for item in stale_starts:
            await self._fail_stale_start(device_of(item), item.id)
            done += 1
        for item in stale_stops:
            await self._close_stopping(device_of(item), item.id)
            done += 1
        async with self._sessions() as session:
            done += await charging.mark_no_shows(session, now)
            running = await charging.charging_now(session)
        for item in running:
            device = device_of(item)
            # sessions another instance started (or one that died) get their readings too
            self._charging[device] = item.id
            heard = self.power.known(device).heard_at
            if heard and (item.last_seen_at is None or heard > item.last_seen_at + SEEN_EVERY):
                # plugs without a meter send no readings: keep the last contact stored
                self._seen_written[item.id] = time.monotonic()
                async with self._sessions() as session:
                    await charging.record_reading(session, session_id=item.id, kwh=None, at=heard)
            last = max(filter(None, (heard, item.last_seen_at, item.started_at)))
            if last < now - self.silent_after and device not in self._checking:
                self._checking.add(device)
                self._spawn(self._check_silent(device, item.id))
        if done:
            self._changed()
        return done

    async def _stop_at_window_end(self, session_id: int, end_at: datetime) -> None:
        with contextlib.suppress(DomainError):  # stopped meanwhile by someone else
            await self.stop(session_id, actor=None, reason=EndReason.WINDOW_END, at=end_at)

    # -- helpers ---------------------------------------------------------------------------
    async def _open_session_of(self, device: DeviceRef) -> ChargingSession | None:
        async with self._sessions() as session:
            return await charging.open_session_on_plug(session, device.driver, device.device_id)

    async def _is_ours(self, device: DeviceRef) -> bool:
        """A plug of a listed charger (other plugs on the broker are left alone)."""
        async with self._sessions() as session:
            return bool(await charging.chargers_of_plug(session, device.driver, device.device_id))

    async def _power_off(self, device: DeviceRef) -> tuple[bool, bool, float | None]:
        """(whether the device confirmed, whether it is offline, a fresh meter total or
        the last known one)."""
        offline = False
        try:
            await self.power.power_off(device, timeout=self.confirm_timeout)
            confirmed = True
        except BridgeError as error:
            log.warning("power off of %s not confirmed: %s", device, error)
            confirmed = False
            offline = isinstance(error, DeviceOffline)
        kwh = self.power.known(device).energy_kwh
        if confirmed:
            with contextlib.suppress(BridgeError):
                kwh = (await self.power.state(device, timeout=2)).energy_kwh
        return confirmed, offline, kwh

    async def _switch_off_quietly(self, device: DeviceRef) -> None:
        with contextlib.suppress(BridgeError):
            await self.power.power_off(device, timeout=self.confirm_timeout)

    async def _read_meter(self, device: DeviceRef, session_id: int) -> None:
        with contextlib.suppress(BridgeError):
            state = await self.power.state(device, timeout=3)
            if state.energy_kwh is not None:
                self._seen_written[session_id] = time.monotonic()
                async with self._sessions() as session:
                    await charging.record_reading(
                        session, session_id=session_id, kwh=state.energy_kwh, at=utcnow()
                    )

    def _forget(self, device: DeviceRef, session_id: int) -> None:
        if self._charging.get(device) == session_id:
            del self._charging[device]
        self._seen_written.pop(session_id, None)

    async def _locked(self, device: DeviceRef, work: Coroutine[Any, Any, None]) -> None:
        # one device's events in order; different devices in parallel
        lock = self._locks.setdefault(device, asyncio.Lock())
        async with lock:
            await work

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception:
                log.exception("charging background work failed")

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Wait briefly for work in flight (a power command, an order being written)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        for task in list(self._tasks):
            task.cancel()

    def _changed(self) -> None:
        if self._on_change:
            self._on_change()
