"""Rendering and delivering the outbox's messages (the bot's side of the port).

Messages are rendered when they are sent, from the current database state and
in the recipient's language, so a card posted late still shows the truth.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from sqlalchemy.ext.asyncio import AsyncSession

from bot import charging_views, keyboards
from bot.booking_views import booking_text, charger_title
from bot.booking_views import reason_text as booking_reason_text
from bot.callbacks import FindCb
from bot.charging_views import clock
from bot.i18n import Html, Translator, translator
from bot.qr_labels import send_labels
from bot.settings import Settings
from bot.views import fit, listing_text, reason_text, status_line, when
from models import (
    BookingStatus,
    Charger,
    ChargingSession,
    Listing,
    OutboxMessage,
    RevisionStatus,
    SessionStatus,
    User,
)
from services import bookings, charging, listings, users
from services.listing_draft import ListingDraft

log = logging.getLogger(__name__)

CAPTION_LIMIT = 1024


@dataclass
class Context:
    bot: Bot
    session: AsyncSession
    settings: Settings
    t: Translator


Renderer = Callable[[Context, OutboxMessage], Awaitable[None]]


def is_not_modified(error: TelegramBadRequest) -> bool:
    return "message is not modified" in error.message


def review_card_text(t: Translator, revision, settings: Settings) -> Html:
    draft = ListingDraft.from_dict(revision.data)
    kind = "review.card_update" if revision.number > 1 else "review.card_new"
    return fit(
        t.html(
            "review.card",
            header=t.html(
                kind, id=revision.id, listing=revision.listing_id, number=revision.number
            ),
            merchant=str(revision.listing.merchant_id),
            body=listing_text(t, draft),
            status=status_line(t, revision, settings.zone),
        )
    )


def review_markup(t: Translator, revision) -> InlineKeyboardMarkup | None:
    return keyboards.review(t, revision.id) if revision.status == RevisionStatus.PENDING else None


async def send_review_card(
    bot: Bot,
    session: AsyncSession,
    settings: Settings,
    t: Translator,
    revision_id: int,
    chat_id: int,
) -> None:
    """Post the card (photo with every field, or photo then text when too long)."""
    revision = await listings.get_revision(session, revision_id)
    text = review_card_text(t, revision, settings)
    markup = review_markup(t, revision)
    photo = revision.data.get("photo_file_id")
    # room for the decision line a refresh adds (a typed reason is up to 500)
    if len(text) + 650 <= CAPTION_LIMIT:
        sent = await bot.send_photo(chat_id, photo, caption=text, reply_markup=markup)
        is_photo = True
    else:
        await bot.send_photo(chat_id, photo)
        sent = await bot.send_message(chat_id, text, reply_markup=markup)
        is_photo = False
    await listings.record_card(session, revision_id, chat_id, sent.message_id, is_photo)


async def _review_card(ctx: Context, message: OutboxMessage) -> None:
    await send_review_card(
        ctx.bot, ctx.session, ctx.settings, ctx.t, message.payload["revision_id"], message.chat_id
    )


async def _review_card_refresh(ctx: Context, message: OutboxMessage) -> None:
    revision = await listings.get_revision(ctx.session, message.payload["revision_id"])
    if revision.card_message_id is None or revision.card_chat_id is None:
        return  # the card itself is not out yet; it will be rendered current
    text = review_card_text(ctx.t, revision, ctx.settings)
    markup = review_markup(ctx.t, revision)
    try:
        if revision.card_is_photo:
            await ctx.bot.edit_message_caption(
                chat_id=revision.card_chat_id,
                message_id=revision.card_message_id,
                caption=text,
                reply_markup=markup,
            )
        else:
            await ctx.bot.edit_message_text(
                text,
                chat_id=revision.card_chat_id,
                message_id=revision.card_message_id,
                reply_markup=markup,
            )
    except TelegramBadRequest as error:
        if not is_not_modified(error):
            raise


async def _listing_approved(ctx: Context, message: OutboxMessage) -> None:
    revision = await listings.get_revision(ctx.session, message.payload["revision_id"])
    name = revision.data.get("shop_name") or ""
    await ctx.bot.send_message(
        message.chat_id, ctx.t("merchant.approved", shop=name, id=revision.listing_id)
    )


async def _listing_rejected(ctx: Context, message: OutboxMessage) -> None:
    revision = await listings.get_revision(ctx.session, message.payload["revision_id"])
    await ctx.bot.send_message(
        message.chat_id,
        ctx.t(
            "merchant.rejected",
            shop=revision.data.get("shop_name") or "",
            id=revision.listing_id,
            reason=reason_text(ctx.t, revision.reason),
        ),
        reply_markup=keyboards.edit_rejected(ctx.t, revision.listing_id),
    )


async def _booking(ctx: Context, message: OutboxMessage):
    booking = await bookings.get(ctx.session, message.payload["booking_id"])
    listing = await ctx.session.get(Listing, booking.charger.listing_id)
    assert listing is not None
    return (
        booking,
        listing,
        booking_text(ctx.t, booking, ctx.settings.zone, listing.shop_name or ""),
    )


async def _booking_request(ctx: Context, message: OutboxMessage) -> None:
    booking, _listing, text = await _booking(ctx, message)
    user = await ctx.session.get(User, booking.user_id)
    await ctx.bot.send_message(
        message.chat_id,
        ctx.t(
            "booking.request_merchant",
            name=user.first_name if user else "",
            body=text,
            until=when(booking.respond_by, ctx.settings.zone),
        ),
        # a request delivered late (cancelled or expired meanwhile) gets no buttons
        reply_markup=keyboards.booking_decision(ctx.t, booking.id)
        if booking.status == BookingStatus.REQUESTED
        else None,
    )


async def _booking_accepted(ctx: Context, message: OutboxMessage) -> None:
    booking, listing, text = await _booking(ctx, message)
    assert listing.latitude is not None and listing.longitude is not None
    await ctx.bot.send_venue(
        message.chat_id,
        listing.latitude,
        listing.longitude,
        title=listing.shop_name or "",
        address=listing.address or "",
    )
    charger = booking.charger
    await ctx.bot.send_message(
        message.chat_id,
        ctx.t(
            "booking.accepted_user",
            body=text,
            supply=f"{charger.supply_kind} / {charger.supply_model}",
        ),
    )


async def _booking_rejected(ctx: Context, message: OutboxMessage) -> None:
    booking, _listing, text = await _booking(ctx, message)
    await ctx.bot.send_message(
        message.chat_id,
        ctx.t(
            "booking.rejected_user", body=text, reason=booking_reason_text(ctx.t, booking.reason)
        ),
        reply_markup=find_again(ctx.t),
    )


def _simple(
    key: str, markup: Callable[[Translator], InlineKeyboardMarkup] | None = None
) -> Renderer:
    async def render_simple(ctx: Context, message: OutboxMessage) -> None:
        _booking_row, _listing, text = await _booking(ctx, message)
        await ctx.bot.send_message(
            message.chat_id, ctx.t(key, body=text), reply_markup=markup(ctx.t) if markup else None
        )

    return render_simple


def find_again(t: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=t("btn.find_again"), callback_data=FindCb(action="restart").pack()
                )
            ]
        ]
    )


async def _qr_labels(ctx: Context, message: OutboxMessage) -> None:
    """The printable labels of a listing's public chargers, after an approval."""
    await send_labels(
        ctx.bot, ctx.session, message.chat_id, ctx.t, message.payload["listing_id"], message.chat_id
    )


