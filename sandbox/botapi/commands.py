"""The bot's command menu: ``setMyCommands``, ``getMyCommands``, ``deleteMyCommands``."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from .protocol import JsonDict, bad
from .world import World

_BOT_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")


class Commands(World):
    """Command lists per scope and language, as ``setMyCommands`` keeps them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._commands: dict[tuple[str, str], list[JsonDict]] = {}

    def commands(self, scope: JsonDict | None = None, language_code: str = "") -> list[JsonDict]:
        """The command list set by ``setMyCommands`` for that scope and language."""
        return copy.deepcopy(self._commands.get(self._commands_key(scope, language_code), []))

    @staticmethod
    def _commands_key(scope: Any, language_code: Any) -> tuple[str, str]:
        scope = scope if isinstance(scope, dict) else {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(language_code or "")

    def _set_my_commands(self, params: JsonDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise bad("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _BOT_COMMAND_RE.match(
                str(command.get("command", ""))
            ):
                raise bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad("command description must be non-empty")
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        self._commands[key] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    def _get_my_commands(self, params: JsonDict) -> list[JsonDict]:
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        return copy.deepcopy(self._commands.get(key, []))

    def _delete_my_commands(self, params: JsonDict) -> bool:
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        self._commands.pop(key, None)
        return True
