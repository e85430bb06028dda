"""QR labels: the merchant gets a printable PNG per charger (on approval, and
from /listings), and can renew a charger's code, which voids the printed one."""

from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery

from handlers.filters import Magic
from services import listings
from services.tx import Db
from ui.callbacks import QrAction, QrLabelsCb, QrRenewCb
from ui.i18n import Translator
from ui.qr_labels import renew_confirm_button, send_charger_label, send_labels


async def labels(
    query: CallbackQuery, callback_data: QrLabelsCb, bot: Bot, db: Db, t: Translator
) -> None:
    merchant = query.from_user.id
    count = await send_labels(bot, db, merchant, t, callback_data.listing_id, merchant)
    await query.answer(t("qr.sent", count=count) if count else t("qr.none"), show_alert=not count)


async def renew(query: CallbackQuery, callback_data: QrRenewCb, db: Db, t: Translator) -> None:
    charger = await listings.owned_charger(
        db, charger_id=callback_data.charger_id, merchant_id=query.from_user.id
    )
    await query.answer()
    if query.message is not None:
        await query.message.answer(
            t("qr.renew_confirm"), reply_markup=renew_confirm_button(t, charger)
        )


async def renew_yes(
    query: CallbackQuery, callback_data: QrRenewCb, bot: Bot, db: Db, t: Translator
) -> None:
    merchant = query.from_user.id
    charger = await listings.renew_token(
        db, charger_id=callback_data.charger_id, merchant_id=merchant, fingerprint=callback_data.fp
    )
    await query.answer(t("qr.renewed"))
    if query.message is not None:
        await bot.edit_message_reply_markup(
            chat_id=query.message.chat.id, message_id=query.message.message_id
        )
    await send_charger_label(bot, db, merchant, t, charger.id, merchant)


def build_router() -> Router:
    router = Router(name="qr_labels")
    router.callback_query.filter(Magic(F.message.chat.type == "private"))
    router.callback_query.register(labels, QrLabelsCb.filter())
    router.callback_query.register(renew, QrRenewCb.filter(F.action == QrAction.RENEW))
    router.callback_query.register(renew_yes, QrRenewCb.filter(F.action == QrAction.RENEW_YES))
    return router
