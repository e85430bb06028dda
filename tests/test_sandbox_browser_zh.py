"""The whole lifecycle in Chinese, in a real browser (issue #16): the merchant and the
user switch to 简体中文 with /language, the moderation group speaks Chinese
(GROUP_LANGUAGE=zh); the merchant lists a shop, an admin approves it, the user finds
it by typing its street in Chinese, books, the merchant accepts, the user scans,
charges and stops. Every text the bot sends them from then on is checked for English
leaking (weekday names, CNY, untranslated presets). A screenshot is saved to
test-artifacts/sandbox-lifecycle-zh.png."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox import demo
from sandbox.runner import Sandbox
from tests.test_sandbox_browser import (
    ARTIFACTS,
    CHROMIUM,
    Pane,
    playwright_api,
    storefront,
)

SHOP = "电车站单车行"
PLUG = demo.NEW_PLUGS[0][1]  # online, no charger has it yet: paired in the wizard
# what must not show in a Chinese chat: English weekdays, currency codes, English
# presets and words of our own English texts
LEAKS = re.compile(
    r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\b|CNY|Smart socket|Charger \d|Booking #|Order #"
    r"|\b(?:today|tomorrow|closed|opens|per hour)\b"
)


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    sandbox = Sandbox(
        port=0,
        database=tmp_path / "sandbox.db",
        env_file=None,
        tele_period=0.5,
        scheduler_interval_seconds=0.5,
        device_confirm_seconds=5,
        group_language="zh",
    )
    await sandbox.start()
    yield sandbox
    await sandbox.stop()


@pytest.fixture
async def page(sandbox: Sandbox) -> AsyncIterator[object]:
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        context = await browser.new_context(viewport={"width": 1600, "height": 1000})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(15_000)
        await page.goto(sandbox.url + "/")
        try:
            yield page
        finally:
            await browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


async def bot_texts(pane: Pane, since: dict[str, str]) -> list[str]:
    """The bot's messages in a pane that are new or changed since a snapshot."""
    now = await pane._snapshot()
    return [text for key, text in now.items() if since.get(key) != text]


async def test_whole_lifecycle_in_chinese(sandbox: Sandbox, page) -> None:
    try:
        await lifecycle_zh(page)
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "sandbox-failure-zh.png"))
        raise
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "sandbox-lifecycle-zh.png"))


