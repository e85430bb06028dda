"""The lock files (requirements/*.txt, `make lock`) agree with pyproject.toml: a
dependency added or re-bounded there without `make lock` fails here, not on a fresh
machine. What each install gets: bot.txt (the Docker image) the bot's dependencies,
run.txt (`make run`) those and the sandbox's, test.txt (`make test`, CI) everything;
the three never disagree on a version."""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def _pins(name: str) -> dict[str, tuple[str, str | None]]:
    """requirements/<name>.txt as {package: (version, marker)}; every pin has hashes."""
    pins: dict[str, tuple[str, str | None]] = {}
    lines = (ROOT / "requirements" / f"{name}.txt").read_text().splitlines()
    for i, line in enumerate(lines):
        if not line or line[0] in " #":
            continue
        match = PIN.match(line)
        assert match, f"requirements/{name}.txt: not an exact pin: {line!r}"
        assert lines[i + 1].strip().startswith("--hash=sha256:"), f"{line!r} has no hash"
        pins[canonicalize_name(match[1])] = (match[2], match[3])
    return pins


def _wanted(*extras: str) -> list[Requirement]:
    """pyproject's dependencies and those of the extras (chargeshare[x] followed)."""
    reqs = [Requirement(r) for r in PROJECT["dependencies"]]
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for r in map(Requirement, PROJECT["optional-dependencies"][extra]):
            if canonicalize_name(r.name) == "chargeshare":
                todo.extend(r.extras)
            else:
                reqs.append(r)
    return reqs


LOCKS = {"bot": (), "run": ("sandbox",), "test": ("test", "bench", "dev")}


@pytest.mark.parametrize("lock", LOCKS)
def test_every_dependency_is_pinned_within_its_range(lock: str) -> None:
    pins = _pins(lock)
    for req in _wanted(*LOCKS[lock]):
        if req.marker and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is not in requirements/{lock}.txt: run make lock"
        version = pins[name][0]
        assert req.specifier.contains(version, prereleases=True), (
            f"requirements/{lock}.txt pins {name}=={version}, outside {req}: run make lock"
        )
    assert "setuptools" in pins  # the project is built with --no-build-isolation


def test_the_locks_agree_and_the_bot_gets_no_test_tools() -> None:
    bot, run, test = _pins("bot"), _pins("run"), _pins("test")
    for smaller, name in ((bot, "bot"), (run, "run")):
        differ = {p: (v, test.get(p)) for p, v in smaller.items() if test.get(p) != v}
        assert not differ, f"requirements/{name}.txt and test.txt disagree: {differ}"
    assert set(bot) <= set(run)
    tools = {"pytest", "ruff", "mypy", "hypothesis", "playwright", "pyinstrument", "py-spy", "uv"}
    assert not tools & set(run), "make run would install test or bench tools"
    assert {"amqtt"} <= set(run) - set(bot)  # the sandbox's broker: make run, not Docker
