"""QR labels: the merchant gets a printable PNG per charger (on approval, and
from /listings), and can renew a charger's code, which voids the printed one."""

from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery
from aiogram.utils.keyboard import InlineKeyboardBuilder

from models import Listing
from services import listings
from services.errors import DomainError
from services.tx import Db
from ui.callbacks import QrCb
from ui.i18n import Translator
from ui.qr_labels import send_label, send_labels


async def labels(
    query: CallbackQuery, callback_data: QrCb, bot: Bot, db: Db, t: Translator
) -> None:
    try:
        count = await send_labels(
            bot, db, query.from_user.id, t, callback_data.ref, query.from_user.id
        )
    except DomainError as error:
        await query.answer(t(error.key, **error.params), show_alert=True)
        return
    await query.answer(t("qr.sent", count=count) if count else t("qr.none"), show_alert=not count)


async def renew(query: CallbackQuery, callback_data: QrCb, db: Db, t: Translator) -> None:
    try:
        charger = await listings.owned_charger(
            db, charger_id=callback_data.ref, merchant_id=query.from_user.id
        )
    except DomainError as error:
        await query.answer(t(error.key, **error.params), show_alert=True)
        return
    await query.answer()
    builder = InlineKeyboardBuilder()
    builder.button(
        text=t("btn.renew_qr_yes"),
        callback_data=QrCb(
            action="renew_yes",
            ref=charger.id,
            fp=listings.token_fingerprint(charger.qr_token),
        ),
    )
    if query.message is not None:
        await query.message.answer(t("qr.renew_confirm"), reply_markup=builder.as_markup())


async def renew_yes(
    query: CallbackQuery, callback_data: QrCb, bot: Bot, db: Db, t: Translator
) -> None:
    try:
        charger = await listings.renew_token(
            db,
            charger_id=callback_data.ref,
            merchant_id=query.from_user.id,
            fingerprint=callback_data.fp,
        )
        listing = await db.get(Listing, charger.listing_id)
    except DomainError as error:
        await query.answer(t(error.key, **error.params), show_alert=True)
        return
    await query.answer(t("qr.renewed"))
    if query.message is not None:
        await bot.edit_message_reply_markup(
            chat_id=query.message.chat.id, message_id=query.message.message_id
        )
    assert listing is not None
    await send_label(bot, query.from_user.id, t, listing, charger)


def build_router() -> Router:
    router = Router(name="qr_labels")
    router.callback_query.filter(F.message.chat.type == "private")
    router.callback_query.register(labels, QrCb.filter(F.action == "labels"))
    router.callback_query.register(renew, QrCb.filter(F.action == "renew"))
    router.callback_query.register(renew_yes, QrCb.filter(F.action == "renew_yes"))
    return router
