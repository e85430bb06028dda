"""/newlisting: the merchant's listing wizard, one question at a time.

Every step validates its answer where it is given; a wrong answer is explained
and the same question asked again, with nothing typed before lost (the FSM
data lives in the database). "Back" goes one step back, "Keep" keeps what was
there. The end is a summary: Submit / Edit / Cancel. Editing an existing
listing (from /listings) starts at that summary.

The answers (the draft) are kept under a storage key of their own (aiogram's
``destiny``), not in the conversation's data: other flows (/find, a booking, a
merchant's typed reason) clear or overwrite the conversation, never the draft.
Only the wizard's "Cancel", "Start over" or a submission discard it; /cancel
leaves the wizard with the draft kept, and /newlisting offers to continue it.
"""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from handlers.filters import Magic
from services import listings
from services.errors import InvalidInput
from services.hours import parse_hours
from services.listing_draft import (
    CHARGING_METHODS,
    DEVICE_KINDS,
    MAX_CHARGERS,
    PLUG_DRIVERS,
    PRICE_UNITS,
    SUPPLY_KINDS,
    SUPPLY_PRESET,
    ChargerDraft,
    ListingDraft,
    new_plug_id,
    parse_area,
    parse_coordinates,
    parse_phone,
    parse_plug_id,
    parse_power,
    parse_price,
    parse_text,
    price_example,
)
from services.pairing import Pairing, PairResult
from services.text import clean
from services.tx import Db
from ui import keyboards
from ui.callbacks import PairCb, WizardAction, WizardCb
from ui.config import Config
from ui.i18n import Translator, all_variants, keys_by_label
from ui.views.listing import fit, listing_text
from ui.views.pairing import outcome_text, pair_button, plug_fingerprint, setup_text


class ListingForm(StatesGroup):
    contact = State()
    shop_name = State()
    photo = State()
    area = State()
    location = State()
    address = State()
    method = State()
    kinds = State()
    models = State()
    supply_kind = State()
    supply_model = State()
    power = State()
    hours = State()
    price_unit = State()
    price = State()
    plug_driver = State()
    plug_id = State()
    pair = State()  # pairing the plug just named failed: try again, by button, or later
    more = State()
    summary = State()


SHOP_STEPS = ("contact", "shop_name", "photo", "area", "location", "address")
CHARGER_STEPS = (
    "method", "kinds", "models", "supply_kind", "supply_model", "power",
    "hours", "price_unit", "price", "plug_driver", "plug_id",
)  # fmt: skip
# the summary's Edit menu offers the shop steps by these labels
FIELD_LABELS = tuple(f"field.{step}" for step in SHOP_STEPS)
SUPPLY_SUGGESTIONS = tuple(f"supply.{code}" for code in SUPPLY_KINDS)
HOURS_SHORTCUTS = ("hours.shortcut_daily", "hours.shortcut_always", "hours.shortcut_weekdays")

NEXT, STAY = "next", "stay"


DRAFT_DESTINY = "listing_draft"
_WIZARD_STATE = f"{ListingForm.__name__}:"


def in_wizard(state_name: str | None) -> bool:
    return bool(state_name and state_name.startswith(_WIZARD_STATE))


def _drafts(state: FSMContext) -> FSMContext:
    """The same person and chat's draft: a key of its own in the same storage."""
    return FSMContext(storage=state.storage, key=replace(state.key, destiny=DRAFT_DESTINY))


