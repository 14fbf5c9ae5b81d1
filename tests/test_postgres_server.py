"""Proves the PostgreSQL fixtures give real, isolated databases subprocesses reach."""

from __future__ import annotations

import subprocess
import sys

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tests.postgres_server import PostgresServer


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=NullPool)


def _tables(url: str) -> set[str]:
    engine = _engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_fresh_database_is_empty_and_accepts_a_table(postgres_url: str) -> None:
    assert _tables(postgres_url) == set()
    engine = _engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE widget (id serial PRIMARY KEY, name text NOT NULL)")
            conn.exec_driver_sql("INSERT INTO widget (name) VALUES ('a'), ('b')")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM widget").scalar_one() == 2
    finally:
        engine.dispose()


def test_databases_are_isolated(postgres_server: PostgresServer) -> None:
    first = postgres_server.create_database()
    second = postgres_server.create_database()
    try:
        assert first != second
        engine = _engine(first)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("CREATE TABLE only_in_first (id int)")
        finally:
            engine.dispose()
        assert _tables(first) == {"only_in_first"}
        assert _tables(second) == set()
    finally:
        for url in (first, second):
            postgres_server.drop_database(make_url(url).database or "")


def test_drop_database_disconnects_open_sessions(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.create_database("flask_evolve_test_named")
    assert make_url(url).database == "flask_evolve_test_named"
    engine = _engine(url)
    conn = engine.connect()
    try:
        conn.exec_driver_sql("SELECT 1")
        postgres_server.drop_database("flask_evolve_test_named")
    finally:
        conn.invalidate()
        engine.dispose()
    admin = _engine(postgres_server.admin_url)
    try:
        with admin.connect() as check:
            exists = check.exec_driver_sql(
                "SELECT count(*) FROM pg_database WHERE datname = %(name)s",
                {"name": "flask_evolve_test_named"},
            ).scalar_one()
    finally:
        admin.dispose()
    assert exists == 0


def test_subprocess_can_use_the_url(postgres_url: str) -> None:
    script = (
        "import sys, sqlalchemy as sa\n"
        "engine = sa.create_engine(sys.argv[1])\n"
        "with engine.begin() as conn:\n"
        "    conn.exec_driver_sql('CREATE TABLE from_child (id int)')\n"
        "    conn.exec_driver_sql('INSERT INTO from_child VALUES (42)')\n"
        "engine.dispose()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, postgres_url],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    engine = _engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT id FROM from_child").scalar_one() == 42
    finally:
        engine.dispose()


def test_server_is_tuned_for_tests(postgres_server: PostgresServer) -> None:
    if postgres_server.data_root is None:
        return  # an external server's settings are not ours to check
    engine = _engine(postgres_server.admin_url)
    try:
        with engine.connect() as conn:
            settings = {
                name: conn.exec_driver_sql(f"SHOW {name}").scalar_one()
                for name in (
                    "max_connections",
                    "fsync",
                    "synchronous_commit",
                    "full_page_writes",
                    "listen_addresses",
                )
            }
    finally:
        engine.dispose()
    assert settings == {
        "max_connections": "200",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "listen_addresses": "",
    }
