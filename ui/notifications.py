"""Rendering and delivering the outbox's messages (the bot's side of the port).

Messages are rendered when they are sent, from the current database state (read
through services, as plain values) and in the recipient's language, so a card
posted late still shows the truth. Each Bot API call goes through ``ctx.part``
under a key of its own (ui/parts.py), so a message of several calls is delivered
part by part, each part once.
"""

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message, ReplyParameters

from services import bookings, cards, charging, listings, payments, payouts, users, wallet
from services.cards import CardInfo, CardRole, Subject
from services.clock import utcnow
from services.dto import (
    BookingInfo,
    BookingStatus,
    ChargeInfo,
    ListingInfo,
    RefundStatus,
    RevisionInfo,
    RevisionStatus,
    SessionStatus,
)
from services.listings import PlugConflict
from services.outbox import Notification, OutboxKind
from services.tx import Db, read
from ui import keyboards
from ui.callbacks import FindAction, FindCb
from ui.config import Config
from ui.i18n import Html, Translator, translator
from ui.owed import replay
from ui.parts import Part, send_now
from ui.qr_labels import send_labels
from ui.views import cards as card_views
from ui.views import charging as charging_views
from ui.views.booking import booking_text, charger_title, money, reminder_buttons, window_text
from ui.views.booking import reason_text as booking_reason_text
from ui.views.charging import clock, start_button
from ui.views.listing import (
    fit,
    listing_text,
    plug_conflicts_text,
    reason_text,
    status_line,
    supply_text,
    when,
)
from ui.views.money import (
    billing_rule,
    invoice_parts,
    mark_paid_button,
    more_choices,
    payment_text,
    receipt_money,
)
from ui.views.wallet import refund_buttons, refund_card

log = logging.getLogger(__name__)

CAPTION_LIMIT = 1024


@dataclass
class Context:
    bot: Bot
    db: Db
    config: Config
    t: Translator
    part: Part


Renderer = Callable[[Context, Notification], Awaitable[None]]


def review_card_text(
    t: Translator,
    revision: RevisionInfo,
    config: Config,
    conflicts: Sequence[PlugConflict] = (),
    *,
    body: Html | None = None,
    changes: str = "",
) -> Html:
    """The review card; ``body``: in place of the listing's fields (a caption too
    short for them says they follow in a reply); ``changes``: what a resubmission
    changed and why the version before was rejected (``review_changes``)."""
    kind = "review.card_update" if revision.number > 1 else "review.card_new"
    return fit(
        t.html(
            "review.card",
            header=t.html(
                kind, id=revision.id, listing=revision.listing_id, number=revision.number
            ),
            merchant=str(revision.merchant_id),
            body=listing_text(t, revision.draft) if body is None else body,
            status=Html(
                status_line(t, revision, config.zone) + plug_conflicts_text(t, conflicts) + changes
            ),
        )
    )


async def review_changes(db: Db, t: Translator, revision: RevisionInfo) -> str:
    """A resubmitted version: what changed since the version before, and that one's
    rejection reason (the admin sees what to check again)."""
    previous = await listings.previous_version(db, revision)
    if previous is None:
        return ""
    names = []
    for field, n in listings.changed_fields(previous.data, revision.data):
        names.append(t(f"card.changed_{field}", n=n) if n else t(f"field.{field}"))
    lines = [
        t("card.changed", number=previous.number, fields=t("card.list_sep").join(names) or "—")
    ]
    if previous.status == RevisionStatus.REJECTED:
        lines.append(
            t(
                "card.rejected_before",
                number=previous.number,
                reason=reason_text(t, previous.reason),
            )
        )
    return "".join(f"\n{line}" for line in lines)


def review_fields_apart(
    t: Translator, revision: RevisionInfo, config: Config, changes: str = ""
) -> bool:
    """Whether the listing's fields go in a reply to the card, the caption's 1,024
    characters not sufficing. Decided on the version as it was submitted (pending, no
    plug warnings), with room kept for the decision line a refresh adds (a typed
    reason is up to 500): the same answer whenever the card is rendered."""
    pending = replace(revision, status=RevisionStatus.PENDING, decided_at=None)
    return len(review_card_text(t, pending, config, changes=changes)) + 650 > CAPTION_LIMIT


