"""The import rules of the layout (README, "How it is built"): arrows point one way,

    bot → handlers → ui → services → models
                              services → hardware_bridge.port

Every module of ours is read as source (its AST, imports inside functions too) and
each import checked against its layer's rules; a wrong arrow fails with file:line.
"""

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = ("bot", "handlers", "ui", "services", "models", "hardware_bridge", "sandbox", "migrations")


@dataclass(frozen=True)
class Rule:
    """What a layer may not import (module prefixes), except what ``allow`` names."""

    forbidden: tuple[str, ...]
    allow: tuple[str, ...] = ()
    why: str = ""


# third parties of the outer layers: Telegram, MQTT, Redis
OUTSIDE = ("aiogram", "aiomqtt", "paho", "redis")
MQTT_REDIS = ("aiomqtt", "paho", "redis")
# the bridge is MQTT itself, but knows neither Telegram nor the database
BRIDGE_FREE = ("aiogram", "redis", "sqlalchemy")

RULES: dict[str, Rule] = {
    # the composition root knows every part; only bot/__main__ hands over to sandbox/
    "bot": Rule(("sandbox",), why="only bot/__main__ may hand over to the sandbox"),
    "handlers": Rule(
        ("bot", "models", "hardware_bridge", "sandbox", "migrations", "sqlalchemy", *MQTT_REDIS),
        why="handlers translate: ui to render, services for everything else",
    ),
    "ui": Rule(
        (
            "bot",
            "handlers",
            "models",
            "hardware_bridge",
            "sandbox",
            "migrations",
            "sqlalchemy",
            *MQTT_REDIS,
        ),
        why="ui renders what services return (plain values), never rows",
    ),
    "services": Rule(
        ("bot", "handlers", "ui", "sandbox", "migrations", "hardware_bridge", *OUTSIDE),
        allow=("hardware_bridge.port",),
        why="the domain: no Telegram, no MQTT; devices only through the port",
    ),
    "models": Rule(
        ("bot", "handlers", "ui", "services", "hardware_bridge", "sandbox", "migrations", *OUTSIDE),
        why="models import nothing of ours above them",
    ),
    "hardware_bridge": Rule(
        ("bot", "handlers", "ui", "services", "models", "sandbox", "migrations", *BRIDGE_FREE),
        why="the bridge imports nothing of ours",
    ),
    "migrations": Rule(
        ("bot", "handlers", "ui", "services", "hardware_bridge", "sandbox"),
        why="migrations know the models only",
    ),
    "sandbox": Rule(("handlers",), why="the sandbox runs the App the root builds"),
}

# (file, imported module) → why it is allowed; keep this near empty
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("bot/__main__.py", "sandbox.env"): "without a token `python -m bot` is the sandbox",
    ("bot/__main__.py", "sandbox.runner"): "without a token `python -m bot` is the sandbox",
}


def _modules() -> Iterator[Path]:
    for package in OURS:
        yield from sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, module) of every import; ``from a import b`` gives ``a.b`` (relative
    imports resolved against the file's package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = list(path.relative_to(root).parent.parts)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations() -> list[str]:
    found = []
    for path in _modules():
        name = path.relative_to(ROOT).as_posix()
        rule = RULES[name.split("/")[0]]
        for line, module in _imports(path):
            if not _under(module, rule.forbidden) or _under(module, rule.allow):
                continue
            exempt = next(
                (why for (f, m), why in EXCEPTIONS.items() if f == name and _under(module, (m,))),
                None,
            )
            if exempt is None:
                found.append(f"{name}:{line}: imports {module} ({rule.why})")
    return found


def test_imports_point_one_way() -> None:
    assert violations() == []


def test_only_the_sandbox_tests_and_tools_import_the_root() -> None:
    """Nothing below bot/ imports it: checked by RULES for our layers; this makes
    sure every layer of ours has a rule, so a new folder cannot slip past."""
    top = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert top - {"tests", "bench"} <= set(RULES), "a package without import rules"
    for package, rule in RULES.items():
        if package not in {"bot", "sandbox"}:
            assert _under("bot", rule.forbidden), package


def test_the_checker_sees_a_wrong_arrow(tmp_path: Path) -> None:
    source = tmp_path / "x.py"
    source.write_text("import os\n\ndef f():\n    from bot.app import App\n")
    assert list(_imports(source, tmp_path)) == [(1, "os"), (4, "bot.app.App")]
    assert _under("bot.app.App", RULES["ui"].forbidden)
    assert not _under("hardware_bridge.port.DeviceRef", RULES["services"].forbidden) or _under(
        "hardware_bridge.port.DeviceRef", RULES["services"].allow
    )
    assert not _under("botany", ("bot",))


REFUSALS = {"DomainError", "InvalidInput", "NotAllowed", "NotFound", "StartFailed"}


def _handler_modules() -> Iterator[tuple[str, ast.AST]]:
    for path in sorted((ROOT / "handlers").rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(encoding="utf-8"))


def test_handlers_only_translate() -> None:
    """No handler catches a refusal (handlers/errors.py answers every one), nor
    touches the database beyond handing ``db`` to a service (no query, commit or
    transaction of its own)."""
    found = []
    for name, tree in _handler_modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                caught = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
                names = {
                    c.id if isinstance(c, ast.Name) else getattr(c, "attr", "") for c in caught
                }
                if names & REFUSALS:
                    found.append(f"{name}:{node.lineno}: catches {sorted(names & REFUSALS)}")
            is_db = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            if is_db and node.value.id == "db":  # type: ignore[attr-defined]
                found.append(f"{name}:{node.lineno}: uses db.{node.attr} itself")  # type: ignore[attr-defined]
            if isinstance(node, ast.Name) and node.id == "transaction":
                found.append(f"{name}:{node.lineno}: opens a transaction")
    assert found == []


def test_message_is_not_modified_is_handled_once() -> None:
    """By bot/request_middlewares.py's NotModifiedIsSuccess, for every edit of every
    bot: no other code of the bot looks for Telegram's "message is not modified"."""
    places = []
    for package in ("bot", "handlers", "ui", "services"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and "is not modified" in str(node.value):
                    places.append(path.relative_to(ROOT).as_posix())
    assert sorted(set(places)) == ["bot/request_middlewares.py"]