@dataclass
class Wizard:
    """The wizard's draft and where it stands, typed."""

    draft: ListingDraft
    ci: int = 0  # index of the charger being filled in
    mode: str = "new"  # new | field (one shop field from the summary) | charger
    listing_id: int | None = None  # set when editing an existing listing
    summary_id: int | None = None  # the summary message whose buttons are current
    submission_key: str | None = None  # one per summary shown: Submit acts once
    step: str = "contact"  # the question last asked, where "Continue" goes back to

    @classmethod
    def _of(cls, data: dict[str, Any]) -> "Wizard":
        return cls(
            draft=ListingDraft.from_dict(data.get("draft", {})),
            ci=data.get("ci", 0),
            mode=data.get("mode", "new"),
            listing_id=data.get("listing_id"),
            summary_id=data.get("summary_id"),
            submission_key=data.get("submission_key"),
            step=data.get("step", "contact"),
        )

    @classmethod
    async def stored(cls, state: FSMContext) -> "Wizard | None":
        """The kept draft, if there is one."""
        data = await _drafts(state).get_data()
        if not data:
            # a wizard begun before drafts had their own key kept them in the
            # conversation's data
            current = await state.get_state()
            if not in_wizard(current):
                return None
            data = await state.get_data()
            if "draft" not in data:
                return None
            data = {**data, "step": _step_of(current)}
        return cls._of(data)

    @classmethod
    async def load(cls, state: FSMContext) -> "Wizard":
        return await cls.stored(state) or cls(draft=ListingDraft())

    async def save(self, state: FSMContext) -> None:
        await _drafts(state).set_data({
            "draft": self.draft.to_dict(), "ci": self.ci, "mode": self.mode,
            "listing_id": self.listing_id, "summary_id": self.summary_id,
            "submission_key": self.submission_key, "step": self.step,
        })  # fmt: skip

    def has_answers(self) -> bool:
        return self.listing_id is not None or self.draft != ListingDraft()

    @property
    def charger(self) -> ChargerDraft:
        return self.draft.chargers[self.ci]

    def add_charger(self) -> None:
        self.draft.chargers.append(ChargerDraft())
        self.ci = len(self.draft.chargers) - 1


async def discard(state: FSMContext) -> None:
    """Drop the draft, and leave the wizard if the conversation is in it (not the
    flow the person went on to, when they submit or cancel an older summary)."""
    await _drafts(state).clear()
    if in_wizard(await state.get_state()):
        await state.clear()


def _label(key: str) -> set[str]:
    return all_variants(key)


def _step_of(state: str | None) -> str:
    return (state or "").split(":", 1)[-1]


# ----------------------------------------------------------------- prompts


def _nav(t: Translator, *, keep: bool, back: bool = True) -> list[list[str]]:
    rows = [[t("btn.keep")]] if keep else []
    rows.append([t("btn.back"), t("btn.cancel")] if back else [t("btn.cancel")])
    return rows


# where each step keeps its answer, for "Keep" and for showing the current value
SHOP_FIELDS = {
    "contact": "contact_phone", "shop_name": "shop_name", "photo": "photo_file_id",
    "area": "area_m2", "location": "latitude", "address": "address",
}  # fmt: skip
CHARGER_FIELDS = {
    "method": "method", "models": "device_models", "supply_kind": "supply_kind",
    "supply_model": "supply_model", "power": "power_kw", "hours": "hours",
    "price_unit": "price_unit", "price": "price", "plug_driver": "plug_driver",
    "plug_id": "plug_id",
}  # fmt: skip


def _current(step: str, wiz: Wizard) -> Any:
    if step in SHOP_FIELDS:
        return getattr(wiz.draft, SHOP_FIELDS[step])
    if step in CHARGER_FIELDS and wiz.ci < len(wiz.draft.chargers):
        return getattr(wiz.charger, CHARGER_FIELDS[step])
    return None


