"""Throwaway real servers (PostgreSQL, mosquitto, Redis) for the test-suite.

Each ``start_*`` function starts a private server on a free port on 127.0.0.1, with all of
its files inside ``base_dir``, waits until it really serves, and returns a handle whose
``stop()`` ends it and removes its files.  An environment variable (``TEST_POSTGRES_URL``,
``TEST_MQTT_URL``, ``TEST_REDIS_URL``) makes the function return a handle for an existing
server instead; such a handle has ``external = True`` and its ``stop()`` does nothing.

Errors:

* :class:`ServiceUnavailable` - the server's binary is not installed (the message names
  the Debian package to install);
* :class:`ServiceStartError` - the binary is there but the server did not come up (the
  message includes the command, its exit status and the tail of the server's log).

Both derive from :class:`ServiceError`.  Every server started here is also stopped at
interpreter exit (``atexit``) and on SIGTERM, as a last resort.

Environment knobs: ``TEST_SERVICE_START_TIMEOUT`` (seconds, default 60),
``TEST_KEEP_SERVICE_DIRS=1`` (keep the servers' directories and logs after ``stop()``),
``TEST_PG_BINDIR`` (directory holding ``initdb`` and ``pg_ctl``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import glob
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "MosquittoServer",
    "PostgresServer",
    "RedisServer",
    "ServiceError",
    "ServiceStartError",
    "ServiceUnavailable",
    "free_port",
    "start_mosquitto",
    "start_postgres",
    "start_redis",
]

HOST = "127.0.0.1"
TEST_DATABASE = "chargeshare_test"


def _start_timeout() -> float:
    try:
        return float(os.environ.get("TEST_SERVICE_START_TIMEOUT", "60"))
    except ValueError:
        return 60.0


# Where binaries are looked for when they are not on PATH (tests may monkeypatch these).
PG_BIN_GLOBS: tuple[str, ...] = ("/usr/lib/postgresql/*/bin",)
MOSQUITTO_FALLBACKS: tuple[str, ...] = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
REDIS_FALLBACKS: tuple[str, ...] = ("/usr/bin/redis-server", "/usr/sbin/redis-server")

_ADDR_IN_USE = "address already in use"
_LOG_TAIL_LINES = 60


# --------------------------------------------------------------------------- errors


class ServiceError(RuntimeError):
    """Base class for the errors raised by this module."""


class ServiceUnavailable(ServiceError):
    """A server binary (or what is needed to run it) is not installed."""

    def __init__(self, binary: str, package: str, env_var: str, detail: str = "") -> None:
        self.binary = binary
        self.package = package
        msg = (
            f"{binary!r} not found{f' ({detail})' if detail else ''}. "
            f"Install it with `apt-get install {package}` (Debian/Ubuntu; sudo if not root), "
            f"or set {env_var} to use a server that is already running."
        )
        super().__init__(msg)


class ServiceStartError(ServiceError):
    """A server was found but did not start; the message includes its log."""


# --------------------------------------------------------------------------- cleanup registry

_live: list[_Handle] = []
_live_lock = threading.Lock()
_sigterm_installed = False


def _register(server: _Handle) -> None:
    with _live_lock:
        _live.append(server)
    _install_sigterm_cleanup()


def _unregister(server: _Handle) -> None:
    with _live_lock, contextlib.suppress(ValueError):
        _live.remove(server)


def _stop_all() -> None:
    with _live_lock:
        servers = list(reversed(_live))
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


atexit.register(_stop_all)


def _install_sigterm_cleanup() -> None:
    """Stop our servers when the test process is terminated (atexit does not run then).

    Only installed from the main thread and only over the default handler, so it never
    replaces a handler somebody else set.
    """
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    _sigterm_installed = True
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def _on_sigterm(signum: int, frame: object) -> None:
            _stop_all()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # pragma: no cover - not in the main interpreter
        pass


def _keep_dirs() -> bool:
    return os.environ.get("TEST_KEEP_SERVICE_DIRS", "") not in ("", "0", "false", "no")


# --------------------------------------------------------------------------- helpers


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _log_tail(path: Path | None, lines: int = _LOG_TAIL_LINES) -> str:
    if path is None:
        return "(no log)"
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(could not read {path}: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(log is empty)"


def _format_failure(what: str, log_path: Path | None, extra: str = "") -> str:
    parts = [what]
    if extra.strip():
        parts.append(extra.strip())
    parts.append(f"--- last lines of {log_path} ---\n{_log_tail(log_path)}")
    return "\n".join(parts)


def _which(name: str, fallbacks: tuple[str, ...] = ()) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in fallbacks:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _version_key(path: str) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin -> (15,), /usr/lib/postgresql/9.6/bin -> (9, 6)
    version = Path(path).parent.name
    return tuple(int(p) for p in re.findall(r"\d+", version)) or (0,)


def _pg_bindir() -> Path:
    """Directory holding ``initdb`` and ``pg_ctl``: env, PATH, then the newest Debian one."""
    override = os.environ.get("TEST_PG_BINDIR")
    candidates: list[Path] = []
    if override:
        candidates.append(Path(override))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    dirs: list[str] = []
    for pattern in PG_BIN_GLOBS:
        dirs.extend(glob.glob(pattern))
    candidates.extend(Path(d) for d in sorted(dirs, key=_version_key, reverse=True))
    for d in candidates:
        if all(os.access(d / b, os.X_OK) for b in ("initdb", "pg_ctl", "postgres")):
            return d
    raise ServiceUnavailable(
        "initdb",
        "postgresql",
        "TEST_POSTGRES_URL",
        detail="looked on PATH and in " + ", ".join(PG_BIN_GLOBS),
    )


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment for server processes, without libpq variables that could redirect them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(extra)
    return env


def _run(
    cmd: list[str], *, timeout: float, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
        check=False,
    )


def _describe(cmd: list[str], proc: subprocess.CompletedProcess[str]) -> str:
    out = "\n".join(s.strip() for s in (proc.stdout, proc.stderr) if s and s.strip())
    return f"`{shlex.join(cmd)}` exited with status {proc.returncode}" + (
        f":\n{out}" if out else ""
    )


def _run_coroutine_in_thread(
    factory: Callable[[], Coroutine[Any, Any, Any]], timeout: float
) -> Any:
    """Run a coroutine to completion on a private loop, whether or not one is running here."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(factory())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="services-bootstrap", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"gave up after {timeout:.0f}s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


