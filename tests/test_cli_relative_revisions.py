"""Relative revisions after `--` reach the command: `flask db downgrade -- -2`, as in Flask-Migrate."""

from __future__ import annotations

from tests.harness import Project

MODELS = """
class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False)
{extra}
"""


def test_downgrade_by_a_relative_step_after_double_dash(sqlite_project: Project) -> None:
    project = sqlite_project
    project.write_app(MODELS.format(extra=""))
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "one", "--no-verify")
    project.flask("db", "upgrade")
    project.write_app(MODELS.format(extra="    age = db.Column(db.Integer)"))
    project.flask("db", "migrate", "-m", "two", "--no-verify")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO employee (name, age) VALUES ('Ada', 36)")

    project.flask("db", "downgrade", "--", "-2")

    assert project.version() == []
    assert "employee" not in project.tables()
