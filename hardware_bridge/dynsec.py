"""Per-plug broker accounts through mosquitto 2's dynamic security plugin.

The bot logs in as a dynsec admin (an account whose role may publish to
``$CONTROL/dynamic-security/#``), and for each plug creates a client named as the
plug (its Tasmota topic or Shelly id) with a random password and a role of its own
whose ACL is deploy/mosquitto.acl's patterns with the plug's name in place of %u:
the plug can use its own topics and nothing else. A plug set up again gets a new
password (the old one stops working). Each call is one short connection: accounts
are made a few times a day, and a long-lived admin connection would need the
reconnect machinery of the main client for nothing.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any, Literal

import aiomqtt

from hardware_bridge.port import AccountsUnavailable

CONTROL = "$CONTROL/dynamic-security/v1"
RESPONSE = f"{CONTROL}/response"


def plug_acls(driver: Literal["tasmota", "shelly"], plug_id: str) -> list[dict[str, Any]]:
    """deploy/mosquitto.acl's ``pattern`` lines for one plug (read = subscribe,
    write = publish)."""

    def sub(topic: str) -> dict[str, Any]:
        return {"acltype": "subscribePattern", "topic": topic, "allow": True}

    def pub(topic: str) -> dict[str, Any]:
        return {"acltype": "publishClientSend", "topic": topic, "allow": True}

    p = plug_id
    if driver == "tasmota":
        return [sub(f"cmnd/{p}/#"), pub(f"stat/{p}/#"), pub(f"tele/{p}/#")]
    return [
        sub(f"{p}/rpc"),
        pub(f"{p}/online"),
        pub(f"{p}/events/rpc"),
        pub(f"{p}/status/#"),
        pub(f"chargeshare/{p}/+/rpc"),
    ]


def role_name(plug_id: str) -> str:
    return f"plug:{plug_id}"


class DynSecAccounts:
    """A BrokerAccounts over mosquitto's dynamic security plugin."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        *,
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.timeout = timeout

    async def plug_account(self, driver: Literal["tasmota", "shelly"], plug_id: str) -> str:
        password = secrets.token_urlsafe(12)
        role = role_name(plug_id)
        # the role's ACL is set whole each time (a changed acl file pattern reaches
        # plugs set up again); "already exists" answers are expected on a re-setup
        answers = await self._send([
            {"command": "createRole", "rolename": role},
            {"command": "getRole", "rolename": role},
            {"command": "createClient", "username": plug_id, "password": password,
             "roles": [{"rolename": role}]},
            {"command": "getClient", "username": plug_id},
        ])  # fmt: skip
        _check(answers[0], "createRole", ok_errors=("Role already exists",))
        role_data = _check(answers[1], "getRole")
        existing = role_data.get("data", {}).get("role", {}).get("acls", [])
        created = answers[2].get("error") is None
        if not created:
            _check(answers[2], "createClient", ok_errors=("Client already exists",))
        commands: list[dict[str, Any]] = [
            {"command": "removeRoleACL", "rolename": role, "acltype": a["acltype"],
             "topic": a["topic"]}
            for a in existing
        ]  # fmt: skip
        commands += [
            {"command": "addRoleACL", "rolename": role, **acl} for acl in plug_acls(driver, plug_id)
        ]
        if not created:
            client = _check(answers[3], "getClient").get("data", {}).get("client", {})
            commands.append(
                {"command": "setClientPassword", "username": plug_id, "password": password}
            )
            if role not in {r.get("rolename") for r in client.get("roles", [])}:
                commands.append({"command": "addClientRole", "username": plug_id, "rolename": role})
            # a client that was disabled (its charger removed) comes back
            commands.append({"command": "enableClient", "username": plug_id})
        for answer in await self._send(commands):
            _check(answer, str(answer.get("command")))
        return password

    async def disable(self, plug_id: str) -> None:
        """The plug can no longer log in (its charger was removed)."""
        (answer,) = await self._send([{"command": "disableClient", "username": plug_id}])
        _check(answer, "disableClient", ok_errors=("Client not found",))

    async def _send(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not commands:
            return []
        try:
            async with asyncio.timeout(self.timeout):
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    username=self.username,
                    password=self.password,
                    identifier=f"chargeshare-dynsec-{secrets.token_hex(4)}",
                ) as client:
                    await client.subscribe(RESPONSE, qos=1)
                    payload = json.dumps({"commands": commands})
                    # a command, never retained
                    await client.publish(CONTROL, payload, qos=1, retain=False)
                    async for message in client.messages:
                        raw = message.payload
                        text = raw.decode() if isinstance(raw, bytes | bytearray) else str(raw)
                        responses = json.loads(text).get("responses", [])
                        if len(responses) == len(commands):
                            return list(responses)
        except (aiomqtt.MqttError, TimeoutError, ValueError) as exc:
            raise AccountsUnavailable(f"dynamic security did not answer: {exc!r}") from exc
        raise AccountsUnavailable("dynamic security closed the connection")


def _check(answer: dict[str, Any], what: str, ok_errors: tuple[str, ...] = ()) -> dict[str, Any]:
    error = answer.get("error")
    if error and error not in ok_errors:
        raise AccountsUnavailable(f"{what}: {error}")
    return answer
