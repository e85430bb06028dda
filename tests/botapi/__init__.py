"""The local Bot API server for end-to-end tests: it lives in :mod:`sandbox.botapi`
(the sandbox serves it too); re-exported here so tests import it from one place."""

from sandbox.botapi import (
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
