"""Throwaway PostgreSQL server for tests: fixtures postgres_server and postgres_url.

Why not pytest-postgresql: its ``postgresql_proc`` runs ``pg_ctl initdb`` inside
pytest's temp directory as the current user. As root, initdb refuses to run, and
running pg_ctl through a ``runuser`` wrapper (``--postgresql-exec``) fails too:
the data directory and log file live under ``/tmp/pytest-of-root``, which pytest
deliberately keeps 0700. Making that work would mean loosening pytest's own temp-dir
permissions, so this module starts the cluster itself in a directory owned by the
unprivileged user.

The server listens only on a unix socket in its private directory, never on TCP: that
cannot collide with other test sessions on the machine (or with the Debian system
cluster) and still works for subprocesses such as ``flask db upgrade``.

Environment:

* ``FLASK_EVOLVE_TEST_POSTGRES_URL``: SQLAlchemy URL of an existing server's
  maintenance database (e.g. ``postgresql+psycopg://me:pw@localhost/postgres``),
  used instead of starting one. The user must be allowed to create databases.
* ``CI=true`` or ``FLASK_EVOLVE_REQUIRE_POSTGRES=1``: a missing PostgreSQL fails
  the tests instead of skipping them.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

URL_ENV = "FLASK_EVOLVE_TEST_POSTGRES_URL"
REQUIRE_ENV = "FLASK_EVOLVE_REQUIRE_POSTGRES"
DB_PREFIX = "flask_evolve_test_"
DIR_PREFIX = "flask-evolve-pg-"
OWNER_FILE = "owner.pid"
SUPERUSER = "postgres"
# Fixed because the socket lives in a private directory, so no other server can hold it.
SOCKET_PORT = 5432
# Unix socket paths are limited to ~107 bytes; leave room for "/.s.PGSQL.5432".
MAX_SOCKET_DIR_LEN = 80

SERVER_SETTINGS = {
    "listen_addresses": "''",
    "port": str(SOCKET_PORT),
    "max_connections": "200",
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
    # minimal WAL and no autovacuum keep the server light on a shared 2-core machine.
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "autovacuum": "off",
    "shared_buffers": "32MB",
    "log_min_messages": "warning",
}

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found. "
    "Run `make test` (it runs scripts/ensure-postgres) or `scripts/ensure-postgres`, "
    "or install them yourself (Debian/Ubuntu: `apt-get install postgresql`), "
    f"or point {URL_ENV} at an existing server."
)


@dataclass(frozen=True)
class PgBinaries:
    """Paths of the two server programs this module runs."""

    initdb: Path
    pg_ctl: Path


def _version_key(path: Path) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in path.parent.name.split("."))
    except ValueError:
        return (-1,)


def find_pg_binaries() -> PgBinaries | None:
    """Locate initdb and pg_ctl.

    Order: ``pg_config --bindir``, /usr/lib/postgresql/*/bin (newest first), PATH.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.strip()
            candidates.append(Path(out))
        except (OSError, subprocess.SubprocessError):
            pass
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True))
    for bindir in candidates:
        initdb, pg_ctl = bindir / "initdb", bindir / "pg_ctl"
        if os.access(initdb, os.X_OK) and os.access(pg_ctl, os.X_OK):
            return PgBinaries(initdb, pg_ctl)
    initdb_path, pg_ctl_path = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb_path and pg_ctl_path:
        return PgBinaries(Path(initdb_path), Path(pg_ctl_path))
    return None


def postgres_required() -> bool:
    """Whether a missing PostgreSQL must fail rather than skip (CI must never skip)."""
    in_ci = os.environ.get("CI", "").lower() in {"true", "1"}
    return in_ci or os.environ.get(REQUIRE_ENV, "").lower() in {"1", "true", "yes"}


def quote_ident(name: str) -> str:
    """Quote a database name for SQL, refusing names tests have no reason to use."""
    if not re.fullmatch(r"[A-Za-z0-9_\-]{1,63}", name):
        raise ValueError(f"unsupported database name: {name!r}")
    return '"' + name.replace('"', '""') + '"'


@dataclass
class PostgresServer:
    """A reachable PostgreSQL server, either started by this module or given by URL."""

    admin_url: str
    data_root: Path | None = None
    _stop: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _engine: sa.Engine | None = field(default=None, repr=False)

    def url_for(self, name: str) -> str:
        """SQLAlchemy URL of database ``name`` on this server."""
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def _admin_engine(self) -> sa.Engine:
        if self._engine is None:
            # NullPool: an idle pooled connection would linger on the server
            # and keep databases busy.
            self._engine = sa.create_engine(self.admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        return self._engine

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (random name unless given) and return its URL."""
        name = name or f"{DB_PREFIX}{uuid.uuid4().hex[:12]}"
        with self._admin_engine().connect() as conn:
            # template0: nobody connects to it, so concurrent creates (xdist, shared
            # servers) never fail with "source database is being accessed".
            conn.exec_driver_sql(f"CREATE DATABASE {quote_ident(name)} TEMPLATE template0 ENCODING 'UTF8'")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` (if it exists), disconnecting its sessions."""
        with self._admin_engine().connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")

    def close(self) -> None:
        """Release the admin engine; stop and delete the server if we started it."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        while self._stop:
            self._stop.pop()()


def _run_as_user() -> pwd.struct_passwd | None:
    """Account to run PostgreSQL as when we are root (initdb/postgres refuse root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root but neither a 'postgres' nor a 'nobody' user exists")


def _command(user: pwd.struct_passwd | None, argv: list[str]) -> tuple[list[str], dict[str, object]]:
    """argv and extra subprocess kwargs that run ``argv`` as ``user`` (or as us)."""
    if user is None:
        return argv, {}
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", user.pw_name, "--", *argv], {}
    return argv, {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_local_server(binaries: PgBinaries, settings: dict[str, str] | None = None) -> PostgresServer:
    """initdb + pg_ctl start a cluster in a fresh temp dir; close() removes it.

    :param settings: postgresql.conf settings on top of :data:`SERVER_SETTINGS`.
    """
    user = _run_as_user()
    parent = tempfile.gettempdir()
    if len(parent) > MAX_SOCKET_DIR_LEN - 30:
        parent = "/tmp"
    _sweep_orphans(Path(parent))
    root = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=parent))
    (root / OWNER_FILE).write_text(str(os.getpid()))
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    data = root / "data"
    log = root / "server.log"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    env.pop("PGDATA", None)
    stopped = False

    def run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        cmd, extra = _command(user, argv)
        # cwd=root: the unprivileged user may not be able to enter our cwd (e.g. /root).
        return subprocess.run(
            cmd,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **extra,  # type: ignore[arg-type]
        )

    def stop() -> None:
        nonlocal stopped
        if stopped:
            return
        stopped = True
        if (data / "postmaster.pid").exists():
            try:
                result = run(
                    [
                        str(binaries.pg_ctl),
                        "stop",
                        "-D",
                        str(data),
                        "-m",
                        "immediate",
                        "-w",
                        "-t",
                        "20",
                    ],
                    30,
                )
                failed = result.returncode != 0
            except (OSError, subprocess.SubprocessError):
                failed = True
            if failed:
                _kill_postmaster(data)
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)
    server = PostgresServer(admin_url="", data_root=root, _stop=[stop])
    try:
        result = run(
            [
                str(binaries.initdb),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ],
            120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        conf_settings = {**SERVER_SETTINGS, **(settings or {}), "unix_socket_directories": f"'{root}'"}
        with (data / "postgresql.conf").open("a") as conf:
            conf.write("\n# flask-evolve test server\n")
            conf.writelines(f"{key} = {value}\n" for key, value in conf_settings.items())
        result = run(
            [
                str(binaries.pg_ctl),
                "start",
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
            ],
            90,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"pg_ctl start failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}\n"
                f"server log:\n{_tail(log)}"
            )
    except BaseException:
        server.close()
        raise
    server.admin_url = f"postgresql+psycopg://{SUPERUSER}@/postgres?host={root}&port={SOCKET_PORT}"
    return server


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_orphans(parent: Path) -> None:
    """Stop and delete clusters whose pytest process died without cleaning up.

    atexit does not run on SIGKILL or an unhandled SIGTERM, so a later session
    tidies up instead. A directory without an owner file is still being set up.
    """
    for root in parent.glob(f"{DIR_PREFIX}*"):
        try:
            owner = int((root / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if _pid_alive(owner):
            continue
        _kill_postmaster(root / "data")
        shutil.rmtree(root, ignore_errors=True)


def _kill_postmaster(data: Path) -> None:
    """Last resort when pg_ctl stop failed: SIGQUIT, then SIGKILL, the postmaster."""
    try:
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    for sig in (signal.SIGQUIT, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return
            time.sleep(0.1)


def _unavailable(message: str) -> NoReturn:
    if postgres_required():
        pytest.fail(
            f"{message} (PostgreSQL is required here: CI=true or {REQUIRE_ENV}=1)",
            pytrace=False,
        )
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """One PostgreSQL server per session (and per xdist worker).

    Started here, or the one named by FLASK_EVOLVE_TEST_POSTGRES_URL.
    """
    external = os.environ.get(URL_ENV)
    if external:
        url = make_url(external)
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        server = PostgresServer(admin_url=url.render_as_string(hide_password=False))
    else:
        binaries = find_pg_binaries()
        if binaries is None:
            _unavailable(INSTALL_HINT)
        # A server that fails to start is a real error even outside CI: never skip it.
        server = start_local_server(binaries)
    request.addfinalizer(server.close)
    yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a fresh, empty database, dropped (WITH (FORCE)) after the test."""
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        database = make_url(url).database
        assert database is not None
        postgres_server.drop_database(database)