def prompt(
    step: str, wiz: Wizard, t: Translator, config: Config
) -> tuple[str, ReplyKeyboardMarkup]:
    keep = step in KEEPABLE and _current(step, wiz) is not None
    nav = _nav(t, keep=keep, back=step != "contact")
    n = wiz.ci + 1
    rows: list[Sequence[str | KeyboardButton]] = []
    match step:
        case "contact":
            rows = [[KeyboardButton(text=t("btn.share_contact"), request_contact=True)]]
            text = t("ask.contact")
        case "location":
            rows = [[KeyboardButton(text=t("btn.share_location"), request_location=True)]]
            text = (
                t("ask.location_pin", address=wiz.draft.address)
                if wiz.draft.address and wiz.draft.latitude is None
                else t("ask.location")
            )
        case "address":
            rows = [[t("btn.skip")]]
            text = t("ask.address")
        case "method":
            rows = [*keyboards.chunk([t(f"method.{m}") for m in CHARGING_METHODS], 2)]
            text = t("ask.method", n=n)
        case "kinds":
            chosen = wiz.charger.device_kinds
            labels = [("✅ " if k in chosen else "") + t(f"kind.{k}") for k in DEVICE_KINDS]
            rows = [*keyboards.chunk(labels, 2), [t("btn.done")]]
            selected = t.join(t(f"kind.{k}") for k in chosen) or "—"
            text = t("ask.kinds", n=n, selected=selected)
        case "models":
            rows = [[t("btn.any_model")]]
            text = t("ask.models")
        case "supply_kind":
            rows = [*keyboards.chunk([t(k) for k in SUPPLY_SUGGESTIONS], 2)]
            text = t("ask.supply_kind")
        case "hours":
            rows = [[t(k)] for k in HOURS_SHORTCUTS]
            text = t("ask.hours")
        case "price_unit":
            rows = [[t(f"unit.{u}") for u in PRICE_UNITS]]
            text = t("ask.price_unit")
        case "price":
            text = t(
                "ask.price",
                unit=t(f"unit.{wiz.charger.price_unit or 'hour'}"),
                currency=t.currency(config.currency),
                example=price_example(config.currency),
            )
        case "plug_driver":
            rows = [[t(f"driver.{d}") for d in PLUG_DRIVERS]]
            text = t("ask.plug_driver")
        case "plug_id":
            rows = [[t("pairing.btn_no_plug")]]
            text = t(f"ask.plug_id_{wiz.charger.plug_driver or 'tasmota'}")
        case "pair":
            rows = [[t("pairing.btn_retry")], [t("pairing.btn_button")], [t("pairing.btn_later")]]
            text = t("pairing.options")
        case "more":
            rows = [[t("btn.add_charger")], [t("btn.to_summary")]]
            text = t("ask.more", count=len(wiz.draft.chargers))
        case _:
            text = t(f"ask.{step}")
    if keep:
        text += "\n" + t("ask.keep_hint")
    return text, keyboards.reply([*rows, *nav])


async def ask(
    message: Message, step: str, wiz: Wizard, state: FSMContext, t: Translator, config: Config
) -> None:
    wiz.step = step
    await wiz.save(state)
    if step == "summary":
        await show_summary(message, wiz, state, t)
        return
    await state.set_state(getattr(ListingForm, step))
    text, markup = prompt(step, wiz, t, config)
    await message.answer(text, reply_markup=markup)


async def show_summary(message: Message, wiz: Wizard, state: FSMContext, t: Translator) -> None:
    wiz.mode, wiz.step = "new", "summary"
    await state.set_state(ListingForm.summary)
    await message.answer(t("summary.intro"), reply_markup=ReplyKeyboardRemove())
    sent = await message.answer(
        fit(t("summary.text", body=listing_text(t, wiz.draft))), reply_markup=keyboards.summary(t)
    )
    wiz.summary_id = sent.message_id
    wiz.submission_key = uuid.uuid4().hex
    await wiz.save(state)


# ------------------------------------------------------------- transitions


def next_step(step: str, wiz: Wizard) -> str:
    if step in SHOP_STEPS:
        if step == "location":
            return "address"
        if wiz.mode == "field":
            return "summary"
        if step == "address":
            if not wiz.draft.chargers:
                wiz.add_charger()
            return "method"
        return SHOP_STEPS[SHOP_STEPS.index(step) + 1]
    if step in ("plug_id", "pair"):
        return "summary" if wiz.mode == "charger" else "more"
    return CHARGER_STEPS[CHARGER_STEPS.index(step) + 1]


def previous_step(step: str, wiz: Wizard) -> str | None:
    if step == "contact":
        return None
    if step in SHOP_STEPS:
        if wiz.mode == "field" and step != "address":
            return "summary"
        return SHOP_STEPS[SHOP_STEPS.index(step) - 1]
    if step == "more":
        wiz.ci = len(wiz.draft.chargers) - 1
        return "plug_id"
    if step == "pair":
        return "plug_id"
    if step == "method":
        # a new charger with nothing but (at most) its method is dropped; one
        # with more answers, or an existing one, is kept for the summary
        if wiz.charger.id is None and len(wiz.charger.missing()) >= _ALL_BUT_METHOD:
            del wiz.draft.chargers[wiz.ci]
            wiz.ci = max(0, len(wiz.draft.chargers) - 1)
        if wiz.mode == "charger":
            return "summary"
        return "more" if wiz.draft.chargers else "address"
    return CHARGER_STEPS[CHARGER_STEPS.index(step) - 1]


_ALL_BUT_METHOD = len(ChargerDraft().missing()) - 1

# ------------------------------------------------------------------ parsers
# Each parser reads the answer for its step, stores it in the wizard, and says
# whether to move on (NEXT), ask again (STAY) or jump to a named step.

