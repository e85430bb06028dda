"""A label's code without the camera app: ``/code K7P2QX`` (typed from under the QR)
and a photo of the label sent to the bot. Both act exactly like a scan."""

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.types import Message

from handlers.charging import answer_scan
from handlers.filters import Magic
from services import charging as charges
from services import walkup
from services.charging_control import ChargingControl
from services.tx import Db
from ui.config import Config
from ui.i18n import Translator
from ui.qr_decode import label_token

# a phone's photo is a few MB; a document larger than this is not a label's picture
MAX_IMAGE_BYTES = 20 * 1024 * 1024


async def code_command(
    message: Message,
    command: CommandObject,
    db: Db,
    t: Translator,
    config: Config,
    charging: ChargingControl,
) -> None:
    assert message.from_user is not None
    if not command.args:
        await message.answer(t("label.code_usage"))
        return
    token = await charges.token_for_code(db, command.args)
    await _scanned(message, token, db, t, config, charging)


async def label_photo(
    message: Message,
    bot: Bot,
    db: Db,
    t: Translator,
    config: Config,
    charging: ChargingControl,
) -> None:
    assert message.from_user is not None
    if message.photo:
        file_id, size = message.photo[-1].file_id, message.photo[-1].file_size
    else:
        assert message.document is not None
        file_id, size = message.document.file_id, message.document.file_size
    if size is not None and size > MAX_IMAGE_BYTES:
        await message.answer(t("label.photo_unreadable"))
        return
    data = await bot.download(file_id)
    me = await bot.me()
    token = await label_token(data.read() if data else b"", me.username or "")
    if token is None:
        await message.answer(t("label.photo_unreadable"))
        return
    await _scanned(message, token, db, t, config, charging)


async def _scanned(
    message: Message, token: str, db: Db, t: Translator, config: Config, charging: ChargingControl
) -> None:
    """Exactly what scanning the label's QR code does (walk-up offer included)."""
    assert message.from_user is not None
    scan = await walkup.scan(
        db,
        token=token,
        user_id=message.from_user.id,
        rules=charging.rules,
        booking_rules=config.booking_rules,
    )
    await answer_scan(message, scan, db, t, config, charging)


def build_router() -> Router:
    router = Router(name="labels")
    router.message.filter(Magic(F.chat.type == "private"))
    # like /start <token>: works in every state, a wizard's draft stays where it was
    router.message.register(code_command, Command("code"))
    # a photo only outside the conversations (the wizard asks for a shop photo)
    image_document = F.document.mime_type.startswith("image/")
    router.message.register(label_photo, StateFilter(None), Magic(F.photo | image_document))
    return router
