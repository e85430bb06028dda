"""aiogram routers, one module per flow. Thin: read input, call a service, answer."""

from aiogram import Router

from handlers import common, errors, language, listing_wizard, moderation, my_listings


def build_root_router(moderation_chat_id: int) -> Router:
    root = Router(name="root")
    root.include_routers(
        errors.router,
        common.router,  # /cancel first: it must work in every state
        language.router,
        moderation.build_router(moderation_chat_id),
        listing_wizard.router,
        my_listings.router,
        common.fallback_router,
    )
    return root