def review_caption(
    t: Translator,
    revision: RevisionInfo,
    config: Config,
    conflicts: Sequence[PlugConflict],
    changes: str = "",
) -> Html:
    """The card's caption: every field, or the state and buttons with the fields in a
    reply (``review_fields_apart``)."""
    if review_fields_apart(t, revision, config, changes):
        more = t.html("card.review_fields_below", shop=revision.shop_name)
        return fit(
            review_card_text(t, revision, config, conflicts, body=more, changes=changes),
            CAPTION_LIMIT,
        )
    return fit(review_card_text(t, revision, config, conflicts, changes=changes), CAPTION_LIMIT)


def review_markup(t: Translator, revision: RevisionInfo) -> InlineKeyboardMarkup | None:
    return keyboards.review(t, revision.id) if revision.status == RevisionStatus.PENDING else None


async def send_review_card(
    bot: Bot,
    db: Db,
    config: Config,
    t: Translator,
    revision_id: int,
    chat_id: int,
    part: Part = send_now,
) -> None:
    """Post the card: one card, the photo with its caption (every field, or the state
    and buttons with the fields in a reply when 1,024 characters do not suffice).

    The card is recorded with the part that posts it; the reply names it, so a
    retry after the photo alone went out posts the reply once, under it.
    """
    revision = await listings.get_revision(db, revision_id)
    conflicts = await listings.revision_plug_conflicts(db, revision)
    changes = await review_changes(db, t, revision)
    caption = review_caption(t, revision, config, conflicts, changes)
    markup = review_markup(t, revision)
    photo = str(revision.data["photo_file_id"])  # a version under review has one
    posted: list[int] = []

    async def post_card() -> None:
        sent = await bot.send_photo(chat_id, photo, caption=caption, reply_markup=markup)
        posted.append(sent.message_id)
        await listings.record_card(db, revision_id, chat_id, sent.message_id, True)
        # every copy (/pending posts it again) is a card a decision must update
        await cards.record(
            db,
            CardRole.REVIEW,
            revision_id,
            chat_id,
            sent.message_id,
            shown=revision.status.value,
            is_photo=True,
        )

    async def post_fields() -> None:
        card_id = (
            posted[0] if posted else (await listings.get_revision(db, revision_id)).card_message_id
        )
        fields = fit(listing_text(t, revision.draft))
        await bot.send_message(
            chat_id,
            fields,
            reply_parameters=ReplyParameters(
                message_id=card_id or 0, allow_sending_without_reply=True
            ),
        )

    await part("card", post_card)
    if review_fields_apart(t, revision, config, changes):
        await part("fields", post_fields)


async def _review_card(ctx: Context, message: Notification) -> None:
    await send_review_card(
        ctx.bot,
        ctx.db,
        ctx.config,
        ctx.t,
        message.payload["revision_id"],
        message.chat_id,
        ctx.part,
    )


async def _review_card_refresh(ctx: Context, message: Notification) -> None:
    revision = await listings.get_revision(ctx.db, message.payload["revision_id"])
    chat_id, message_id = revision.card_chat_id, revision.card_message_id
    if message_id is None or chat_id is None:
        return  # the card itself is not out yet; it will be rendered current
    conflicts = await listings.revision_plug_conflicts(ctx.db, revision)
    changes = await review_changes(ctx.db, ctx.t, revision)
    markup = review_markup(ctx.t, revision)
    caption = review_caption(ctx.t, revision, ctx.config, conflicts, changes)
    text = review_card_text(ctx.t, revision, ctx.config, conflicts, changes=changes)
    # the copies /pending posted say the same (the latest is also the revision's own)
    for card in await cards.in_chat(ctx.db, Subject.REVISION, revision.id, message.chat_id):
        if card.message_id != message_id:
            await edit_card(ctx, card, caption if card.is_photo else text, markup)

    async def edit() -> None:
        # "message is not modified" is success (bot/request_middlewares.py)
        if revision.card_is_photo:
            await ctx.bot.edit_message_caption(
                chat_id=chat_id, message_id=message_id, caption=caption, reply_markup=markup
            )
        else:  # a card posted as a text (before the card was one photo)
            await ctx.bot.edit_message_text(
                text, chat_id=chat_id, message_id=message_id, reply_markup=markup
            )

    await ctx.part("edit", edit)


async def _listing_approved(ctx: Context, message: Notification) -> None:
    revision = await listings.get_revision(ctx.db, message.payload["revision_id"])
    text = ctx.t("merchant.approved", shop=revision.shop_name, id=revision.listing_id)
    await ctx.part("text", lambda: ctx.bot.send_message(message.chat_id, text))


