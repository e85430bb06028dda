"""Money as people read it: invoices, what a payment did, the booking waiting for it."""

from aiogram.types import InlineKeyboardMarkup, LabeledPrice
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.dto import BookingInfo, InvoicePurpose
from services.money import currency as currency_row
from services.payments import (
    BOOKING_GONE,
    BOOKING_PAID,
    MISMATCH,
    SHORT,
    TOPUP,
    Checkout,
    CheckoutState,
    InvoiceCard,
    PaymentOutcome,
)
from ui.callbacks import TopupCb
from ui.i18n import Translator
from ui.views.booking import charger_title, money

TITLE_LIMIT, DESCRIPTION_LIMIT = 32, 255  # Telegram's limits on an invoice


def checkout_text(
    t: Translator, checkout: Checkout, payment_minutes: int, answer_minutes: int
) -> str:
    """What the rider reads right after Confirm, in prepaid mode."""
    code = checkout.currency
    if checkout.state == CheckoutState.PAID:
        return t(
            "pay.paid_from_wallet",
            id=checkout.booking_id,
            estimate=money(checkout.estimate_minor, code),
            wallet=money(checkout.wallet_minor, code),
            minutes=answer_minutes,
        )
    key = "pay.awaiting_topup" if checkout.choices_minor else "pay.awaiting"
    return t(
        key,
        id=checkout.booking_id,
        estimate=money(checkout.estimate_minor, code),
        wallet=money(min(checkout.wallet_minor, checkout.estimate_minor), code),
        due=money(checkout.due_minor, code),
        least=money(currency_row(code).min_invoice_minor, code),
        minutes=payment_minutes,
    )


def invoice_parts(
    t: Translator, card: InvoiceCard, booking: BookingInfo | None, zone_window: str | None
) -> tuple[str, str, list[LabeledPrice]]:
    """Title, description and prices of the invoice (within Telegram's limits)."""
    invoice = card.invoice
    if invoice.purpose == InvoicePurpose.BOOKING and booking is not None:
        title = t("pay.title_booking", id=booking.id)
        description = t(
            "pay.desc_booking",
            shop=booking.shop_name,
            charger=charger_title(t, booking.charger),
            window=zone_window or "",
        )
        label = t("pay.label_booking")
    else:
        title = t("pay.title_topup")
        if booking is not None:
            description = t(
                "pay.desc_topup_booking", id=booking.id, shop=booking.shop_name, window=zone_window
            )
        elif invoice.order_id is not None:
            description = t("pay.desc_shortfall")
        else:
            description = t("pay.desc_topup")
        label = t("pay.label_topup")
    return (
        title[:TITLE_LIMIT],
        description[:DESCRIPTION_LIMIT],
        [LabeledPrice(label=label, amount=invoice.amount_minor)],
    )


def more_choices(t: Translator, card: InvoiceCard) -> InlineKeyboardMarkup | None:
    """Larger top-ups than the invoice's, one button each."""
    if not card.choices_minor:
        return None
    code, booking_id = card.invoice.currency, card.invoice.booking_id or 0
    builder = InlineKeyboardBuilder()
    for amount in card.choices_minor:
        builder.button(
            text=money(amount, code),
            callback_data=TopupCb(amount=amount, code=code, booking_id=booking_id),
        )
    builder.adjust(3)
    return builder.as_markup()


OUTCOME_KEYS = {
    BOOKING_PAID: "pay.received_booking_paid",
    SHORT: "pay.received_short",
    BOOKING_GONE: "pay.received_booking_gone",
    TOPUP: "pay.received_topup",
    MISMATCH: "pay.received_mismatch",
}


def payment_text(t: Translator, outcome: PaymentOutcome) -> str:
    key = OUTCOME_KEYS.get(outcome.outcome, "pay.received_unknown")
    return t(
        key,
        amount=money(outcome.amount_minor, outcome.currency),
        wallet=money(outcome.wallet_minor, outcome.currency),
        id=outcome.booking_id or "",
    )
