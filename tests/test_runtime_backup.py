"""`flask db upgrade --backup`: an online copy of the SQLite file first, and how to restore it on failure."""

from __future__ import annotations

import re
import sqlite3

import pytest

from tests.harness import Project
from tests.revision_files import write_revision

CREATE = """
op.create_table("item", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(20)))
"""


def _project(project: Project, second: str) -> None:
    project.write_app("")
    project.flask("db", "init")
    write_revision(project.migrations, "r1", None, CREATE)
    write_revision(project.migrations, "r2", "r1", second)
    project.flask("db", "upgrade", "r1")
    project.execute("INSERT INTO item (id, name) VALUES (1, 'Ada')")


def _backup_path(stderr: str) -> str:
    match = re.search(r"Backed up '([^']+)' to '([^']+)'\.", stderr)
    assert match, stderr
    return match.group(2)


def test_backup_copies_the_database_before_migrating(sqlite_project: Project) -> None:
    project = sqlite_project
    _project(project, 'op.add_column("item", sa.Column("age", sa.Integer))')

    result = project.flask("db", "upgrade", "--backup")

    copy = sqlite3.connect(_backup_path(result.stderr))
    try:
        assert copy.execute("SELECT version_num FROM alembic_version").fetchall() == [("r1",)]
        assert copy.execute("SELECT * FROM item").fetchall() == [(1, "Ada")]
    finally:
        copy.close()
    assert project.version() == ["r2"]


def test_a_failed_upgrade_with_backup_says_how_to_restore(sqlite_project: Project) -> None:
    project = sqlite_project
    _project(
        project,
        'op.add_column("item", sa.Column("age", sa.Integer))\nop.execute("SELECT nope FROM nowhere")',
    )

    result = project.flask("db", "upgrade", "--backup", ok=False)

    backup = _backup_path(result.stderr)
    restore = [line for line in result.stderr.splitlines() if line.startswith("To restore")]
    database = project.engine.url.database
    assert restore == [f"To restore the database as it was before this upgrade: cp {backup} {database}"]
    assert result.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert "Traceback" not in result.output


@pytest.mark.postgresql
def test_backup_is_refused_on_postgresql(postgres_url: str, tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "project"
    path.mkdir()
    project = Project(path, postgres_url)
    try:
        _project(project, 'op.add_column("item", sa.Column("age", sa.Integer))')
        result = project.flask("db", "upgrade", "--backup", ok=False)
        assert result.stderr.strip().splitlines() == [
            "Error: --backup works on SQLite only, and this database is postgresql: take a backup with "
            "your database's own tools (e.g. pg_dump), then upgrade without --backup."
        ]
        assert project.version() == ["r1"]
    finally:
        project.dispose()
