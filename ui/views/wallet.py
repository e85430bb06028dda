"""/wallet, the refund card in the moderation group, and the payout confirmation."""

from datetime import datetime
from zoneinfo import ZoneInfo

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.ledger import Line
from services.money import MoneyRules, topup_choices
from services.wallet import RefundView, WalletView
from ui.callbacks import (
    PayoutAction,
    PayoutCb,
    RefundAction,
    RefundCb,
    TopupCb,
    WalletAction,
    WalletCb,
)
from ui.i18n import Html, Translator
from ui.views.booking import money
from ui.views.earnings import amounts
from ui.views.listing import fit

PAGE = 10  # history lines per page


def _day(moment: datetime, zone: ZoneInfo) -> str:
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M}"


def line_text(t: Translator, line: Line, code: str, zone: ZoneInfo) -> str:
    key = f"wallet.kind_{line.kind}"
    try:
        what = t(key, booking=line.booking_id or "", order=line.order_id or "")
    except KeyError:  # a kind this screen has no words for
        what = t("wallet.kind_other", kind=line.kind)
    sign = "+" if line.amount_minor > 0 else ""
    return t(
        "wallet.line",
        when=_day(line.created_at, zone),
        amount=sign + money(t, line.amount_minor, code),
        what=what,
    )


def wallet_text(
    t: Translator, wallet: WalletView, zone: ZoneInfo, rules: MoneyRules, *, paged: bool
) -> Html:
    code = wallet.currency
    lines = [t("wallet.title", balance=money(t, wallet.balance_minor, code))]
    others = {c: v for c, v in wallet.balances.items() if c != code and v}
    if others:
        lines.append(t("wallet.other", amounts=amounts(t, others, code)))
    if wallet.open_refund is not None:
        refund = wallet.open_refund
        lines.append(
            t("wallet.refund_pending", amount=money(t, refund.amount_minor, code), id=refund.id)
        )
    if not rules.prepaid:
        lines.append(t("wallet.at_shop"))
    lines.append("")
    if wallet.history:
        lines.append(t("wallet.history", page=" ▸" if paged else ""))
        lines += [line_text(t, line, code, zone) for line in wallet.history]
    else:
        lines.append(t("wallet.history_none"))
    return fit("\n".join(lines))


def wallet_buttons(
    t: Translator, wallet: WalletView, rules: MoneyRules, *, paged: bool
) -> InlineKeyboardMarkup | None:
    builder = InlineKeyboardBuilder()
    sizes = []
    if rules.prepaid:
        builder.button(
            text=t("wallet.btn_topup"), callback_data=WalletCb(action=WalletAction.TOPUP)
        )
        sizes.append(1)
    if wallet.balance_minor > 0 and wallet.open_refund is None:
        builder.button(
            text=t("wallet.btn_refund"), callback_data=WalletCb(action=WalletAction.REFUND)
        )
        sizes.append(1)
    nav = 0
    if paged:
        builder.button(
            text=t("wallet.btn_newest"), callback_data=WalletCb(action=WalletAction.HISTORY)
        )
        nav += 1
    if len(wallet.history) >= PAGE:
        builder.button(
            text=t("wallet.btn_older"),
            callback_data=WalletCb(
                action=WalletAction.HISTORY, before=wallet.history[-1].transaction_id
            ),
        )
        nav += 1
    if nav:
        sizes.append(nav)
    builder.adjust(*sizes)
    return builder.as_markup() if sizes else None


def topup_buttons(t: Translator, code: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for amount in topup_choices(0, code):
        builder.button(text=money(t, amount, code), callback_data=TopupCb(amount=amount, code=code))
    builder.adjust(4)
    return builder.as_markup()


def refund_confirm_buttons(t: Translator) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=t("wallet.btn_refund_yes"), callback_data=WalletCb(action=WalletAction.REFUND_YES)
    )
    builder.button(
        text=t("wallet.btn_refund_no"), callback_data=WalletCb(action=WalletAction.REFUND_NO)
    )
    return builder.as_markup()


# -- the moderation group ----------------------------------------------------------------


def refund_card(t: Translator, refund: RefundView, name: str, zone: ZoneInfo) -> Html:
    code = refund.currency
    payments = "\n".join(
        t(
            "refund.payment_line",
            when=_day(p.received_at, zone),
            amount=money(t, p.amount_minor, p.currency),
            telegram=p.telegram_charge_id,
            provider=p.provider_charge_id or "—",
        )
        for p in refund.payments
    ) or t("refund.no_payments")
    when = _day(refund.decided_at, zone) if refund.decided_at else ""
    admin = str(refund.decided_by or "")
    status = {
        "requested": lambda: t("refund.status_requested"),
        "done": lambda: t(
            "refund.status_done", admin=admin, when=when, reference=refund.reference or "—"
        ),
        "declined": lambda: t(
            "refund.status_declined", admin=admin, when=when, reason=refund.reason or "—"
        ),
    }[refund.status.value]()
    return fit(
        t.html(
            "refund.card",
            id=refund.id,
            user=str(refund.user_id),
            name=name,
            amount=money(t, refund.amount_minor, code),
            when=_day(refund.requested_at, zone),
            payments=Html(payments),
            status=Html(status),
        )
    )


def refund_buttons(t: Translator, refund: RefundView) -> InlineKeyboardMarkup | None:
    if refund.status.value != "requested":
        return None
    builder = InlineKeyboardBuilder()
    builder.button(
        text=t("refund.btn_done"),
        callback_data=RefundCb(action=RefundAction.DONE, refund_id=refund.id),
    )
    builder.button(
        text=t("refund.btn_decline"),
        callback_data=RefundCb(action=RefundAction.DECLINE, refund_id=refund.id),
    )
    return builder.as_markup()


def payout_buttons(t: Translator, key: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=t("payout.btn_yes"), callback_data=PayoutCb(action=PayoutAction.YES, key=key)
    )
    builder.button(text=t("payout.btn_no"), callback_data=PayoutCb(action=PayoutAction.NO, key=key))
    return builder.as_markup()
