"""Inline-button payloads. They carry ids only; services re-check permissions.

Actions are enums and each kind of id has a field of its own; the packed forms
(``prefix:action:…``) stay short, under Telegram's 64 bytes.

Every field is typed as narrowly as the buttons we make: ids fit the database's
64-bit integers, actions and codes are the values we send. Data that does not
fit (a forged button, an id over 64 bits, an unknown value) then fails to unpack,
so no handler's filter matches it and the fallback answers "this button is out
of date", changing nothing, instead of a handler failing on it.
"""

from enum import StrEnum
from typing import Annotated, Literal

from aiogram.filters.callback_data import CallbackData
from pydantic import Field

from services.bookings import REJECT_PRESETS as BOOKING_REJECT_PRESETS
from services.listing_draft import DEVICE_KINDS
from services.listings import REJECT_PRESETS as LISTING_REJECT_PRESETS

# a row id (BigInteger, 0 = none) and small counters (pages, list positions)
Id = Annotated[int, Field(ge=0, le=2**63 - 1)]
Index = Annotated[int, Field(ge=-1, le=10_000)]
Page = Annotated[int, Field(ge=0, le=1_000_000)]

ListingRejectCode = Literal[("", *LISTING_REJECT_PRESETS)]  # type: ignore[valid-type]
BookingRejectCode = Literal[("", *BOOKING_REJECT_PRESETS)]  # type: ignore[valid-type]
DeviceKind = Literal[("", *DEVICE_KINDS)]  # type: ignore[valid-type]


class WizardAction(StrEnum):
    SUBMIT = "submit"
    EDIT = "edit"  # the Edit menu
    CANCEL = "cancel"
    FIELD = "field"  # a shop question (arg: which)
    CHARGER = "charger"  # a charger's questions (arg: which)
    REMOVE = "remove"  # a charger (arg: which)
    ADD = "add"  # a charger
    BACK = "back"  # from the Edit menu to the summary
    RESUME = "resume"  # the kept draft
    RESTART = "restart"
    START = "start"  # /start's "List my chargers": as /newlisting


class WizardCb(CallbackData, prefix="wz"):
    action: WizardAction
    arg: Index = -1


