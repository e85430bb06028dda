"""Charging: a scanned QR code (``/start <token>``), Start, status and Stop
(button or /stop). The device work, the rules and who may act are in services;
this module reads the press, calls one service and renders the answer (a refusal
is answered by handlers/errors.py)."""

from aiogram import F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from handlers.filters import IsAdmin, Magic
from services import cards, walkup
from services import charging as charges
from services.cards import CardRole
from services.charging_control import ChargingControl
from services.clock import utcnow
from services.dto import WalkupOffer
from services.tx import Db
from ui.callbacks import ChargeAction, ChargeCb, ExtendCb, PageCb, PageOf, StartCb, WalkupCb
from ui.config import Config
from ui.i18n import Translator
from ui.views.cards import live_text
from ui.views.charging import (
    clock,
    confirm_stop_buttons,
    merchant_buttons,
    running_buttons,
    running_list,
    scan_card,
    start_button,
    started_text,
    status_text,
    stopped_text,
)
from ui.views.walkup import extend_buttons, taken_text, walkup_card


async def scanned(
    message: Message,
    command: CommandObject,
    db: Db,
    t: Translator,
    config: Config,
    charging: ChargingControl,
) -> None:
    assert message.from_user is not None
    scan = await walkup.scan(
        db,
        token=(command.args or "").strip(),
        user_id=message.from_user.id,
        rules=charging.rules,
        booking_rules=config.booking_rules,
    )
    await answer_scan(message, scan, db, t, config, charging)


async def answer_scan(
    message: Message,
    scan: charges.Scan | WalkupOffer,
    db: Db,
    t: Translator,
    config: Config,
    charging: ChargingControl,
) -> None:
    """The answer to a scan, however it came: the QR link, ``/code``, a label's photo."""
    if isinstance(scan, WalkupOffer):  # no booking, and the charger is free: Charge now
        seconds = config.booking_rules.walkup_response_seconds
        card, offer_markup = walkup_card(t, scan, config.zone, utcnow(), seconds)
        await message.answer(card, reply_markup=offer_markup)
        return
    if scan.running is not None:  # scanned again while charging: show where it stands
        status = await charging.status(scan.running.id)
        text = live_text(t, status, config.zone, utcnow())
        markup = await _running_markup(t, config, charging, scan.running.id)
        sent = await message.answer(text, reply_markup=markup)
        await _record(db, CardRole.CHARGE, status.charge.id, status.charge.status, sent)
        return
    text = scan_card(t, scan, config.zone)
    await message.answer(text, reply_markup=start_button(t, scan.booking.id))


async def _record(db: Db, role: CardRole, charge_id: int, shown: str, sent: object) -> None:
    """A message that shows a charging session follows it (services/cards.py)."""
    if isinstance(sent, Message):
        await cards.record(db, role, charge_id, sent.chat.id, sent.message_id, shown=shown)


async def start_pressed(
    query: CallbackQuery,
    callback_data: StartCb,
    db: Db,
    t: Translator,
    config: Config,
    charging: ChargingControl,
) -> None:
    message = query.message if isinstance(query.message, Message) else None

    async def switching() -> None:
        # answered at once; the device's confirmation can take seconds
        await query.answer(t("charge.switching_alert"))
        if message is not None:
            await message.edit_text(t("charge.switching"))
            # from now on the message follows the session: a start that never
            # completes (a crash) still ends in words, not "Switching…" forever
            started = await charges.starting_of(db, callback_data.booking_id)
            if started is not None:
                await _record(db, CardRole.CHARGE, started, "starting", message)

    # whose booking it is is checked by the service; a plug that did not switch on
    # is refused with the Start button again (ui/errors.py)
    started = await charging.start(callback_data.booking_id, query.from_user.id, progress=switching)
    text = started_text(t, started, config.zone)
    markup = await _running_markup(t, config, charging, started.id)
    try:
        if message is None:
            raise LookupError("the Start message is not accessible")
        await message.edit_text(text, reply_markup=markup)
    except (TelegramAPIError, LookupError):
        # the session runs: the start time and the Stop button must reach the user
        assert query.bot is not None
        sent = await query.bot.send_message(query.from_user.id, text, reply_markup=markup)
        await _record(db, CardRole.CHARGE, started.id, started.status, sent)


async def status_pressed(
    query: CallbackQuery,
    callback_data: ChargeCb,
    db: Db,
    t: Translator,
    config: Config,
    charging: ChargingControl,
) -> None:
    presser = query.from_user.id
    charge = await charges.charge_for(
        db, callback_data.charge_id, person=presser, admin=presser in config.admin_ids
    )
    status = await charging.status(charge.id)
    await query.answer()
    if isinstance(query.message, Message):
        mine = charge.user_id == presser
        if mine:
            markup = await _running_markup(t, config, charging, charge.id)
        else:
            markup = merchant_buttons(t, charge.id)
        # the rider's: the same live card the refresh keeps current, as it is now
        text = (live_text if mine else status_text)(t, status, config.zone, utcnow())
        await query.message.edit_text(text, reply_markup=markup)
        if presser in (charge.user_id, charge.merchant_id):
            role = CardRole.CHARGE if mine else CardRole.CHARGE_MERCHANT
            await _record(db, role, charge.id, charge.status, query.message)


async def stop_pressed(
    query: CallbackQuery, callback_data: ChargeCb, db: Db, t: Translator, config: Config
) -> None:
    """First press: ask to confirm (a stop cannot be undone)."""
    presser = query.from_user.id
    charge = await charges.charge_for(
        db, callback_data.charge_id, person=presser, admin=presser in config.admin_ids
    )
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.answer(
            t("charge.confirm_stop"), reply_markup=confirm_stop_buttons(t, charge.id)
        )