async def _listing_rejected(ctx: Context, message: Notification) -> None:
    revision = await listings.get_revision(ctx.db, message.payload["revision_id"])
    text = ctx.t(
        "merchant.rejected",
        shop=revision.shop_name,
        id=revision.listing_id,
        reason=reason_text(ctx.t, revision.reason),
    )
    markup = keyboards.edit_rejected(ctx.t, revision.listing_id)
    await ctx.part("text", lambda: ctx.bot.send_message(message.chat_id, text, reply_markup=markup))


async def _booking(ctx: Context, message: Notification) -> tuple[BookingInfo, Html]:
    booking = await bookings.info(ctx.db, message.payload["booking_id"])
    return booking, booking_text(ctx.t, booking, ctx.config.zone)


async def _booking_request(ctx: Context, message: Notification) -> None:
    booking = await bookings.info(ctx.db, message.payload["booking_id"])
    user = await users.profile(ctx.db, booking.user_id)
    # a request delivered late (cancelled or expired meanwhile) says so, with no buttons
    request, markup = card_views.request_card(
        ctx.t, booking, user.first_name if user else "", ctx.config.zone, utcnow()
    )

    await _post_booking_card(
        ctx, message.chat_id, booking, CardRole.BOOKING_REQUEST, request, markup
    )


async def _post_booking_card(
    ctx: Context,
    chat_id: int,
    booking: BookingInfo,
    role: CardRole,
    text: str,
    markup: InlineKeyboardMarkup | None,
) -> None:
    """Send a message that shows a booking's state and record it as the booking's card
    in that chat, so the booking's next change edits it (one part: sent once)."""

    async def post() -> None:
        sent = await ctx.bot.send_message(chat_id, text, reply_markup=markup)
        await cards.record(
            ctx.db, role, booking.id, chat_id, sent.message_id, shown=booking.status.value
        )

    await ctx.part("text", post)


async def send_place(bot: Bot, chat_id: int, listing: ListingInfo) -> Message:
    """The shop on a map: a venue, or a plain location when it has no address
    (Telegram refuses a venue without a title or an address)."""
    latitude, longitude = listing.latitude, listing.longitude
    assert latitude is not None and longitude is not None
    title, address = listing.shop_name.strip(), (listing.address or "").strip()
    if title and address:
        return await bot.send_venue(chat_id, latitude, longitude, title=title, address=address)
    return await bot.send_location(chat_id, latitude, longitude)


async def _booking_accepted(ctx: Context, message: Notification) -> None:
    """The decision first, then where to go: each part on its own, so a place
    Telegram refuses cannot hold back the text, nor a retry repeat the place."""
    booking, text = await _booking(ctx, message)
    charger = booking.charger
    listing = await listings.listing_info(ctx.db, charger.listing_id)
    accepted = ctx.t(
        "booking.accepted_user",
        body=text,
        supply=supply_text(ctx.t, charger.supply_kind, charger.supply_model, charger.power_kw),
    )
    # a walk-up is for now: its rider gets Start with the answer (issue #15)
    markup = start_button(ctx.t, booking.id) if booking.walkup else None

    await _post_booking_card(ctx, message.chat_id, booking, CardRole.BOOKING, accepted, markup)
    await ctx.part("place", partial(send_place, ctx.bot, message.chat_id, listing))


async def _booking_rejected(ctx: Context, message: Notification) -> None:
    booking, text = await _booking(ctx, message)
    rejected = ctx.t(
        "booking.rejected_user", body=text, reason=booking_reason_text(ctx.t, booking.reason)
    )
    markup = find_again(ctx.t)
    await ctx.part(
        "text", lambda: ctx.bot.send_message(message.chat_id, rejected, reply_markup=markup)
    )


def _simple(
    key: str, markup: Callable[[Translator], InlineKeyboardMarkup] | None = None
) -> Renderer:
    async def render_simple(ctx: Context, message: Notification) -> None:
        _booking_info, text = await _booking(ctx, message)
        body, buttons = ctx.t(key, body=text), markup(ctx.t) if markup else None
        await ctx.part(
            "text", lambda: ctx.bot.send_message(message.chat_id, body, reply_markup=buttons)
        )

    return render_simple


def find_again(t: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=t("btn.find_again"), callback_data=FindCb(action=FindAction.RESTART).pack()
                )
            ]
        ]
    )