Parser = Callable[[Message, Wizard, Translator, Config], str]


def _text(message: Message, error: str = "err.expected_text") -> str:
    if not message.text:
        raise InvalidInput(error)
    return message.text


def _choice(message: Message, prefix: str, codes: tuple[str, ...], error: str) -> str:
    code = keys_by_label(f"{prefix}.{c}" for c in codes).get((message.text or "").strip())
    if code is None:
        raise InvalidInput(error)
    return code.removeprefix(f"{prefix}.")


def _contact(message: Message, wiz: Wizard, t: Translator, s: Config) -> str:
    if message.contact:
        # Telegram gives a shared contact's number in international form without "+"
        phone = message.contact.phone_number
        phone = phone if phone.startswith("+") else f"+{phone}"
    else:
        phone = _text(message, "err.phone")
    wiz.draft.contact_phone = parse_phone(phone)
    return NEXT


def _shop_name(message: Message, wiz: Wizard, t: Translator, s: Config) -> str:
    wiz.draft.shop_name = parse_text(_text(message), max_len=64, min_len=2)
    return NEXT


def _photo(message: Message, wiz: Wizard, t: Translator, s: Config) -> str:
    if not message.photo:
        raise InvalidInput("err.photo_as_file" if message.document else "err.photo")
    wiz.draft.photo_file_id = message.photo[-1].file_id
    return NEXT


def _area(message: Message, wiz: Wizard, t: Translator, s: Config) -> str:
    wiz.draft.area_m2 = parse_area(_text(message, "err.area"))
    return NEXT


def _location(message: Message, wiz: Wizard, t: Translator, s: Config) -> str:
    if message.venue:
        point = message.venue.location
        wiz.draft.address = parse_text(message.venue.address or message.venue.title, max_len=256)
        wiz.draft.latitude, wiz.draft.longitude = parse_coordinates(point.latitude, point.longitude)
        return "summary" if wiz.mode == "field" else _after_address(wiz)
    if message.location:
        point = message.location
        wiz.draft.latitude, wiz.draft.longitude = parse_coordinates(point.latitude, point.longitude)
        if wiz.draft.address:  # typed before the pin
            return "summary" if wiz.mode == "field" else _after_address(wiz)
        return NEXT
    # an address typed first: keep it and ask for the pin that goes with it
    wiz.draft.address = parse_text(_text(message, "err.location"), max_len=256, min_len=3)
    wiz.draft.latitude = wiz.draft.longitude = None
    return STAY


def _after_address(wiz: Wizard) -> str:
    return next_step("address", wiz)


def _address(message: Message, wiz: Wizard, t: Translator, s: Config) -> str:
    text = _text(message)
    wiz.draft.address = (
        None if text in _label("btn.skip") else parse_text(text, max_len=256, min_len=3)
    )
    return NEXT


def _method(message: Message, wiz: Wizard, t: Translator, s: Config) -> str:
    wiz.charger.method = _choice(message, "method", CHARGING_METHODS, "err.choose_button")
    return NEXT


def _kinds(message: Message, wiz: Wizard, t: Translator, s: Config) -> str:
    text = (message.text or "").strip()
    if text in _label("btn.done"):
        if not wiz.charger.device_kinds:
            raise InvalidInput("err.kinds_empty")
        return NEXT
    code = keys_by_label(f"kind.{k}" for k in DEVICE_KINDS).get(text.removeprefix("✅ ").strip())
    if code is None:
        raise InvalidInput("err.choose_button")
    kind = code.removeprefix("kind.")
    chosen = wiz.charger.device_kinds
    wiz.charger.device_kinds = (
        [k for k in chosen if k != kind]
        if kind in chosen
        else [k for k in DEVICE_KINDS if k in chosen or k == kind]
    )
    return STAY


def _models(message: Message, wiz: Wizard, t: Translator, s: Config) -> str:
    text = _text(message)
    wiz.charger.device_models = (
        "" if text in _label("btn.any_model") else parse_text(text, max_len=200)
    )
    return NEXT


def _supply_kind(message: Message, wiz: Wizard, t: Translator, s: Config) -> str:
    text = _text(message)
    # a preset's button (in either language) is stored as its code, to be shown in
    # the reader's language; anything else is the merchant's own words
    code = keys_by_label(SUPPLY_SUGGESTIONS).get(text.strip())
    wiz.charger.supply_kind = (
        SUPPLY_PRESET + code.removeprefix("supply.")
        if code
        else parse_text(text, max_len=64, min_len=2)
    )
    return NEXT