async def _charging(
    ctx: Context, message: OutboxMessage
) -> tuple[ChargingSession, Charger, Listing]:
    current = await charging.get(ctx.session, message.payload["session_id"])
    charger = await ctx.session.get(Charger, current.charger_id)
    assert charger is not None
    listing = await ctx.session.get(Listing, charger.listing_id)
    assert listing is not None
    return current, charger, listing


async def _session_started(ctx: Context, message: OutboxMessage) -> None:
    current, charger, listing = await _charging(ctx, message)
    assert current.started_at is not None
    user = await ctx.session.get(User, current.user_id)
    zone, now = ctx.settings.zone, current.started_at
    await ctx.bot.send_message(
        message.chat_id,
        ctx.t(
            "charge.merchant_started",
            booking=current.booking_id,
            shop=listing.shop_name or "",
            charger=charger_title(ctx.t, charger),
            name=user.first_name if user else str(current.user_id),
            start=clock(current.started_at, zone, now),
            end=clock(current.booking.end_at, zone, now),
        ),
        # a late delivery (the session ended meanwhile) has no button to press
        reply_markup=charging_views.merchant_buttons(ctx.t, current.id)
        if current.status == SessionStatus.CHARGING
        else None,
    )


async def _session_warning(ctx: Context, message: OutboxMessage) -> None:
    current, _charger, _listing = await _charging(ctx, message)
    if current.status != SessionStatus.CHARGING:
        return  # stopped before the warning went out: nothing to warn about
    end = clock(current.booking.end_at, ctx.settings.zone, current.booking.end_at)
    await ctx.bot.send_message(
        message.chat_id,
        ctx.t("charge.warning", end=end),
        reply_markup=charging_views.running_buttons(ctx.t, current.id),
    )