async def lifecycle_zh(page) -> None:
    user, merchant, group = Pane(page, "user"), Pane(page, "merchant"), Pane(page, "group")
    await page.locator(".charger").nth(3).wait_for()

    # both switch to Chinese; from here on what the bot sends them is Chinese only
    for pane in (merchant, user):
        choose = await pane.say("/language", "简体中文")
        await pane.press(choose, "简体中文", "语言已设为简体中文")
    since = {pane.name: await pane._snapshot() for pane in (user, merchant, group)}

    # the merchant lists a shop, in Chinese words
    await merchant.say("/newlisting", "联系电话")
    await merchant.tap_key("发送我的手机号", "店铺名称")
    await merchant.say(SHOP, "门头照片")

    async def upload() -> None:
        await merchant.root.locator("input.file").set_input_files(
            files=[{"name": "shop.png", "mimeType": "image/png", "buffer": storefront()}]
        )

    await merchant.act(upload, "店铺面积")
    await merchant.say("30", "店铺位置")

    async def pick_on_map() -> None:
        await merchant.root.locator(".reply-keyboard button", has_text="发送位置").click()
        svg = merchant.root.locator(".picker-map svg")
        box = await svg.bounding_box()
        assert box is not None
        await page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)

    await merchant.act(pick_on_map, "地址")
    await merchant.say("淮海中路 5 号", "1 号充电设备")
    await merchant.tap_key("家用插座", "能给哪些设备充电")
    await merchant.tap_key("电动自行车", "已选：电动自行车")
    await merchant.tap_key("完成", "型号")
    await merchant.tap_key("不限型号", "供电设备类型")
    await merchant.tap_key("智能插座", "品牌和型号")
    await merchant.say("Sonoff S31", "额定功率")
    await merchant.say("2.2", "什么时间可以使用")
    await merchant.say("全天", "按小时收费")
    await merchant.tap_key("按小时", "价格")
    await merchant.say("2.5", "智能插座")
    await merchant.tap_key("Tasmota", "MQTT 主题")
    await merchant.say(PLUG, "已配对")
    summary = await merchant.tap_key("完成，查看店铺信息", "✅ 提交审核")
    text = await merchant.message(summary).inner_text()
    assert "2.50 元/小时" in text and "每天 00:00–24:00" in text
    assert "智能插座 / Sonoff S31" in text and "电动自行车（不限型号）" in text

    group_before = await group._snapshot()
    await merchant.press(summary, "提交审核", "已提交审核")

    # an admin approves it in the Chinese group
    card = await group.expect_after(group_before, "新店铺")
    merchant_before = await merchant._snapshot()
    await group.press(card, "通过", "审核通过")
    await group.shows(card, "审核通过")  # the review card says so, for good
    await merchant.expect_after(merchant_before, "已审核通过，现已公开")
    await merchant.expect_after(merchant_before, "请打印这张标签")
    charger = page.locator(".charger", has_text=SHOP)
    await charger.locator("img.label").wait_for()

    # the user finds it by typing its street in Chinese, and books it for now
    await user.say("/find", "您在哪里")
    results = await user.say("淮海中路", "个充电点")
    assert "2.50 元/小时" in await user.message(results).inner_text()
    card = await user.press(results, SHOP, "预约 1 号充电设备")
    card_text = await user.message(card).inner_text()
    assert "供电设备：智能插座 / Sonoff S31" in card_text and "开放时间：每天" in card_text
    await user.press(card, "预约 1 号充电设备", "您要给什么设备充电")
    await user.tap_key("电动自行车", "是什么型号")
    await user.say("雅迪 G5", "什么时间")
    summary = await user.tap_key("现在开始，1 小时", "确认预约")
    assert "预计 2.50 元" in await user.message(summary).inner_text()
    user_before = await user._snapshot()
    await user.press(summary, "确认预约", "等待付款")
    # 2.50 元 is under the smallest invoice: a wallet top-up, paid with the test card
    invoice = await user.expect_after(user_before, "以支付预约 #1")
    merchant_before = await merchant._snapshot()

    async def pay() -> None:
        await user.message(invoice).locator("button.pay-button").click()
        await user.root.locator(".paysheet .pay-confirm").click()

    await user.act(pay, "预约 #1 已支付")
    request = await merchant.expect_after(merchant_before, "发来新的预约申请")

    # the merchant accepts; the user is told in Chinese
    user_before = await user._snapshot()
    await merchant.press(request, "接受", "已接受 ✅")
    accepted = await user.expect_after(user_before, "商家已接受您的预约")
    # the merchant's request card shows the decision, with no buttons left
    await merchant.shows(request, "您已于")
    await merchant.no_buttons(request)
    assert "供电设备：智能插座 / Sonoff S31" in await user.message(accepted).inner_text()

    # scan, charge, stop: the order in 元 on every side
    start = await user.act(charger.locator("button.scan").click, "开始充电")
    merchant_before = await merchant._snapshot()
    running = await user.press(start, "开始充电", "已开始充电")
    merchant_card = await merchant.expect_after(merchant_before, "开始充电：预约")
    await page.wait_for_function(
        "(plug) => document.querySelector(`.charger[data-plug='${plug}']`)?.dataset.relay === 'on'",
        arg=PLUG,
    )
    merchant_before, group_before = await merchant._snapshot(), await group._snapshot()
    confirm = await user.press(running, "停止充电", "现在停止充电吗")
    await user.press(confirm, "确定，现在停止", "订单稍后发给您")
    order = await user.expect_after({}, "订单 #")
    assert "元" in await user.message(order).inner_text()
    await merchant.expect_after(merchant_before, "订单 #")
    await group.expect_after(group_before, "订单 #")
    # every card that showed the session now says how it ended, on both sides
    found = re.search(r"订单 #(\d+)", await user.message(order).inner_text())
    assert found is not None
    number = found.group(1)
    await user.shows(running, f"已结束：订单 #{number}")
    await user.no_buttons(running)
    await merchant.shows(merchant_card, f"已结束：订单 #{number}")
    await merchant.no_buttons(merchant_card)
    # ... and the booking's cards: the rider's acceptance, the merchant's request
    await user.shows(accepted, "充电已结束，订单已发送给您。")
    await user.no_buttons(accepted)
    await merchant.shows(request, "充电已结束，订单已发送。")

    # nothing English leaked into what the bot said in Chinese
    for pane in (user, merchant, group):
        for text in await bot_texts(pane, since[pane.name]):
            assert not LEAKS.search(text), (pane.name, LEAKS.search(text), text)