async def _qr_labels(ctx: Context, message: Notification) -> None:
    """The printable labels of a listing's public chargers, after an approval."""
    await send_labels(
        ctx.bot,
        ctx.db,
        message.chat_id,
        ctx.t,
        message.payload["listing_id"],
        message.chat_id,
        ctx.part,
    )


async def _charge(ctx: Context, message: Notification) -> ChargeInfo:
    return await charging.charge_info(ctx.db, message.payload["session_id"])


async def _session_started(ctx: Context, message: Notification) -> None:
    charge = await _charge(ctx, message)
    assert charge.started_at is not None
    user = await users.profile(ctx.db, charge.user_id)
    zone, now = ctx.config.zone, charge.started_at
    text = ctx.t(
        "charge.merchant_started",
        booking=charge.booking.id,
        shop=charge.booking.shop_name,
        charger=charger_title(ctx.t, charge.booking.charger),
        name=user.first_name if user else str(charge.user_id),
        start=clock(charge.started_at, zone, now),
        end=clock(charge.booking.end_at, zone, now),
    )
    # a late delivery (the session ended meanwhile) has no button to press
    markup = (
        charging_views.merchant_buttons(ctx.t, charge.id)
        if charge.status == SessionStatus.CHARGING
        else None
    )
    card = _charge_card(ctx, CardRole.CHARGE_MERCHANT, charge, text, markup, message.chat_id)
    await ctx.part("text", card)


def _charge_card(
    ctx: Context,
    role: CardRole,
    charge: ChargeInfo,
    text: str,
    markup: InlineKeyboardMarkup | None,
    chat_id: int,
) -> Callable[[], Awaitable[None]]:
    """Send a card of a charging session and record it, so it follows the session."""

    async def post() -> None:
        sent = await ctx.bot.send_message(chat_id, text, reply_markup=markup)
        await cards.record(
            ctx.db, role, charge.id, chat_id, sent.message_id, shown=charge.status.value
        )

    return post


async def _session_warning(ctx: Context, message: Notification) -> None:
    charge = await _charge(ctx, message)
    if charge.status != SessionStatus.CHARGING:
        return  # stopped before the warning went out: nothing to warn about
    end = clock(charge.booking.end_at, ctx.config.zone, charge.booking.end_at)
    text = ctx.t("charge.warning", end=end)
    markup = charging_views.running_buttons(ctx.t, charge.id)
    card = _charge_card(ctx, CardRole.CHARGE_WARNING, charge, text, markup, message.chat_id)
    await ctx.part("text", card)


async def _session_running(ctx: Context, message: Notification) -> None:
    """A start that recovery found confirmed by the plug: the user learns it runs."""
    charge = await _charge(ctx, message)
    if charge.status != SessionStatus.CHARGING:
        return  # it ended meanwhile: the order says the rest
    text = charging_views.started_text(ctx.t, charge, ctx.config.zone)
    markup = charging_views.running_buttons(ctx.t, charge.id)
    card = _charge_card(ctx, CardRole.CHARGE, charge, text, markup, message.chat_id)
    await ctx.part("text", card)


async def _session_start_failed(ctx: Context, message: Notification) -> None:
    charge = await _charge(ctx, message)
    text = ctx.t("charge.start_failed", shop=charge.booking.shop_name)
    await ctx.part("text", lambda: ctx.bot.send_message(message.chat_id, text))


async def _order(ctx: Context, message: Notification) -> None:
    order = await charging.order_info(ctx.db, message.payload["order_id"])
    audience = message.payload.get("audience", "user")
    text = charging_views.order_text(
        ctx.t, order, ctx.config.zone, parties=audience == "platform", audience=audience
    )
    # the receipt's money: the billing rule, the prepayment, the shares, the state
    text += "\n" + billing_rule(ctx.t, order.price_unit)
    text += "\n" + receipt_money(ctx.t, order, audience)
    markup = mark_paid_button(ctx.t, order) if audience == "merchant" else None
    await ctx.part("text", lambda: ctx.bot.send_message(message.chat_id, text, reply_markup=markup))


async def _order_paid_at_shop(ctx: Context, message: Notification) -> None:
    order = await charging.order_info(ctx.db, message.payload["order_id"])
    cost = money(ctx.t, order.cost_minor, order.currency)
    text = ctx.t("pay.paid_at_shop_user", id=order.id, cost=cost)
    await ctx.part("text", lambda: ctx.bot.send_message(message.chat_id, text))


