"""Charging: a scanned QR code (``/start <token>``), Start, status and Stop
(button or /stop). The device work and the rules are in services; this module
reads the press, checks who pressed, and renders the answer."""

from datetime import datetime

from aiogram import F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.moderation import IsAdmin
from hardware_bridge.port import PlugState
from models import Charger, ChargingSession, Listing, SessionStatus
from models.base import utcnow
from services import charging as sessions_svc
from services.charging_control import ChargingControl
from services.errors import DomainError
from services.tx import Db
from ui import paging
from ui.callbacks import ChargeCb, PageCb
from ui.config import Config
from ui.i18n import Html, Translator
from ui.keyboards import edit_text_safely
from ui.views.charging import (
    confirm_stop_buttons,
    merchant_buttons,
    refusal,
    running_buttons,
    scan_card,
    start_button,
    started_text,
    status_text,
)
from ui.views.listing import fit

# after these the same booking can be started again at once
RETRYABLE = {"err.device_offline", "err.start_not_confirmed", "err.bridge_down"}


async def scanned(
    message: Message,
    command: CommandObject,
    db: Db,
    t: Translator,
    config: Config,
    charging: ChargingControl,
) -> None:
    assert message.from_user is not None
    now = utcnow()
    try:
        scan = await sessions_svc.scan(
            db,
            token=(command.args or "").strip(),
            user_id=message.from_user.id,
            rules=charging.rules,
            now=now,
        )
    except DomainError as error:
        await message.answer(refusal(t, error, config.zone, now))
        return
    if scan.running is not None:  # scanned again while charging: show where it stands
        text = await _status(db, t, config, charging, scan.running)
        await db.commit()  # no transaction left open while Telegram answers
        await message.answer(text, reply_markup=running_buttons(t, scan.running.id))
        return
    text = scan_card(t, scan, config.zone)
    await db.commit()
    await message.answer(text, reply_markup=start_button(t, scan.booking.id))


async def start_pressed(
    query: CallbackQuery,
    callback_data: ChargeCb,
    db: Db,
    t: Translator,
    config: Config,
    charging: ChargingControl,
) -> None:
    booking_id = callback_data.ref  # begin_start checks whose it is
    message = query.message

    async def switching() -> None:
        # answered at once; the device's confirmation can take seconds
        await query.answer(t("charge.switching_alert"))
        if isinstance(message, Message):
            await edit_text_safely(message, t("charge.switching"), None)

    try:
        started = await charging.start(booking_id, query.from_user.id, progress=switching)
    except DomainError as error:
        text = refusal(t, error, config.zone, utcnow())
        if error.key not in RETRYABLE:  # refused before anything was sent
            await query.answer(text, show_alert=True)
        elif isinstance(message, Message):
            await edit_text_safely(message, text, start_button(t, booking_id))
        return
    charger, listing = await _place(db, started)
    text = started_text(t, started, charger, listing, config.zone)
    await db.commit()
    try:
        if not isinstance(message, Message):
            raise LookupError("the Start message is not accessible")
        await edit_text_safely(message, text, running_buttons(t, started.id))
    except (TelegramAPIError, LookupError):
        # the session runs: the start time and the Stop button must reach the user
        await query.bot.send_message(  # type: ignore[union-attr]
            query.from_user.id, text, reply_markup=running_buttons(t, started.id)
        )


async def status_pressed(
    query: CallbackQuery,
    callback_data: ChargeCb,
    db: Db,
    t: Translator,
    config: Config,
    charging: ChargingControl,
) -> None:
    current = await _session_for(query, callback_data, db, t, config)
    if current is None:
        return
    text = await _status(db, t, config, charging, current)
    await db.commit()
    await query.answer()
    if isinstance(query.message, Message):
        markup = (
            running_buttons(t, current.id)
            if current.user_id == query.from_user.id
            else merchant_buttons(t, current.id)
        )
        await edit_text_safely(query.message, text, markup)


async def stop_pressed(
    query: CallbackQuery,
    callback_data: ChargeCb,
    db: Db,
    t: Translator,
    config: Config,
) -> None:
    """First press: ask to confirm (a stop cannot be undone)."""
    current = await _session_for(query, callback_data, db, t, config)
    if current is None:
        return
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.answer(
            t("charge.confirm_stop"), reply_markup=confirm_stop_buttons(t, current.id)
        )


async def stop_command(message: Message, db: Db, t: Translator) -> None:
    assert message.from_user is not None
    current = await sessions_svc.active_session(db, user_id=message.from_user.id)
    if current is None:
        await message.answer(t("charge.none_running"))
    elif current.status == SessionStatus.STARTING:
        await message.answer(t("err.session_starting"))
    else:
        await message.answer(
            t("charge.confirm_stop"), reply_markup=confirm_stop_buttons(t, current.id)
        )


async def stop_confirmed(
    query: CallbackQuery,
    callback_data: ChargeCb,
    db: Db,
    t: Translator,
    config: Config,
    charging: ChargingControl,
) -> None:
    current = await _session_for(query, callback_data, db, t, config, closed_ok=True)
    if current is None:
        return
    await db.commit()
    await query.answer(t("charge.stopping"))
    message = query.message if isinstance(query.message, Message) else None
    if message is not None:
        await edit_text_safely(message, t("charge.stopping"), None)
    presser = query.from_user.id
    try:  # the end reason (user, merchant, admin) follows from who pressed
        order, made = await charging.stop(
            current.id, actor=presser, admin=presser in config.admin_ids
        )
    except DomainError as error:
        text = refusal(t, error, config.zone, utcnow())
    else:
        if order is None or not made:
            text = t("charge.already_ended", order=order.id if order else "—")
        else:
            end = order.ended_at.astimezone(config.zone).strftime("%H:%M")
            unconfirmed = order.charge.power_off_confirmed is False
            text = t("charge.stopped_unconfirmed" if unconfirmed else "charge.stopped", end=end)
    if message is not None:
        await edit_text_safely(message, text, None)


