"""/listings: the merchant's listings with their review state; edit, pause, resume."""

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from handlers.listing_wizard import start_edit
from models import ListingStatus
from services import listings
from services.errors import DomainError
from services.listing_draft import ListingDraft
from services.listings import ListingOverview
from services.tx import Db
from ui import keyboards, paging
from ui.callbacks import ListingCb, PageCb
from ui.config import Config
from ui.i18n import Html, Translator
from ui.views.listing import fit, listing_text, reason_text


def _status(t: Translator, item: ListingOverview) -> str:
    listing = item.listing
    status = t(f"status.{listing.status.value}")
    if listing.published and listing.status != ListingStatus.APPROVED:
        status += " · " + t("status.old_version_public")
    if listing.published and listing.paused:
        status += " · " + t("status.paused")
    return status


def _name(item: ListingOverview) -> str:
    return item.latest.data.get("shop_name") or f"#{item.listing.id}"


LIST_PAGE = 10


async def _send_list(
    message: Message,
    db: Db,
    user_id: int,
    t: Translator,
    edit: bool = False,
    number: int = 0,
) -> None:
    """One page of the merchant's listings: a line and a button for each."""
    page = await listings.overview_page(db, user_id, number, LIST_PAGE)
    markup: InlineKeyboardMarkup | None
    if not page.items:
        text, markup = t("listings.empty"), None
    else:
        lines = [
            t("listings.line", id=i.listing.id, name=_name(i), status=_status(t, i))
            for i in page.items
        ]
        text = fit(t("listings.header", page=paging.counter(t, page)) + "\n" + "\n".join(lines))
        markup = paging.with_nav(
            t,
            "listings",
            page,
            keyboards.listing_list(
                t, [(i.listing.id, f"#{i.listing.id} {_name(i)}") for i in page.items]
            ),
        )
    await db.commit()  # no transaction left open while Telegram answers
    if edit:
        await keyboards.edit_text_safely(message, text, markup)
    else:
        await message.answer(text, reply_markup=markup)


async def my_listings(message: Message, db: Db, t: Translator) -> None:
    assert message.from_user is not None
    await _send_list(message, db, message.from_user.id, t)


async def listings_page(query: CallbackQuery, callback_data: PageCb, db: Db, t: Translator) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        await _send_list(
            query.message, db, query.from_user.id, t, edit=True, number=callback_data.page
        )


def _detail(t: Translator, item: ListingOverview) -> Html:
    latest = item.latest
    reason = ""
    if item.listing.status == ListingStatus.REJECTED:
        reason = "\n" + t("listings.reason", reason=reason_text(t, latest.reason))
    return fit(
        t.html(
            "listings.detail",
            id=item.listing.id,
            status=_status(t, item),
            reason=Html(reason),
            body=listing_text(t, ListingDraft.from_dict(latest.data)),
        )
    )


async def listing_action(
    query: CallbackQuery,
    callback_data: ListingCb,
    state: FSMContext,
    db: Db,
    t: Translator,
    config: Config,
) -> None:
    message = query.message
    if not isinstance(message, Message):
        await query.answer(t("err.stale_button"), show_alert=True)
        return
    if callback_data.action == "list":
        await query.answer()
        await _send_list(message, db, query.from_user.id, t, edit=True)
        return
    try:  # the owner is checked on the server whatever the button says
        if callback_data.action in {"pause", "resume"}:
            await listings.set_paused(
                db,
                listing_id=callback_data.listing_id,
                merchant_id=query.from_user.id,
                paused=callback_data.action == "pause",
            )
        item = await listings.owned_overview(db, callback_data.listing_id, query.from_user.id)
    except DomainError as error:
        await query.answer(t(error.key, **error.params), show_alert=True)
        return
    if callback_data.action == "edit":
        await query.answer()
        await start_edit(
            message, state, t, item.listing.id, ListingDraft.from_dict(item.latest.data)
        )
        return
    if callback_data.action in {"pause", "resume"}:
        await query.answer(t(f"listings.{callback_data.action}d"))
    else:
        await query.answer()
    markup = keyboards.listing_actions(
        t, item.listing.id, published=item.listing.published, paused=item.listing.paused
    )
    await message.edit_text(_detail(t, item), reply_markup=markup)


def build_router() -> Router:
    router = Router(name="my_listings")
    router.message.filter(F.chat.type == "private")
    router.callback_query.filter(F.message.chat.type == "private")
    router.message.register(my_listings, Command("listings"))
    router.callback_query.register(listing_action, ListingCb.filter())
    router.callback_query.register(listings_page, PageCb.filter(F.of == "listings"))
    return router
