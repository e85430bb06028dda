"""Money in the moderation group, for ADMIN_IDS only (checked on every update;
anyone else's press gets an alert and changes nothing): /report (the platform's
totals, fees, top chargers and chart); the refund requests' Mark refunded (asks the
provider's reference) and Decline (asks the reason); /payout with a confirmation."""

import secrets

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import BufferedInputFile, CallbackQuery, ForceReply, Message

from handlers.filters import IsAdmin, Magic
from services import earnings, payouts, users, wallet
from services.clock import utcnow
from services.dto import RefundStatus
from services.errors import NotFound
from services.tx import Db
from ui.callbacks import PayoutAction, PayoutCb, RefundAction, RefundCb
from ui.charts import chart_labels, daily_chart
from ui.config import Config
from ui.i18n import Translator
from ui.views.booking import money
from ui.views.earnings import chart_series, report_text
from ui.views.wallet import payout_buttons, refund_buttons, refund_card


class RefundForm(StatesGroup):
    reference = State()  # Mark refunded: the provider's refund reference
    reason = State()  # Decline: why


async def report(message: Message, db: Db, t: Translator, config: Config) -> None:
    figures = await earnings.report(db, now=utcnow(), zone=config.zone)
    await message.answer(report_text(t, figures, config.money))
    series = chart_series(figures.daily, config.money.currency)
    if series is not None:
        code, points = series
        png = await daily_chart(points, code, chart_labels(t, "earn.report_chart_title", code))
        await message.answer_photo(
            BufferedInputFile(png, filename="report.png"),
            caption=t("earn.chart_caption", currency=code),
        )


# -- refunds -----------------------------------------------------------------------------


async def refund_press(
    query: CallbackQuery, callback_data: RefundCb, state: FSMContext, db: Db, t: Translator
) -> None:
    refund = await wallet.refund_view(db, callback_data.refund_id)
    if refund.status != RefundStatus.REQUESTED:  # a stale card, or another admin was first
        await query.answer(t("refund.decided"), show_alert=True)
        return
    await query.answer()
    assert isinstance(query.message, Message)
    done = callback_data.action == RefundAction.DONE
    # ForceReply: the answer reaches the bot with privacy mode on, and only a reply to
    # this prompt is taken (not the admin's other messages)
    prompt = await query.message.reply(
        t("refund.ask_reference" if done else "refund.ask_reason", id=refund.id),
        reply_markup=ForceReply(selective=True),
    )
    await state.set_state(RefundForm.reference if done else RefundForm.reason)
    await state.update_data(refund_id=refund.id, prompt_id=prompt.message_id)


async def refund_answer(
    message: Message, state: FSMContext, bot: Bot, db: Db, t: Translator, config: Config
) -> None:
    data = await state.get_data()
    reply_to = message.reply_to_message
    if reply_to is None or reply_to.message_id != data.get("prompt_id"):
        raise SkipHandler  # about something else
    assert message.from_user is not None
    refund_id = int(data["refund_id"])
    done = await state.get_state() == RefundForm.reference.state
    await state.clear()
    if done:
        decided = await wallet.mark_refunded(
            db,
            refund_id=refund_id,
            admin_id=message.from_user.id,
            reference=message.text or "",
            now=utcnow(),
        )
        await message.reply(t("refund.done_reply", id=refund_id))
    else:
        decided = await wallet.decline_refund(
            db,
            refund_id=refund_id,
            admin_id=message.from_user.id,
            reason=message.text or "",
            now=utcnow(),
        )
        await message.reply(t("refund.declined_reply", id=refund_id))
    await refresh_refund_card(bot, db, t, config, decided.id)


async def refresh_refund_card(
    bot: Bot, db: Db, t: Translator, config: Config, refund_id: int
) -> None:
    """The card in the group shows the decision, without buttons."""
    refund = await wallet.refund_view(db, refund_id)
    if refund.card_chat_id is None or refund.card_message_id is None:
        return  # the card is not out yet: it will be rendered as it is now
    profile = await users.profile(db, refund.user_id)
    text = refund_card(t, refund, profile.first_name if profile else "", config.zone)
    await bot.edit_message_text(
        text,
        chat_id=refund.card_chat_id,
        message_id=refund.card_message_id,
        reply_markup=refund_buttons(t, refund),
    )