async def keep_pressed(query: CallbackQuery, t: Translator) -> None:
    await query.answer(t("charge.kept"))
    if isinstance(query.message, Message):
        await edit_text_safely(query.message, t("charge.kept"), None)


# -- helpers ---------------------------------------------------------------------------


async def _session_for(
    query: CallbackQuery,
    callback_data: ChargeCb,
    db: Db,
    t: Translator,
    config: Config,
    *,
    closed_ok: bool = False,
) -> ChargingSession | None:
    """The session a button names, if the presser may act on it (its user, its
    merchant, or an admin) and it is still open; else an alert and None."""
    current = await db.get(ChargingSession, callback_data.ref, populate_existing=True)
    allowed = current is not None and (
        query.from_user.id in (current.user_id, current.merchant_id)
        or query.from_user.id in config.admin_ids
    )
    if current is None or not allowed:
        await query.answer(t("err.not_your_session"), show_alert=True)
        return None
    if current.status in (SessionStatus.COMPLETED, SessionStatus.FAILED) and not closed_ok:
        order = await sessions_svc.order_of(db, current.id)
        text = t("charge.already_ended", order=order.id if order else "—")
        await query.answer(text, show_alert=True)
        return None
    return current


async def _place(db: Db, current: ChargingSession) -> tuple[Charger, Listing]:
    charger = await db.get(Charger, current.charger_id)
    assert charger is not None
    listing = await db.get(Listing, charger.listing_id)
    assert listing is not None
    return charger, listing


async def _status(
    db: Db,
    t: Translator,
    config: Config,
    charging: ChargingControl,
    current: ChargingSession,
) -> str:
    fresh, plug = await charging.status(current.id)
    charger, listing = await _place(db, fresh)
    return status_text(t, fresh, charger, listing, plug, config.zone, utcnow())


SESSIONS_PAGE = 5


async def _sessions_view(
    db: Db, t: Translator, config: Config, number: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    """One page of the sessions charging now, each with its Close button."""
    page = await sessions_svc.running_page(db, number, SESSIONS_PAGE)
    if not page.items:
        return t("charge.admin_none"), None
    now = utcnow()
    blocks = []
    builder = InlineKeyboardBuilder()
    for current in page.items:
        charger, listing = await _place(db, current)
        status = status_text(t, current, charger, listing, _unknown_plug(now), config.zone, now)
        blocks.append(t("charge.admin_line", user=str(current.user_id), body=Html(status)))
        builder.button(
            text=t("btn.close_session_n", id=current.id),
            callback_data=ChargeCb(action="stop", ref=current.id),
        )
    builder.adjust(2)
    header = t("charge.admin_header", count=page.total, page=paging.counter(t, page))
    markup = paging.with_nav(t, "sessions", page, builder.as_markup())
    return fit(header + "\n\n" + "\n\n".join(blocks)), markup


async def running_sessions(message: Message, db: Db, t: Translator, config: Config) -> None:
    """/sessions in the moderation group: what runs now, a page at a time in one
    message, each with Close session (for a stuck plug or a session nobody can
    stop otherwise). One message, not one per session: a group takes about 20
    messages a minute."""
    text, markup = await _sessions_view(db, t, config, 0)
    await db.commit()  # no transaction left open while Telegram answers
    await message.answer(text, reply_markup=markup)


async def sessions_page(
    query: CallbackQuery,
    callback_data: PageCb,
    db: Db,
    t: Translator,
    config: Config,
) -> None:
    text, markup = await _sessions_view(db, t, config, callback_data.page)
    await db.commit()
    await query.answer()
    if isinstance(query.message, Message):
        await edit_text_safely(query.message, text, markup)


def _unknown_plug(now: datetime) -> PlugState:
    return PlugState(on=None, online=None, energy_kwh=None, at=now)


def build_admin_router(moderation_chat_id: int) -> Router:
    router = Router(name="charging_admin")
    router.message.filter(F.chat.id == moderation_chat_id)
    router.callback_query.filter(F.message.chat.id == moderation_chat_id)
    router.message.register(running_sessions, Command("sessions"), IsAdmin())
    router.callback_query.register(sessions_page, PageCb.filter(F.of == "sessions"), IsAdmin())
    return router


def build_router() -> Router:
    router = Router(name="charging")
    router.message.filter(F.chat.type == "private")
    router.message.register(scanned, CommandStart(deep_link=True))
    router.message.register(stop_command, Command("stop"))
    router.callback_query.register(start_pressed, ChargeCb.filter(F.action == "start"))
    router.callback_query.register(status_pressed, ChargeCb.filter(F.action == "status"))
    router.callback_query.register(stop_pressed, ChargeCb.filter(F.action == "stop"))
    router.callback_query.register(stop_confirmed, ChargeCb.filter(F.action == "stop_yes"))
    router.callback_query.register(keep_pressed, ChargeCb.filter(F.action == "keep"))
    return router
