"""/earnings for merchants: today, this week, this month per charger, what is owed
and paid out, a chart of the last 30 days (a photo) and Export CSV (a document)."""

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import BufferedInputFile, CallbackQuery, Message

from handlers.filters import Magic
from services import earnings
from services.clock import utcnow
from services.tx import Db
from ui.callbacks import EarningsCb
from ui.charts import chart_labels, daily_chart
from ui.config import Config
from ui.i18n import Translator
from ui.views.earnings import chart_series, earnings_buttons, earnings_text


async def my_earnings(message: Message, db: Db, t: Translator, config: Config) -> None:
    assert message.from_user is not None
    mine = await earnings.earnings(
        db, merchant_id=message.from_user.id, now=utcnow(), zone=config.zone
    )
    await message.answer(
        earnings_text(t, mine, config.zone, config.money), reply_markup=earnings_buttons(t)
    )
    series = chart_series(mine.daily, config.money.currency)
    if series is not None:
        code, points = series
        png = await daily_chart(points, code, chart_labels(t, "earn.chart_title", code))
        await message.answer_photo(
            BufferedInputFile(png, filename="earnings.png"),
            caption=t("earn.chart_caption", currency=code),
        )


async def export_csv(query: CallbackQuery, db: Db, t: Translator, config: Config) -> None:
    # the presser's own orders, whoever's message the button is on
    text = await earnings.orders_csv(db, merchant_id=query.from_user.id, zone=config.zone)
    await query.answer(t("earn.csv_sent"))
    assert query.bot is not None
    await query.bot.send_document(
        query.from_user.id,
        # with a byte-order mark, so spreadsheet programs read the Chinese right
        BufferedInputFile(text.encode("utf-8-sig"), filename="chargeshare-orders.csv"),
        caption=t("earn.csv_caption"),
    )


def build_router() -> Router:
    router = Router(name="earnings")
    router.message.filter(Magic(F.chat.type == "private"))
    router.callback_query.filter(Magic(F.message.chat.type == "private"))
    router.message.register(my_earnings, Command("earnings"))
    router.callback_query.register(export_csv, EarningsCb.filter())
    return router
