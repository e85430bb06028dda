"""A domain refusal as the person reads it (ui/errors.py), and where the one error
handler (handlers/errors.py) says it: an alert for a press, a reply for a message,
the pressed message's text when the press was answered already."""

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.base import BaseSession
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.methods import AnswerCallbackQuery, EditMessageText, SendMessage
from aiogram.methods.base import TelegramMethod
from aiogram.types import CallbackQuery, Chat, Message, Update, User

from bot.request_middlewares import AnsweredPresses
from handlers import errors
from services.bookings import BookingRules
from services.errors import InvalidInput, NotAllowed, StartFailed
from services.listing_draft import ChargerDraft, DraftIncomplete, ListingDraft
from ui.config import Config
from ui.errors import refusal
from ui.i18n import translator

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
CONFIG = Config(
    zone=ZONE,
    admin_ids=frozenset(),
    moderation_chat_id=-1,
    group_language="en",
    currency="CNY",
    booking_rules=BookingRules(zone=ZONE),
    max_listings_under_review=3,
)


def test_times_are_local_and_states_are_words() -> None:
    error = InvalidInput("err.scan_too_early", start=NOW, opens=NOW.replace(hour=1, minute=50))
    assert "09:50" in refusal(translator("en"), error, ZONE, NOW).text
    said = refusal(
        translator("zh"), InvalidInput("err.booking_decided", status="expired"), ZONE, NOW
    )
    assert "expired" not in said.text and said.text == translator("zh")(
        "err.booking_decided", status=translator("zh")("booking.status_expired")
    )


def test_a_window_refused_lists_the_free_ones_as_a_message() -> None:
    free = [(NOW.isoformat(), NOW.replace(hour=4).isoformat())]
    said = refusal(translator("en"), InvalidInput("err.window_taken", free=free), ZONE, NOW)
    assert "Free windows that day" in said.text and "10:00–12:00" in said.text
    assert said.as_message and not said.in_place
    none = refusal(translator("en"), InvalidInput("err.window_taken", free=[]), ZONE, NOW)
    assert translator("en")("booking.no_free") in none.text


def test_a_start_that_may_be_tried_again_brings_its_button_back() -> None:
    said = refusal(translator("en"), StartFailed("err.device_offline", booking_id=42), ZONE, NOW)
    assert said.in_place and said.markup is not None
    [[button]] = said.markup.inline_keyboard
    assert button.callback_data == "ch:start:42"


@pytest.mark.parametrize("language", ["en", "zh"])
def test_the_gaps_of_a_draft_are_named_as_the_edit_menu_names_them(language: str) -> None:
    t = translator(language)
    draft = ListingDraft(shop_name="Volt", chargers=[ChargerDraft(method="ac_slow")])
    said = refusal(t, DraftIncomplete(draft), ZONE, NOW)
    assert t("field.contact") in said.text and t("btn.edit_charger", n=1) in said.text
    assert "contact_phone" not in said.text  # not the draft's own names


# -- where the error handler says it ----------------------------------------------------


class Recorder(BaseSession):
    """A Bot API that records the calls; presses in ``answered_elsewhere`` were
    answered before (Telegram refuses a second answer)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[TelegramMethod[Any]] = []
        self.answered_elsewhere: set[str] = set()

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[Any],
        timeout: Any = None,  # noqa: ASYNC109 (aiogram's signature)
    ) -> Any:
        self.calls.append(method)
        if isinstance(method, AnswerCallbackQuery):
            if method.callback_query_id in self.answered_elsewhere:
                raise TelegramBadRequest(method, "query is too old")
            self.answered_elsewhere.add(method.callback_query_id)
            return True
        if isinstance(method, SendMessage):
            return Message(
                message_id=99, date=NOW, chat=Chat(id=method.chat_id, type="private"), text=""
            )
        return True

    async def close(self) -> None:
        pass

    async def stream_content(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover
        raise NotImplementedError


class Form(StatesGroup):
    step = State()


def dispatcher(presses: AnsweredPresses) -> Dispatcher:
    router = Router()

    @router.callback_query(F.data == "refuse")
    async def refuse(query: CallbackQuery) -> None:
        raise NotAllowed("err.not_your_booking")

    @router.callback_query(F.data == "answer-then-refuse")
    async def answer_then_refuse(query: CallbackQuery) -> None:
        await query.answer("Stopping…")
        raise InvalidInput("err.session_stopping")

    @router.message(Form.step)
    async def typed(message: Message) -> None:
        raise InvalidInput("err.area")

    dp = Dispatcher(config=CONFIG, answered=presses)
    dp.include_routers(errors.build_router(), router)
    return dp


def press(data: str, query_id: str) -> Update:
    user = User(id=7, is_bot=False, first_name="Ann")
    message = Message(message_id=5, date=NOW, chat=Chat(id=7, type="private"), text="Stop?")
    return Update(
        update_id=1,
        callback_query=CallbackQuery(
            id=query_id, from_user=user, chat_instance="c", message=message, data=data
        ),
    )


@pytest.fixture
async def bot() -> Any:
    recorder = Recorder()
    presses = AnsweredPresses()
    recorder.middleware(presses)
    bot = Bot("42:TEST", session=recorder)
    yield bot, recorder, dispatcher(presses)
    await bot.session.close()


def sent(recorder: Recorder) -> list[tuple[str, str | None]]:
    return [(type(m).__name__, getattr(m, "text", None)) for m in recorder.calls]


async def test_a_press_refused_gets_an_alert(bot: Any) -> None:
    bot, recorder, dp = bot
    await dp.feed_update(bot, press("refuse", "q1"))
    [answer] = recorder.calls
    assert isinstance(answer, AnswerCallbackQuery) and answer.show_alert
    assert answer.text == translator("en")("err.not_your_booking")


async def test_a_press_answered_before_the_refusal_shows_it_in_place(bot: Any) -> None:
    bot, recorder, dp = bot
    await dp.feed_update(bot, press("answer-then-refuse", "q2"))
    why = translator("en")("err.session_stopping")
    assert sent(recorder)[-1] == ("EditMessageText", why)
    assert not any(isinstance(m, SendMessage) for m in recorder.calls)


async def test_a_press_answered_elsewhere_gets_a_message_not_an_edit(bot: Any) -> None:
    """The same press delivered again (another instance answered it and may have
    replaced the message since): the refusal must not overwrite that message."""
    bot, recorder, dp = bot
    recorder.answered_elsewhere.add("q3")
    await dp.feed_update(bot, press("refuse", "q3"))
    why = translator("en")("err.not_your_booking")
    assert sent(recorder)[-1] == ("SendMessage", why)
    assert not any(isinstance(m, EditMessageText) for m in recorder.calls)


async def test_a_message_refused_gets_a_reply_and_the_conversation_stays(bot: Any) -> None:
    bot, recorder, dp = bot
    state: FSMContext = dp.fsm.get_context(bot, chat_id=7, user_id=7)
    await state.set_state(Form.step)
    update = Update(
        update_id=2,
        message=Message(
            message_id=6,
            date=NOW,
            chat=Chat(id=7, type="private"),
            from_user=User(id=7, is_bot=False, first_name="Ann"),
            text="big",
        ),
    )
    await dp.feed_update(bot, update)
    assert sent(recorder) == [("SendMessage", translator("en")("err.area"))]
    assert await state.get_state() == Form.step.state