def _supply_model(message: Message, wiz: Wizard, t: Translator, s: Config) -> str:
    wiz.charger.supply_model = parse_text(_text(message), max_len=64)
    return NEXT


def _power(message: Message, wiz: Wizard, t: Translator, s: Config) -> str:
    # asked of every charger: a per-kWh booking is prepaid on it, and riders see it
    wiz.charger.power_kw = parse_power(_text(message, "err.power"))
    return NEXT


def _hours(message: Message, wiz: Wizard, t: Translator, s: Config) -> str:
    # one clause a line is allowed, so line breaks stay
    text = clean(_text(message, "err.hours_format"), max_len=1000, multiline=True)
    wiz.charger.hours = parse_hours(text)
    return NEXT


def _price_unit(message: Message, wiz: Wizard, t: Translator, s: Config) -> str:
    wiz.charger.price_unit = _choice(message, "unit", PRICE_UNITS, "err.choose_button")
    return NEXT


def _price(message: Message, wiz: Wizard, t: Translator, s: Config) -> str:
    if not message.text:
        raise InvalidInput("err.price", currency=s.currency, example=price_example(s.currency))
    wiz.charger.price, wiz.charger.currency = parse_price(message.text, s.currency)
    return NEXT


def _plug_driver(message: Message, wiz: Wizard, t: Translator, s: Config) -> str:
    driver = _choice(message, "driver", PLUG_DRIVERS, "err.choose_button")
    if driver != wiz.charger.plug_driver:
        wiz.charger.plug_id = None  # an id of the other family means nothing
        wiz.charger.paired_at, wiz.charger.plug_later = None, False
    wiz.charger.plug_driver = driver
    return NEXT


NO_PLUG = "no_plug"


def _plug_id(message: Message, wiz: Wizard, t: Translator, s: Config) -> str:
    driver = wiz.charger.plug_driver or "tasmota"
    charger = wiz.charger
    if (message.text or "").strip() in _label("pairing.btn_no_plug"):
        # the bot names the plug-to-be; the merchant sets it up from the instructions
        charger.plug_id, charger.paired_at, charger.plug_later = new_plug_id(), None, True
        return NO_PLUG
    charger.plug_id = parse_plug_id(_text(message, f"err.plug_id_{driver}"), driver)
    charger.paired_at, charger.plug_later = None, False  # proven now, below
    return NEXT


def _more(message: Message, wiz: Wizard, t: Translator, s: Config) -> str:
    text = _text(message)
    if text in _label("btn.to_summary"):
        return "summary"
    if text in _label("btn.add_charger"):
        if len(wiz.draft.chargers) >= MAX_CHARGERS:
            raise InvalidInput("err.too_many_chargers", max=MAX_CHARGERS)
        wiz.add_charger()
        return "method"
    raise InvalidInput("err.choose_button")


PARSERS: dict[str, Parser] = {
    "contact": _contact, "shop_name": _shop_name, "photo": _photo, "area": _area,
    "location": _location, "address": _address, "method": _method, "kinds": _kinds,
    "models": _models, "supply_kind": _supply_kind, "supply_model": _supply_model,
    "power": _power,
    "hours": _hours, "price_unit": _price_unit, "price": _price,
    "plug_driver": _plug_driver, "plug_id": _plug_id, "more": _more,
}  # fmt: skip
# the answers a step may keep unchanged with the Keep button
KEEPABLE = frozenset(SHOP_FIELDS) - {"address"} | frozenset(CHARGER_FIELDS)

# ----------------------------------------------------------------- handlers


async def new_listing(message: Message, state: FSMContext, t: Translator, config: Config) -> None:
    kept = await Wizard.stored(state)
    if kept is not None and kept.has_answers():
        # never throw away answers silently: continue, or start over on purpose
        await message.answer(t("wizard.resume"), reply_markup=keyboards.resume_or_restart(t))
        return
    await state.clear()
    await message.answer(t("wizard.intro"))
    await ask(message, "contact", Wizard(draft=ListingDraft()), state, t, config)


