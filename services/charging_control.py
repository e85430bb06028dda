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

A start or a stop that no live process waits on any more (its process died, or
lost the broker) is finished from the plug's answer: at start-up and after each
reconnection its plug is asked at once, and the scheduler's tick asks again until
it answers. STARTING + on: the device confirmed it, so it is CHARGING from the
answer (the merchant and the user are told; past the window's end it fails and is
switched off); STARTING + off: FAILED, nothing billed, the user told at once.
STOPPING + off: the order is made at once (billed to when Stop was asked);
STOPPING + on: the power-off is sent again and the order made on its confirmation.
Only a plug that does not answer waits for the last resort (``start_give_up``,
``stop_give_up``): the start fails and the plug is switched off; the stop is closed
unconfirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from hardware_bridge.port import (
    BridgeError,
    BridgeUnavailable,
    DeviceEvent,
    DeviceOfflineError,
    DeviceOnline,
    DeviceRef,
    DeviceWentOffline,
    EnergyReading,
    NotConfirmed,
    PlugState,
    PowerChanged,
    PowerReading,
    PowerSwitch,
)
from models import Charger, ChargingSession, EndReason, Order, SessionStatus
from models.base import utcnow
from services import cards, charging
from services import extend as extensions
from services.bookings import BookingRules
from services.cards import Subject
from services.charging import ChargingRules, FullWatch
from services.dto import ChargeInfo, ChargeStatus, OrderInfo
from services.errors import DomainError, InvalidInput, StartFailed
from services.extend import ExtendOption
from services.tx import OpenDb, transaction

log = logging.getLogger(__name__)

# the device switches itself off this long after the window's end, should the bot
# and the broker both be down then (Shelly toggle_after, Tasmota PulseTime)
FAILSAFE_SLACK = timedelta(minutes=2)
# meter readings while charging are written at most this often per session
SEEN_WRITE_SECONDS = 30.0
# plugs newly seen metering power are marked in one write per this many seconds
MARK_METERED_EVERY = 0.5
SEEN_EVERY = timedelta(seconds=SEEN_WRITE_SECONDS)
# a start or stop may still be in the hands of the process that began it for its
# confirmation timeout and this much more (a stop also reads the meter after the
# power-off); only then is it finished from the plug's answer by anyone else
IN_FLIGHT_SLACK = timedelta(seconds=5)
# how long a question to a plug about an unfinished start or stop waits for the answer
ASK_SECONDS = 3.0
# plugs asked at once when open sessions are compared with their devices
RECONCILE_AT_ONCE = 50
_NOW_KNOWN = object()  # _last_on: ask the bridge what it knows now


def device_of(item: Charger | ChargingSession) -> DeviceRef:
    """A charger's plug, or the plug a session switched (copied at its start)."""
    return DeviceRef(item.plug_driver, item.plug_id)  # type: ignore[arg-type]


def bridge_error_key(error: BridgeError) -> str:
    if isinstance(error, DeviceOfflineError):
        return "err.device_offline"
    if isinstance(error, BridgeUnavailable):
        return "err.bridge_down"
    return "err.start_not_confirmed"


