"""Errors the domain reports to people, as i18n keys so the bot can translate them."""

from typing import Any


class DomainError(Exception):
    """A refusal with a message key (``err.*`` in the locale files) and its parameters."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


class InvalidInput(DomainError):
    """What a person typed is not what the step expects; nothing was changed."""


class NotAllowed(DomainError):
    """The person is not allowed to do this (not the owner, not an admin)."""


class NotFound(DomainError):
    pass


class StartFailed(InvalidInput):
    """The plug did not switch on (offline, silent, the broker down): nothing was
    started or billed, and the same booking may be started again at once."""

    def __init__(self, key: str, *, booking_id: int) -> None:
        super().__init__(key)
        self.booking_id = booking_id
