"""/find: the nearest approved chargers to a shared location (or a typed
address), a page at a time, with filters; a result opens the listing's card."""

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, KeyboardButton, Message, ReplyKeyboardRemove
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy import select

from models import Charger, Listing
from models.base import utcnow
from services import search
from services.listing_draft import DEVICE_KINDS
from services.search import Hit
from services.tx import Db
from ui import keyboards
from ui.callbacks import BookCb, FindCb
from ui.config import Config
from ui.i18n import Translator, all_variants
from ui.notifications import send_place
from ui.views.booking import hit_line, listing_card

PAGE = 5


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
        await state.clear()
        await state.update_data(find_at=[message.location.latitude, message.location.longitude])
        await message.answer(t("find.searching"), reply_markup=ReplyKeyboardRemove())
        text, markup = await _page(db, state, t, config, FindCb(action="page"))
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
            t("find.address_near", shop=point.shop_name or ""), reply_markup=ReplyKeyboardRemove()
        )
        text, markup = await _page(db, state, t, config, FindCb(action="page"))
        await message.answer(text, reply_markup=markup)
        return
    await message.answer(t("find.ask"))


async def _page(db: Db, state: FSMContext, t: Translator, config: Config, cb: FindCb):
    point = (await state.get_data()).get("find_at")
    if not point:
        return t("find.expired"), None
    now = utcnow()
    ranked = await search.nearest(
        db,
        point[0],
        point[1],
        now=now,
        zone=config.zone,
        kind=cb.kind or None,
        open_now=cb.open_now,
    )
    pages = max(1, (len(ranked) + PAGE - 1) // PAGE)
    page = min(max(cb.page, 0), pages - 1)
    shown: list[Hit] = await search.load(db, ranked[page * PAGE : (page + 1) * PAGE])
    builder = InlineKeyboardBuilder()
    for i, hit in enumerate(shown, start=page * PAGE + 1):
        builder.button(
            text=f"{i}. {hit.listing.shop_name}",
            callback_data=FindCb(
                action="card", ref=hit.listing.id, kind=cb.kind, open_now=cb.open_now, page=page
            ),
        )
    sizes = [1] * len(shown)
    nav = 0
    if page > 0:
        builder.button(
            text=t("btn.previous"),
            callback_data=cb.model_copy(update={"action": "page", "page": page - 1}),
        )
        nav += 1
    if page < pages - 1:
        builder.button(
            text=t("btn.next"),
            callback_data=cb.model_copy(update={"action": "page", "page": page + 1}),
        )
        nav += 1
    if nav:
        sizes.append(nav)
    kind_label = t(f"kind.{cb.kind}") if cb.kind else t("find.any_device")
    builder.button(
        text=t("btn.filter_kind", kind=kind_label),
        callback_data=cb.model_copy(update={"action": "kind", "page": 0}),
    )
    builder.button(
        text=t("btn.open_now_on" if cb.open_now else "btn.open_now_off"),
        callback_data=cb.model_copy(
            update={"action": "page", "page": 0, "open_now": not cb.open_now}
        ),
    )
    sizes.append(2)
    builder.adjust(*sizes)
    if not ranked:
        return t("find.none"), builder.as_markup()
    lines = [hit_line(t, i, hit, config.zone, now) for i, hit in enumerate(shown, page * PAGE + 1)]
    header = t("find.header", count=len(ranked), page=page + 1, pages=pages)
    return header + "\n\n" + "\n\n".join(lines), builder.as_markup()


async def page(
    query: CallbackQuery,
    callback_data: FindCb,
    state: FSMContext,
    db: Db,
    t: Translator,
    config: Config,
) -> None:
    if callback_data.action == "kind":  # cycle through the device kinds
        order = ["", *DEVICE_KINDS]
        nxt = (
            order[(order.index(callback_data.kind) + 1) % len(order)]
            if (callback_data.kind in order)
            else ""
        )
        callback_data = callback_data.model_copy(update={"kind": nxt, "action": "page"})
    text, markup = await _page(db, state, t, config, callback_data)
    await query.answer()
    if isinstance(query.message, Message):
        await keyboards.edit_text_safely(query.message, text, markup)


async def card(
    query: CallbackQuery, callback_data: FindCb, bot: Bot, db: Db, t: Translator
) -> None:
    listing = await _public_listing(query, db, t, callback_data.ref)
    if listing is None:
        return
    chargers = await _chargers(db, listing.id)
    if not chargers:
        await query.answer(t("err.listing_unavailable"), show_alert=True)
        return
    await query.answer()
    builder = InlineKeyboardBuilder()
    for charger in chargers:
        builder.button(
            text=t("btn.book_charger", n=charger.position + 1),
            callback_data=BookCb(charger_id=charger.id),
        )
    builder.button(text=t("btn.show_map"), callback_data=FindCb(action="map", ref=listing.id))
    builder.adjust(*([1] * len(chargers)), 1)
    text = listing_card(t, listing, chargers)
    assert listing.photo_file_id is not None
    if len(text) <= 1024:
        await bot.send_photo(
            query.from_user.id,
            listing.photo_file_id,
            caption=text,
            reply_markup=builder.as_markup(),
        )
    else:
        await bot.send_photo(query.from_user.id, listing.photo_file_id)
        await bot.send_message(query.from_user.id, text, reply_markup=builder.as_markup())


async def show_map(
    query: CallbackQuery, callback_data: FindCb, bot: Bot, db: Db, t: Translator
) -> None:
    listing = await _public_listing(query, db, t, callback_data.ref)
    if listing is None:
        return
    await query.answer()
    await send_place(bot, query.from_user.id, listing)  # a location when there is no address


async def _public_listing(
    query: CallbackQuery, db: Db, t: Translator, listing_id: int
) -> Listing | None:
    """The listing if the public may see it now; else an alert (paused, under its
    first review, withdrawn while the user was looking)."""
    listing = await db.get(Listing, listing_id, populate_existing=True)
    if listing is None or not listing.published or listing.paused:
        await query.answer(t("err.listing_unavailable"), show_alert=True)
        return None
    return listing


async def _chargers(db: Db, listing_id: int) -> list[Charger]:
    return list(
        (
            await db.scalars(
                select(Charger)
                .where(Charger.listing_id == listing_id, Charger.active.is_(True))
                .order_by(Charger.position)
            )
        ).all()
    )


def build_router() -> Router:
    router = Router(name="find")
    router.message.filter(F.chat.type == "private")
    router.callback_query.filter(F.message.chat.type == "private")
    router.message.register(find, Command("find"))
    router.message.register(where, FindForm.where, ~F.text.startswith("/"))
    router.callback_query.register(page, FindCb.filter(F.action.in_({"page", "kind"})))
    router.callback_query.register(find_again, FindCb.filter(F.action == "restart"))
    router.callback_query.register(card, FindCb.filter(F.action == "card"))
    router.callback_query.register(show_map, FindCb.filter(F.action == "map"))
    return router
