"""The sandbox's demo world: its people, and a few approved shops around a city centre.

The shops are submitted and approved through the product's own services, so the
moderation group gets its review cards and the merchant the approval and the
printable QR labels, as for any listing.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import func, select, update

from models import Charger, Listing
from services import listings, users
from services.listing_draft import SUPPLY_PRESET, ChargerDraft, ListingDraft
from services.tx import OpenDb, transaction


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    phone: str
    language: str = "en"


# People's Square, Shanghai (the default TIMEZONE is Asia/Shanghai)
CENTRE = (31.2304, 121.4737)
USER = Person(1001, "Lin", "8613800001001")
MERCHANT = Person(2001, "Mia", "8613800002001")
# a plug online on the broker that no charger has yet: the merchant pairs it in the
# wizard (issue #15); its card beside the panes has its own button to press
NEW_PLUGS = (("tasmota", "tasmota_new_1"),)
ADMINS = (Person(901, "Ada", "8613800000901"), Person(902, "Ben", "8613800000902"))
GROUP_ID = -1001234567890
GROUP_TITLE = "ChargeShare moderation"
PEOPLE = (USER, MERCHANT, *ADMINS)

EVERY_DAY = {str(day): [["00:00", "24:00"]] for day in range(7)}

# demo plugs whose battery "fills up" (issue #15): the power falls to a trickle a while
# after each switch-on (sandbox.devices), and their charger calls it full after a
# minute under 10 W, so a walk-up "until full" ends by itself within a few minutes
FILLS_UP = frozenset({"tasmota_bund_1"})
FILLS_UP_FULL_MINUTES = 1


@dataclass(frozen=True)
class DemoShop:
    name: str
    address: str
    latitude: float
    longitude: float
    area_m2: float
    colour: tuple[int, int, int]
    chargers: tuple[ChargerDraft, ...]


def _charger(
    method: str, kinds: list[str], supply: tuple[str, str], price: str, unit: str, plug: str
) -> ChargerDraft:
    driver = "shelly" if plug.startswith("shelly") else "tasmota"
    kind, model = supply
    return ChargerDraft(
        method=method,
        device_kinds=kinds,
        device_models="",
        # a preset kind, as the wizard's button stores it: shown in each reader's language
        supply_kind=SUPPLY_PRESET + kind,
        supply_model=model,
        hours=dict(EVERY_DAY),
        price_unit=unit,
        price=price,
        currency="CNY",
        plug_driver=driver,
        plug_id=plug,
        # the demo's simulated plugs are there from the start: paired as the sandbox opens
        paired_at="2026-01-01T00:00:00+00:00",
    )


SHOPS = (
    DemoShop(
        "Volt Café 伏特咖啡",
        "南京西路 120 号（人民广场旁）· 120 Nanjing West Rd, by People's Square",
        31.2329,
        121.4712,
        45,
        (214, 96, 60),
        (
            _charger(
                "socket",
                ["e_bike", "e_scooter"],
                ("socket", "Sonoff S31"),
                "2.50",
                "hour",
                "tasmota_volt_1",
            ),
            _charger(
                "usb",
                ["phone_laptop"],
                ("usb_hub", "Anker PowerPort"),
                "1.00",
                "hour",
                "shellyplugsg3-volt02",
            ),
        ),
    ),
    DemoShop(
        "Bund Bike Hub 外滩单车站",
        "中山东一路 18 号 · 18 Zhongshan East 1st Rd",
        31.2396,
        121.4903,
        80,
        (52, 120, 200),
        (_charger("socket", ["e_bike"], ("socket", "Nous A1T"), "3.00", "hour", "tasmota_bund_1"),),
    ),
    DemoShop(
        "Xintiandi EV Point 新天地充电站",
        "太仓路 181 号 · 181 Taicang Rd",
        31.2203,
        121.4751,
        300,
        (40, 150, 110),
        (
            _charger(
                "ac_slow",
                ["ev_car"],
                ("wallbox", "Wallbox Pulsar Plus"),
                "1.80",
                "kwh",
                "shellypro1pm-xtd01",
            ),
        ),
    ),
)


def storefront_png(name: str, colour: tuple[int, int, int]) -> bytes:
    """A drawn storefront: a coloured facade with the shop's sign, a door and windows."""
    width, height = 640, 420
    image = Image.new("RGB", (width, height), (235, 238, 242))
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 60, width - 40, height - 30), fill=colour)
    draw.rectangle((60, 80, width - 60, 150), fill=(250, 250, 245))
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont
    font_path = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
    font = (
        ImageFont.truetype(str(font_path), 40)
        if font_path.exists()
        else ImageFont.load_default(size=40)
    )
    # DejaVu has no CJK glyphs: the sign shows the Latin part of a bilingual name
    sign = "".join(c for c in name if ord(c) < 0x2E80).strip() or name
    text_width = draw.textlength(sign, font=font)
    draw.text(((width - text_width) / 2, 92), sign, fill=(40, 40, 40), font=font)
    draw.rectangle((270, 220, 370, height - 30), fill=(70, 55, 45))
    for left in (80, 420):
        draw.rectangle((left, 200, left + 140, 320), fill=(190, 225, 245))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def listing_draft(shop: DemoShop, photo_file_id: str) -> ListingDraft:
    return ListingDraft(
        contact_phone="+" + MERCHANT.phone,
        shop_name=shop.name,
        photo_file_id=photo_file_id,
        area_m2=float(shop.area_m2),
        latitude=shop.latitude,
        longitude=shop.longitude,
        address=shop.address,
        chargers=[ChargerDraft(**vars(charger)) for charger in shop.chargers],
    )


async def seed(
    open_db: OpenDb,
    store_photo: Callable[[bytes], str],  # a PNG → a file_id the bot can send
) -> bool:
    """Create the people and the approved demo shops, once; False when already there."""
    async with open_db() as db:
        if await db.scalar(select(func.count()).select_from(Listing)):
            return False
        for person in PEOPLE:
            await users.touch(db, person.id, person.name, None, person.language)
        for shop in SHOPS:
            file_id = store_photo(storefront_png(shop.name, shop.colour))
            revision = await listings.submit(
                db,
                merchant_id=MERCHANT.id,
                draft=listing_draft(shop, file_id),
                moderation_chat_id=GROUP_ID,
            )
            await listings.approve(
                db,
                revision_id=revision.id,
                admin_id=ADMINS[0].id,
                moderation_chat_id=GROUP_ID,
            )
        async with transaction(db):
            await db.execute(
                update(Charger)
                .where(Charger.plug_id.in_(FILLS_UP))
                .values(full_minutes=FILLS_UP_FULL_MINUTES)
            )
    return True
