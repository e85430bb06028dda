"""/find: the nearest approved chargers to a shared location (or a typed
address), a page at a time, with filters; a result opens the listing's card."""

from aiogram import Bot, F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardRemove,
)

from handlers.filters import Magic
from services import bookings, search
from services.clock import utcnow
from services.listing_draft import DEVICE_KINDS
from services.tx import Db, step
from ui import keyboards
from ui.callbacks import FindAction, FindCb
from ui.config import Config
from ui.i18n import Translator, all_variants
from ui.notifications import send_place
from ui.views.booking import card_buttons, find_page, listing_card

PAGE = 5
CAPTION_LIMIT = 1024


class FindForm(StatesGroup):
    where = State()


async def find(message: Message, state: FSMContext, t: Translator) -> None:
    await state.set_state(FindForm.where)
    markup = keyboards.reply(
        [[KeyboardButton(text=t("btn.share_location"), request_location=True)], [t("btn.cancel")]]
    )
    await message.answer(t("find.ask"), reply_markup=markup)


async def find_again(query: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        await find(query.message, state, t)


async def where(message: Message, state: FSMContext, db: Db, t: Translator, config: Config) -> None:
    if message.text and message.text.strip() in all_variants("btn.cancel"):
        await state.clear()
        await message.answer(t("cancel.done"), reply_markup=ReplyKeyboardRemove())
        return
    if message.location:
        await message.answer(t("find.searching"), reply_markup=ReplyKeyboardRemove())
        async with step(db):  # the search and the point kept for its pages
            await state.clear()
            await state.update_data(find_at=[message.location.latitude, message.location.longitude])
            text, markup = await _page(db, state, t, config, FindCb(action=FindAction.PAGE))
        await message.answer(text, reply_markup=markup)
        return
    if message.text and len(message.text.strip()) >= 2:
        found = await search.by_text(db, message.text)
        if not found:
            await message.answer(t("find.address_none"))
            return
        await state.clear()
        point = found[0]
        await state.update_data(find_at=[point.latitude, point.longitude])
        await message.answer(
            t("find.address_near", shop=point.shop_name), reply_markup=ReplyKeyboardRemove()
        )
        text, markup = await _page(db, state, t, config, FindCb(action=FindAction.PAGE))
        await message.answer(text, reply_markup=markup)
        return
    await message.answer(t("find.ask"))


async def _page(
    db: Db, state: FSMContext, t: Translator, config: Config, cb: FindCb
) -> tuple[str, InlineKeyboardMarkup | None]:
    point = (await state.get_data()).get("find_at")
    if not point:
        return t("find.expired"), None
    now = utcnow()
    page, free = await search.nearest_page(
        db,
        point[0],
        point[1],
        now=now,
        zone=config.zone,
        kind=cb.kind or None,
        open_now=cb.open_now,
        number=cb.page,
        size=PAGE,
    )
    return find_page(t, page, cb, config.zone, now, free)


async def page(
    query: CallbackQuery,
    callback_data: FindCb,
    state: FSMContext,
    db: Db,
    t: Translator,
    config: Config,
) -> None:
    if callback_data.action == FindAction.KIND:  # cycle through the device kinds
        order = ["", *DEVICE_KINDS]
        nxt = (
            order[(order.index(callback_data.kind) + 1) % len(order)]
            if (callback_data.kind in order)
            else ""
        )
        callback_data = callback_data.model_copy(update={"kind": nxt, "action": FindAction.PAGE})
    text, markup = await _page(db, state, t, config, callback_data)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(text, reply_markup=markup)


async def card(
    query: CallbackQuery, callback_data: FindCb, bot: Bot, db: Db, t: Translator
) -> None:
    listing, chargers = await bookings.bookable_listing(db, callback_data.listing_id)
    await query.answer()
    markup = card_buttons(t, listing, chargers)
    text = listing_card(t, listing, chargers)
    assert listing.photo_file_id is not None
    if len(text) <= CAPTION_LIMIT:
        await bot.send_photo(
            query.from_user.id, listing.photo_file_id, caption=text, reply_markup=markup
        )
    else:
        await bot.send_photo(query.from_user.id, listing.photo_file_id)
        await bot.send_message(query.from_user.id, text, reply_markup=markup)


async def show_map(
    query: CallbackQuery, callback_data: FindCb, bot: Bot, db: Db, t: Translator
) -> None:
    listing = await bookings.public_place(db, callback_data.listing_id)
    await query.answer()
    await send_place(bot, query.from_user.id, listing)  # a location when there is no address


def build_router() -> Router:
    router = Router(name="find")
    router.message.filter(Magic(F.chat.type == "private"))
    router.callback_query.filter(Magic(F.message.chat.type == "private"))
    router.message.register(find, Command("find"))
    router.message.register(where, StateFilter(FindForm.where), Magic(~F.text.startswith("/")))
    router.callback_query.register(
        page, FindCb.filter(F.action.in_({FindAction.PAGE, FindAction.KIND}))
    )
    router.callback_query.register(find_again, FindCb.filter(F.action == FindAction.RESTART))
    router.callback_query.register(card, FindCb.filter(F.action == FindAction.CARD))
    router.callback_query.register(show_map, FindCb.filter(F.action == FindAction.MAP))
    return router
