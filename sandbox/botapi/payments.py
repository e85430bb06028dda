"""Payments: ``sendInvoice``, the pre-checkout query and its answer, and the
``successful_payment`` message, as Telegram's Bot API documents them
(https://core.telegram.org/bots/api#payments).

A test (or the sandbox page) pays an invoice with :meth:`Payments.pay_invoice`:

1. the "provider" may decline the card first (``decline=True``): nothing reaches
   the bot;
2. otherwise the bot gets a ``pre_checkout_query`` update and must answer it with
   ``answerPreCheckoutQuery`` within 10 seconds (``pre_checkout_timeout``);
   ``ok=False`` shows the bot's ``error_message`` to the user and no money moves;
   no answer in time fails the payment, and a late answer gets Telegram's
   "query is too old";
3. on ``ok=True`` the provider charges the card (``decline_after_checkout=True``
   makes it fail here: the bot said yes but no payment follows) and the user's
   chat gets a ``successful_payment`` service message, as a ``message`` update.

Every attempt is recorded in :attr:`Payments.payments` with its outcome.
Telegram may deliver a payment twice; :meth:`Payments.deliver_payment_again` does.
"""

from __future__ import annotations

import copy
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from .messages import Messages
from .protocol import QUERY_TOO_OLD, JsonDict, bad, int_param
from .records import Chat, public

# Per currency: (exp, min_amount, max_amount), amounts in the smallest units.
#
# Telegram publishes these in https://core.telegram.org/bots/payments/currencies.json
# ("exp": digits after the decimal point; "min_amount"/"max_amount": the limits of an
# invoice's total, about US$1 and US$10,000 at the day's exchange rate, so they move
# a little). The values below are rounded to that rule, for the currencies this
# project may use; a total outside them fails like Telegram's, with
# CURRENCY_TOTAL_AMOUNT_INVALID. XTR (Telegram Stars) has no provider and no
# decimals; 1..10,000 Stars here.
CURRENCIES: dict[str, tuple[int, int, int]] = {
    "CNY": (2, 700, 7_000_000),
    "USD": (2, 100, 1_000_000),
    "EUR": (2, 100, 1_000_000),
    "GBP": (2, 100, 1_000_000),
    "HKD": (2, 800, 8_000_000),
    "SGD": (2, 140, 1_400_000),
    "JPY": (0, 150, 1_500_000),
    "KRW": (0, 1_400, 14_000_000),
    "INR": (2, 8_500, 85_000_000),
    "RUB": (2, 9_000, 90_000_000),
    "XTR": (0, 1, 10_000),
}

_MAX_AMOUNT = 999_999_999_999  # tdlib's bound on one price part

#: Telegram's deadline for ``answerPreCheckoutQuery``, in seconds.
PRE_CHECKOUT_DEADLINE = 10.0

PaymentStatus = Literal["paid", "rejected", "timed_out", "declined"]


@dataclass(slots=True)
class Payment:
    """One attempt to pay an invoice, and how it ended.

    ``status``: ``paid`` (the chat got ``successful_payment``), ``rejected`` (the bot
    answered the pre-checkout query with ok=False: ``error_message`` is what the
    user saw), ``timed_out`` (no answer within the deadline) or ``declined`` (the
    provider refused the card: before the pre-checkout query, or after the bot's
    ok when ``pre_checkout_query_id`` is set).
    """

    chat_id: int
    user_id: int
    invoice_message_id: int
    currency: str
    total_amount: int
    invoice_payload: str
    status: PaymentStatus
    pre_checkout_query_id: str | None = None
    error_message: str | None = None
    #: The ``SuccessfulPayment`` object, when paid.
    successful_payment: JsonDict | None = None
    #: The id of the chat's ``successful_payment`` message, when paid.
    message_id: int | None = None
    #: How many ``message`` updates carried this payment (2 after a redelivery).
    deliveries: int = 0


@dataclass(slots=True)
class _PreCheckout:
    query: JsonDict
    deadline: float  # time.monotonic()
    answer: JsonDict | None = None
    expired: bool = False