async def _session_running(ctx: Context, message: OutboxMessage) -> None:
    """A start that recovery found confirmed by the plug: the user learns it runs."""
    current, charger, listing = await _charging(ctx, message)
    if current.status != SessionStatus.CHARGING:
        return  # it ended meanwhile: the order says the rest
    await ctx.bot.send_message(
        message.chat_id,
        charging_views.started_text(ctx.t, current, charger, listing, ctx.settings.zone),
        reply_markup=charging_views.running_buttons(ctx.t, current.id),
    )


async def _session_start_failed(ctx: Context, message: OutboxMessage) -> None:
    _current, _charger, listing = await _charging(ctx, message)
    await ctx.bot.send_message(
        message.chat_id, ctx.t("charge.start_failed", shop=listing.shop_name or "")
    )


async def _order(ctx: Context, message: OutboxMessage) -> None:
    order = await charging.get_order(ctx.session, message.payload["order_id"])
    charger = await ctx.session.get(Charger, order.charger_id)
    assert charger is not None
    listing = await ctx.session.get(Listing, charger.listing_id)
    assert listing is not None
    audience = message.payload.get("audience", "user")
    await ctx.bot.send_message(
        message.chat_id,
        charging_views.order_text(
            ctx.t, order, charger, listing, ctx.settings.zone, parties=audience == "platform"
        ),
    )


RENDERERS: dict[str, Renderer] = {
    "session_started": _session_started,
    "session_warning": _session_warning,
    "session_start_failed": _session_start_failed,
    "session_running": _session_running,
    "order": _order,
    "booking_no_show": _simple("charge.no_show_merchant"),
    "booking_no_show_user": _simple("charge.no_show_user", find_again),
    "qr_labels": _qr_labels,
    "booking_request": _booking_request,
    "booking_accepted": _booking_accepted,
    "booking_rejected": _booking_rejected,
    "booking_expired": _simple("booking.expired_user", find_again),
    "booking_expired_merchant": _simple("booking.expired_merchant"),
    "booking_cancelled": _simple("booking.cancelled_merchant"),
    "review_card": _review_card,
    "review_card_refresh": _review_card_refresh,
    "listing_approved": _listing_approved,
    "listing_rejected": _listing_rejected,
}


async def render(
    bot: Bot, session: AsyncSession, settings: Settings, message: OutboxMessage
) -> None:
    renderer = RENDERERS.get(message.kind)
    if renderer is None:
        raise LookupError(f"no renderer for outbox kind {message.kind!r}")
    if message.chat_id < 0:  # a group: one language for everyone
        language = settings.group_language
    else:
        user = await session.get(User, message.chat_id)
        language = users.language_for(user, user.telegram_language if user else None)
    await renderer(Context(bot, session, settings, translator(language)), message)