class ChargingControl:
    def __init__(
        self,
        open_db: OpenDb,
        power: PowerSwitch,
        rules: ChargingRules,
        *,
        confirm_timeout: float = 10.0,
        offline_grace: float = 60.0,
        silent_after: timedelta = timedelta(minutes=15),
        start_give_up: timedelta = timedelta(seconds=60),
        stop_give_up: timedelta = timedelta(seconds=30),
        live_every: float = 30.0,
        on_change: Callable[[], None] | None = None,
        power_poll: timedelta = timedelta(seconds=30),
        shared_readings: bool = False,
    ) -> None:
        self._open_db = open_db
        # a plug's readings are shared out between instances (MQTT_SHARE_GROUP): each
        # hears only some, so the stop-when-full watch is the database's, read at each
        # reading and again before stopping, never this process's copy
        self.shared_readings = shared_readings
        self.power = power
        self.rules = rules
        self.confirm_timeout = confirm_timeout
        # the last resort for a start or stop whose plug does not answer (counted from
        # Start pressed / Stop taken in hand); a plug that answers decides at once
        self.start_give_up = start_give_up
        self.stop_give_up = stop_give_up
        self.in_flight = timedelta(seconds=confirm_timeout) + IN_FLIGHT_SLACK
        # how long a plug may be offline before its session is closed (at the last
        # moment it was heard), and how long it may stay silent before it is asked
        self.offline_grace = offline_grace
        self.silent_after = silent_after
        self._on_change = on_change
        # device → its CHARGING session, so meter readings need no query
        self._charging: dict[DeviceRef, int] = {}
        self._seen_written: dict[int, float] = {}
        # running sessions' cards edit themselves this often (CHARGING_REFRESH_SECONDS)
        self.live_every = live_every
        self._live_at: dict[int, float] = {}
        self._locks: dict[DeviceRef, asyncio.Lock] = {}
        self._checking: set[DeviceRef] = set()
        # sessions this process is starting or stopping right now (never settled from
        # outside), and those whose plug is being asked about an unfinished step
        self._busy: set[int] = set()
        self._settling: set[int] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        # stop when full: each CHARGING session's watch (loaded from its row once, written
        # back on each change), the plugs known to meter power, and when each session's
        # plug was last asked for a reading. A plug's own report period may be long
        # (Tasmota's TelePeriod, 300 s by default): while a session runs its plug is asked
        # (Status 8 / Switch.GetStatus) every ``power_poll``, rather than its TelePeriod
        # changed, a setting kept in the plug's flash that a dead bot could not restore.
        self.power_poll = power_poll
        self._watch: dict[int, FullWatch] = {}
        self._metered: set[DeviceRef] = set()
        self._to_mark: set[DeviceRef] = set()
        self._marking = False
        self._polled: dict[int, float] = {}
        self._power_heard: dict[DeviceRef, float] = {}
        power.on_event(self.on_event)

    # -- people's actions ------------------------------------------------------------------
    async def start(
        self,
        booking_id: int,
        user_id: int,
        *,
        progress: Callable[[], Awaitable[None]] | None = None,
    ) -> ChargeInfo:
        """Power on for the user's booking and wait for the device; raises a refusal
        (a DomainError with the reason's key; ``StartFailed`` when the plug did not
        switch on and the start may be tried again) when it cannot start.
        ``progress`` runs once the start is accepted, while the command goes to the
        device."""
        async with self._open_db() as db:
            started = await charging.begin_start(
                db, booking_id=booking_id, user_id=user_id, rules=self.rules
            )
            device = device_of(started)
            end_at = started.booking.end_at
        self._busy.add(started.id)
        try:
            running = await self._start(started, device, end_at, progress)
        finally:
            self._busy.discard(started.id)
        async with self._open_db() as db:  # as confirmed: its row is not read again
            return await charging.info_of(db, running)

    async def _start(
        self,
        started: ChargingSession,
        device: DeviceRef,
        end_at: datetime,
        progress: Callable[[], Awaitable[None]] | None,
    ) -> ChargingSession:
        asked = utcnow()
        failsafe = int((end_at + FAILSAFE_SLACK - asked).total_seconds())
        # the command leaves first; telling the user (a round trip to Telegram)
        # goes on while the device switches, not before it
        switching = asyncio.ensure_future(
            self.power.power_on(
                device, failsafe_seconds=max(failsafe, 60), timeout=self.confirm_timeout
            )
        )
        await asyncio.sleep(0)  # the command is handed to the broker's socket first
        try:
            if progress is not None:
                try:
                    await progress()
                except Exception:  # telling the user must not leave the session STARTING
                    log.warning("start progress message failed", exc_info=True)
            state = await switching
        except BridgeError as error:
            log.info("start of session %s failed: %s", started.id, error)
            async with self._open_db() as db:
                failed = await charging.fail_start(db, session_id=started.id, why="no_confirm")
            if not failed:  # another instance found the plug on and confirmed it meanwhile
                running = await self._running(started.id)
                if running is not None:
                    return self._adopt(device, running)
            # a confirmation after we gave up must not leave the power on
            self._spawn(self._switch_off_quietly(device))
            raise StartFailed(bridge_error_key(error), booking_id=started.booking_id) from error
        except BaseException:
            switching.cancel()  # cancelled (shutdown): recovery closes the stale start
            raise
        try:
            async with self._open_db() as db:
                confirmed = await charging.confirm_start(
                    db, session_id=started.id, at=utcnow(), energy_kwh=state.energy_kwh
                )
            # a total read with the confirmation is the start reading; else one is asked
            # for (Tasmota reports only every TelePeriod), unless the plug has no meter
            fresh = state.energy_at is not None and state.energy_at >= asked
            read_meter = not fresh and state.metered is not False
        except DomainError:  # the window ended (or the booking closed) meanwhile
            self._spawn(self._switch_off_quietly(device))
            raise
        if confirmed is None:
            # another instance confirmed it from the plug's answer: it runs
            running = await self._running(started.id)
            if running is not None:
                return self._adopt(device, running)
            self._spawn(self._switch_off_quietly(device))  # recovery gave up on it
            raise StartFailed("err.start_not_confirmed", booking_id=started.booking_id)
        return self._adopt(device, confirmed, read_meter=read_meter)

    def _adopt(
        self, device: DeviceRef, confirmed: ChargingSession, *, read_meter: bool = True
    ) -> ChargingSession:
        """A session just confirmed: its readings are recorded from now on."""
        self._charging[device] = confirmed.id
        self._changed()
        # a fresh meter total (Tasmota reports only every TelePeriod); without one at
        # the start the first reading that comes is taken, never a zero
        if read_meter:
            self._spawn(self._read_meter(device, confirmed.id))
        return confirmed

    async def _running(self, session_id: int) -> ChargingSession | None:
        async with self._open_db() as db:
            current = await charging.get(db, session_id)
        return current if current.status == SessionStatus.CHARGING else None

    async def stop(
        self,
        session_id: int,
        *,
        actor: int | None,
        reason: EndReason | None = None,
        at: datetime | None = None,
        admin: bool = False,
    ) -> tuple[OrderInfo | None, bool]:
        """Switch off and close the session; returns (the order, whether this call
        made it). A session that was stopped already returns its order. Without
        ``reason`` it follows from who stops (services.charging.request_stop)."""
        order, made = await self._stop(session_id, actor, reason, at, admin)
        if order is None:
            return None, made
        async with self._open_db() as db:
            return await charging.order_info(db, order.id), made

    async def _stop(
        self,
        session_id: int,
        actor: int | None,
        reason: EndReason | None = None,
        at: datetime | None = None,
        admin: bool = False,
    ) -> tuple[Order | None, bool]:
        async with self._open_db() as db:
            stopping = await charging.request_stop(
                db,
                session_id=session_id,
                actor=actor,
                reason=reason,
                at=at or utcnow(),
                admin=admin,
            )
            if stopping is None:
                current = await charging.get(db, session_id)
                order = await charging.order_of(db, session_id)
                if order is not None:
                    return order, False
                if current.status == SessionStatus.STOPPING:
                    raise InvalidInput("err.session_stopping")
                if current.status == SessionStatus.STARTING:
                    raise InvalidInput("err.session_starting")
                raise InvalidInput("err.session_not_running")
            device = device_of(stopping)
        return await self._close_stopping(device, session_id), True

    async def _close_stopping(
        self, device: DeviceRef, session_id: int, *, must_confirm: bool = False
    ) -> Order | None:
        """Switch off and close a STOPPING session (``must_confirm``: only when the
        plug confirms; else it stays STOPPING for the last resort)."""
        self._busy.add(session_id)
        try:
            return await self._close_stopping_now(device, session_id, must_confirm)
        finally:
            self._busy.discard(session_id)

    async def _close_stopping_now(
        self, device: DeviceRef, session_id: int, must_confirm: bool
    ) -> Order | None:
        self._forget(device, session_id)
        confirmed, offline, kwh = await self._power_off(device)
        if must_confirm and not confirmed:
            return None
        ended_at = None  # when Stop was asked for
        async with self._open_db() as db:
            if offline:  # it dropped off before the Stop: bill to when it was last heard
                current = await charging.get(db, session_id)
                asked = current.stop_requested_at or utcnow()
                ended_at = min(asked, self._last_on(device, current))
            order = await charging.finish(
                db,
                session_id=session_id,
                rules=self.rules,
                ended_at=ended_at,
                end_kwh=kwh,
                power_off_confirmed=confirmed,
                from_status=(SessionStatus.STOPPING,),
            )
        self._changed()
        return order

    async def extend(
        self, session_id: int, user_id: int, minutes: int, rules: BookingRules
    ) -> tuple[ChargeInfo, ExtendOption]:
        """Make the session's window longer (services.extend), then move the plug's own
        failsafe to the new end: power-on again with the new timer (Tasmota PulseTime,
        Shelly toggle_after; the relay stays on). A plug that does not confirm keeps
        its old failsafe, the safe side: the bot still stops at the new end."""
        async with self._open_db() as db:
            info, option = await extensions.extend(
                db, session_id=session_id, user_id=user_id, minutes=minutes, rules=rules
            )
            device = device_of(await charging.get(db, session_id))
        failsafe = int((option.end + FAILSAFE_SLACK - utcnow()).total_seconds())
        try:
            await self.power.power_on(
                device, failsafe_seconds=max(failsafe, 60), timeout=self.confirm_timeout
            )
        except BridgeError as error:
            log.warning("session %s: the failsafe of %s not moved: %s", session_id, device, error)
        return info, option

    async def extend_options(
        self, session_id: int, rules: BookingRules
    ) -> tuple[ExtendOption, ...]:
        async with self._open_db() as db:
            return await extensions.options(db, session_id, rules)

    async def status(self, session_id: int) -> ChargeStatus:
        """The session and its bill so far, by its plug's latest meter total."""
        async with self._open_db() as db:
            current = await charging.get(db, session_id)
            info = await charging.charge_info(db, session_id)
        known = self.power.known(device_of(current))
        status = charging.status_of(current, info, utcnow(), known.energy_kwh)
        return replace(status, power_w=known.power_w if known.on else None)

    # -- device events (from the bridge; handled off its message loop) ---------------------
    def on_event(self, event: DeviceEvent) -> None:
        if event.relayed:
            # another instance heard it and handles it: every effect below is a
            # conditional transition in the shared database, done once there
            return
        if isinstance(event, PowerReading):
            self._power_heard[event.device] = time.monotonic()
            if event.device not in self._metered:
                self._metered.add(event.device)  # once per plug and process
                # written in batches: after a restart every plug of a large fleet
                # reports within one TelePeriod, and one write each would swamp the loop
                self._to_mark.add(event.device)
                if not self._marking:
                    self._marking = True
                    self._spawn(self._mark_metered())
        if isinstance(event, EnergyReading | PowerReading) and event.device not in self._charging:
            return  # the common case with many plugs: nothing of ours is running there
        self._spawn(self._locked(event.device, self._handle(event)))

    async def _handle(self, event: DeviceEvent) -> None:
        device = event.device
        if isinstance(event, EnergyReading):
            session_id = self._charging.get(device)
            last = self._seen_written.get(session_id or 0, 0.0)
            if session_id is not None and time.monotonic() - last >= SEEN_WRITE_SECONDS:
                self._seen_written[session_id] = time.monotonic()
                async with self._open_db() as db:
                    await charging.record_reading(
                        db, session_id=session_id, kwh=event.total_kwh, at=event.at
                    )
            return
        if isinstance(event, PowerReading):
            session_id = self._charging.get(device)
            if session_id is not None:
                await self._watch_power(session_id, event.watts, event.at)
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
            isinstance(event, DeviceWentOffline)
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
        async with self._open_db() as db:
            await charging.finish(
                db,
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
        except (NotConfirmed, DeviceOfflineError):
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
        async with self._open_db() as db:
            running = await charging.get(db, session_id)
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
        """After a start or a reconnection: compare every open session with its device,
        all plugs asked at once. A start or stop that no live process can still be
        waiting on is finished from its plug's answer now; a younger one is left to
        the process that began it (the tick asks once it is not)."""
        async with self._open_db() as db:
            open_ = await charging.open_sessions(db)
            # a process that died right after giving up a start may have left its plug
            # on (a late confirmation); nothing else would tell us until it reports
            failed = await charging.recently_failed(db, utcnow() - timedelta(hours=1))
        now = utcnow()
        work: list[Coroutine[Any, Any, None]] = []
        for item in open_:
            device = device_of(item)
            if item.status == SessionStatus.CHARGING:
                work.append(self._locked(device, self._reconcile(device, item)))
            elif self._unattended(item, now):
                work.append(self._settle(device, item.id, give_up=self._given_up(item, now)))
        sem = asyncio.Semaphore(RECONCILE_AT_ONCE)

        async def bounded(job: Coroutine[Any, Any, None]) -> None:
            async with sem:
                await job

        for result in await asyncio.gather(*map(bounded, work), return_exceptions=True):
            if isinstance(result, Exception):
                log.error("reconciling a session failed", exc_info=result)
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
        if running.status == SessionStatus.CHARGING:
            await self._reconcile(device, running)
        elif self._unattended(running, utcnow()):
            # not here: the caller holds the device's lock, which settling takes
            self._spawn(self._settle(device, running.id, give_up=False))

    def _unattended(self, item: ChargingSession, now: datetime) -> bool:
        """A start or stop that no live process can still be waiting on (its own
        confirmation timeout has passed), nor this one."""
        if item.id in self._busy:
            return False
        since = item.requested_at if item.status == SessionStatus.STARTING else item.stopping_since
        return since is None or since <= now - self.in_flight

    def _given_up(self, item: ChargingSession, now: datetime) -> bool:
        """Past the last resort: a plug that does not answer now fails the start, or
        closes the stop unconfirmed."""
        if item.status == SessionStatus.STARTING:
            return item.requested_at <= now - self.start_give_up
        since = item.stopping_since or item.stop_requested_at
        return since is None or since <= now - self.stop_give_up

    async def _settle(self, device: DeviceRef, session_id: int, *, give_up: bool) -> None:
        """Finish a start or stop that nobody waits on from its plug's answer (one
        question per session at a time; the tick asks again until the last resort)."""
        if session_id in self._busy or session_id in self._settling:
            return
        self._settling.add(session_id)
        try:
            await self._locked(device, self._settle_now(device, session_id, give_up))
        finally:
            self._settling.discard(session_id)

    async def _settle_now(self, device: DeviceRef, session_id: int, give_up: bool) -> None:
        async with self._open_db() as db:
            current = await charging.get(db, session_id)
        if current.status not in (SessionStatus.STARTING, SessionStatus.STOPPING):
            return  # finished meanwhile by another path
        state: PlugState | None
        try:
            state = await self.power.state(device, timeout=ASK_SECONDS)
        except BridgeError as error:  # no answer (offline, silent, broker down)
            log.info("session %s: %s did not answer (%s)", session_id, device, error)
            state = None
        if state is not None and state.on is None:
            state = None  # it said nothing about its relay
        if current.status == SessionStatus.STARTING:
            await self._settle_start(device, current, state, give_up)
        else:
            await self._settle_stop(device, current, state, give_up)

    async def _settle_start(
        self, device: DeviceRef, current: ChargingSession, state: PlugState | None, give_up: bool
    ) -> None:
        if state is not None and state.on:
            # the power-on arrived, its confirmation was lost with the process that sent
            # it: the device confirms it now, and the clock starts at this answer
            log.info("session %s: %s found on: charging from now", current.id, device)
            try:
                async with self._open_db() as db:
                    confirmed = await charging.confirm_start(
                        db,
                        session_id=current.id,
                        at=state.at,
                        energy_kwh=state.energy_kwh,
                        notify_user=True,
                    )
            except DomainError:  # the window is over: FAILED, the user is told
                self._changed()
                await self._switch_off_quietly(device)
                return
            if confirmed is not None:
                self._adopt(device, confirmed)
        elif state is not None:
            # off: the power-on never arrived (or the plug refused it)
            log.info("session %s: %s found off: the start failed", current.id, device)
            async with self._open_db() as db:
                failed = await charging.fail_start(
                    db, session_id=current.id, why="device_off", notify_user=True
                )
            if failed:
                self._changed()
        elif give_up:
            await self._fail_stale_start(device, current.id)

    async def _settle_stop(
        self, device: DeviceRef, current: ChargingSession, state: PlugState | None, give_up: bool
    ) -> None:
        if state is not None and state.on is False:
            # the power-off arrived, its confirmation was lost: the order, at once
            self._forget(device, current.id)
            async with self._open_db() as db:
                await charging.finish(
                    db,
                    session_id=current.id,
                    rules=self.rules,
                    end_kwh=state.energy_kwh,
                    power_off_confirmed=True,
                    from_status=(SessionStatus.STOPPING,),
                )
            self._changed()
        elif state is not None or give_up:
            # still on (the power-off was lost): switch off again, and close on its
            # confirmation; the last resort closes even without one
            await self._close_stopping(device, current.id, must_confirm=not give_up)

    async def _reconcile(self, device: DeviceRef, running: ChargingSession) -> None:
        """A CHARGING session: does its plug still run it?"""
        now = utcnow()
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
        except DeviceOfflineError:
            # a retained last will may be old news: give the plug the grace to return
            self._charging[device] = running.id
            self._spawn(self._close_if_still_offline(device, running.id))
            return
        async with self._open_db() as db:
            running = await charging.get(db, running.id)
        if running.status != SessionStatus.CHARGING:
            return
        if not state.on:
            at = self._last_on(device, running, heard_before)
            await self._close_by_device(device, running, at, EndReason.DEVICE_OFF)
        elif running.booking.end_at <= now:
            await self._stop(running.id, None, EndReason.WINDOW_END, running.booking.end_at)
        else:
            self._charging[device] = running.id

    async def _fail_stale_start(self, device: DeviceRef, session_id: int) -> None:
        async with self._open_db() as db:
            failed = await charging.fail_start(
                db, session_id=session_id, why="stale", notify_user=True
            )
        if failed:
            await self._switch_off_quietly(device)
            self._changed()

    # -- timed work (the scheduler calls this every few seconds) ---------------------------
    async def tick(self) -> int:
        now = utcnow()
        done = 0
        async with self._open_db() as db:
            done += await charging.warn_due(db, self.rules, now)
            ended = await charging.window_ended(db, now)
            unattended = await charging.stale_starts(db, now - self.in_flight)
            unattended += await charging.stale_stops(db, now - self.in_flight)
        for item in ended:  # at once, not one plug's confirmation after another
            self._spawn(self._stop_at_window_end(item.id, item.booking.end_at))
            done += 1
        for item in unattended:  # their plugs asked at once; each decides when it answers
            if self._unattended(item, now) and item.id not in self._settling:
                self._spawn(
                    self._settle(device_of(item), item.id, give_up=self._given_up(item, now))
                )
        async with self._open_db() as db:
            done += await charging.mark_no_shows(db, now, self.rules.money)
            running = await charging.charging_now(db)
        for item in running:
            device = device_of(item)
            # sessions another instance started (or one that died) get their readings too
            self._charging[device] = item.id
            heard = self.power.known(device).heard_at
            if heard and (item.last_seen_at is None or heard > item.last_seen_at + SEEN_EVERY):
                # plugs without a meter send no readings: keep the last contact stored
                self._seen_written[item.id] = time.monotonic()
                async with self._open_db() as db:
                    await charging.record_reading(db, session_id=item.id, kwh=None, at=heard)
            self._check_full(item.id, now)
            # asked only when the plug has not reported power for ``power_poll`` (a
            # plug that reports often is not asked), and not at once: the start read it
            polled = self._polled.setdefault(item.id, time.monotonic())
            fresh = max(polled, self._power_heard.get(device, 0.0))
            if (
                device in self._metered
                and time.monotonic() - fresh >= self.power_poll.total_seconds()
            ):
                self._polled[item.id] = time.monotonic()
                self._spawn(self._poll_power(device))
            last = max(filter(None, (heard, item.last_seen_at, item.started_at)))
            if last < now - self.silent_after and device not in self._checking:
                self._checking.add(device)
                self._spawn(self._check_silent(device, item.id))
        done += await self._refresh_live(running)
        if done:
            self._changed()
        return done

    async def _refresh_live(self, running: list[ChargingSession]) -> int:
        """Owe the cards of each running session an edit every ``live_every`` seconds,
        with the plug's latest reading (power now, energy). A card whose last edit is
        still owed gets no second one (``cards.refresh_live``), so a busy outbox is
        never flooded: the edits go at its pace, under Telegram's limits."""
        clock = time.monotonic()
        ids = {item.id for item in running}
        for gone in set(self._live_at) - ids:  # ended: forget them
            del self._live_at[gone]
        owed = 0
        for item in running:
            first = self._live_at.setdefault(item.id, clock)
            if clock - first < self.live_every:
                continue
            self._live_at[item.id] = clock
            known = self.power.known(device_of(item))
            live = {
                "kwh": known.energy_kwh,
                "power_w": known.power_w if known.on else None,
            }
            async with self._open_db() as db, transaction(db):
                owed += await cards.refresh_live(db, Subject.CHARGE, item.id, live)
        return owed

    async def _stop_at_window_end(self, session_id: int, end_at: datetime) -> None:
        with contextlib.suppress(DomainError):  # stopped meanwhile by someone else
            await self._stop(session_id, None, EndReason.WINDOW_END, end_at)

    # -- helpers ---------------------------------------------------------------------------
    async def _open_session_of(self, device: DeviceRef) -> ChargingSession | None:
        async with self._open_db() as db:
            return await charging.open_session_on_plug(db, device.driver, device.device_id)

    async def _is_ours(self, device: DeviceRef) -> bool:
        """A plug of a listed charger (other plugs on the broker are left alone)."""
        async with self._open_db() as db:
            return bool(await charging.chargers_of_plug(db, device.driver, device.device_id))

    async def _power_off(self, device: DeviceRef) -> tuple[bool, bool, float | None]:
        """(whether the device confirmed, whether it is offline, the meter's final total
        read with the confirmation, or the last known one). One round trip: the
        power-off's answer carries the total (PowerSwitch), no second question."""
        try:
            state = await self.power.power_off(device, timeout=self.confirm_timeout)
        except BridgeError as error:
            log.warning("power off of %s not confirmed: %s", device, error)
            offline = isinstance(error, DeviceOfflineError)
            return False, offline, self.power.known(device).energy_kwh
        return True, False, state.energy_kwh

    async def _switch_off_quietly(self, device: DeviceRef) -> None:
        with contextlib.suppress(BridgeError):
            await self.power.power_off(device, timeout=self.confirm_timeout)

    async def _read_meter(self, device: DeviceRef, session_id: int) -> None:
        with contextlib.suppress(BridgeError):
            state = await self.power.state(device, timeout=3)
            if state.energy_kwh is not None:
                self._seen_written[session_id] = time.monotonic()
                async with self._open_db() as db:
                    await charging.record_reading(
                        db, session_id=session_id, kwh=state.energy_kwh, at=utcnow()
                    )

    def _forget(self, device: DeviceRef, session_id: int) -> None:
        if self._charging.get(device) == session_id:
            del self._charging[device]
        self._seen_written.pop(session_id, None)
        self._watch.pop(session_id, None)
        self._polled.pop(session_id, None)

    # -- stop when full ----------------------------------------------------------------------
    async def _mark_metered(self) -> None:
        try:
            await asyncio.sleep(MARK_METERED_EVERY)  # gather the plugs heard meanwhile
            while self._to_mark:
                plugs, self._to_mark = self._to_mark, set()
                async with self._open_db() as db:
                    await charging.mark_meters_power(db, ((d.driver, d.device_id) for d in plugs))
        finally:
            self._marking = False

    async def _watch_power(self, session_id: int, watts: float, at: datetime) -> None:
        """A power reading of a CHARGING session: under the charger's threshold for its
        minutes (after drawing over it once: a device not plugged in yet is not full),
        the session ends as full."""
        watch = None if self.shared_readings else self._watch.get(session_id)
        if watch is None:
            async with self._open_db() as db:
                watch = await charging.full_watch(db, session_id)
            if watch is None:
                return
        if watch.below_w > 0:
            if watts >= watch.below_w:
                drew, low = True, None
            else:
                drew, low = (
                    watch.drew_power,
                    (watch.low_power_since or at) if watch.drew_power else None,
                )
            if (drew, low) != (watch.drew_power, watch.low_power_since):
                async with self._open_db() as db:
                    await charging.record_full_watch(
                        db, session_id=session_id, drew_power=drew, low_power_since=low
                    )
                watch = replace(watch, drew_power=drew, low_power_since=low)
        self._watch[session_id] = watch
        self._check_full(session_id, at)

    def _check_full(self, session_id: int, now: datetime) -> None:
        watch = self._watch.get(session_id)
        if watch is not None and watch.full(now):
            del self._watch[session_id]  # one stop; a later reading finds it stopping
            self._spawn(self._stop_full(session_id, now))

    async def _stop_full(self, session_id: int, at: datetime) -> None:
        if self.shared_readings:  # another instance may have heard the power rise since
            async with self._open_db() as db:
                watch = await charging.full_watch(db, session_id)
            if watch is None or not watch.full(at):
                return
        with contextlib.suppress(DomainError):  # stopped meanwhile by someone else
            await self._stop(session_id, None, EndReason.FULL, at)

    async def _poll_power(self, device: DeviceRef) -> None:
        with contextlib.suppress(BridgeError):  # the answer comes as a PowerReading
            await self.power.state(device, timeout=ASK_SECONDS)

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
