"""A listing's walk-up and "stop when full" settings, per charger (/listings)."""

from collections.abc import Sequence

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.walkup import FULL_BELOW_CHOICES, FULL_MINUTES_CHOICES, ChargerSettings
from ui.callbacks import ChargerSetCb, ListingAction, ListingCb, WalkupSetting
from ui.i18n import Html, Translator
from ui.views.booking import charger_title


def _next(choices: tuple[int, ...], value: int) -> int:
    """The choice after ``value`` (round), so one button steps through them."""
    later = [c for c in choices if c > value]
    return later[0] if later else choices[0]


def settings_view(
    t: Translator, listing_id: int, chargers: Sequence[ChargerSettings]
) -> tuple[Html, InlineKeyboardMarkup]:
    builder = InlineKeyboardBuilder()
    blocks = []
    for item in chargers:
        charger = item.charger
        n = charger.position + 1
        blocks.append(
            t(
                "walkup.settings_line",
                charger=charger_title(t, charger),
                auto=t("walkup.auto_on") if item.auto else t("walkup.auto_off"),
                below=item.full_below_w,
                minutes=item.full_minutes,
                meter=t("walkup.meter_yes") if item.meters_power else t("walkup.meter_no"),
            )
        )
        steps = (
            (
                t("walkup.btn_auto_off" if item.auto else "walkup.btn_auto_on", n=n),
                WalkupSetting.AUTO,
                0 if item.auto else 1,
            ),
            (
                t("walkup.btn_below", n=n, w=_next(FULL_BELOW_CHOICES, item.full_below_w)),
                WalkupSetting.BELOW,
                _next(FULL_BELOW_CHOICES, item.full_below_w),
            ),
            (
                t("walkup.btn_minutes", n=n, m=_next(FULL_MINUTES_CHOICES, item.full_minutes)),
                WalkupSetting.MINUTES,
                _next(FULL_MINUTES_CHOICES, item.full_minutes),
            ),
        )
        for label, what, value in steps:
            builder.button(
                text=label,
                callback_data=ChargerSetCb(
                    what=what, listing_id=listing_id, charger_id=charger.id, value=value
                ),
            )
    builder.button(
        text=t("walkup.btn_back"),
        callback_data=ListingCb(action=ListingAction.OPEN, listing_id=listing_id),
    )
    builder.adjust(*([3] * len(chargers)), 1)
    body = "\n\n".join(blocks) if blocks else t("walkup.settings_none")
    return t.html("walkup.settings", body=Html(body)), builder.as_markup()
