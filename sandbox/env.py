"""Reading a setting as the bot's settings do: the environment first, then ``.env``."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values  # python-dotenv, which pydantic-settings reads .env with

# .env.example's placeholder: a copied, unedited .env has no real token
PLACEHOLDER_TOKENS = frozenset({"123456:replace-with-your-token"})


def setting(name: str, env_file: str | Path = ".env") -> str | None:
    """The raw value of a setting (``None`` when set nowhere); names are case-insensitive."""
    for key, value in os.environ.items():
        if key.upper() == name.upper():
            return value
    path = Path(env_file)
    if path.is_file():
        for key, found in dotenv_values(path).items():
            if key.upper() == name.upper():
                return found
    return None


def has_bot_token(env_file: str | Path = ".env") -> bool:
    """Whether a BOT_TOKEN is set (not empty, not .env.example's placeholder)."""
    token = (setting("BOT_TOKEN", env_file) or "").strip()
    return bool(token) and token not in PLACEHOLDER_TOKENS