# -- money (#14) -------------------------------------------------------------------------


async def _invoice(ctx: Context, message: Notification) -> None:
    """The invoice (sendInvoice), and for a booking's top-up the larger choices."""
    invoice_id = message.payload["invoice_id"]
    card = await payments.invoice_card(ctx.db, invoice_id)
    if card is None:
        return  # paid, replaced or expired before it went out: nothing to pay
    token = ctx.config.provider_token
    if token is None:  # invoices exist only in prepaid mode; the setting was removed since
        log.warning("invoice %s not sent: PAYMENT_PROVIDER_TOKEN is unset", invoice_id)
        return
    booking = None
    window = None
    if card.invoice.booking_id is not None:
        booking = await bookings.info(ctx.db, card.invoice.booking_id)
        window = window_text(booking.start_at, booking.end_at, ctx.config.zone)
    title, description, prices = invoice_parts(ctx.t, card, booking, window)
    chat_id = message.chat_id

    async def send() -> None:
        sent = await ctx.bot.send_invoice(
            chat_id,
            title=title,
            description=description,
            payload=card.invoice.payload,
            provider_token=token,
            currency=card.invoice.currency,
            prices=prices,
        )
        await payments.record_invoice_message(
            ctx.db, invoice_id=invoice_id, chat_id=chat_id, message_id=sent.message_id
        )

    await ctx.part("invoice", send)
    markup = more_choices(ctx.t, card)
    if markup is not None:
        text = ctx.t("pay.more_choices")
        await ctx.part("choices", lambda: ctx.bot.send_message(chat_id, text, reply_markup=markup))


async def _payment_received(ctx: Context, message: Notification) -> None:
    outcome = await payments.payment_outcome(ctx.db, message.payload["payment_id"])
    text = payment_text(ctx.t, outcome)
    await ctx.part("text", lambda: ctx.bot.send_message(message.chat_id, text))


async def _refund_requested(ctx: Context, message: Notification) -> None:
    """The request's card in the moderation group, with the provider charge ids to
    refund and Mark refunded / Decline (rendered as it is now: a late card of a
    request decided meanwhile has no buttons)."""
    refund_id = message.payload["refund_id"]
    refund = await wallet.refund_view(ctx.db, refund_id)
    profile = await users.profile(ctx.db, refund.user_id)
    text = refund_card(ctx.t, refund, profile.first_name if profile else "", ctx.config.zone)
    markup = refund_buttons(ctx.t, refund)

    async def post() -> None:
        sent = await ctx.bot.send_message(message.chat_id, text, reply_markup=markup)
        await wallet.record_refund_card(
            ctx.db, refund_id=refund_id, chat_id=message.chat_id, message_id=sent.message_id
        )

    await ctx.part("card", post)


async def _refund_decided(ctx: Context, message: Notification) -> None:
    refund = await wallet.refund_view(ctx.db, message.payload["refund_id"], payments=0)
    amount = money(ctx.t, refund.amount_minor, refund.currency)
    if refund.status == RefundStatus.DONE:
        text = ctx.t(
            "wallet.refund_done_user", id=refund.id, amount=amount, reference=refund.reference
        )
    else:
        text = ctx.t(
            "wallet.refund_declined_user", id=refund.id, amount=amount, reason=refund.reason
        )
    await ctx.part("text", lambda: ctx.bot.send_message(message.chat_id, text))


async def _payout_recorded(ctx: Context, message: Notification) -> None:
    payout = await payouts.payout_view(ctx.db, message.payload["payout_id"])
    code = payout.currency
    text = ctx.t(
        "payout.merchant_told",
        amount=money(ctx.t, payout.amount_minor, code),
        reference=payout.reference,
        owed=money(ctx.t, payout.payable_minor, code),
    )
    await ctx.part("text", lambda: ctx.bot.send_message(message.chat_id, text))


# Telegram's words for a message that cannot be edited any more: deleted, or too
# old (48 hours); the card is then sent again as a new message
_GONE = ("message to edit not found", "message can't be edited", "message_id_invalid")