class _Handle:
    """What every server handle has."""

    host: str = HOST
    port: int
    url: str
    external: bool = False

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> _Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- PostgreSQL

_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _quote_ident(name: str) -> str:
    if not _IDENT_RE.match(name):
        raise ValueError(f"invalid database name {name!r} (use letters, digits, underscore)")
    return '"' + name + '"'


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def _to_asyncpg_url(url: str) -> str:
    """SQLAlchemy+asyncpg form of a PostgreSQL URL."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a URL: {url!r}")
    if scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+"):
        scheme = "postgresql+asyncpg"
    return f"{scheme}://{rest}"


def _to_plain_dsn(url: str) -> str:
    """libpq/asyncpg form (``postgresql://``) of a SQLAlchemy URL."""
    _scheme, sep, rest = url.partition("://")
    return f"postgresql://{rest}" if sep else url


class PostgresServer(_Handle):
    """A PostgreSQL server.  ``url`` is the SQLAlchemy (asyncpg) URL of ``chargeshare_test``."""

    def __init__(
        self,
        url: str,
        *,
        external: bool,
        workdir: Path | None = None,
        bindir: Path | None = None,
        run_as_postgres: bool = False,
        cleanup_dirs: list[Path] | None = None,
    ) -> None:
        self.url = _to_asyncpg_url(url)
        parts = urlsplit(self.url)
        self.host = parts.hostname or HOST
        self.port = parts.port or 5432
        self.database = parts.path.lstrip("/") or TEST_DATABASE
        self.external = external
        self.workdir = workdir
        self.datadir = workdir / "data" if workdir else None
        self.log_path = workdir / "postgres.log" if workdir else None
        self._bindir = bindir
        self._run_as_postgres = run_as_postgres
        self._cleanup_dirs = cleanup_dirs or []
        self._stopped = False

    def __repr__(self) -> str:
        return f"<PostgresServer {self.url} external={self.external}>"

    # -- URLs ------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        """Plain ``postgresql://`` DSN of the test database (for asyncpg.connect / psql)."""
        return _to_plain_dsn(self.url)

    @property
    def admin_dsn(self) -> str:
        """Plain DSN of the ``postgres`` maintenance database."""
        return _with_database(self.dsn, "postgres")

    def url_for(self, name: str) -> str:
        """SQLAlchemy (asyncpg) URL of database ``name`` on this server."""
        _quote_ident(name)
        return _with_database(self.url, name)

    def dsn_for(self, name: str) -> str:
        _quote_ident(name)
        return _with_database(self.dsn, name)

    # -- databases ---------------------------------------------------------------

    async def create_database(self, name: str) -> str:
        """Create (or re-create, empty) database ``name``; return its SQLAlchemy URL."""
        import asyncpg

        quoted = _quote_ident(name)
        conn = await asyncpg.connect(self.admin_dsn, timeout=30)
        try:
            await _drop_database(conn, quoted)
            await conn.execute(f"CREATE DATABASE {quoted}")
        finally:
            await conn.close()
        return self.url_for(name)

    async def drop_database(self, name: str) -> None:
        """Drop database ``name`` (if it exists), disconnecting its sessions first."""
        import asyncpg

        quoted = _quote_ident(name)
        conn = await asyncpg.connect(self.admin_dsn, timeout=30)
        try:
            await _drop_database(conn, quoted)
        finally:
            await conn.close()

    # -- process -------------------------------------------------------------------

    def _cmd(self, cmd: list[str]) -> list[str]:
        return _as_postgres_user(cmd) if self._run_as_postgres else cmd

    def stop(self) -> None:
        """Stop the server (``pg_ctl stop -m immediate``) and remove its directory."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.external or self.datadir is None or self._bindir is None:
                return
            pidfile = self.datadir / "postmaster.pid"
            if pidfile.exists():
                cmd = self._cmd(
                    [
                        str(self._bindir / "pg_ctl"),
                        "stop",
                        "-D",
                        str(self.datadir),
                        "-m",
                        "immediate",
                        "-w",
                        "-t",
                        "30",
                    ]
                )
                try:
                    result = _run(cmd, timeout=60, cwd=self.workdir, env=_clean_env(LC_ALL="C"))
                    stopped = result.returncode == 0
                except (OSError, subprocess.TimeoutExpired):
                    stopped = False
                if not stopped:
                    _kill_postmaster(pidfile)
        finally:
            _unregister(self)
            if not _keep_dirs():
                for d in self._cleanup_dirs:
                    shutil.rmtree(d, ignore_errors=True)


async def _drop_database(conn: Any, quoted: str) -> None:
    if conn.get_server_version().major >= 13:
        await conn.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
        return
    await conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = $1 AND pid <> pg_backend_pid()",
        quoted.strip('"'),
    )
    await conn.execute(f"DROP DATABASE IF EXISTS {quoted}")


def _kill_postmaster(pidfile: Path) -> None:
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    for sig, wait in ((signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def _as_postgres_user(cmd: list[str]) -> list[str]:
    runuser = _which("runuser", ("/usr/sbin/runuser", "/sbin/runuser"))
    if runuser:
        return [runuser, "-u", "postgres", "--", *cmd]
    su = _which("su", ("/bin/su", "/usr/bin/su"))
    if su:
        return [su, "-s", "/bin/sh", "postgres", "-c", "exec " + shlex.join(cmd)]
    raise ServiceUnavailable("runuser", "util-linux", "TEST_POSTGRES_URL", "needed to run as root")


def _postgres_can_use(directory: Path) -> bool:
    cmd = _as_postgres_user(["test", "-w", str(directory), "-a", "-x", str(directory)])
    try:
        return _run(cmd, timeout=30, cwd=Path("/")).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _make_pg_workdir(base_dir: Path, as_root: bool) -> tuple[Path, list[Path]]:
    """A fresh directory for the cluster, usable by the user the server runs as.

    As root the server runs as ``postgres``, which may not be able to reach into
    ``base_dir`` (pytest's temp root is mode 0700): then a directory in the system temp
    dir is used instead.
    """
    workdir = Path(tempfile.mkdtemp(prefix="postgres-", dir=base_dir))
    if not as_root:
        return workdir, [workdir]
    import pwd

    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        shutil.rmtree(workdir, ignore_errors=True)
        raise ServiceUnavailable(
            "postgres (system user)",
            "postgresql",
            "TEST_POSTGRES_URL",
            detail="PostgreSQL refuses to run as root and there is no 'postgres' user",
        ) from None
    tried = []
    for parent in (None, tempfile.gettempdir(), "/tmp", "/var/tmp"):
        if parent is not None:
            if not os.path.isdir(parent):
                continue
            workdir = Path(tempfile.mkdtemp(prefix="chargeshare-pg-", dir=parent))
        os.chown(workdir, pw.pw_uid, pw.pw_gid)
        os.chmod(workdir, 0o700)
        if _postgres_can_use(workdir):
            return workdir, [workdir]
        tried.append(str(workdir))
        shutil.rmtree(workdir, ignore_errors=True)
    raise ServiceStartError(
        "PostgreSQL: the 'postgres' user cannot use any of these directories: " + ", ".join(tried)
    )


def _pg_settings(port: int, socket_dir: Path) -> str:
    sock = str(socket_dir).replace("'", "''")
    return (
        "# written by tests/support/services.py\n"
        f"port = {port}\n"
        f"listen_addresses = '{HOST}'\n"
        f"unix_socket_directories = '{sock}'\n"
        "fsync = off\n"
        "full_page_writes = off\n"
        "synchronous_commit = off\n"
        "jit = off\n"
        "max_connections = 200\n"
        "log_min_messages = warning\n"
    )


async def _bootstrap_postgres(admin_dsn: str, database: str, deadline: float) -> None:
    """Wait until the server accepts TCP connections, then create ``database``."""
    import asyncpg

    while True:
        try:
            conn = await asyncpg.connect(admin_dsn, timeout=5)
        except (OSError, TimeoutError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
            continue
        try:
            await conn.fetchval("SELECT 1")
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
            if not exists:
                await conn.execute(f"CREATE DATABASE {_quote_ident(database)}")
        finally:
            await conn.close()
        return


def start_postgres(base_dir: Path) -> PostgresServer:
    """Start a throwaway PostgreSQL cluster in ``base_dir`` (or use ``TEST_POSTGRES_URL``)."""
    env_url = os.environ.get("TEST_POSTGRES_URL")
    if env_url:
        return PostgresServer(env_url, external=True)

    bindir = _pg_bindir()
    base_dir = Path(base_dir)
    base_dir.mkdir(parents=True, exist_ok=True)
    as_root = os.geteuid() == 0
    timeout = _start_timeout()

    workdir, cleanup = _make_pg_workdir(base_dir, as_root)
    server = PostgresServer(
        f"postgresql+asyncpg://postgres@{HOST}:0/{TEST_DATABASE}",
        external=False,
        workdir=workdir,
        bindir=bindir,
        run_as_postgres=as_root,
        cleanup_dirs=cleanup,
    )
    _register(server)
    try:
        _init_and_start_postgres(server, bindir, workdir, as_root, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _init_and_start_postgres(
    server: PostgresServer, bindir: Path, workdir: Path, as_root: bool, timeout: float
) -> None:
    assert server.datadir is not None and server.log_path is not None
    env = _clean_env(LC_ALL="C", LANG="C")
    initdb_log = workdir / "initdb.log"

    initdb = server._cmd(
        [
            str(bindir / "initdb"),
            "-D",
            str(server.datadir),
            "--username=postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
    )
    result = _run(initdb, timeout=timeout + 60, cwd=workdir, env=env)
    initdb_log.write_text((result.stdout or "") + (result.stderr or ""))
    if result.returncode != 0:
        raise ServiceStartError(f"PostgreSQL: initdb failed\n{_describe(initdb, result)}")

    # The unix socket path (dir + "/.s.PGSQL.NNNNN") must fit in sockaddr_un (107 bytes).
    socket_dir = workdir / "sock"
    if len(str(socket_dir)) > 80:
        socket_dir = Path(tempfile.mkdtemp(prefix="pgsock-", dir="/tmp"))
        server._cleanup_dirs.append(socket_dir)
    socket_dir.mkdir(exist_ok=True)
    if as_root:
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(socket_dir, pw.pw_uid, pw.pw_gid)

    conf = server.datadir / "postgresql.conf"
    with conf.open("a") as f:
        f.write("\ninclude 'chargeshare_test.conf'\n")
    overrides = server.datadir / "chargeshare_test.conf"

    attempts = 3
    for attempt in range(1, attempts + 1):
        port = free_port()
        overrides.write_text(_pg_settings(port, socket_dir))
        if as_root:
            st = os.stat(server.datadir)
            os.chown(overrides, st.st_uid, st.st_gid)
        start = server._cmd(
            [
                str(bindir / "pg_ctl"),
                "start",
                "-D",
                str(server.datadir),
                "-l",
                str(server.log_path),
                "-w",
                "-t",
                str(int(timeout)),
            ]
        )
        try:
            result = _run(start, timeout=timeout + 30, cwd=workdir, env=env)
        except subprocess.TimeoutExpired:
            raise ServiceStartError(
                _format_failure(f"PostgreSQL: `{shlex.join(start)}` hung", server.log_path)
            ) from None
        if result.returncode == 0:
            break
        log = _log_tail(server.log_path).lower()
        if _ADDR_IN_USE in log and attempt < attempts:
            continue
        raise ServiceStartError(
            _format_failure("PostgreSQL did not start", server.log_path, _describe(start, result))
        )

    server.port = port
    server.url = f"postgresql+asyncpg://postgres@{HOST}:{port}/{TEST_DATABASE}"
    deadline = time.monotonic() + timeout
    try:
        _run_coroutine_in_thread(
            lambda: _bootstrap_postgres(server.admin_dsn, TEST_DATABASE, deadline), timeout + 10
        )
    except Exception as exc:
        raise ServiceStartError(
            _format_failure(
                f"PostgreSQL started on port {port} but is not usable: {exc!r}", server.log_path
            )
        ) from exc


# --------------------------------------------------------------------------- child processes


class _ProcessServer(_Handle):
    """A server that runs in the foreground as our child process (mosquitto, redis)."""

    name = "server"
    package = "?"
    env_var = "?"
    scheme = "tcp"

    def __init__(self, binary: str, base_dir: Path, prefix: str) -> None:
        self.binary = binary
        self.workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=base_dir))
        self.log_path = self.workdir / f"{prefix.rstrip('-')}.log"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = False
        self._paused = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} pid={self.pid}>"

    @property
    def url(self) -> str:  # type: ignore[override]
        return self._make_url()

    def _make_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _command(self) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _ready(self) -> bool:
        return _port_accepts(self.host, self.port)

    # -- lifecycle -------------------------------------------------------------------

    def _start(self, *, same_port: bool) -> None:
        """Start the process and wait until it serves.

        A fresh free port is tried again when the chosen one was taken meanwhile; with
        ``same_port`` (restart) the same port is retried until the deadline instead.
        """
        timeout = _start_timeout()
        deadline = time.monotonic() + timeout
        attempts = 0
        while True:
            attempts += 1
            if not same_port:
                self.port = free_port()
            error = self._spawn_and_wait(deadline)
            if error is None:
                return
            in_use = _ADDR_IN_USE in _log_tail(self.log_path, 20).lower()
            if in_use and time.monotonic() < deadline and (same_port or attempts < 3):
                time.sleep(0.2 if same_port else 0)
                continue
            raise ServiceStartError(_format_failure(error, self.log_path))

    def _spawn_and_wait(self, deadline: float) -> str | None:
        """Start the process; ``None`` when it serves, else a description of the failure."""
        cmd = self._command()
        with self.log_path.open("ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} {shlex.join(cmd)}\n".encode())
            log.flush()
            try:
                self._proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    start_new_session=True,  # not hit by the terminal's Ctrl-C mid-teardown
                )
            except OSError as exc:
                return f"{self.name}: could not run `{shlex.join(cmd)}`: {exc}"
        while True:
            code = self._proc.poll()
            if code is not None:
                return f"{self.name}: `{shlex.join(cmd)}` exited with status {code}"
            if self._ready():
                # It might have been someone else answering on the port: check we still live.
                time.sleep(0.05)
                if self._proc.poll() is None:
                    return None
                continue
            if time.monotonic() > deadline:
                self._terminate()
                return f"{self.name}: `{shlex.join(cmd)}` did not serve on port {self.port}"
            time.sleep(0.05)

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)  # a paused process cannot handle SIGTERM
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._paused = False

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self._terminate()
        finally:
            _unregister(self)
            if not _keep_dirs():
                shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self) -> None:
        """Stop the server and start it again on the same port (simulates an outage)."""
        if self._stopped:
            raise ServiceError(f"{self.name} was stopped; cannot restart it")
        self._terminate()
        try:
            self._start(same_port=True)
        except BaseException:
            self._terminate()
            raise

    def kill(self) -> None:
        """Stop the process (SIGTERM) without removing anything; ``start_again()`` revives it."""
        self._terminate()

    def start_again(self) -> None:
        """Start a server stopped with ``kill()`` again on the same port."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self._start(same_port=True)

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): the port still accepts, nothing is answered."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT)."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGCONT)
        self._paused = False

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and not self._paused


