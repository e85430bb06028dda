"""Natural Chinese end to end (issue #16): a typed place in Chinese or English finds
the demo shops (SQLite and PostgreSQL); a Chinese rider finds a shop by its Chinese
street, books it with "明天上午9点-11点" and reads prices in 元, days as 周一…周日 and
the supply device in Chinese, while an English rider reads the same charger in
English."""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import Charger, User
from models.db import create_engine, create_session_factory
from sandbox import demo
from services import listings, search
from services.tx import transaction
from tests import factories
from tests.botapi import FakeBotAPI, buttons, plain
from tests.harness import ADMINS, GROUP, BotHarness, start_api

Sessions = async_sessionmaker[AsyncSession]


@pytest.mark.parametrize(
    ("typed", "shop"),
    [
        ("南京西路", "Volt Café 伏特咖啡"),
        ("人民广场", "Volt Café 伏特咖啡"),
        ("上海市黄浦区南京西路120号", "Volt Café 伏特咖啡"),
        ("Nanjing West Road", "Volt Café 伏特咖啡"),
        ("120 nanjing west rd", "Volt Café 伏特咖啡"),
        ("伏特咖啡", "Volt Café 伏特咖啡"),
        ("中山东一路", "Bund Bike Hub 外滩单车站"),
        ("外滩", "Bund Bike Hub 外滩单车站"),
        ("zhongshan east", "Bund Bike Hub 外滩单车站"),
        ("新天地", "Xintiandi EV Point 新天地充电站"),
        ("Taicang Road 181", "Xintiandi EV Point 新天地充电站"),
    ],
)
async def test_a_typed_place_finds_the_demo_shop(open_db: Sessions, typed: str, shop: str) -> None:
    assert await demo.seed(open_db, lambda png: "photo")
    async with open_db() as db:
        found = await search.by_text(db, typed)
    assert [listing.shop_name for listing in found] == [shop]


@pytest.mark.parametrize("typed", ["北京东路", "Beijing Road", "%", "Nanjing East Road"])
async def test_a_place_no_shop_is_at_finds_nothing(open_db: Sessions, typed: str) -> None:
    assert await demo.seed(open_db, lambda png: "photo")
    async with open_db() as db:
        assert await search.by_text(db, typed) == []


MERCHANT, RIDER_ZH, RIDER_EN = 1001, 2001, 2002


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = await start_api(
        (MERCHANT, "Mia", "en"), (RIDER_ZH, "小林", "zh"), (RIDER_EN, "Ravi", "en")
    )
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: FakeBotAPI, database_url: str) -> AsyncIterator[BotHarness]:
    harness = BotHarness(api, database_url)
    await harness.start()
    yield harness
    await harness.stop()


async def seed(bot: BotHarness, database_url: str) -> None:
    """An approved shop whose charger's supply kind a Chinese merchant picked from the
    buttons before presets were stored as codes (the label "智能插座" is stored)."""
    photo = bot.api.send_photo(MERCHANT, MERCHANT)["photo"][-1]["file_id"]
    await bot.api.wait_idle()
    draft = factories.listing(
        chargers=1,
        photo_file_id=photo,
        address="南京西路 120 号 · 120 Nanjing West Rd",
        latitude=31.2329,
        longitude=121.4712,
    )
    draft.chargers[0].supply_kind = "智能插座"
    draft.chargers[0].hours = {str(d): [["00:00", "24:00"]] for d in range(7)}
    engine = create_engine(database_url)
    async with create_session_factory(engine)() as db:
        async with transaction(db):
            for uid in (MERCHANT, RIDER_ZH, RIDER_EN):
                if await db.get(User, uid) is None:
                    db.add(User(id=uid, first_name=str(uid)))
        revision = await listings.submit(
            db, merchant_id=MERCHANT, draft=draft, moderation_chat_id=GROUP
        )
        await listings.approve(
            db, revision_id=revision.id, admin_id=ADMINS[0], moderation_chat_id=GROUP
        )
        assert (await db.scalars(select(Charger.supply_kind))).one() == "智能插座"
    await engine.dispose()


async def test_a_chinese_rider_finds_by_street_and_books_in_chinese_words(
    bot: BotHarness, database_url: str
) -> None:
    api = bot.api
    await seed(bot, database_url)

    await bot.say(RIDER_ZH, "/find", "您在哪里")
    await bot.say(RIDER_ZH, "北京东路", "没有找到这个地址附近的店铺")
    after = api.last_message_id(RIDER_ZH)
    api.send_text(RIDER_ZH, RIDER_ZH, "南京西路")
    results = await bot.expect(RIDER_ZH, "个充电点", after)
    text = plain(results)
    assert "2.50 元/小时" in text and "开放中" in text
    assert "CNY" not in text and "Smart" not in text

    after = api.last_message_id(RIDER_ZH)
    await bot.press(RIDER_ZH, RIDER_ZH, results, "1. Volt Café")
    card = await bot.expect(RIDER_ZH, "预约 1 号充电设备", after)
    text = plain(card)
    assert "供电设备：智能插座 / Sonoff S31" in text
    assert "开放时间：每天 00:00–24:00" in text
    assert "Mon" not in text and "CNY" not in text

    after = api.last_message_id(RIDER_ZH)
    await bot.press(RIDER_ZH, RIDER_ZH, card, "预约 1 号充电设备")
    await bot.expect(RIDER_ZH, "您要给什么设备充电", after)
    await bot.say(RIDER_ZH, "电动自行车", "是什么型号")
    await bot.say(RIDER_ZH, "雅迪 G5", "什么时间")
    await bot.say(RIDER_ZH, "明天上午随便", "没看懂这个时段")
    summary = await bot.say(RIDER_ZH, "明天上午9点-11点", "确认预约")
    text = plain(summary)
    assert "09:00–11:00" in text and "预计 5.00 元" in text
    assert "2.50 元/小时" in text and "CNY" not in text

    after = api.last_message_id(MERCHANT)
    await bot.press(RIDER_ZH, RIDER_ZH, summary, "确认预约")
    request = await bot.expect(MERCHANT, "New booking request from 小林", after)
    assert "09:00–11:00" in plain(request) and "2.50 CNY/hour" in plain(request)
    after_rider = api.last_message_id(RIDER_ZH)
    await bot.press(MERCHANT, MERCHANT, request, "Reject")
    request = await bot.expect(MERCHANT, "No free charging spot", after)
    await bot.press(MERCHANT, MERCHANT, request, "No free charging spot")
    rejected = await bot.expect(RIDER_ZH, "商家拒绝了您的预约", after_rider)
    assert "原因：没有空闲的充电位" in plain(rejected)
    assert buttons(rejected) == [["🔎 查找其他充电设备"]]

    # the same charger, read by an English rider: the preset in English
    await bot.say(RIDER_EN, "/find", "Where are you")
    after = api.last_message_id(RIDER_EN)
    api.send_text(RIDER_EN, RIDER_EN, "Nanjing West Road")
    results = await bot.expect(RIDER_EN, "near you (page 1/1)", after)
    after = api.last_message_id(RIDER_EN)
    await bot.press(RIDER_EN, RIDER_EN, results, "1. Volt Café")
    card = await bot.expect(RIDER_EN, "Book charger 1", after)
    assert "Supply device: Smart socket / Sonoff S31" in plain(card)
    assert "智能插座" not in plain(card)
