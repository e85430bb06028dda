"""Telegram Payments: the pre-checkout query (answered within Telegram's 10
seconds), the successful payment (credited once by its charge id: the service
sees to that; what it did reaches the payer through the outbox), and the top-up
choices. A refusal at pre-checkout is answered by handlers/errors.py with the
reason the payer reads in the payment form."""

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message, PreCheckoutQuery

from handlers.filters import Magic
from services import payments, settlement
from services.clock import utcnow
from services.tx import Db
from ui.callbacks import PaidAtShopCb, TopupCb
from ui.config import Config
from ui.i18n import Translator
from ui.views.booking import money


async def pre_checkout(query: PreCheckoutQuery, db: Db) -> None:
    # checked against the invoice row its payload points to, never the client's word
    await payments.pre_checkout(
        db,
        payload=query.invoice_payload,
        user_id=query.from_user.id,
        total_amount=query.total_amount,
        currency_code=query.currency,
        now=utcnow(),
    )
    await query.answer(ok=True)


async def successful_payment(message: Message, db: Db, config: Config) -> None:
    paid = message.successful_payment
    assert paid is not None and message.from_user is not None
    # a redelivered update (or one another instance saw) credits nothing more
    await payments.record_payment(
        db,
        user_id=message.from_user.id,
        payload=paid.invoice_payload,
        total_amount=paid.total_amount,
        currency_code=paid.currency,
        telegram_charge_id=paid.telegram_payment_charge_id,
        provider_charge_id=paid.provider_payment_charge_id,
        rules=config.money,
        now=utcnow(),
    )


async def topup_choice(
    query: CallbackQuery, callback_data: TopupCb, db: Db, t: Translator, config: Config
) -> None:
    invoice = await payments.topup(
        db,
        user_id=query.from_user.id,
        amount_minor=callback_data.amount,
        currency_code=callback_data.code,
        rules=config.money,
        now=utcnow(),
        booking_id=callback_data.booking_id or None,
    )
    amount = money(t, invoice.amount_minor, invoice.currency)
    await query.answer(t("pay.topup_alert", amount=amount))


async def mark_paid(
    query: CallbackQuery, callback_data: PaidAtShopCb, db: Db, t: Translator
) -> None:
    """The merchant's Mark paid on a receipt (pay-at-shop mode): the service checks
    it is their order and not marked yet (a second press changes nothing)."""
    await settlement.mark_paid_at_shop(
        db, order_id=callback_data.order_id, merchant_id=query.from_user.id, now=utcnow()
    )
    await query.answer(t("pay.marked_paid"))
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)


def build_router() -> Router:
    router = Router(name="payments")
    router.pre_checkout_query.register(pre_checkout)
    router.message.register(successful_payment, Magic(F.successful_payment))
    router.callback_query.register(topup_choice, TopupCb.filter())
    router.callback_query.register(mark_paid, PaidAtShopCb.filter())
    return router
