"""/listings: the merchant's listings with their review state; edit, pause, resume."""

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from handlers.filters import Magic
from handlers.listing_wizard import start_edit
from services import listings
from services.tx import Db
from ui.callbacks import ListingAction, ListingCb, PageCb, PageOf
from ui.i18n import Translator
from ui.views.listing import listing_detail, my_listings

LIST_PAGE = 10


async def list_listings(message: Message, db: Db, t: Translator) -> None:
    assert message.from_user is not None
    page = await listings.overview_page(db, message.from_user.id, 0, LIST_PAGE)
    text, markup = my_listings(t, page)
    await message.answer(text, reply_markup=markup)


async def listings_page(query: CallbackQuery, callback_data: PageCb, db: Db, t: Translator) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        page = await listings.overview_page(db, query.from_user.id, callback_data.page, LIST_PAGE)
        text, markup = my_listings(t, page)
        await query.message.edit_text(text, reply_markup=markup)


async def listing_action(
    query: CallbackQuery, callback_data: ListingCb, state: FSMContext, db: Db, t: Translator
) -> None:
    message = query.message
    if not isinstance(message, Message):
        await query.answer(t("err.stale_button"), show_alert=True)
        return
    merchant = query.from_user.id
    if callback_data.action == ListingAction.LIST:
        await query.answer()
        page = await listings.overview_page(db, merchant, 0, LIST_PAGE)
        text, markup = my_listings(t, page)
        await message.edit_text(text, reply_markup=markup)
        return
    # the owner is checked on the server whatever the button says
    if callback_data.action in {ListingAction.PAUSE, ListingAction.RESUME}:
        await listings.set_paused(
            db,
            listing_id=callback_data.listing_id,
            merchant_id=merchant,
            paused=callback_data.action == ListingAction.PAUSE,
        )
    item = await listings.owned_overview(db, callback_data.listing_id, merchant)
    if callback_data.action == ListingAction.EDIT:
        await query.answer()
        await start_edit(message, state, t, item.listing.id, item.latest.draft)
        return
    if callback_data.action in {ListingAction.PAUSE, ListingAction.RESUME}:
        await query.answer(t(f"listings.{callback_data.action}d"))
    else:
        await query.answer()
    text, markup = listing_detail(t, item)
    await message.edit_text(text, reply_markup=markup)


def build_router() -> Router:
    router = Router(name="my_listings")
    router.message.filter(Magic(F.chat.type == "private"))
    router.callback_query.filter(Magic(F.message.chat.type == "private"))
    router.message.register(list_listings, Command("listings"))
    router.callback_query.register(listing_action, ListingCb.filter())
    router.callback_query.register(listings_page, PageCb.filter(F.of == PageOf.LISTINGS))
    return router
