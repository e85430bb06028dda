"""Pairing a plug: the outcome of a proof, the set-up instructions, the Pair button."""

import hashlib

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.pairing import AccountStatus, PairOutcome, PairResult, PlugSetup
from ui.callbacks import PairCb
from ui.i18n import Html, Translator


def plug_fingerprint(driver: str, plug_id: str) -> str:
    return hashlib.sha256(f"{driver}:{plug_id}".encode()).hexdigest()[:10]


def outcome_text(t: Translator, result: PairResult, plug: str, button_seconds: int) -> str:
    match result.outcome:
        case PairOutcome.PAIRED:
            return t("pairing.paired", plug=plug)
        case PairOutcome.NO_PRESS:
            return t("pairing.no_press", plug=plug, seconds=button_seconds)
        case outcome:
            return t(f"pairing.{outcome.value}", plug=plug)


def setup_text(t: Translator, n: int, setup: PlugSetup) -> str:
    if setup.status is AccountStatus.CREATED and setup.password is not None:
        password = t.html("plug_setup.password_once", password=setup.password)
    elif setup.status is AccountStatus.FAILED:
        password = t.html("plug_setup.password_failed", user=setup.user)
    else:
        password = t.html("plug_setup.password_admin", user=setup.user)
    return t(
        f"plug_setup.{setup.driver}",
        n=n,
        host=setup.host,
        port=setup.port,
        user=setup.user,
        password=Html(password),
        topic=setup.topic,
    )


def pair_button(t: Translator, driver: str, plug_id: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=t("pairing.btn_pair", plug=plug_id),
        callback_data=PairCb(fp=plug_fingerprint(driver, plug_id)),
    )
    return builder.as_markup()