async def resume_or_restart(
    query: CallbackQuery,
    callback_data: WizardCb,
    state: FSMContext,
    t: Translator,
    config: Config,
) -> None:
    await query.answer()
    assert isinstance(query.message, Message)
    kept = await Wizard.stored(state)
    if callback_data.action == WizardAction.RESUME and kept is not None:
        resumable = kept.step in ("summary", "pair") or kept.step in PARSERS
        step = kept.step if resumable else "contact"
        await ask(query.message, step, kept, state, t, config)
        return
    await discard(state)
    await state.clear()
    await ask(query.message, "contact", Wizard(draft=ListingDraft()), state, t, config)


async def answer(
    message: Message,
    state: FSMContext,
    db: Db,
    t: Translator,
    config: Config,
    pairing: Pairing,
) -> None:
    step = _step_of(await state.get_state())
    wiz = await Wizard.load(state)
    text = (message.text or "").strip()
    if text in _label("btn.cancel"):
        await cancel_wizard(message, state, t)
        return
    if text in _label("btn.back"):
        target = previous_step(step, wiz)
        if target is None:
            await message.answer(t("wizard.first_step"))
            return
        await ask(message, target, wiz, state, t, config)
        return
    if text in _label("btn.keep") and step in KEEPABLE and _current(step, wiz) is not None:
        await ask(message, next_step(step, wiz), wiz, state, t, config)
        return
    # a refused answer (InvalidInput) is said by handlers/errors.py and the same
    # question stays; the draft in storage is untouched: only an answer taken is saved
    if step == "pair":
        await ask(message, await _pair_step(message, wiz, state, pairing, t), wiz, state, t, config)
        return
    outcome = PARSERS[step](message, wiz, t, config)
    if step == "plug_id":  # checkable here: not another charger's plug
        await listings.check_plug(db, wiz.draft, wiz.ci, wiz.listing_id)
        if outcome == NO_PLUG:
            await _instructions(message, wiz, pairing, t)
            outcome = NEXT
        else:
            outcome = await _pair(message, wiz, state, pairing, t)
    targets = {STAY: lambda: step, NEXT: lambda: next_step(step, wiz)}
    target = targets.get(outcome, lambda: outcome)()
    await ask(message, target, wiz, state, t, config)


# ------------------------------------------------------------------ pairing


async def _pair(
    message: Message, wiz: Wizard, state: FSMContext, pairing: Pairing, t: Translator
) -> str:
    """Prove control of the plug just named: NEXT when paired, else the pair step."""
    charger = wiz.charger
    plug = charger.plug_id or ""
    await wiz.save(state)  # the plug id typed is kept while the plug is tried
    await message.answer(t("pairing.checking", plug=plug))
    result = await pairing.prove_by_switching(charger.plug_driver or "tasmota", plug)
    return await _proven(message, wiz, result, pairing, t)


async def _proven(
    message: Message, wiz: Wizard, result: PairResult, pairing: Pairing, t: Translator
) -> str:
    charger = wiz.charger
    text = outcome_text(t, result, charger.plug_id or "", int(pairing.button_timeout))
    await message.answer(text)
    if result.paired and result.at is not None:
        charger.paired_at, charger.plug_later = result.at.isoformat(), False
        return NEXT
    return "pair"


async def _pair_step(
    message: Message, wiz: Wizard, state: FSMContext, pairing: Pairing, t: Translator
) -> str:
    """The answer to "pair now or later" after a proof that failed."""
    text = (message.text or "").strip()
    charger = wiz.charger
    if text in _label("pairing.btn_retry"):
        outcome = await _pair(message, wiz, state, pairing, t)
    elif text in _label("pairing.btn_button"):
        await message.answer(
            t("pairing.press_now", plug=charger.plug_id, seconds=int(pairing.button_timeout))
        )
        result = await pairing.prove_by_button(
            charger.plug_driver or "tasmota", charger.plug_id or ""
        )
        outcome = await _proven(message, wiz, result, pairing, t)
    elif text in _label("pairing.btn_later"):
        charger.paired_at, charger.plug_later = None, True
        await _instructions(message, wiz, pairing, t)
        outcome = NEXT
    else:
        raise InvalidInput("err.choose_button")
    return next_step("pair", wiz) if outcome == NEXT else "pair"


async def _instructions(message: Message, wiz: Wizard, pairing: Pairing, t: Translator) -> None:
    """How to set the plug up (with its own broker account when the bot can make one),
    and the Pair button for when it is ready."""
    charger = wiz.charger
    driver, plug = charger.plug_driver or "tasmota", charger.plug_id or ""
    setup = await pairing.setup(driver, plug)
    await message.answer(t("pairing.later", n=wiz.ci + 1))
    await message.answer(
        setup_text(t, wiz.ci + 1, setup), reply_markup=pair_button(t, driver, plug)
    )


