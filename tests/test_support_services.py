"""The throwaway-server launchers in tests/support/services.py work for real."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import asyncpg
import pytest

from tests.support import services
from tests.support.services import (
    MosquittoServer,
    PostgresServer,
    RedisServer,
    ServiceStartError,
    ServiceUnavailable,
    start_mosquitto,
    start_postgres,
    start_redis,
)


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    server = start_postgres(tmp_path_factory.mktemp("pg"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    server = start_mosquitto(tmp_path_factory.mktemp("mqtt"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


# --------------------------------------------------------------------------- PostgreSQL


async def test_postgres_test_database_accepts_queries(postgres: PostgresServer) -> None:
    assert postgres.url.startswith("postgresql+asyncpg://")
    assert postgres.url.endswith(f":{postgres.port}/chargeshare_test")
    conn = await asyncpg.connect(postgres.dsn, timeout=10)
    try:
        assert await conn.fetchval("select 1") == 1
        assert await conn.fetchval("select current_database()") == "chargeshare_test"
        assert await conn.fetchval("show server_encoding") == "UTF8"
    finally:
        await conn.close()


async def test_postgres_create_and_drop_database(postgres: PostgresServer) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = await postgres.create_database(name)
    assert url == postgres.url_for(name)
    assert url.startswith("postgresql+asyncpg://") and url.endswith(f"/{name}")

    conn = await asyncpg.connect(postgres.dsn_for(name), timeout=10)
    try:
        await conn.execute("create table t (x int)")
        await conn.execute("insert into t values (41)")
        assert await conn.fetchval("select x + 1 from t") == 42
    finally:
        await conn.close()

    # Re-creating gives an empty database, even with a session still connected.
    holder = await asyncpg.connect(postgres.dsn_for(name), timeout=10)
    await postgres.create_database(name)
    assert holder.is_closed() or not await _still_usable(holder)
    conn = await asyncpg.connect(postgres.dsn_for(name), timeout=10)
    try:
        assert await conn.fetchval("select to_regclass('t')") is None
    finally:
        await conn.close()

    await postgres.drop_database(name)
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await asyncpg.connect(postgres.dsn_for(name), timeout=10)
    await postgres.drop_database(name)  # dropping a missing database is fine


async def _still_usable(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("select 1")
        return True
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    finally:
        await conn.close()


async def test_postgres_rejects_bad_database_names(postgres: PostgresServer) -> None:
    with pytest.raises(ValueError):
        await postgres.create_database('x"; drop database postgres; --')


def test_postgres_env_url_starts_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TEST_POSTGRES_URL", "postgresql://u:pw@db.example:6543/other")
    server = start_postgres(tmp_path)
    assert server.external
    assert server.url == "postgresql+asyncpg://u:pw@db.example:6543/other"
    assert server.port == 6543
    assert server.url_for("x") == "postgresql+asyncpg://u:pw@db.example:6543/x"
    assert server.admin_dsn == "postgresql://u:pw@db.example:6543/postgres"
    server.stop()
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- mosquitto


async def _roundtrip(server: MosquittoServer, payload: bytes) -> bytes:
    topic = f"test/{uuid.uuid4().hex}"
    async with asyncio.timeout(15):
        async with aiomqtt.Client(server.host, server.port) as client:
            await client.subscribe(topic, qos=1)
            await client.publish(topic, payload, qos=1)
            async for message in client.messages:
                assert message.topic.matches(topic)
                return bytes(message.payload)
    raise AssertionError("no message received")


async def test_mosquitto_publish_subscribe(mosquitto: MosquittoServer) -> None:
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    assert await _roundtrip(mosquitto, b"hello") == b"hello"


async def test_mosquitto_restart_keeps_port(mosquitto: MosquittoServer) -> None:
    if mosquitto.external:
        pytest.skip("external broker (TEST_MQTT_URL)")
    port, pid = mosquitto.port, mosquitto.pid
    mosquitto.restart()
    assert mosquitto.port == port
    assert mosquitto.pid != pid
    assert mosquitto.url == f"mqtt://127.0.0.1:{port}"
    assert await _roundtrip(mosquitto, b"after restart") == b"after restart"


async def test_mosquitto_outage_is_seen_by_clients(mosquitto: MosquittoServer) -> None:
    if mosquitto.external:
        pytest.skip("external broker (TEST_MQTT_URL)")
    mosquitto.kill()
    try:
        with pytest.raises(aiomqtt.MqttError):
            async with asyncio.timeout(15):
                async with aiomqtt.Client(mosquitto.host, mosquitto.port, timeout=2):
                    pass
    finally:
        mosquitto.start_again()
    assert await _roundtrip(mosquitto, b"back") == b"back"


# --------------------------------------------------------------------------- redis


async def test_redis_ping(redis: RedisServer) -> None:
    assert redis.url == f"redis://127.0.0.1:{redis.port}/0"
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(redis.host, redis.port)
        try:
            writer.write(b"PING\r\n")
            await writer.drain()
            assert await reader.readline() == b"+PONG\r\n"
        finally:
            writer.close()
            await writer.wait_closed()


# --------------------------------------------------------------------------- errors, cleanup


def test_missing_binary_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TEST_MQTT_URL", raising=False)
    monkeypatch.delenv("TEST_REDIS_URL", raising=False)
    monkeypatch.delenv("TEST_POSTGRES_URL", raising=False)
    monkeypatch.delenv("TEST_PG_BINDIR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(services, "MOSQUITTO_FALLBACKS", ())
    monkeypatch.setattr(services, "REDIS_FALLBACKS", ())
    monkeypatch.setattr(services, "PG_BIN_GLOBS", (str(tmp_path / "nothing" / "*" / "bin"),))

    with pytest.raises(ServiceUnavailable, match=r"apt-get install mosquitto\b"):
        start_mosquitto(tmp_path)
    with pytest.raises(ServiceUnavailable, match=r"apt-get install redis-server\b"):
        start_redis(tmp_path)
    with pytest.raises(ServiceUnavailable, match=r"apt-get install postgresql\b") as info:
        start_postgres(tmp_path)
    assert "initdb" in str(info.value)


def test_failed_start_reports_log_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'FATAL: the fake server refuses to start' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.delenv("TEST_REDIS_URL", raising=False)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    base = tmp_path / "base"
    live_before = list(services._live)

    with pytest.raises(ServiceStartError) as info:
        start_redis(base)
    message = str(info.value)
    assert "FATAL: the fake server refuses to start" in message
    assert "status 3" in message
    assert list(base.iterdir()) == []
    assert services._live == live_before


def test_stop_removes_files_and_frees_port(tmp_path: Path) -> None:
    if os.environ.get("TEST_REDIS_URL"):
        pytest.skip("external redis (TEST_REDIS_URL)")
    server = start_redis(tmp_path)
    assert isinstance(server, RedisServer)
    assert services._port_accepts(server.host, server.port)
    server.stop()
    server.stop()  # idempotent
    assert not services._port_accepts(server.host, server.port)
    assert list(tmp_path.iterdir()) == []
    assert server not in services._live
