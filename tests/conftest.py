"""Shared fixtures: a Project per test, on a fresh SQLite file and on a fresh PostgreSQL database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings

from tests.harness import Project

pytest_plugins = ["tests.postgres_server", "tests.flask_migrate_templates"]

# hypothesis: no deadline and no too-slow health check anywhere, since this machine's 2 cores are
# shared and a slow example is noise, not a bug. Under CI=true (.ci/run) the examples are derived from
# each test's name (derandomize): every CI run tries the same ones, so a red CI means the code changed
# and the failure replays anywhere. Local runs stay random and keep finding new examples.
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", parent=settings.get_profile("dev"), derandomize=True, database=None)
settings.load_profile("ci" if os.environ.get("CI", "").lower() in ("true", "1") else "dev")

DATABASES = ["sqlite", "postgresql"]


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    request.applymarker(pytest.mark.postgresql)
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file, for behaviour that only SQLite has."""
    return f"sqlite:///{tmp_path / 'app.db'}"


@pytest.fixture
def project(tmp_path: Path, database_url: str) -> Iterator[Project]:
    """A project folder with the database of the current parameter."""
    path = tmp_path / "project"
    path.mkdir()
    project = Project(path, database_url)
    yield project
    project.dispose()


@pytest.fixture
def sqlite_project(tmp_path: Path, sqlite_url: str) -> Iterator[Project]:
    path = tmp_path / "project"
    path.mkdir()
    project = Project(path, sqlite_url)
    yield project
    project.dispose()


@pytest.fixture
def second_database_url(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Iterator[str]:
    """Another fresh database on the same server as ``database_url``, for SQLALCHEMY_BINDS."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'bind.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    url = server.create_database()
    try:
        yield url
    finally:
        name = sa.make_url(url).database
        assert name is not None
        server.drop_database(name)
