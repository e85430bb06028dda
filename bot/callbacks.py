"""Inline-button payloads. They carry ids only; handlers re-check permissions."""

from aiogram.filters.callback_data import CallbackData


class WizardCb(CallbackData, prefix="wz"):
    action: str  # submit | edit | cancel | field | charger | remove | add | back
    arg: int = -1


class ReviewCb(CallbackData, prefix="rv"):
    action: str  # approve | reject | reason | other | back | show
    revision_id: int
    code: str = ""


class ListingCb(CallbackData, prefix="ls"):
    action: str  # open | edit | pause | resume | list
    listing_id: int = 0


class LanguageCb(CallbackData, prefix="lang"):
    code: str


class FindCb(CallbackData, prefix="fd"):
    action: str  # page | kind | open | card | map
    page: int = 0
    kind: str = ""  # "" = any device
    open_now: bool = False
    ref: int = 0  # listing id for card and map


class BookCb(CallbackData, prefix="bk"):
    charger_id: int


class BookingCb(CallbackData, prefix="bg"):
    action: str  # confirm | drop | accept | reject | reason | other | back | cancel
    booking_id: int = 0
    code: str = ""


class QrCb(CallbackData, prefix="qr"):
    action: str  # labels (listing id) | renew | renew_yes (charger id)
    ref: int
    # renew_yes: which token it renews, so a second press (or an old prompt) does not
    # void the label printed after the first
    fp: str = ""


class ChargeCb(CallbackData, prefix="ch"):
    action: str  # start (booking id) | status | stop | stop_yes | keep (session id)
    ref: int
