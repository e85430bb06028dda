"""A local Telegram Bot API server (used by the sandbox and by the tests).

See :mod:`sandbox.botapi.server` for how it is put together; the public API is
re-exported here.
"""

from .server import (
    CURRENCIES,
    FakeBotAPI,
    HtmlParseError,
    Payment,
    Upload,
    buttons,
    parse_html,
    plain,
    reply_buttons,
)

__all__ = [
    "CURRENCIES",
    "FakeBotAPI",
    "HtmlParseError",
    "Payment",
    "Upload",
    "buttons",
    "parse_html",
    "plain",
    "reply_buttons",
]
