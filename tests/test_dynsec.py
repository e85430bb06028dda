"""Per-plug broker accounts against a real mosquitto with the dynamic security
plugin: the account the bot creates logs in, may use its own plug's topics
(deploy/mosquitto.acl's patterns) and nothing else; set up again, the old password
stops working."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from hardware_bridge.dynsec import DynSecAccounts
from hardware_bridge.port import AccountsUnavailable
from tests.support.services import MosquittoServer, start_mosquitto

PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
ADMIN, ADMIN_PASSWORD = "admin", "admin-secret"
SPY, SPY_PASSWORD = "spy", "spy-secret"


def dynsec_broker(base: Path) -> MosquittoServer:
    """A private mosquitto with dynsec; its admin made by ``mosquitto_ctrl dynsec init``
    (the same command deploy/ tells an operator to run)."""
    ctrl = shutil.which("mosquitto_ctrl")
    if ctrl is None or not PLUGIN.exists():
        pytest.skip("mosquitto's dynamic security plugin is not installed")
    base.mkdir(parents=True, exist_ok=True)
    config = base / "dynamic-security.json"
    subprocess.run([ctrl, "dynsec", "init", str(config), ADMIN, ADMIN_PASSWORD], check=True)
    server = start_mosquitto(
        base / "broker",
        # the plugin reads (and rewrites) its file after mosquitto dropped root for its
        # own user, who cannot enter pytest's private directories: keep root here
        extra_config=f"user root\nplugin {PLUGIN}\nplugin_opt_config_file {config}\n",
    )
    assert isinstance(server, MosquittoServer)
    return server


@pytest.fixture(scope="module")
def dynsec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    server = dynsec_broker(tmp_path_factory.mktemp("dynsec"))
    yield server
    server.stop()


def accounts(server: MosquittoServer, password: str = ADMIN_PASSWORD) -> DynSecAccounts:
    return DynSecAccounts(server.host, server.port, ADMIN, password, timeout=10)


async def can_login(server: MosquittoServer, user: str, password: str) -> bool:
    try:
        async with aiomqtt.Client(server.host, server.port, username=user, password=password):
            return True
    except aiomqtt.MqttError:
        return False


async def delivered(
    server: MosquittoServer, user: str, password: str, publish: str, listen: str
) -> bool:
    """Does a message the plug publishes on ``publish`` reach a spy listening on
    ``listen`` (the broker drops a publication its ACL denies, silently)?"""
    async with (
        aiomqtt.Client(server.host, server.port, username=SPY, password=SPY_PASSWORD) as spy,
        aiomqtt.Client(server.host, server.port, username=user, password=password) as plug,
    ):
        await spy.subscribe(listen, qos=1)
        await plug.publish(publish, b"x", qos=1)
        try:
            async with asyncio.timeout(1.5):
                async for message in spy.messages:
                    return str(message.topic) == publish
        except TimeoutError:
            return False
    return False


async def test_a_plug_account_is_confined_to_its_own_topics(dynsec: MosquittoServer) -> None:
    admin = accounts(dynsec)
    # dynsec init's admin may only administer: a spy of all topics for the test
    await admin._send([
        {"command": "createRole", "rolename": "spy"},
        {"command": "addRoleACL", "rolename": "spy", "acltype": "subscribePattern",
         "topic": "#", "allow": True},
        {"command": "createClient", "username": SPY, "password": SPY_PASSWORD,
         "roles": [{"rolename": "spy"}]},
    ])  # fmt: skip
    password = await admin.plug_account("tasmota", "cs-k7p2qx")
    assert len(password) >= 16
    assert await can_login(dynsec, "cs-k7p2qx", password)
    assert not await can_login(dynsec, "cs-k7p2qx", "wrong")
    # its own state goes through; another plug's topic does not
    assert await delivered(dynsec, "cs-k7p2qx", password, "stat/cs-k7p2qx/POWER", "stat/#")
    assert not await delivered(dynsec, "cs-k7p2qx", password, "stat/other/POWER", "stat/#")
    assert not await delivered(dynsec, "cs-k7p2qx", password, "cmnd/other/POWER", "cmnd/#")

    # a Shelly account: its own RPC replies and notifications only
    shelly = await admin.plug_account("shelly", "shellyplugsg3-aabbcc")
    assert await delivered(
        dynsec, "shellyplugsg3-aabbcc", shelly, "shellyplugsg3-aabbcc/events/rpc", "+/events/rpc"
    )
    assert not await delivered(
        dynsec, "shellyplugsg3-aabbcc", shelly, "stat/cs-k7p2qx/POWER", "stat/#"
    )

    # set up again: a new password, the old one refused
    again = await admin.plug_account("tasmota", "cs-k7p2qx")
    assert again != password
    assert await can_login(dynsec, "cs-k7p2qx", again)
    assert not await can_login(dynsec, "cs-k7p2qx", password)


async def test_a_plug_reads_only_its_own_commands(dynsec: MosquittoServer) -> None:
    admin = accounts(dynsec)
    password = await admin.plug_account("tasmota", "cs-reader")
    async with aiomqtt.Client(
        dynsec.host, dynsec.port, username="cs-reader", password=password
    ) as plug:
        # a denied subscription is granted with the failure code 0x80 (MQTT 3.1.1)
        granted = await plug.subscribe("cmnd/cs-reader/#", qos=1)
        denied = await plug.subscribe("cmnd/someone-else/#", qos=1)
        assert [getattr(g, "value", g) for g in granted] == [1]
        assert [getattr(g, "value", g) for g in denied] == [128]


async def test_wrong_admin_credentials_say_so(dynsec: MosquittoServer) -> None:
    with pytest.raises(AccountsUnavailable):
        await accounts(dynsec, password="nope").plug_account("tasmota", "cs-x")
