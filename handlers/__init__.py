"""aiogram routers, one module per flow. Thin: read input, call a service, answer.

Each module builds its router in a function, so every Dispatcher (a restarted
App, a test) gets routers of its own.
"""

from aiogram import Router

from handlers import (
    booking,
    booking_decisions,
    charging,
    common,
    earnings,
    errors,
    find,
    labels,
    language,
    listing_wizard,
    moderation,
    money_admin,
    my_listings,
    payments,
    qr_labels,
    walkup_settings,
    wallet,
)


def build_root_router(moderation_chat_id: int) -> Router:
    root = Router(name="root")
    root.include_routers(
        errors.build_router(),
        # payments answer whatever state the payer's conversation is in
        payments.build_router(),
        # a scanned QR code (/start <token>) and /stop work in every state, even
        # in the middle of a wizard, whose draft stays where it was
        charging.build_router(),
        charging.build_admin_router(moderation_chat_id),
        labels.build_router(),  # /code and a label's photo: a scan by other means
        # /cancel before the flows: it must work in every state
        common.build_router(moderation_chat_id),
        language.build_router(),
        moderation.build_router(moderation_chat_id),
        money_admin.build_router(moderation_chat_id),
        listing_wizard.build_router(),
        my_listings.build_router(),
        qr_labels.build_router(),
        walkup_settings.build_router(),
        find.build_router(),
        booking.build_router(),
        booking_decisions.build_router(),
        earnings.build_router(),
        wallet.build_router(),
        common.build_fallback_router(),
    )
    return root