async def stop_command(message: Message, db: Db, t: Translator) -> None:
    assert message.from_user is not None
    charge = await charges.to_stop(db, user_id=message.from_user.id)
    if charge is None:
        await message.answer(t("charge.none_running"))
    else:
        await message.answer(
            t("charge.confirm_stop"), reply_markup=confirm_stop_buttons(t, charge.id)
        )


async def stop_confirmed(
    query: CallbackQuery,
    callback_data: ChargeCb,
    db: Db,
    t: Translator,
    config: Config,
    charging: ChargingControl,
) -> None:
    presser, admin = query.from_user.id, query.from_user.id in config.admin_ids
    charge = await charges.charge_for(
        db, callback_data.charge_id, person=presser, admin=admin, closed_ok=True
    )
    if not charge.open:
        # a second tap (or another prompt): it says what the first tap said, so a
        # double tap changes nothing on screen ("message is not modified")
        ended = await charges.order_for_session(db, charge.id)
        await query.answer(t("charge.already_ended", order=ended.id if ended else "—"))
        if isinstance(query.message, Message):
            await query.message.edit_text(stopped_text(t, ended, ended is not None, config.zone))
        return
    await query.answer(t("charge.stopping"))
    message = query.message if isinstance(query.message, Message) else None
    if message is not None:
        await message.edit_text(t("charge.stopping"))
    # the end reason (user, merchant, admin) follows from who pressed; a refusal
    # takes the place of "Stopping…" (handlers/errors.py)
    order, _made = await charging.stop(charge.id, actor=presser, admin=admin)
    if message is not None:
        # closed by another path meanwhile: its end is as true as ours would be
        await message.edit_text(stopped_text(t, order, order is not None, config.zone))


async def _running_markup(
    t: Translator, config: Config, charging: ChargingControl, charge_id: int
) -> InlineKeyboardMarkup:
    """Status, Stop, and the Extend buttons that fit now."""
    options = await charging.extend_options(charge_id, config.booking_rules)
    return running_buttons(
        t, charge_id, extend_buttons(t, charge_id, options, config.zone, utcnow())
    )


async def walkup_pressed(
    query: CallbackQuery, callback_data: WalkupCb, db: Db, t: Translator, config: Config
) -> None:
    """Charge now, for how long: booked at once (Start), or the merchant asked."""
    booking = await walkup.take(
        db,
        user_id=query.from_user.id,
        charger_id=callback_data.charger_id,
        minutes=callback_data.minutes,
        rules=config.booking_rules,
    )
    await query.answer()
    text, markup = taken_text(t, booking, config.zone, utcnow())
    if isinstance(query.message, Message):
        await query.message.edit_text(text, reply_markup=markup)


async def extend_pressed(
    query: CallbackQuery,
    callback_data: ExtendCb,
    t: Translator,
    config: Config,
    charging: ChargingControl,
) -> None:
    """+30 min / +1 h: the window's new end; the card shows it with what fits next."""
    charge, option = await charging.extend(
        callback_data.charge_id, query.from_user.id, callback_data.minutes, config.booking_rules
    )
    now = utcnow()
    await query.answer(t("walkup.extended", end=clock(option.end, config.zone, now)))
    if isinstance(query.message, Message):
        status = await charging.status(charge.id)
        markup = await _running_markup(t, config, charging, charge.id)
        await query.message.edit_text(status_text(t, status, config.zone, now), reply_markup=markup)


async def keep_pressed(query: CallbackQuery, t: Translator) -> None:
    await query.answer(t("charge.kept"))
    if isinstance(query.message, Message):
        await query.message.edit_text(t("charge.kept"))


SESSIONS_PAGE = 5


async def running_sessions(message: Message, db: Db, t: Translator, config: Config) -> None:
    """/sessions in the moderation group: what runs now, a page at a time in one
    message, each with Close session (for a stuck plug or a session nobody can
    stop otherwise). One message, not one per session: a group takes about 20
    messages a minute."""
    page = await charges.running_page(db, 0, SESSIONS_PAGE)
    text, markup = running_list(t, page, config.zone, utcnow())
    await message.answer(text, reply_markup=markup)


async def sessions_page(
    query: CallbackQuery, callback_data: PageCb, db: Db, t: Translator, config: Config
) -> None:
    page = await charges.running_page(db, callback_data.page, SESSIONS_PAGE)
    text, markup = running_list(t, page, config.zone, utcnow())
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(text, reply_markup=markup)


def build_admin_router(moderation_chat_id: int) -> Router:
    router = Router(name="charging_admin")
    router.message.filter(Magic(F.chat.id == moderation_chat_id))
    router.callback_query.filter(Magic(F.message.chat.id == moderation_chat_id))
    router.message.register(running_sessions, Command("sessions"), IsAdmin())
    router.callback_query.register(sessions_page, PageCb.filter(F.of == PageOf.SESSIONS), IsAdmin())
    return router


def build_router() -> Router:
    router = Router(name="charging")
    router.message.filter(Magic(F.chat.type == "private"))
    router.message.register(scanned, CommandStart(deep_link=True))
    router.message.register(stop_command, Command("stop"))
    router.callback_query.register(start_pressed, StartCb.filter())
    router.callback_query.register(status_pressed, ChargeCb.filter(F.action == ChargeAction.STATUS))
    router.callback_query.register(stop_pressed, ChargeCb.filter(F.action == ChargeAction.STOP))
    router.callback_query.register(
        stop_confirmed, ChargeCb.filter(F.action == ChargeAction.STOP_YES)
    )
    router.callback_query.register(keep_pressed, ChargeCb.filter(F.action == ChargeAction.KEEP))
    router.callback_query.register(walkup_pressed, WalkupCb.filter())
    router.callback_query.register(extend_pressed, ExtendCb.filter())
    return router