class _ExternalServer(_Handle):
    """A server named by an environment variable: nothing to start or stop."""

    external = True
    default_port = 0

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        self.host = parts.hostname or HOST
        self.port = parts.port or self.default_port

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} external>"

    def stop(self) -> None:
        pass

    def _cannot(self, what: str) -> None:
        raise ServiceError(f"cannot {what} an external server ({self.url}); skip this test")

    def restart(self) -> None:
        self._cannot("restart")

    def kill(self) -> None:
        self._cannot("kill")

    def start_again(self) -> None:
        self._cannot("start")

    def pause(self) -> None:
        self._cannot("pause")

    def resume(self) -> None:
        self._cannot("resume")


# --------------------------------------------------------------------------- mosquitto

# MQTT 3.1.1 CONNECT (clean session, keepalive 60, empty client id) and DISCONNECT.
_MQTT_CONNECT = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"
_MQTT_DISCONNECT = b"\xe0\x00"


def _mqtt_handshake(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(_MQTT_CONNECT)
            reply = s.recv(4)
            ok = reply[:1] == b"\x20" and reply[3:4] == b"\x00"
            with contextlib.suppress(OSError):
                s.sendall(_MQTT_DISCONNECT)
            return ok
    except OSError:
        return False


class MosquittoServer(_ProcessServer):
    """A mosquitto MQTT broker; ``url`` is ``mqtt://127.0.0.1:PORT``."""

    name = "mosquitto"
    package = "mosquitto"
    env_var = "TEST_MQTT_URL"
    scheme = "mqtt"

    def __init__(self, binary: str, base_dir: Path, extra_config: str = "") -> None:
        super().__init__(binary, base_dir, "mosquitto-")
        self.config_path = self.workdir / "mosquitto.conf"
        self.extra_config = extra_config

    def _command(self) -> list[str]:
        self.config_path.write_text(
            "# written by tests/support/services.py\n"
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "connection_messages true\n"
            # as deploy/mosquitto.conf: without it the broker's sockets wait on Nagle
            # plus the peer's delayed ACK (~40 ms) whenever it forwards two messages
            "set_tcp_nodelay true\n" + self.extra_config
        )
        return [self.binary, "-c", str(self.config_path)]

    def _ready(self) -> bool:
        return _mqtt_handshake(self.host, self.port)


class ExternalMosquitto(_ExternalServer):
    default_port = 1883


def start_mosquitto(
    base_dir: Path, *, extra_config: str = ""
) -> MosquittoServer | ExternalMosquitto:
    """Start a throwaway mosquitto broker (or use ``TEST_MQTT_URL``).

    ``extra_config`` (lines appended to mosquitto.conf, e.g. ``acl_file``) always starts
    a private broker: an existing one cannot take our settings."""
    env_url = os.environ.get("TEST_MQTT_URL")
    if env_url and not extra_config:
        return ExternalMosquitto(env_url)
    binary = _which("mosquitto", MOSQUITTO_FALLBACKS)
    if binary is None:
        raise ServiceUnavailable(
            "mosquitto", "mosquitto", "TEST_MQTT_URL", "looked on PATH and in /usr/sbin"
        )
    base_dir = Path(base_dir)
    base_dir.mkdir(parents=True, exist_ok=True)
    server = MosquittoServer(binary, base_dir, extra_config)
    _register(server)
    try:
        server._start(same_port=False)
    except BaseException:
        server.stop()
        raise
    return server


# --------------------------------------------------------------------------- redis


def _redis_ping(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(_ProcessServer):
    """A redis-server; ``url`` is ``redis://127.0.0.1:PORT/0``."""

    name = "redis-server"
    package = "redis-server"
    env_var = "TEST_REDIS_URL"
    scheme = "redis"

    def __init__(self, binary: str, base_dir: Path) -> None:
        super().__init__(binary, base_dir, "redis-")

    def _make_url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def _command(self) -> list[str]:
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--daemonize", "no",
            "--logfile", "",
        ]  # fmt: skip

    def _ready(self) -> bool:
        return _redis_ping(self.host, self.port)


class ExternalRedis(_ExternalServer):
    default_port = 6379


def start_redis(base_dir: Path) -> RedisServer | ExternalRedis:
    """Start a throwaway redis-server (or use ``TEST_REDIS_URL``)."""
    env_url = os.environ.get("TEST_REDIS_URL")
    if env_url:
        return ExternalRedis(env_url)
    binary = _which("redis-server", REDIS_FALLBACKS)
    if binary is None:
        raise ServiceUnavailable(
            "redis-server", "redis-server", "TEST_REDIS_URL", "looked on PATH and in /usr/bin"
        )
    base_dir = Path(base_dir)
    base_dir.mkdir(parents=True, exist_ok=True)
    server = RedisServer(binary, base_dir)
    _register(server)
    try:
        server._start(same_port=False)
    except BaseException:
        server.stop()
        raise
    return server