async def edit_card(
    ctx: Context, card: CardInfo, text: str, markup: InlineKeyboardMarkup | None
) -> None:
    """Edit one card to ``text`` (a part of its own: once, paced). "Message is not
    modified" is success (bot/request_middlewares.py); a message that cannot be
    edited any more gets a new one, which becomes the card."""

    async def edit() -> None:
        try:
            if card.is_photo:
                await ctx.bot.edit_message_caption(
                    chat_id=card.chat_id,
                    message_id=card.message_id,
                    caption=text,
                    reply_markup=markup,
                )
            else:
                await ctx.bot.edit_message_text(
                    text, chat_id=card.chat_id, message_id=card.message_id, reply_markup=markup
                )
        except TelegramBadRequest as error:
            if not any(words in error.message.lower() for words in _GONE):
                raise
            sent = await ctx.bot.send_message(card.chat_id, text[:4096], reply_markup=markup)
            await cards.moved(ctx.db, card.id, sent.message_id)

    await ctx.part(f"card:{card.id}", edit)


async def card_now(
    ctx: Context, card: CardInfo, live: dict[str, Any] | None = None
) -> tuple[str, InlineKeyboardMarkup | None]:
    """What a card says now, and its buttons (``live``: the plug's reading a running
    session's periodic refresh carries)."""
    zone, now = ctx.config.zone, utcnow()
    match card.role:
        case CardRole.BOOKING_REQUEST | CardRole.BOOKING:
            booking = await bookings.info(ctx.db, card.subject_id)
            if card.role == CardRole.BOOKING:
                return card_views.booking_card(ctx.t, booking, card.chat_id, zone, now)
            user = await users.profile(ctx.db, booking.user_id)
            name = user.first_name if user else ""
            return card_views.request_card(ctx.t, booking, name, zone, now)
        case CardRole.CHARGE_WARNING:
            # the warning keeps its words; once the session is over, how it ended
            charge = await charging.charge_info(ctx.db, card.subject_id)
            end = charge.booking.end_at
            warning = ctx.t("charge.warning", end=clock(end, zone, end))
            if charge.status == SessionStatus.CHARGING:
                return warning, charging_views.running_buttons(ctx.t, charge.id)
            if charge.status == SessionStatus.STOPPING:
                return warning + "\n\n" + ctx.t("charge.stopping"), None
            order = await charging.order_for_session(ctx.db, card.subject_id)
            return warning + "\n\n" + card_views.finished_line(ctx.t, order), None
        case CardRole.CHARGE | CardRole.CHARGE_MERCHANT:
            live = live or {}
            status = await charging.stored_status(
                ctx.db, card.subject_id, now, kwh=live.get("kwh"), power_w=live.get("power_w")
            )
            order = (
                await charging.order_for_session(ctx.db, card.subject_id)
                if status.charge.status == SessionStatus.COMPLETED
                else None
            )
            merchant = card.role == CardRole.CHARGE_MERCHANT
            name = ""
            if merchant:
                user = await users.profile(ctx.db, status.charge.user_id)
                name = user.first_name if user else ""
            return card_views.charge_card(
                ctx.t, status, order, zone, now, merchant=merchant, name=name
            )
    revision = await listings.get_revision(ctx.db, card.subject_id)
    conflicts = await listings.revision_plug_conflicts(ctx.db, revision)
    changes = await review_changes(ctx.db, ctx.t, revision)
    if card.is_photo:
        text = review_caption(ctx.t, revision, ctx.config, conflicts, changes)
    else:
        text = review_card_text(ctx.t, revision, ctx.config, conflicts, changes=changes)
    return text, review_markup(ctx.t, revision)


async def _card_refresh(ctx: Context, message: Notification) -> None:
    """The cards of a subject in this chat, edited to its state now."""
    subject = Subject(message.payload["subject"])
    for card in await cards.in_chat(
        ctx.db, subject, message.payload["subject_id"], message.chat_id
    ):
        text, markup = await card_now(ctx, card, message.payload.get("live"))
        await edit_card(ctx, card, text, markup)


async def _booking_nudge(ctx: Context, message: Notification) -> None:
    """The merchant, before a request expires: the request again, with its buttons."""
    booking = await bookings.info(ctx.db, message.payload["booking_id"])
    if not bookings.decidable(booking):
        return  # answered (or expired) meanwhile: nothing to nudge about
    user = await users.profile(ctx.db, booking.user_id)
    name = user.first_name if user else ""
    card, markup = card_views.request_card(ctx.t, booking, name, ctx.config.zone, utcnow())
    text = ctx.t("card.nudge", until=when(booking.respond_by, ctx.config.zone), card=Html(card))

    await _post_booking_card(ctx, message.chat_id, booking, CardRole.BOOKING_REQUEST, text, markup)


