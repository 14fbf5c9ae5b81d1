"""Constraint names through the real CLI: never None in a script, a convention for new projects, no churn."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.harness import Project

MODELS = """
class Company(db.Model):
    cid = db.Column(db.Integer, primary_key=True)
    cname = db.Column(db.String(80), nullable=False)


class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False{name_args})
{extra}
"""
FK_COLUMN = '    company_id = db.Column(db.Integer, db.ForeignKey("company.cid"))'


def models(name_args: str = "", extra: str = "") -> str:
    return MODELS.format(name_args=name_args, extra=extra)


def latest_script(project: Project) -> str:
    files = sorted((project.migrations / "versions").glob("*.py"), key=lambda p: p.stat().st_mtime)
    return files[-1].read_text()


def as_existing_project(project: Project) -> None:
    """Make the migrations folder look like one Flask-Migrate made: no [flask_evolve] section."""
    ini: Path = project.migrations / "alembic.ini"
    ini.write_text(ini.read_text().split("[flask_evolve]")[0])


def start(project: Project, *, existing: bool, name_args: str = "", extra: str = "") -> None:
    project.write_app(models(name_args, extra))
    project.flask("db", "init")
    if existing:
        as_existing_project(project)
    project.flask("db", "migrate", "-m", "initial")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO company (cid, cname) VALUES (1, 'Acme'), (2, 'Initech')")
    project.execute("INSERT INTO employee (id, name) VALUES (1, 'Ada'), (2, 'Linus')")


def assert_no_changes(project: Project) -> None:
    again = project.flask("db", "migrate", "--exit-code", ok=False)
    assert "No changes in schema detected" in again.output


def test_new_projects_name_their_constraints_by_the_convention(project: Project) -> None:
    project.write_app(models(name_args=", unique=True", extra=FK_COLUMN))
    project.flask("db", "init")
    assert "naming_convention = default" in (project.migrations / "alembic.ini").read_text()
    project.flask("db", "migrate", "-m", "initial")
    script = latest_script(project)
    assert "name='uq_employee_name'" in script
    assert "name='fk_employee_company_id_company'" in script
    assert "name='pk_employee'" in script
    project.flask("db", "upgrade")
    assert_no_changes(project)

    inspector = sa.inspect(project.engine)
    assert [u["name"] for u in inspector.get_unique_constraints("employee")] == ["uq_employee_name"]
    assert [f["name"] for f in inspector.get_foreign_keys("employee")] == ["fk_employee_company_id_company"]

    # Named, the constraints can be dropped later, on SQLite too.
    project.write_app(models())
    project.flask("db", "migrate", "-m", "drop them")
    project.flask("db", "upgrade")
    assert sa.inspect(project.engine).get_unique_constraints("employee") == []
    assert_no_changes(project)


def test_existing_project_unique_and_foreign_key_added_later_get_names_and_work(project: Project) -> None:
    # Flask-Migrate renders create_unique_constraint(None, ...) here, which SQLite's
    # batch mode rejects with "Constraint must have a name".
    start(project, existing=True)
    # An existing project's names are its own: no convention on its tables.
    assert "pk_employee" not in latest_script(project)
    assert_no_changes(project)

    project.write_app(models(name_args=", unique=True", extra=FK_COLUMN))
    project.flask("db", "migrate", "-m", "unique and fk")
    script = latest_script(project)
    assert not re.search(r"constraint\(None", script), script
    if project.dialect == "postgresql":
        assert "create_unique_constraint('uq_employee_name', ['name'])" in script
        assert "create_foreign_key('fk_employee_company_id_company', 'company'" in script

    project.flask("db", "upgrade")
    assert project.rows("employee", order_by="id") == [
        {"id": 1, "name": "Ada", "company_id": None},
        {"id": 2, "name": "Linus", "company_id": None},
    ]
    assert_no_changes(project)
    project.flask("db", "downgrade")
    assert "company_id" not in project.columns("employee")
    assert project.rows("employee", order_by="id")[1] == {"id": 2, "name": "Linus"}
    project.flask("db", "upgrade")


def test_dropping_an_unnamed_unique_constraint(project: Project) -> None:
    # On SQLite the database gave the constraint no name at all; Alembic never
    # notices it going away. On PostgreSQL the real name (employee_name_key) is used.
    start(project, existing=True, name_args=", unique=True")
    project.write_app(models())
    migrate = project.flask("db", "migrate", "-m", "not unique")
    script = latest_script(project)
    assert "drop_constraint(None" not in script
    if project.dialect == "sqlite":
        assert "Detected removed unnamed unique constraint on employee(name)" in migrate.stderr
        # The SQLite planner rebuilds the table to its exact new CREATE TABLE (no name needed).
        assert "CREATE TABLE _evolve_new_employee" in script
    else:
        assert re.search(r"drop_constraint\((batch_op\.f\()?'employee_name_key'", script)

    project.flask("db", "upgrade")
    project.execute("INSERT INTO employee (id, name) VALUES (3, 'Ada')")
    assert len(project.rows("employee")) == 3
    assert_no_changes(project)

    project.execute("DELETE FROM employee WHERE id = 3")
    project.flask("db", "downgrade")
    uniques = sa.inspect(project.engine).get_unique_constraints("employee")
    assert [tuple(u["column_names"]) for u in uniques] == [("name",)]
    assert len(project.rows("employee")) == 2


def test_dropping_an_unnamed_foreign_key(project: Project) -> None:
    start(project, existing=True, extra=FK_COLUMN)
    project.execute("UPDATE employee SET company_id = 1")
    project.write_app(models(extra="    company_id = db.Column(db.Integer)"))
    project.flask("db", "migrate", "-m", "no fk")
    script = latest_script(project)
    assert "drop_constraint(None" not in script
    project.flask("db", "upgrade")
    assert sa.inspect(project.engine).get_foreign_keys("employee") == []
    assert [r["company_id"] for r in project.rows("employee")] == [1, 1]
    assert_no_changes(project)
    project.flask("db", "downgrade")
    assert len(sa.inspect(project.engine).get_foreign_keys("employee")) == 1


@pytest.mark.parametrize("value", ["off"])
def test_migrate_option_turns_the_convention_off(sqlite_project: Project, value: str) -> None:
    project = sqlite_project
    project.write_app(models(name_args=", unique=True"), migrate_args=f"naming_convention={value!r}")
    project.flask("db", "init")
    project.flask("db", "migrate")
    assert "uq_employee_name" not in latest_script(project)
