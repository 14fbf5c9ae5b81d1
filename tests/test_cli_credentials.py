"""No command prints a database password, wherever the URL carries it, and connection errors are one line."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tests.harness import Project
from tests.postgres_server import PostgresServer, quote_ident
from tests.test_runtime_bad_input import _folder_hash

RIGHT = "R1ght-Pa55word"
WRONG = "Wr0ng-Pa55word"

MODEL = """
class Item(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(50), nullable=False)
"""

#: Every command that connects, as a user would run it after changing the password in the URL.
CONNECTING = [
    ("upgrade",),
    ("downgrade",),
    ("migrate", "-m", "more"),
    ("stamp", "--purge", "head"),
    ("current", "-v"),
    ("history", "-i"),
    ("status", "--format", "json"),
    ("check",),
    ("check", "--drift"),
    ("archive",),
    ("archive", "--purge"),
]


@pytest.fixture
def password_login(postgres_server: PostgresServer) -> Iterator[Callable[[str, str], str]]:
    """A role that must give its password (scram) and a database it owns; returns ``url(password, where)``.

    ``where`` is ``netloc`` (``user:password@``) or ``query`` (``?password=``). The test server
    trusts every local login, so one pg_hba.conf line, for this role only, is put in front and
    taken out again afterwards.
    """
    if postgres_server.data_root is None:
        pytest.skip("needs the test's own PostgreSQL server (its pg_hba.conf is edited)")
    role = f"evolve_pw_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_server.admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        hba = Path(connection.exec_driver_sql("SHOW hba_file").scalar_one())
        original = hba.read_text()
        hba.write_text(f"local all {role} scram-sha-256\n{original}")
        connection.exec_driver_sql("SELECT pg_reload_conf()")
        connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{RIGHT}' CREATEDB")
        connection.exec_driver_sql(f"CREATE DATABASE {role} OWNER {role} TEMPLATE template0")

    def url(password: str, where: str) -> str:
        parsed = sa.make_url(postgres_server.admin_url).set(username=role, database=role)
        if where == "netloc":
            parsed = parsed.set(password=password)
        else:
            parsed = parsed.update_query_dict({"password": password})
        return parsed.render_as_string(hide_password=False)

    _wait_for_password_check(url(WRONG, "netloc"))
    try:
        yield url
    finally:
        with admin.connect() as connection:
            hba.write_text(original)
            connection.exec_driver_sql("SELECT pg_reload_conf()")
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {quote_ident(role)} WITH (FORCE)")
            connection.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        admin.dispose()


def _wait_for_password_check(wrong_url: str) -> None:
    """pg_reload_conf() only signals the server: wait until it refuses a wrong password."""
    engine = sa.create_engine(wrong_url, poolclass=NullPool)
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            try:
                engine.connect().close()
            except sa.exc.OperationalError:
                return
            time.sleep(0.1)
        raise AssertionError("the server never started asking for the password")
    finally:
        engine.dispose()


@pytest.mark.postgresql
@pytest.mark.parametrize("where", ["netloc", "query"])
def test_no_command_prints_the_password(
    where: str, password_login: Callable[[str, str], str], tmp_path: Path
) -> None:
    project = Project(tmp_path, password_login(RIGHT, where))
    project.write_app(MODEL)
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "items")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO item (id, name) VALUES (1, 'Ada'), (2, 'Grace')")
    state = project.schema(), project.rows("item", order_by="id"), project.version()
    folder = _folder_hash(project.migrations)

    # The right password: the commands that print the database's URL.
    current = project.flask("db", "current", "-v")
    assert "Current revision(s) for postgresql+psycopg://" in current.stdout
    status = project.flask("db", "status", "--format", "json")
    not_empty = project.flask("db", "verify", "--scratch-url", password_login(RIGHT, where), ok=False)
    assert "is not empty" in not_empty.stderr
    for result in (current, status, not_empty):
        assert RIGHT not in result.output, result

    # A wrong password: every command says so in one line, without the password.
    wrong = {"DATABASE_URL": password_login(WRONG, where)}
    for args in CONNECTING:
        result = project.flask("db", *args, ok=False, env=wrong)
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and "Traceback" not in result.output, result
        assert "password authentication failed" in errors[0], result
        assert "check the user name and password" in errors[0], result
        assert WRONG not in result.output and RIGHT not in result.output, result
        assert result.returncode == (5 if args[0] == "check" else 1), result
    scratch = project.flask("db", "verify", "--scratch-url", password_login(WRONG, where), ok=False)
    assert "Could not connect to the scratch database" in scratch.stderr and "Traceback" not in scratch.output
    assert WRONG not in scratch.output, scratch

    assert (project.schema(), project.rows("item", order_by="id"), project.version()) == state
    assert _folder_hash(project.migrations) == folder
    project.dispose()


@pytest.mark.postgresql
def test_check_says_it_could_not_check(tmp_path: Path, postgres_server: PostgresServer) -> None:
    """Exit 5, not 1: `flask db check` exits 1 when the models changed, and scripts act on that."""
    missing = sa.make_url(postgres_server.admin_url).set(database=f"no_such_{uuid.uuid4().hex[:8]}")
    project = Project(tmp_path, missing.render_as_string(hide_password=False))
    project.write_app(MODEL)
    project.flask("db", "init")
    for args in (("check",), ("check", "--drift")):
        result = project.flask("db", *args, ok=False)
        assert result.returncode == 5, result
        assert result.stderr.startswith("Error: Database error on ") and "does not exist" in result.stderr
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output, result


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://me:S3cret@db/app", "postgresql://me:***@db/app"),
        ("postgresql://me:p@ss:w0rd@db/app: failed", "postgresql://me:***@db/app: failed"),
        (
            "postgresql://me@/app?host=/run&password=S3cret: failed",
            "postgresql://me@/app?host=/run&password=***: failed",
        ),
        ("mysql://root@db/x?passwd=S3cret&charset=utf8", "mysql://root@db/x?passwd=***&charset=utf8"),
        (
            "invalid dsn: host=db password='S3 cret' sslpassword=S3cret",
            "invalid dsn: host=db password=*** sslpassword=***",
        ),
        ('PGPASSWORD="S3cret" psql', "PGPASSWORD=*** psql"),
        ('password authentication failed for user "me"', 'password authentication failed for user "me"'),
    ],
)
def test_every_credential_form_is_masked(text: str, masked: str) -> None:
    from flask_evolve.errors import hide_credentials

    assert hide_credentials(text) == masked
    assert hide_credentials(masked) == masked
