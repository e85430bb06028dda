"""/earnings (a merchant's) and /report (the platform's) as text."""

from zoneinfo import ZoneInfo

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.earnings import ChargerTotals, DayPoint, Earnings, Period, Report, Totals
from services.money import MoneyRules
from ui.callbacks import EarningsAction, EarningsCb
from ui.i18n import Html, Translator
from ui.views.booking import money
from ui.views.listing import fit


def amounts(t: Translator, per_currency: dict[str, int], default_code: str) -> str:
    """``10.00 CNY + 5.00 USD``; nothing is ``0.00`` of the default currency."""
    shown = [money(t, v, code) for code, v in sorted(per_currency.items()) if v]
    return " + ".join(shown) or money(t, 0, default_code)


def _kwh(totals: Totals) -> str:
    return f"{totals.kwh:.3f}"


def _period_lines(t: Translator, period: Period, *, per_charger: bool) -> list[str]:
    name = t(f"earn.period_{period.name}")
    if not period.total or not any(x.orders or x.no_show_minor for x in period.total.values()):
        return [t("earn.period_none", period=name)]
    lines = []
    for code, totals in sorted(period.total.items()):
        lines.append(
            t(
                "earn.period_line",
                period=name,
                orders=totals.orders,
                kwh=_kwh(totals),
                revenue=money(t, totals.revenue_minor, code),
                fees=money(t, totals.fee_minor, code),
                payable=money(t, totals.payable_minor + totals.no_show_minor, code),
            )
        )
    if per_charger:
        lines += [_charger_line(t, c) for c in period.chargers]
    return lines


def _charger_line(t: Translator, charger: ChargerTotals) -> str:
    totals, code = charger.totals, charger.currency
    line = t(
        "earn.charger_line",
        shop=charger.shop_name,
        n=charger.position + 1,
        orders=totals.orders,
        kwh=_kwh(totals),
        revenue=money(t, totals.revenue_minor, code),
        fees=money(t, totals.fee_minor, code),
        payable=money(t, totals.payable_minor, code),
    )
    if totals.no_show_minor:
        line += "\n" + t("earn.no_show_line", amount=money(t, totals.no_show_minor, code))
    return line


def earnings_text(t: Translator, earnings: Earnings, zone: ZoneInfo, rules: MoneyRules) -> Html:
    lines = [t("earn.title"), t("earn.mode_prepaid" if rules.prepaid else "earn.mode_at_shop")]
    for period in earnings.periods:
        lines.append("")
        lines += _period_lines(t, period, per_charger=True)
    lines += ["", t("earn.owed", amount=amounts(t, earnings.payable, rules.currency))]
    if earnings.payouts:
        lines.append(t("earn.payouts"))
        for payout in earnings.payouts[:10]:
            lines.append(
                t(
                    "earn.payout_line",
                    when=f"{payout.created_at.astimezone(zone):%Y-%m-%d}",
                    amount=money(t, payout.amount_minor, payout.currency),
                    reference=payout.reference,
                )
            )
    else:
        lines.append(t("earn.no_payouts"))
    return fit("\n".join(lines))


def earnings_buttons(t: Translator) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=t("earn.btn_csv"), callback_data=EarningsCb(action=EarningsAction.CSV))
    return builder.as_markup()


def report_text(t: Translator, report: Report, rules: MoneyRules) -> Html:
    code = rules.currency
    lines = [t("earn.report_title")]
    for period in report.periods:
        lines += _period_lines(t, period, per_charger=False)
    lines += [
        "",
        t(
            "earn.report_balances",
            fees=amounts(t, report.fees_booked, code),
            wallets=amounts(t, report.wallets, code),
            payable=amounts(t, report.payable, code),
            refunds=amounts(t, report.refunds_due, code),
        ),
        "",
    ]
    if report.top_chargers:
        lines.append(t("earn.report_top"))
        for rank, charger in enumerate(report.top_chargers, start=1):
            totals = charger.totals
            lines.append(
                t(
                    "earn.report_top_line",
                    rank=rank,
                    shop=charger.shop_name,
                    n=charger.position + 1,
                    revenue=money(t, totals.revenue_minor, charger.currency),
                    orders=totals.orders,
                    kwh=_kwh(totals),
                )
            )
    else:
        lines.append(t("earn.report_top_none"))
    return fit("\n".join(lines))


def chart_series(
    daily: dict[str, tuple[DayPoint, ...]], default_code: str
) -> tuple[str, tuple[DayPoint, ...]] | None:
    """The currency with the most revenue over the days, and its series; None when
    nothing happened (no chart then)."""
    busy = {
        code: points
        for code, points in daily.items()
        if any(p.revenue_minor or p.kwh or p.orders for p in points)
    }
    if not busy:
        return None
    code = max(busy, key=lambda c: (sum(p.revenue_minor for p in busy[c]), c == default_code))
    return code, busy[code]
