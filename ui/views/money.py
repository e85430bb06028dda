"""Money as people read it: invoices, what a payment did, the booking waiting for it."""

from aiogram.types import InlineKeyboardMarkup, LabeledPrice
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.dto import BookingInfo, InvoicePurpose, OrderInfo, OrderPayment
from services.money import MoneyRules
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
from ui.callbacks import PaidAtShopCb, TopupCb
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
            estimate=money(t, checkout.estimate_minor, code),
            wallet=money(t, checkout.wallet_minor, code),
            minutes=answer_minutes,
        )
    key = "pay.awaiting_topup" if checkout.choices_minor else "pay.awaiting"
    return t(
        key,
        id=checkout.booking_id,
        estimate=money(t, checkout.estimate_minor, code),
        wallet=money(t, min(checkout.wallet_minor, checkout.estimate_minor), code),
        due=money(t, checkout.due_minor, code),
        least=money(t, currency_row(code).min_invoice_minor, code),
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
            text=money(t, amount, code),
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
        amount=money(t, outcome.amount_minor, outcome.currency),
        wallet=money(t, outcome.wallet_minor, outcome.currency),
        id=outcome.booking_id or "",
    )


# -- receipts ----------------------------------------------------------------------------


def billing_rule(t: Translator, unit: str) -> str:
    return t("pay.billing_kwh" if unit == "kwh" else "pay.billing_hour")


def receipt_money(t: Translator, order: OrderInfo, audience: str) -> str:
    """The order's money, as its reader may see it: the rider, the merchant (with the
    fee's share) or the platform."""
    code = order.currency
    cost, fee, share = (
        money(t, order.cost_minor, code),
        money(t, order.fee_minor, code),
        money(t, order.merchant_minor, code),
    )
    prepaid = order.payment == OrderPayment.PREPAID
    if audience == "platform":
        mode = {
            OrderPayment.PREPAID: "pay.mode_prepaid",
            OrderPayment.PAY_AT_SHOP: "pay.mode_at_shop",
            OrderPayment.PAID_AT_SHOP: "pay.mode_paid_at_shop",
        }[order.payment]
        settled = order.payment != OrderPayment.PAY_AT_SHOP
        return t(
            "pay.receipt_platform",
            mode=t(mode),
            prepaid=money(t, order.prepaid_minor, code),
            fee=fee,
            share=share,
            state=t("pay.state_settled" if settled else "pay.state_unpaid"),
        )
    if audience == "merchant":
        if prepaid:
            return t("pay.receipt_prepaid_merchant", fee=fee, share=share)
        if order.payment == OrderPayment.PAID_AT_SHOP:
            return t("pay.receipt_paid_at_shop_merchant", fee=fee, share=share)
        return t("pay.receipt_at_shop_merchant", cost=cost, fee=fee, share=share)
    if prepaid:
        held = order.prepaid_minor or 0
        back = held - order.cost_minor
        if back >= 0:
            return t(
                "pay.receipt_prepaid_user", prepaid=money(t, held, code), back=money(t, back, code)
            )
        return t("pay.receipt_over_user", prepaid=money(t, held, code), extra=money(t, -back, code))
    if order.payment == OrderPayment.PAID_AT_SHOP:
        return t("pay.receipt_paid_at_shop_user")
    return t("pay.receipt_at_shop_user", cost=cost)


def mark_paid_button(t: Translator, order: OrderInfo) -> InlineKeyboardMarkup | None:
    """For the merchant, while an order paid at the shop is not marked yet."""
    if order.payment != OrderPayment.PAY_AT_SHOP:
        return None
    builder = InlineKeyboardBuilder()
    builder.button(text=t("pay.mark_paid"), callback_data=PaidAtShopCb(order_id=order.id))
    return builder.as_markup()


def mode_line(t: Translator, rules: MoneyRules) -> str:
    """Which way money goes on this deployment (the booking's summary says it)."""
    return t("pay.summary_prepaid" if rules.prepaid else "pay.summary_at_shop")
