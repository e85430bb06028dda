"""Keyboards as functions of the texts they show."""

from collections.abc import Callable, Iterable, Sequence

from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bookings import REJECT_PRESETS as BOOKING_REJECT_PRESETS
from services.listings import REJECT_PRESETS
from ui.callbacks import (
    BookingAction,
    BookingCb,
    LanguageCb,
    ListingAction,
    ListingCb,
    QrLabelsCb,
    ReviewAction,
    ReviewCb,
    WizardAction,
    WizardCb,
)
from ui.i18n import Translator


def button(text: str, data: CallbackData) -> InlineKeyboardButton:
    """One inline button. The busiest views (/find's page, a card, a booking's and a
    charge's buttons) build their rows from these: InlineKeyboardBuilder deep-copies
    every button it holds at each add, a tenth of the location step's CPU for a page."""
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def reply(
    rows: Iterable[Sequence[str | KeyboardButton]], placeholder: str | None = None
) -> ReplyKeyboardMarkup:
    keyboard = [
        [b if isinstance(b, KeyboardButton) else KeyboardButton(text=b) for b in row]
        for row in rows
        if row
    ]
    return ReplyKeyboardMarkup(
        keyboard=keyboard, resize_keyboard=True, input_field_placeholder=placeholder
    )


def chunk(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def language_picker() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text="English", callback_data=LanguageCb(code="en"))
    builder.button(text="简体中文", callback_data=LanguageCb(code="zh"))
    return builder.as_markup()


def summary(t: Translator) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=t("btn.submit"), callback_data=WizardCb(action=WizardAction.SUBMIT))
    builder.button(text=t("btn.edit"), callback_data=WizardCb(action=WizardAction.EDIT))
    builder.button(text=t("btn.cancel"), callback_data=WizardCb(action=WizardAction.CANCEL))
    builder.adjust(1, 2)
    return builder.as_markup()


def edit_menu(t: Translator, field_keys: Sequence[str], chargers: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for index, key in enumerate(field_keys):
        builder.button(text=t(key), callback_data=WizardCb(action=WizardAction.FIELD, arg=index))
    sizes = [2] * ((len(field_keys) + 1) // 2)
    for i in range(chargers):
        builder.button(
            text=t("btn.edit_charger", n=i + 1),
            callback_data=WizardCb(action=WizardAction.CHARGER, arg=i),
        )
        if chargers > 1:
            builder.button(
                text=t("btn.remove_charger", n=i + 1),
                callback_data=WizardCb(action=WizardAction.REMOVE, arg=i),
            )
        sizes.append(2 if chargers > 1 else 1)
    builder.button(text=t("btn.add_charger"), callback_data=WizardCb(action=WizardAction.ADD))
    builder.button(text=t("btn.back_to_summary"), callback_data=WizardCb(action=WizardAction.BACK))
    builder.adjust(*sizes, 1, 1)
    return builder.as_markup()


def review(t: Translator, revision_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=t("btn.approve"),
                    callback_data=ReviewCb(
                        action=ReviewAction.APPROVE, revision_id=revision_id
                    ).pack(),
                ),
                InlineKeyboardButton(
                    text=t("btn.reject"),
                    callback_data=ReviewCb(
                        action=ReviewAction.REJECT, revision_id=revision_id
                    ).pack(),
                ),
            ]
        ]
    )


def _reason_menu(
    t: Translator, presets: Sequence[str], text_prefix: str, callback: Callable[..., CallbackData]
) -> InlineKeyboardMarkup:
    """Preset reasons, "other (type it)" and back, one per row: the rejection menu of
    both a listing review and a booking."""
    builder = InlineKeyboardBuilder()
    for code in presets:
        builder.button(text=t(f"{text_prefix}.{code}"), callback_data=callback("reason", code))
    builder.button(text=t("btn.other_reason"), callback_data=callback("other", ""))
    builder.button(text=t("btn.back"), callback_data=callback("back", ""))
    builder.adjust(1)
    return builder.as_markup()


def reject_reasons(t: Translator, revision_id: int) -> InlineKeyboardMarkup:
    return _reason_menu(
        t,
        REJECT_PRESETS,
        "reject",
        lambda action, code: ReviewCb(action=action, revision_id=revision_id, code=code),
    )


def booking_reject_reasons(t: Translator, booking_id: int) -> InlineKeyboardMarkup:
    return _reason_menu(
        t,
        BOOKING_REJECT_PRESETS,
        "booking_reject",
        lambda action, code: BookingCb(action=action, booking_id=booking_id, code=code),
    )


def show_cards(revision_ids: Sequence[int], t: Translator) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for revision_id in revision_ids:
        builder.button(
            text=t("btn.show_card", id=revision_id),
            callback_data=ReviewCb(action=ReviewAction.SHOW, revision_id=revision_id),
        )
    builder.adjust(3)
    return builder.as_markup()


def listing_list(t: Translator, items: Sequence[tuple[int, str]]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for listing_id, label in items:
        builder.button(
            text=label, callback_data=ListingCb(action=ListingAction.OPEN, listing_id=listing_id)
        )
    builder.adjust(1)
    return builder.as_markup()


def listing_actions(
    t: Translator, listing_id: int, *, published: bool, paused: bool
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=t("btn.edit"),
        callback_data=ListingCb(action=ListingAction.EDIT, listing_id=listing_id),
    )
    if published:
        builder.button(text=t("btn.qr_labels"), callback_data=QrLabelsCb(listing_id=listing_id))
        action = ListingAction.RESUME if paused else ListingAction.PAUSE
        builder.button(
            text=t(f"btn.{action}"), callback_data=ListingCb(action=action, listing_id=listing_id)
        )
    builder.button(text=t("btn.all_listings"), callback_data=ListingCb(action=ListingAction.LIST))
    builder.adjust(2)
    return builder.as_markup()


def edit_rejected(t: Translator, listing_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=t("btn.edit_resubmit"),
        callback_data=ListingCb(action=ListingAction.EDIT, listing_id=listing_id),
    )
    return builder.as_markup()


def resume_or_restart(t: Translator) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=t("btn.continue"), callback_data=WizardCb(action=WizardAction.RESUME))
    builder.button(text=t("btn.restart"), callback_data=WizardCb(action=WizardAction.RESTART))
    return builder.as_markup()


def booking_decision(t: Translator, booking_id: int) -> InlineKeyboardMarkup:
    # every booking request's card carries it: built directly (``button``)
    row = [
        button(t(label), BookingCb(action=action, booking_id=booking_id))
        for label, action in (
            ("btn.accept", BookingAction.ACCEPT),
            ("btn.reject", BookingAction.REJECT),
        )
    ]
    return InlineKeyboardMarkup(inline_keyboard=[row])