async def _booking_reminder(ctx: Context, message: Notification) -> None:
    """The rider, 30 minutes before the window and at its start."""
    booking = await bookings.info(ctx.db, message.payload["booking_id"])
    if booking.status != BookingStatus.ACCEPTED:
        return  # cancelled, or charging already: no reminder
    now, zone = utcnow(), ctx.config.zone
    key = (
        "card.reminder_start" if message.payload.get("stage") == "start" else "card.reminder_before"
    )
    body = booking_text(ctx.t, booking, zone)
    text = ctx.t(key, start=clock(booking.start_at, zone, now), body=body)
    markup = reminder_buttons(ctx.t, booking, now)

    # a card of the booking: no live buttons once it is over
    await _post_booking_card(ctx, message.chat_id, booking, CardRole.BOOKING, text, markup)


async def _booking_on_the_way(ctx: Context, message: Notification) -> None:
    booking = await bookings.info(ctx.db, message.payload["booking_id"])
    user = await users.profile(ctx.db, booking.user_id)
    text = ctx.t(
        "card.on_the_way",
        name=user.first_name if user else str(booking.user_id),
        id=booking.id,
        window=window_text(booking.start_at, booking.end_at, ctx.config.zone),
    )
    await ctx.part("text", lambda: ctx.bot.send_message(message.chat_id, text))


async def _owed_call(ctx: Context, message: Notification) -> None:
    await replay(ctx.bot, message)  # a reply Telegram refused at the time (ui/owed.py)


RENDERERS: dict[OutboxKind, Renderer] = {
    OutboxKind.OWED_CALL: _owed_call,
    OutboxKind.CARD_REFRESH: _card_refresh,
    OutboxKind.BOOKING_NUDGE: _booking_nudge,
    OutboxKind.BOOKING_REMINDER: _booking_reminder,
    OutboxKind.BOOKING_ON_THE_WAY: _booking_on_the_way,
    OutboxKind.SESSION_STARTED: _session_started,
    OutboxKind.SESSION_WARNING: _session_warning,
    OutboxKind.SESSION_START_FAILED: _session_start_failed,
    OutboxKind.SESSION_RUNNING: _session_running,
    OutboxKind.ORDER: _order,
    OutboxKind.BOOKING_NO_SHOW: _simple("charge.no_show_merchant"),
    OutboxKind.BOOKING_NO_SHOW_USER: _simple("charge.no_show_user", find_again),
    OutboxKind.QR_LABELS: _qr_labels,
    OutboxKind.BOOKING_REQUEST: _booking_request,
    OutboxKind.BOOKING_ACCEPTED: _booking_accepted,
    OutboxKind.BOOKING_REJECTED: _booking_rejected,
    OutboxKind.BOOKING_EXPIRED: _simple("booking.expired_user", find_again),
    OutboxKind.BOOKING_EXPIRED_MERCHANT: _simple("booking.expired_merchant"),
    OutboxKind.BOOKING_CANCELLED: _simple("booking.cancelled_merchant"),
    OutboxKind.REVIEW_CARD: _review_card,
    OutboxKind.REVIEW_CARD_REFRESH: _review_card_refresh,
    OutboxKind.LISTING_APPROVED: _listing_approved,
    OutboxKind.LISTING_REJECTED: _listing_rejected,
    # money (#14)
    OutboxKind.INVOICE: _invoice,
    OutboxKind.PAYMENT_RECEIVED: _payment_received,
    OutboxKind.BOOKING_PAYMENT_EXPIRED: _simple("pay.expired", find_again),
    OutboxKind.ORDER_PAID_AT_SHOP: _order_paid_at_shop,
    OutboxKind.REFUND_REQUESTED: _refund_requested,
    OutboxKind.REFUND_DONE: _refund_decided,
    OutboxKind.REFUND_DECLINED: _refund_decided,
    OutboxKind.PAYOUT_RECORDED: _payout_recorded,
}


async def render(
    bot: Bot, db: Db, config: Config, message: Notification, part: Part = send_now
) -> None:
    renderer = RENDERERS[message.kind]
    # one read for what the message shows (each part's unit of work ends it first)
    async with read(db):
        if message.chat_id < 0:  # a group: one language for everyone
            language = config.group_language
        else:
            user = await users.profile(db, message.chat_id)
            language = users.language_for(user, user.telegram_language if user else None)
        await renderer(Context(bot, db, config, translator(language), part), message)
