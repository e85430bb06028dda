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
    errors,
    find,
    language,
    listing_wizard,
    moderation,
    my_listings,
    qr_labels,
)


def build_root_router(moderation_chat_id: int) -> Router:
    root = Router(name="root")
    root.include_routers(
        errors.build_router(),
        # a scanned QR code (/start <token>) and /stop work in every state, even
        # in the middle of a wizard, whose draft stays where it was
        charging.build_router(),
        charging.build_admin_router(moderation_chat_id),
        common.build_router(
            moderation_chat_id
        ),  # /cancel before the flows: it must work in every state
        language.build_router(),
        moderation.build_router(moderation_chat_id),
        listing_wizard.build_router(),
        my_listings.build_router(),
        qr_labels.build_router(),
        find.build_router(),
        booking.build_router(),
        booking_decisions.build_router(),
        common.build_fallback_router(),
    )
    return root