class ReviewAction(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"  # the reasons
    REASON = "reason"  # a preset reason (code)
    OTHER = "other"  # a reason typed
    BACK = "back"  # from the reasons to Approve / Reject
    SHOW = "show"  # post the card again


class ReviewCb(CallbackData, prefix="rv"):
    action: ReviewAction
    revision_id: Id
    code: ListingRejectCode = ""


class ListingAction(StrEnum):
    OPEN = "open"
    EDIT = "edit"
    PAUSE = "pause"
    RESUME = "resume"
    LIST = "list"  # back to all of them


class ListingCb(CallbackData, prefix="ls"):
    action: ListingAction
    listing_id: Id = 0


class LanguageCb(CallbackData, prefix="lang"):
    code: Literal["en", "zh"]


class FindAction(StrEnum):
    PAGE = "page"
    KIND = "kind"  # the next device kind
    CARD = "card"  # a listing's card
    MAP = "map"  # a listing on a map
    RESTART = "restart"  # ask where again


class FindCb(CallbackData, prefix="fd"):
    action: FindAction
    page: Page = 0
    kind: DeviceKind = ""  # "" = any device
    open_now: bool = False
    listing_id: Id = 0  # card and map


class BookCb(CallbackData, prefix="bk"):
    charger_id: Id


class BookingAction(StrEnum):
    CONFIRM = "confirm"  # the summary (no id: the conversation has it)
    DROP = "drop"  # the summary's Cancel
    ACCEPT = "accept"
    REJECT = "reject"  # the reasons
    REASON = "reason"  # a preset reason (code)
    OTHER = "other"  # a reason typed
    BACK = "back"  # from the reasons to Accept / Reject
    CANCEL = "cancel"  # by its user (an accepted booking: asks to confirm)
    OPEN = "open"  # from /bookings
    CANCEL_YES = "cancel_yes"  # the confirmation of cancelling an accepted booking
    KEEP = "keep"  # ... or keeping it
    ON_WAY = "on_way"  # the rider tells the merchant they are coming (a reminder's button)


class BookingCb(CallbackData, prefix="bg"):
    action: BookingAction
    booking_id: Id = 0
    code: BookingRejectCode = ""


class QrAction(StrEnum):
    LABELS = "labels"  # a listing's labels
    RENEW = "renew"  # a charger's code: asks to confirm
    RENEW_YES = "renew_yes"


# Two payloads under one prefix, told apart by the action (one field per kind of id):
# the packed form is the one buttons already sent carry.
class QrLabelsCb(CallbackData, prefix="qr"):
    action: Literal[QrAction.LABELS] = QrAction.LABELS
    listing_id: Id


class QrRenewCb(CallbackData, prefix="qr"):
    action: Literal[QrAction.RENEW, QrAction.RENEW_YES]
    charger_id: Id
    # renew_yes: which token it renews, so a second press (or an old prompt) does not
    # void the label printed after the first
    fp: Annotated[str, Field(pattern=r"^[0-9a-f]{0,16}$")] = ""


class ChargeAction(StrEnum):
    START = "start"  # on a booking (StartCb)
    STATUS = "status"  # the rest on a charging session (ChargeCb)
    STOP = "stop"  # asks to confirm
    STOP_YES = "stop_yes"
    KEEP = "keep"  # the stop not confirmed


class StartCb(CallbackData, prefix="ch"):
    action: Literal[ChargeAction.START] = ChargeAction.START
    booking_id: Id


# what a button may do to a running session
OnCharge = Literal[ChargeAction.STATUS, ChargeAction.STOP, ChargeAction.STOP_YES, ChargeAction.KEEP]


class ChargeCb(CallbackData, prefix="ch"):
    action: OnCharge
    charge_id: Id


class PageOf(StrEnum):
    """The long lists ◀️ / ▶️ page through."""

    PENDING = "pending"  # /pending
    LISTINGS = "listings"  # /listings
    MINE = "mine"  # /bookings: the person's own
    INCOMING = "incoming"  # /bookings: their chargers'
    SESSIONS = "sessions"  # /sessions


class PageCb(CallbackData, prefix="pg"):
    """◀️ / ▶️ of a long list: which list, which page (0-based)."""

    of: PageOf
    page: Page = 0


# -- money (#14) -------------------------------------------------------------------------

CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Amount = Annotated[int, Field(ge=1, le=10**12)]  # minor units


class TopupCb(CallbackData, prefix="tu"):
    """A top-up of ``amount`` (minor units): for an unpaid booking, or the wallet (0)."""

    amount: Amount
    code: CurrencyCode
    booking_id: Id = 0


class PaidAtShopCb(CallbackData, prefix="ps"):
    """The merchant's Mark paid on an order paid at the shop."""

    order_id: Id


class EarningsAction(StrEnum):
    CSV = "csv"  # the merchant's orders as a CSV document


class EarningsCb(CallbackData, prefix="ea"):
    action: EarningsAction


class WalletAction(StrEnum):
    HISTORY = "history"  # a page of the history (before: the oldest id shown)
    TOPUP = "topup"  # the quick choices
    REFUND = "refund"  # asks to confirm
    REFUND_YES = "refund_yes"
    REFUND_NO = "refund_no"


class WalletCb(CallbackData, prefix="wl"):
    action: WalletAction
    before: Id = 0


class RefundAction(StrEnum):
    DONE = "done"  # asks the provider's reference
    DECLINE = "decline"  # asks the reason


class RefundCb(CallbackData, prefix="rf"):
    action: RefundAction
    refund_id: Id


class PayoutAction(StrEnum):
    YES = "yes"
    NO = "no"


class PayoutCb(CallbackData, prefix="po"):
    """The confirmation of a typed /payout; ``key`` names it in the admin's
    conversation (the amount and reference stay on the server)."""

    action: PayoutAction
    key: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]


# -- pairing a plug (issue #15) --------------------------------------------------------


class PairCb(CallbackData, prefix="pair"):
    """ "Pair" under a plug's set-up instructions: which plug, by a fingerprint of
    (driver, plug id) (a plug id may take 64 bytes alone); the handler finds it among
    the presser's own chargers and drafts, so a forged one pairs nothing."""

    fp: Annotated[str, Field(pattern=r"^[0-9a-f]{10}$")]


# -- walk-up charging and extend (issue #15) -------------------------------------------


# minutes (0: until full); the services refuse a value they did not offer
Minutes = Annotated[int, Field(ge=0, le=24 * 60)]


class WalkupCb(CallbackData, prefix="wu"):
    """Charge now on a scanned charger: how long (minutes; 0 = until full)."""

    charger_id: Id
    minutes: Minutes


class ExtendCb(CallbackData, prefix="xt"):
    """+30 min / +1 h on a running session's card."""

    charge_id: Id
    minutes: Minutes


class WalkupSetting(StrEnum):
    SHOW = "show"  # the listing's chargers with their settings
    AUTO = "auto"  # the rest as services.walkup.Setting
    BELOW = "below"
    MINUTES = "minutes"


class ChargerSetCb(CallbackData, prefix="cs"):
    """/listings → a listing → Walk-up & full: a charger's setting set to ``value``."""

    what: WalkupSetting
    listing_id: Id
    charger_id: Id = 0
    value: Minutes = 0