class Payments(Messages):
    """``sendInvoice``, ``answerPreCheckoutQuery`` and paying as a user."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: Seconds the bot has to answer a pre-checkout query (Telegram: 10).
        self.pre_checkout_timeout: float = PRE_CHECKOUT_DEADLINE
        #: Every payment attempt, in order.
        self.payments: list[Payment] = []
        self._pre_checkouts: dict[str, _PreCheckout] = {}
        self._pre_checkout_counter = 0
        # (chat id, message id) -> the invoice as sent, payload and token included
        self._invoices: dict[tuple[int, int], JsonDict] = {}

    # ------------------------------------------------------------------ acting as people

    async def pay_invoice(
        self,
        chat_id: int,
        user_id: int,
        message_id: int,
        *,
        decline: bool = False,
        decline_after_checkout: bool = False,
        total_amount: int | None = None,
        currency: str | None = None,
        invoice_payload: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - Telegram's deadline, not ours
    ) -> Payment:
        """The user pays the invoice in message ``message_id`` with a test card.

        ``total_amount``, ``currency`` and ``invoice_payload`` forge what the
        pre-checkout query and the payment carry (a tampered client, for tests of
        a mismatch); by default they are the invoice's. ``timeout`` overrides
        :attr:`pre_checkout_timeout` for this payment. Returns the recorded
        :class:`Payment` once the outcome is known (up to the deadline).
        """
        chat, user = self._acting(chat_id, user_id)
        invoice = self._invoices.get((chat.id, message_id))
        if invoice is None or chat.entry(message_id) is None:
            raise ValueError(f"message {message_id} in chat {chat_id} is not an invoice")
        if any(
            p.status == "paid" and p.chat_id == chat.id and p.invoice_message_id == message_id
            for p in self.payments
        ):
            raise ValueError(f"the invoice in message {message_id} is paid already")
        payment = Payment(
            chat_id=chat.id,
            user_id=user_id,
            invoice_message_id=message_id,
            currency=invoice["currency"] if currency is None else currency,
            total_amount=invoice["total_amount"] if total_amount is None else total_amount,
            invoice_payload=invoice["payload"] if invoice_payload is None else invoice_payload,
            status="declined",
        )
        self.payments.append(payment)
        if decline:
            self._notify()
            return payment

        self._pre_checkout_counter += 1
        query_id = f"{self.bot_id}{self._pre_checkout_counter:010d}{secrets.randbelow(10**6):06d}"
        query: JsonDict = {
            "id": query_id,
            "from": dict(user),
            "currency": payment.currency,
            "total_amount": payment.total_amount,
            "invoice_payload": payment.invoice_payload,
        }
        seconds = self.pre_checkout_timeout if timeout is None else timeout
        pending = _PreCheckout(query, deadline=time.monotonic() + seconds)
        self._pre_checkouts[query_id] = pending
        payment.pre_checkout_query_id = query_id
        self._enqueue("pre_checkout_query", query)

        while pending.answer is None:
            remaining = pending.deadline - time.monotonic()
            if remaining <= 0 or self._closing:
                break
            await self._wait_change(remaining)
        answer = pending.answer
        if answer is None:
            pending.expired = True
            payment.status = "timed_out"
        elif not answer["ok"]:
            payment.status = "rejected"
            payment.error_message = answer["error_message"]
        elif not decline_after_checkout:
            self._record_success(chat, user, payment)
        self._notify()
        return payment

    def charge_later(self, payment: Payment) -> None:
        """The provider completes a charge it held after the bot's ok at pre-checkout
        (a payment made with ``decline_after_checkout=True``): the chat gets its
        ``successful_payment`` now, whatever happened meanwhile (3-D Secure can take
        minutes), as Telegram would deliver it."""
        answer = self._pre_checkouts.get(payment.pre_checkout_query_id or "")
        if payment.status != "declined" or answer is None or not (answer.answer or {}).get("ok"):
            raise ValueError("only a payment approved at pre-checkout and held can be charged")
        chat, user = self._acting(payment.chat_id, payment.user_id)
        self._record_success(chat, user, payment)
        self._notify()

    def deliver_payment_again(self, payment: Payment) -> None:
        """Queue the payment's ``successful_payment`` message once more, as Telegram
        may (after a lost confirmation or a webhook retry): the same message, in a
        new update."""
        if payment.status != "paid" or payment.message_id is None:
            raise ValueError("only a successful payment can be delivered again")
        entry = self._chat(payment.chat_id).entry(payment.message_id)
        if entry is None:
            raise ValueError("the payment's message is gone")
        self._enqueue("message", public(entry.msg))
        payment.deliveries += 1

    # ------------------------------------------------------------------ inspection

    def invoice(self, chat_id: int, message_id: int) -> JsonDict | None:
        """The invoice sent in that message as the bot sent it (``payload``,
        ``provider_token``, ``prices`` included), or None."""
        invoice = self._invoices.get((chat_id, message_id))
        return copy.deepcopy(invoice) if invoice is not None else None

    def pre_checkout_answer(self, pre_checkout_query_id: str) -> JsonDict | None:
        """The ``answerPreCheckoutQuery`` params for that query, or None if unanswered."""
        pending = self._pre_checkouts.get(pre_checkout_query_id)
        if pending is None:
            raise KeyError(f"unknown pre-checkout query id {pre_checkout_query_id!r}")
        return copy.deepcopy(pending.answer)

    # ------------------------------------------------------------------ Bot API methods

    def _send_invoice(self, params: JsonDict) -> JsonDict:
        chat = self._target_chat(params)
        title = str(params.get("title") or "")
        description = str(params.get("description") or "")
        payload = str(params.get("payload") or "")
        currency = str(params.get("currency") or "")
        token = str(params.get("provider_token") or "")
        if not 1 <= len(title) <= 32:
            raise bad("invoice title must be 1-32 characters")
        if not 1 <= len(description) <= 255:
            raise bad("invoice description must be 1-255 characters")
        if not 1 <= len(payload.encode()) <= 128:
            raise bad("INVOICE_PAYLOAD_INVALID")
        if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
            raise bad("CURRENCY_INVALID")
        if currency not in CURRENCIES:
            raise bad(f"CURRENCY_INVALID ({currency} is not in FakeBotAPI's CURRENCIES)")
        if currency == "XTR" and token:
            raise bad("PAYMENT_PROVIDER_INVALID")  # Stars are paid without a provider
        if currency != "XTR" and not token:
            raise bad("PAYMENT_PROVIDER_INVALID")
        total = self._invoice_total(params.get("prices"), currency)
        _exp, least, most = CURRENCIES[currency]
        if not least <= total <= most:
            raise bad("CURRENCY_TOTAL_AMOUNT_INVALID")
        self._check_pay_button(params.get("reply_markup"))

        invoice: JsonDict = {
            "title": title,
            "description": description,
            "start_parameter": str(params.get("start_parameter") or ""),
            "currency": currency,
            "total_amount": total,
        }
        msg = self._bot_send(params, {"invoice": invoice}, chat)
        self._invoices[(chat.id, msg["message_id"])] = {
            **invoice,
            "payload": payload,
            "provider_token": token,
            "prices": copy.deepcopy(params["prices"]),
        }
        return msg

    def _answer_pre_checkout_query(self, params: JsonDict) -> bool:
        pending = self._pre_checkouts.get(str(params.get("pre_checkout_query_id") or ""))
        if pending is None or pending.answer is not None or pending.expired:
            raise bad(QUERY_TOO_OLD)
        if time.monotonic() > pending.deadline:
            pending.expired = True
            raise bad(QUERY_TOO_OLD)
        ok = params.get("ok")
        if not isinstance(ok, bool):
            raise bad("parameter ok must be a boolean")
        error_message = params.get("error_message")
        if not ok and not str(error_message or "").strip():
            raise bad("ERROR_TEXT_EMPTY")
        pending.answer = {"ok": ok, "error_message": None if ok else str(error_message)}
        self._notify()
        return True

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _invoice_total(prices: Any, currency: str) -> int:
        if not isinstance(prices, list) or not prices:
            raise bad("prices must be a non-empty array")
        if currency == "XTR" and len(prices) != 1:
            raise bad("exactly one price must be specified for payments in Telegram Stars")
        # Like tdlib: a part may be negative (a discount), the total must be positive.
        total = 0
        for price in prices:
            if not isinstance(price, dict) or not str(price.get("label") or ""):
                raise bad("can't parse prices: a label is required")
            amount = int_param(price, "amount")
            if amount is None:
                raise bad("can't parse prices: an amount is required")
            if abs(amount) > _MAX_AMOUNT:
                raise bad("Too big amount of currency specified")
            total += amount
        if total <= 0:
            raise bad("Total price must be positive")
        return total

    @staticmethod
    def _check_pay_button(markup: Any) -> None:
        """An invoice's keyboard, when given, must start with a Pay button."""
        if not isinstance(markup, dict):
            return
        rows = markup.get("inline_keyboard") or []
        first = rows[0][0] if rows and isinstance(rows[0], list) and rows[0] else None
        if first is not None and not (isinstance(first, dict) and first.get("pay")):
            raise bad("REPLY_MARKUP_BUY_EMPTY")

    def _record_success(self, chat: Chat, user: JsonDict, payment: Payment) -> None:
        paid: JsonDict = {
            "currency": payment.currency,
            "total_amount": payment.total_amount,
            "invoice_payload": payment.invoice_payload,
            "telegram_payment_charge_id": f"tg_{secrets.token_urlsafe(18)}",
            # Stars are not charged through a provider
            "provider_payment_charge_id": (
                "" if payment.currency == "XTR" else f"ch_test_{secrets.token_hex(12)}"
            ),
        }
        msg = self._user_message(chat, user, {"successful_payment": paid})
        payment.status = "paid"
        payment.successful_payment = paid
        payment.message_id = msg["message_id"]
        payment.deliveries = 1