async def pair_pressed(
    query: CallbackQuery,
    callback_data: PairCb,
    state: FSMContext,
    db: Db,
    t: Translator,
    pairing: Pairing,
) -> None:
    """The Pair button under a plug's instructions: the plug of one of the presser's
    drafts or public chargers (anyone else's is refused), proven by switching."""
    merchant = query.from_user.id
    wiz = await Wizard.stored(state)
    drafted = [
        (c.plug_driver, c.plug_id)
        for c in (wiz.draft.chargers if wiz is not None else [])
        if c.plug_driver and c.plug_id
    ]
    public = await listings.owned_plugs(db, merchant_id=merchant)
    found = next((p for p in (*drafted, *public) if plug_fingerprint(*p) == callback_data.fp), None)
    if found is None:
        await query.answer(t("pairing.err_not_yours"), show_alert=True)
        return
    driver, plug = found
    await query.answer()
    assert isinstance(query.message, Message)
    await query.message.answer(t("pairing.checking", plug=plug))
    result = await pairing.prove_by_switching(driver, plug)
    await query.message.answer(outcome_text(t, result, plug, int(pairing.button_timeout)))
    if not result.paired or result.at is None:
        return
    if wiz is not None:
        wiz = await Wizard.stored(state) or wiz  # as it is now, after the wait
        for charger in wiz.draft.chargers:
            if (charger.plug_driver, charger.plug_id) == found:
                charger.paired_at, charger.plug_later = result.at.isoformat(), False
        await wiz.save(state)
    if await listings.mark_paired(
        db, merchant_id=merchant, driver=driver, plug_id=plug, at=result.at
    ):
        await query.message.answer(t("pairing.paired_public", plug=plug))


async def cancel_wizard(message: Message, state: FSMContext, t: Translator) -> None:
    wiz = await Wizard.load(state)
    await discard(state)
    key = "wizard.cancelled_edit" if wiz.listing_id else "wizard.cancelled"
    await message.answer(t(key), reply_markup=ReplyKeyboardRemove())


# ------------------------------------------------------- summary and edits


async def _summary_guard(query: CallbackQuery, state: FSMContext, t: Translator) -> Wizard | None:
    """The summary's buttons act only on the latest summary of the kept draft
    (also after the person went on to another flow meanwhile)."""
    wiz = await Wizard.load(state)
    if query.message is None or query.message.message_id != wiz.summary_id or wiz.step != "summary":
        await query.answer(t("err.stale_button"), show_alert=True)
        return None
    return wiz


async def submit(
    query: CallbackQuery,
    state: FSMContext,
    db: Db,
    t: Translator,
    config: Config,
) -> None:
    wiz = await _summary_guard(query, state, t)
    if wiz is None:
        return
    assert isinstance(query.message, Message)
    revision = await listings.submit(
        db,
        merchant_id=query.from_user.id,
        draft=wiz.draft,
        moderation_chat_id=config.moderation_chat_id,
        listing_id=wiz.listing_id,
        submission_key=wiz.submission_key,
        max_under_review=config.max_listings_under_review,
    )
    await discard(state)
    await query.answer(t("wizard.submitted_alert"))
    await query.message.edit_reply_markup(reply_markup=None)
    await query.message.answer(t("wizard.submitted", id=revision.listing_id))


async def cancel_from_summary(query: CallbackQuery, state: FSMContext, t: Translator) -> None:
    if await _summary_guard(query, state, t) is None:
        return
    assert isinstance(query.message, Message)
    await query.answer()
    await query.message.edit_reply_markup(reply_markup=None)
    await cancel_wizard(query.message, state, t)


async def toggle_edit_menu(
    query: CallbackQuery, callback_data: WizardCb, state: FSMContext, t: Translator
) -> None:
    wiz = await _summary_guard(query, state, t)
    if wiz is None:
        return
    assert isinstance(query.message, Message)
    await query.answer()
    markup = (
        keyboards.edit_menu(t, FIELD_LABELS, len(wiz.draft.chargers))
        if callback_data.action == WizardAction.EDIT
        else keyboards.summary(t)
    )
    await query.message.edit_reply_markup(reply_markup=markup)


