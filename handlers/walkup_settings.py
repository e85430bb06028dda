"""/listings → a listing → Walk-up & full: each charger's walk-up acceptance and its
"full" threshold, shown and changed (the owner is checked by the service)."""

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message

from handlers.filters import Magic
from services import walkup
from services.tx import Db
from ui.callbacks import ChargerSetCb, WalkupSetting
from ui.i18n import Translator
from ui.views.walkup_settings import settings_view


async def settings_pressed(
    query: CallbackQuery, callback_data: ChargerSetCb, db: Db, t: Translator
) -> None:
    merchant, listing_id = query.from_user.id, callback_data.listing_id
    if callback_data.what == WalkupSetting.SHOW:
        chargers = await walkup.settings_of(db, listing_id=listing_id, merchant_id=merchant)
        await query.answer()
    else:
        chargers = await walkup.change_setting(
            db,
            listing_id=listing_id,
            charger_id=callback_data.charger_id,
            merchant_id=merchant,
            what=walkup.Setting(callback_data.what.value),
            value=callback_data.value,
        )
        await query.answer(t("walkup.setting_saved"))
    if isinstance(query.message, Message):
        text, markup = settings_view(t, listing_id, chargers)
        await query.message.edit_text(text, reply_markup=markup)


def build_router() -> Router:
    router = Router(name="walkup_settings")
    router.callback_query.filter(Magic(F.message.chat.type == "private"))
    router.callback_query.register(settings_pressed, ChargerSetCb.filter())
    return router
