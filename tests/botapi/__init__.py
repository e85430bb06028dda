"""A local fake Telegram Bot API server for end-to-end tests of the bot.

See :mod:`tests.botapi.server` for details; the public API is re-exported here.
"""

from .server import (
    FakeBotAPI,
    HtmlParseError,
    Upload,
    buttons,
    parse_html,
    plain,
    reply_buttons,
)

__all__ = [
    "FakeBotAPI",
    "HtmlParseError",
    "Upload",
    "buttons",
    "parse_html",
    "plain",
    "reply_buttons",
]