async def edit_part(
    query: CallbackQuery,
    callback_data: WizardCb,
    state: FSMContext,
    t: Translator,
    config: Config,
) -> None:
    wiz = await _summary_guard(query, state, t)
    if wiz is None:
        return
    assert isinstance(query.message, Message)
    action, arg = callback_data.action, callback_data.arg
    chargers = wiz.draft.chargers
    if action in {"charger", "remove"} and not 0 <= arg < len(chargers):
        await query.answer(t("err.stale_button"), show_alert=True)
        return
    if action == "field" and not 0 <= arg < len(SHOP_STEPS):
        await query.answer(t("err.stale_button"), show_alert=True)
        return
    await query.answer()
    await query.message.edit_reply_markup(reply_markup=None)
    wiz.summary_id = None
    if action == "remove":
        if len(chargers) == 1:
            await query.message.answer(t("err.last_charger"))
        else:
            del chargers[arg]
        await show_summary(query.message, wiz, state, t)
        return
    if action == "add":
        if len(chargers) >= MAX_CHARGERS:
            await query.message.answer(t("err.too_many_chargers", max=MAX_CHARGERS))
            await show_summary(query.message, wiz, state, t)
            return
        wiz.add_charger()
        wiz.mode = "charger"
        step = "method"
    elif action == "charger":
        wiz.ci, wiz.mode, step = arg, "charger", "method"
    else:
        wiz.mode, step = "field", SHOP_STEPS[arg]
    await ask(query.message, step, wiz, state, t, config)


async def stale_wizard_button(query: CallbackQuery, t: Translator) -> None:
    await query.answer(t("err.stale_button"), show_alert=True)


async def start_edit(
    message: Message, state: FSMContext, t: Translator, listing_id: int, draft: ListingDraft
) -> None:
    """Open an existing listing's latest version in the wizard, at its summary.

    An unfinished listing or another edit is not thrown away for it: the
    merchant is asked to finish or cancel that first.
    """
    kept = await Wizard.stored(state)
    elsewhere = kept is not None and (kept.listing_id != listing_id or kept.step != "summary")
    if elsewhere and kept is not None and kept.has_answers():
        await message.answer(t("wizard.busy"), reply_markup=keyboards.resume_or_restart(t))
        return
    await state.clear()
    wiz = Wizard(draft=draft, listing_id=listing_id)
    await show_summary(message, wiz, state, t)


async def start_pressed(
    query: CallbackQuery, state: FSMContext, t: Translator, config: Config
) -> None:
    """/start's "List my chargers": what /newlisting does (a kept draft is offered)."""
    await query.answer()
    assert isinstance(query.message, Message)
    await new_listing(query.message, state, t, config)


def build_router() -> Router:
    router = Router(name="listing_wizard")
    router.message.filter(Magic(F.chat.type == "private"))
    router.callback_query.filter(Magic(F.message.chat.type == "private"))
    router.message.register(new_listing, Command("newlisting"))
    router.callback_query.register(start_pressed, WizardCb.filter(F.action == WizardAction.START))
    router.callback_query.register(
        resume_or_restart,
        WizardCb.filter(F.action.in_({WizardAction.RESUME, WizardAction.RESTART})),
    )
    router.message.register(
        answer,
        StateFilter(*(getattr(ListingForm, step) for step in PARSERS), ListingForm.pair),
        Magic(~F.text.startswith("/")),  # a command mid-wizard is a command, not an answer
    )
    # the summary's buttons: _summary_guard checks them against the kept draft, so
    # they work whatever flow the conversation went on to since
    router.callback_query.register(submit, WizardCb.filter(F.action == WizardAction.SUBMIT))
    router.callback_query.register(
        cancel_from_summary, WizardCb.filter(F.action == WizardAction.CANCEL)
    )
    router.callback_query.register(
        toggle_edit_menu, WizardCb.filter(F.action.in_({WizardAction.EDIT, WizardAction.BACK}))
    )
    router.callback_query.register(
        edit_part,
        WizardCb.filter(
            F.action.in_(
                {WizardAction.FIELD, WizardAction.CHARGER, WizardAction.REMOVE, WizardAction.ADD}
            )
        ),
    )
    router.callback_query.register(stale_wizard_button, WizardCb.filter())
    router.callback_query.register(pair_pressed, PairCb.filter())
    return router
