"""Tables outside the default schema (PostgreSQL): changes round-trip with rows; renames there are refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.harness import Project

pytestmark = pytest.mark.postgresql

MODELS = """
class Item(db.Model):
    __table_args__ = {{"schema": "other"}}
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80){name_args})
    qty = db.Column(db.Integer, db.CheckConstraint("{qty_check}"))
{extra}
"""

ARGS = "include_schemas=True"


def models(*, name_args: str = "", qty_check: str = "qty > 0", extra: str = "") -> str:
    return MODELS.format(name_args=name_args, qty_check=qty_check, extra=extra)


def snapshot(project: Project) -> dict[str, Any]:
    inspector = sa.inspect(project.engine)
    return {
        "columns": {
            c["name"]: (str(c["type"]), c["nullable"]) for c in inspector.get_columns("item", schema="other")
        },
        "unique": sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints("item", "other")),
        "checks": sorted(c["sqltext"] for c in inspector.get_check_constraints("item", schema="other")),
    }


def rows(project: Project) -> list[tuple[Any, ...]]:
    return project.query("SELECT id, name, qty FROM other.item ORDER BY id")


@pytest.fixture
def other_schema_project(postgres_url: str, tmp_path: Path) -> Iterator[Project]:
    project = Project(tmp_path, postgres_url)
    project.execute("CREATE SCHEMA other")
    project.write_app(models(), migrate_args=ARGS)
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO other.item (name, qty) VALUES ('a', 1), ('b', 2)")
    yield project
    project.dispose()


def assert_no_changes(project: Project) -> None:
    again = project.flask("db", "migrate", "--exit-code", ok=False)
    assert "No changes in schema detected" in again.output, again


def test_changes_in_another_schema_round_trip_with_rows(other_schema_project: Project) -> None:
    project = other_schema_project
    assert_no_changes(project)
    old, data = snapshot(project), rows(project)

    project.write_app(
        models(name_args=", unique=True", qty_check="qty >= 0", extra="    note = db.Column(db.String(20))"),
        migrate_args=ARGS,
    )
    project.flask("db", "migrate", "-m", "change")
    script = sorted((project.migrations / "versions").glob("*.py"), key=lambda p: p.stat().st_mtime)[-1]
    assert "constraint(None" not in script.read_text()
    project.flask("db", "upgrade")
    new = snapshot(project)
    assert new["unique"] == [("name",)]
    assert new["checks"] == ["qty >= 0"]
    assert "note" in new["columns"]
    assert rows(project) == data
    assert_no_changes(project)

    project.flask("db", "downgrade")
    assert snapshot(project) == old
    assert rows(project) == data
    project.flask("db", "upgrade")
    assert snapshot(project) == new


def test_a_possible_rename_in_another_schema_is_refused_in_one_line(other_schema_project: Project) -> None:
    project = other_schema_project
    versions = sorted((project.migrations / "versions").glob("*.py"))
    project.write_app(
        models().replace("name = db.Column(db.String(80))", "title = db.Column(db.String(80))"),
        migrate_args=ARGS,
    )
    refused = project.flask("db", "migrate", ok=False)
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: Possible renames outside the default schema"), refused
    assert "other.item.name -> title" in line and "--no-renames" in line
    assert "Traceback" not in refused.output
    assert sorted((project.migrations / "versions").glob("*.py")) == versions

    project.flask("db", "migrate", "--no-renames")  # said so: drop + add
    project.flask("db", "upgrade")
    assert "title" in snapshot(project)["columns"]
    project.flask("db", "downgrade")
    assert rows(project) == [(1, "a", 1), (2, "b", 2)]


def test_verify_replays_a_history_with_another_schema(other_schema_project: Project) -> None:
    project = other_schema_project
    project.write_app(models(extra="    note = db.Column(db.String(20))"), migrate_args=ARGS)
    # The automatic verify of the new step runs on a scratch copy that has the schema too.
    migrate = project.flask("db", "migrate", "-m", "note")
    assert "verify: OK" in migrate.output and "FAIL" not in migrate.output, migrate.output
    project.flask("db", "upgrade")
    verified = project.flask("db", "verify")
    assert "verify: OK: 2 revision(s) replayed" in verified.output, verified.output
    assert rows(project) == [(1, "a", 1), (2, "b", 2)]


def test_verify_on_a_given_scratch_database_cleans_up_the_other_schema_too(
    other_schema_project: Project, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    project = other_schema_project
    scratch_url = request.getfixturevalue("postgres_server").create_database()
    scratch = Project(tmp_path, scratch_url)
    scratch.execute("CREATE SCHEMA other")
    for _ in range(2):
        verified = project.flask("db", "verify", "--scratch-url", scratch_url)
        assert "verify: OK: 1 revision(s) replayed" in verified.output, verified.output
    in_other = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'other'"
    assert scratch.query(in_other) == []
    assert rows(project) == [(1, "a", 1), (2, "b", 2)]

    # A table in any schema makes it someone's data, not a scratch database: refused, and left alone.
    scratch.execute("CREATE TABLE other.keep (id integer)")
    refused = project.flask("db", "verify", "--scratch-url", scratch_url, ok=False)
    assert "is not empty: give an empty one" in refused.stderr and "Traceback" not in refused.stderr, refused
    assert scratch.query(in_other) == [("keep",)]
    scratch.dispose()