# -- payouts -----------------------------------------------------------------------------


async def payout_command(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    db: Db,
    t: Translator,
    config: Config,
) -> None:
    code = config.money.currency
    typed = payouts.parse_payout(command.args, code)
    merchant = typed.merchant
    if merchant is None and typed.username is not None:
        merchant = await users.id_by_username(db, typed.username)
        if merchant is None:
            raise NotFound("err.payout_unknown_merchant", who=typed.username)
    assert merchant is not None
    profile = await users.profile(db, merchant)
    owed = await payouts.owed(db, merchant, code)
    key = secrets.token_hex(8)
    # the amount and reference stay here; the button names them by key only
    await state.update_data(
        payout={
            "key": key,
            "merchant": merchant,
            "amount": typed.amount_minor,
            "currency": code,
            "reference": typed.reference,
        }
    )
    await message.reply(
        t(
            "payout.confirm",
            merchant=str(merchant),
            name=profile.first_name if profile else "—",
            amount=money(t, typed.amount_minor, code),
            reference=typed.reference,
            owed=money(t, owed, code),
        ),
        reply_markup=payout_buttons(t, key),
    )


async def payout_press(
    query: CallbackQuery, callback_data: PayoutCb, state: FSMContext, db: Db, t: Translator
) -> None:
    pending = (await state.get_data()).get("payout")
    if not pending or pending.get("key") != callback_data.key:
        await query.answer(t("payout.stale"), show_alert=True)
        return
    assert isinstance(query.message, Message)
    if callback_data.action == PayoutAction.NO:
        await state.update_data(payout=None)
        await query.answer()
        await query.message.edit_text(t("payout.dropped"))
        return
    # keyed by the confirmation: a second press (or another instance) records it once
    made = await payouts.record_payout(
        db,
        admin_id=query.from_user.id,
        merchant_id=int(pending["merchant"]),
        amount_minor=int(pending["amount"]),
        currency_code=str(pending["currency"]),
        reference=str(pending["reference"]),
        now=utcnow(),
        key=f"payout:{callback_data.key}",
    )
    await state.update_data(payout=None)
    await query.answer()
    if made.repeat:
        await query.message.edit_text(t("payout.repeat", id=made.id))
        return
    await query.message.edit_text(
        t(
            "payout.recorded",
            id=made.id,
            amount=money(t, made.amount_minor, made.currency),
            merchant=str(made.merchant_id),
            reference=made.reference,
            owed=money(t, made.payable_minor, made.currency),
        )
    )


async def not_an_admin(query: CallbackQuery, t: Translator) -> None:
    await query.answer(t("pay.not_admin"), show_alert=True)


async def not_an_admin_command(message: Message, t: Translator) -> None:
    await message.reply(t("pay.not_admin"))


def build_router(moderation_chat_id: int) -> Router:
    router = Router(name="money_admin")
    router.message.filter(Magic(F.chat.id == moderation_chat_id))
    router.callback_query.filter(Magic(F.message.chat.id == moderation_chat_id))
    router.message.register(report, Command("report"), IsAdmin())
    router.message.register(payout_command, Command("payout"), IsAdmin())
    router.message.register(
        refund_answer,
        StateFilter(RefundForm.reference, RefundForm.reason),
        IsAdmin(),
        Magic(F.text),
        Magic(~F.text.startswith("/")),
    )
    router.callback_query.register(refund_press, RefundCb.filter(), IsAdmin())
    router.callback_query.register(payout_press, PayoutCb.filter(), IsAdmin())
    router.callback_query.register(not_an_admin, RefundCb.filter())
    router.callback_query.register(not_an_admin, PayoutCb.filter())
    router.message.register(not_an_admin_command, Command("report", "payout"))
    return router
