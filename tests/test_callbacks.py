"""Button payloads (ui/callbacks.py): each fits Telegram's 64 bytes at its largest,
one field per kind of id, and the buttons already sent keep working."""

import pytest

from ui.callbacks import (
    BookCb,
    BookingAction,
    BookingCb,
    ChargeAction,
    ChargeCb,
    EarningsAction,
    EarningsCb,
    ExtendCb,
    FindAction,
    FindCb,
    ListingAction,
    ListingCb,
    PageCb,
    PageOf,
    PaidAtShopCb,
    PayoutAction,
    PayoutCb,
    QrAction,
    QrLabelsCb,
    QrRenewCb,
    RefundAction,
    RefundCb,
    ReviewAction,
    ReviewCb,
    StartCb,
    TopupCb,
    WalkupCb,
    WalletAction,
    WalletCb,
    WizardAction,
    WizardCb,
)

BIG = 2**63 - 1  # the largest id a button may carry


@pytest.mark.parametrize(
    "data",
    [
        WizardCb(action=WizardAction.RESTART, arg=10_000),
        ReviewCb(action=ReviewAction.REASON, revision_id=BIG, code="incomplete"),
        ListingCb(action=ListingAction.RESUME, listing_id=BIG),
        FindCb(
            action=FindAction.RESTART,
            page=1_000_000,
            kind="phone_laptop",
            open_now=True,
            listing_id=BIG,
        ),
        BookCb(charger_id=BIG),
        BookingCb(action=BookingAction.CONFIRM, booking_id=BIG, code="closing_early"),
        QrLabelsCb(listing_id=BIG),
        QrRenewCb(action=QrAction.RENEW_YES, charger_id=BIG, fp="f" * 16),
        StartCb(booking_id=BIG),
        ChargeCb(action=ChargeAction.STOP_YES, charge_id=BIG),
        PageCb(of=PageOf.INCOMING, page=1_000_000),
        # money (#14)
        TopupCb(amount=10**12, code="CNY", booking_id=BIG),
        PaidAtShopCb(order_id=BIG),
        EarningsCb(action=EarningsAction.CSV),
        WalletCb(action=WalletAction.REFUND_YES, before=BIG),
        RefundCb(action=RefundAction.DECLINE, refund_id=BIG),
        PayoutCb(action=PayoutAction.YES, key="f" * 16),
        WalkupCb(charger_id=BIG, minutes=120),
        ExtendCb(charge_id=BIG, minutes=60),
    ],
)
def test_every_payload_fits_64_bytes(data) -> None:
    packed = data.pack()
    assert len(packed.encode()) <= 64, packed
    assert type(data).unpack(packed) == data


def test_one_prefix_two_payloads_told_apart_by_the_action() -> None:
    """A Start acts on a booking, the other charging buttons on a session: each has
    its own id field, and the payloads are those already sent ("ch:start:5")."""
    assert StartCb.unpack("ch:start:5").booking_id == 5
    assert ChargeCb.unpack("ch:stop_yes:7").charge_id == 7
    assert QrLabelsCb.unpack("qr:labels:3").listing_id == 3
    assert QrRenewCb.unpack("qr:renew_yes:4:0123456789").charger_id == 4
    for cls, data in (
        (StartCb, "ch:stop:5"),
        (ChargeCb, "ch:start:5"),
        (QrLabelsCb, "qr:renew:4:"),
        (QrRenewCb, "qr:labels:3"),
    ):
        with pytest.raises((TypeError, ValueError)):  # what the filter takes as "not mine"
            cls.unpack(data)


def test_the_find_card_keeps_its_packed_form() -> None:
    assert FindCb(action=FindAction.CARD, listing_id=1).pack() == "fd:card:0::0:1"
