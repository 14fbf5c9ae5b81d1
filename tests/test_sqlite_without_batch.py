"""SQLite under Migrate(render_as_batch=False): unnamed UNIQUE and FOREIGN KEY constraints drop, rows kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import Project
from tests.test_autogenerate_matrix import FK_ON
from tests.test_constraint_names import as_existing_project
from tests.test_renames import create_all_schema

OLD = """
class Company(db.Model):
    cid = db.Column(db.Integer, primary_key=True)
    code = db.Column(db.String(10), unique=True)


class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), unique=True)
    nick = db.Column(db.String(80))
    company_id = db.Column(db.Integer, db.ForeignKey("company.cid"))
    __table_args__ = (db.UniqueConstraint("name", "nick"),)
"""

NEW = """
class Company(db.Model):
    cid = db.Column(db.Integer, primary_key=True)
    code = db.Column(db.String(10))


class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80))
    company_id = db.Column(db.Integer)
    boss_id = db.Column(db.Integer, db.ForeignKey("employee.id"))
"""

ARGS = "render_as_batch=False"


def _data(project: Project) -> tuple[list[tuple[object, ...]], ...]:
    return (
        project.query("SELECT cid, code FROM company ORDER BY cid"),
        project.query("SELECT id, name, company_id FROM employee ORDER BY id"),
    )


@pytest.mark.parametrize("fk_on", [False, True], ids=["fk-off", "fk-on"])
def test_unnamed_unique_and_foreign_key_drop_without_batch_rendering(
    sqlite_project: Project, tmp_path: Path, fk_on: bool
) -> None:
    project = sqlite_project
    imports = FK_ON if fk_on else ""
    project.write_app(OLD, migrate_args=ARGS, imports=imports)
    project.flask("db", "init")
    # An existing project (no naming convention): the constraints are unnamed in the database.
    as_existing_project(project)
    project.flask("db", "migrate", "-m", "initial")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO company (cid, code) VALUES (1, 'a'), (2, 'b')")
    project.execute(
        "INSERT INTO employee (id, name, nick, company_id) VALUES (1, 'Ada', 'A', 1), (2, 'Bob', 'B', 2)"
    )
    old_schema, data = project.schema(), _data(project)
    nicks = project.query("SELECT nick FROM employee ORDER BY id")

    project.write_app(NEW, migrate_args=ARGS, imports=imports)
    migrate = project.flask("db", "migrate", "-m", "drop constraints")
    assert "Detected removed unnamed unique constraint on employee(name)" in migrate.stderr
    script = sorted((project.migrations / "versions").glob("*.py"), key=lambda p: p.stat().st_mtime)[-1]
    assert "constraint(None" not in script.read_text()

    project.flask("db", "upgrade")
    new_schema = project.schema()
    assert new_schema == create_all_schema(project, f"sqlite:///{tmp_path / 'reference.db'}")[0]
    assert _data(project) == data
    project.execute("INSERT INTO employee (id, name, company_id) VALUES (3, 'Ada', 99)")  # no longer refused
    project.execute("DELETE FROM employee WHERE id = 3")
    again = project.flask("db", "migrate", "--exit-code", ok=False)
    assert "No changes in schema detected" in again.output, again

    project.flask("db", "downgrade")
    assert project.schema() == old_schema
    assert _data(project) == data
    assert project.query("SELECT nick FROM employee ORDER BY id") == nicks
    project.flask("db", "upgrade")
    assert project.schema() == new_schema
    assert _data(project) == data
