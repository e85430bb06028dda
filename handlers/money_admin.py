"""Money in the moderation group, for ADMIN_IDS only: /report (the platform's
totals, fees, top chargers and chart)."""

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import BufferedInputFile, Message

from handlers.filters import IsAdmin
from services import earnings
from services.clock import utcnow
from services.tx import Db
from ui.charts import chart_labels, daily_chart
from ui.config import Config
from ui.i18n import Translator
from ui.views.earnings import chart_series, report_text


async def report(message: Message, db: Db, t: Translator, config: Config) -> None:
    figures = await earnings.report(db, now=utcnow(), zone=config.zone)
    await message.answer(report_text(t, figures, config.money))
    series = chart_series(figures.daily, config.money.currency)
    if series is not None:
        code, points = series
        png = await daily_chart(points, code, chart_labels(t, "earn.report_chart_title", code))
        await message.answer_photo(
            BufferedInputFile(png, filename="report.png"),
            caption=t("earn.chart_caption", currency=code),
        )


def build_router(moderation_chat_id: int) -> Router:
    router = Router(name="money_admin")
    router.message.filter(F.chat.id == moderation_chat_id)
    router.callback_query.filter(F.message.chat.id == moderation_chat_id)
    router.message.register(report, Command("report"), IsAdmin())
    return router
