"""The local Bot API server for end-to-end tests: it lives in :mod:`sandbox.botapi`
(the sandbox serves it too); re-exported here so tests import it from one place."""

from sandbox import botapi as _botapi
from sandbox.botapi import *  # noqa: F403

__all__ = _botapi.__all__
