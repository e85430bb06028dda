"""/wallet: the balance and its history (paged), Top up (quick choices, each an
invoice), and Ask for a refund (confirmed first; an admin refunds it in the
provider's dashboard: the Bot API cannot refund a payment)."""

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from handlers.filters import Magic
from services import wallet
from services.clock import utcnow
from services.money import currency as currency_row
from services.tx import Db
from ui.callbacks import WalletAction, WalletCb
from ui.config import Config
from ui.i18n import Html, Translator
from ui.views.booking import money
from ui.views.wallet import (
    PAGE,
    refund_confirm_buttons,
    topup_buttons,
    wallet_buttons,
    wallet_text,
)


async def _show(
    db: Db, user_id: int, config: Config, t: Translator, before: int | None
) -> tuple[Html, InlineKeyboardMarkup | None]:
    view = await wallet.wallet_of(
        db, user_id=user_id, currency_code=config.money.currency, limit=PAGE, before_id=before
    )
    paged = before is not None
    text = wallet_text(t, view, config.zone, config.money, paged=paged)
    return text, wallet_buttons(t, view, config.money, paged=paged)


async def my_wallet(message: Message, db: Db, t: Translator, config: Config) -> None:
    assert message.from_user is not None
    text, markup = await _show(db, message.from_user.id, config, t, None)
    await message.answer(text, reply_markup=markup)


async def history_page(
    query: CallbackQuery, callback_data: WalletCb, db: Db, t: Translator, config: Config
) -> None:
    before = callback_data.before or None
    text, markup = await _show(db, query.from_user.id, config, t, before)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(text, reply_markup=markup)


async def topup_menu(query: CallbackQuery, t: Translator, config: Config) -> None:
    code = config.money.currency
    least = money(t, currency_row(code).min_invoice_minor, code)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.answer(
            t("wallet.topup_ask", least=least), reply_markup=topup_buttons(t, code)
        )


async def refund_ask(query: CallbackQuery, db: Db, t: Translator, config: Config) -> None:
    view = await wallet.wallet_of(
        db, user_id=query.from_user.id, currency_code=config.money.currency, limit=1
    )
    if view.balance_minor <= 0:
        await query.answer(t("err.refund_nothing"), show_alert=True)
        return
    await query.answer()
    if isinstance(query.message, Message):
        amount = money(t, view.balance_minor, view.currency)
        await query.message.answer(
            t("wallet.refund_confirm", amount=amount), reply_markup=refund_confirm_buttons(t)
        )


async def refund_yes(query: CallbackQuery, db: Db, t: Translator, config: Config) -> None:
    # the whole balance at the moment of the press (not the one the prompt showed)
    refund = await wallet.request_refund(
        db,
        user_id=query.from_user.id,
        currency_code=config.money.currency,
        rules=config.money,
        now=utcnow(),
    )
    text = t(
        "wallet.refund_asked", id=refund.id, amount=money(t, refund.amount_minor, refund.currency)
    )
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(text)


async def refund_no(query: CallbackQuery, t: Translator) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(t("wallet.refund_kept"))


def build_router() -> Router:
    router = Router(name="wallet")
    router.message.filter(Magic(F.chat.type == "private"))
    router.callback_query.filter(Magic(F.message.chat.type == "private"))
    router.message.register(my_wallet, Command("wallet"))
    router.callback_query.register(history_page, WalletCb.filter(F.action == WalletAction.HISTORY))
    router.callback_query.register(topup_menu, WalletCb.filter(F.action == WalletAction.TOPUP))
    router.callback_query.register(refund_ask, WalletCb.filter(F.action == WalletAction.REFUND))
    router.callback_query.register(refund_yes, WalletCb.filter(F.action == WalletAction.REFUND_YES))
    router.callback_query.register(refund_no, WalletCb.filter(F.action == WalletAction.REFUND_NO))
    return router
