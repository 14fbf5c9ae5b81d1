"""The seed's story through the real CLI: init, migrate, upgrade, add a column, drop a column, downgrade."""

from __future__ import annotations

from tests.harness import Project

EMPLOYEE = """
class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), unique=True, nullable=False)
    email = db.Column(db.String(120), unique=True, nullable=False)
{extra}

class Company(db.Model):
    cid = db.Column(db.Integer, primary_key=True)
    cname = db.Column(db.String(80), unique=True, nullable=False)
    clocation = db.Column(db.String(80), unique=False, nullable=False)
"""
AGE = "    age = db.Column(db.Integer, unique=False, nullable=True)"


def test_init_migrate_upgrade_creates_the_tables(project: Project) -> None:
    project.write_app(EMPLOYEE.format(extra=""))
    project.flask("db", "init")
    assert (project.migrations / "env.py").read_text().count("\n") < 10

    migrate = project.flask("db", "migrate", "-m", "initial")
    assert "Detected added table 'employee'" in migrate.stderr
    project.flask("db", "upgrade")

    assert {"employee", "company", "alembic_version"} <= project.tables()
    project.execute("INSERT INTO employee (name, email) VALUES ('Ada', 'ada@example.com')")
    assert project.rows("employee") == [{"id": 1, "name": "Ada", "email": "ada@example.com"}]


def test_adding_a_column_keeps_the_rows_and_downgrade_removes_it(project: Project) -> None:
    project.write_app(EMPLOYEE.format(extra=""))
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO employee (name, email) VALUES ('Ada', 'ada@example.com')")

    project.write_app(EMPLOYEE.format(extra=AGE))
    migrate = project.flask("db", "migrate", "-m", "add age")
    assert "Detected added column 'employee.age'" in migrate.stderr
    project.flask("db", "upgrade")
    assert project.rows("employee") == [
        {"id": 1, "name": "Ada", "email": "ada@example.com", "age": None}
    ]

    project.flask("db", "downgrade")
    assert "age" not in project.columns("employee")
    assert project.rows("employee") == [{"id": 1, "name": "Ada", "email": "ada@example.com"}]


def test_second_migrate_finds_no_changes(project: Project) -> None:
    project.write_app(EMPLOYEE.format(extra=AGE))
    project.flask("db", "init")
    project.flask("db", "migrate")
    project.flask("db", "upgrade")

    again = project.flask("db", "migrate", "--exit-code", ok=False)
    assert "No changes in schema detected" in again.output
    assert len(list((project.migrations / "versions").glob("*.py"))) == 1
