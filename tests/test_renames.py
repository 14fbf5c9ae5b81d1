"""Rename detection through the real CLI: renamed columns and tables keep their rows, both ways."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.harness import Project, Result, snapshot_schema

MODELS = """
class {Company}(db.Model):
    {company_args}cid = db.Column(db.Integer, primary_key=True)
    cname = db.Column(db.String(80), unique=True, nullable=False)
    {clocation} = db.Column(db.String(120), nullable=True)


class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    {name} = db.Column(db.String(80), unique=True, nullable=False{name_info})
    {email} = db.Column(db.String(120), index=True)
    company_id = db.Column(db.Integer, db.ForeignKey("{company}.cid"))
{extra}
"""

ORIGINAL = {
    "Company": "Company",
    "company": "company",
    "company_args": "",
    "clocation": "clocation",
    "name": "name",
    "name_info": "",
    "email": "email",
    "extra": "",
}


def models(**changes: str) -> str:
    return MODELS.format(**{**ORIGINAL, **changes})


def adds(script: str, column: str) -> bool:
    """Whether the script adds ``employee.<column>`` (in a batch block or not)."""
    return re.search(rf"add_column\(('employee', )?sa\.Column\('{column}'", script) is not None


def scripts(project: Project) -> list[Path]:
    return sorted((project.migrations / "versions").glob("*.py"), key=lambda p: p.stat().st_mtime)


def upgraded(project: Project, app_models: str, *, convention: bool = False) -> None:
    """``app_models`` initialised, migrated and upgraded; without ``convention`` the migrations
    folder is one Flask-Migrate would have made, so the database names its constraints itself."""
    project.write_app(app_models)
    project.flask("db", "init")
    if not convention:
        ini = project.migrations / "alembic.ini"
        ini.write_text(ini.read_text().split("[flask_evolve]")[0])
    project.flask("db", "migrate", "-m", "initial")
    project.flask("db", "upgrade")


def start(project: Project, *, convention: bool = False) -> None:
    """An upgraded project with the original models and rows in both tables.

    Without ``convention`` the migrations folder is one Flask-Migrate would have
    made, so the database names its constraints itself, as create_all() does.
    """
    upgraded(project, models(), convention=convention)
    project.execute("INSERT INTO company (cid, cname, clocation) VALUES (1, 'Acme', 'Paris')")
    project.execute(
        "INSERT INTO employee (id, name, email, company_id) VALUES "
        "(1, 'Ada', 'ada@example.com', 1), (2, 'Linus', 'linus@example.com', NULL)"
    )


@pytest.fixture
def reference_url(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[str]:
    """A second, empty database of the same kind, for create_all() from the models."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'reference.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    url = server.create_database()
    try:
        yield url
    finally:
        server.drop_database(sa.make_url(url).database)


def object_names(engine: sa.Engine) -> dict[str, object]:
    """Index names everywhere; on PostgreSQL also constraint and serial sequence names.

    SQLite keeps a renamed column's constraint names (changing one means copying the table).
    """
    inspector = sa.inspect(engine)
    names: dict[str, object] = {}
    for table in inspector.get_table_names():
        if table == "alembic_version" or table.startswith("_evolve_archive_"):  # lossless downgrades
            continue
        found = sorted(i["name"] for i in inspector.get_indexes(table) if not i.get("duplicates_constraint"))
        if engine.dialect.name == "postgresql":
            found += sorted(u["name"] for u in inspector.get_unique_constraints(table))
            found += sorted(f["name"] for f in inspector.get_foreign_keys(table))
            found.append(inspector.get_pk_constraint(table)["name"])
        names[table] = found
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            names["sequences"] = sorted(
                connection.execute(sa.text("SELECT relname FROM pg_class WHERE relkind = 'S'")).scalars()
            )
    return names


def create_all_schema(project: Project, url: str) -> tuple[dict[str, object], dict[str, object]]:
    """The schema (and object names) create_all() makes from the current models, on a fresh database."""
    subprocess.run(
        [sys.executable, "-c", "from app import app, db\nwith app.app_context(): db.create_all()"],
        cwd=project.path,
        env=project.env(DATABASE_URL=url),
        check=True,
    )
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return snapshot_schema(engine), object_names(engine)
    finally:
        engine.dispose()


def round_trip(project: Project, reference_url: str, *migrate_args: str) -> str:
    """migrate + upgrade, the create_all() schema, nothing left to migrate, downgrade, re-upgrade.

    Returns the text of the written script.
    """
    before = project.schema(), object_names(project.engine)
    migrate = project.flask("db", "migrate", "-m", "change", *migrate_args)
    script = scripts(project)[-1].read_text()
    assert "Generating" in migrate.stdout
    project.flask("db", "upgrade")
    assert (project.schema(), object_names(project.engine)) == create_all_schema(project, reference_url)
    again = project.flask("db", "migrate", "--exit-code", ok=False)
    assert "No changes in schema detected" in again.output
    project.flask("db", "downgrade")
    assert (project.schema(), object_names(project.engine)) == before
    project.flask("db", "upgrade")
    return script + "\n" + migrate.stderr


def test_column_rename_with_unique_and_index_keeps_rows(project: Project, reference_url: str) -> None:
    start(project)
    project.write_app(models(name="full_name", email="mail"))

    output = round_trip(project, reference_url)

    assert "rename assumed: employee.name -> full_name (use --no-renames to undo)" in output
    assert "rename assumed: employee.email -> mail" in output
    assert "new_column_name='full_name'" in output
    assert "drop_column" not in output and "add_column" not in output
    assert "Rename column employee.name -> full_name" in output
    assert project.rows("employee", order_by="id") == [
        {"id": 1, "full_name": "Ada", "mail": "ada@example.com", "company_id": 1},
        {"id": 2, "full_name": "Linus", "mail": "linus@example.com", "company_id": None},
    ]
    project.flask("db", "downgrade")
    assert project.rows("employee", order_by="id")[0] == {
        "id": 1,
        "name": "Ada",
        "email": "ada@example.com",
        "company_id": 1,
    }


def test_table_rename_referenced_by_a_foreign_key(project: Project, reference_url: str) -> None:
    start(project)
    project.write_app(models(Company="Organization", company="organization"))

    output = round_trip(project, reference_url)

    assert "op.rename_table('company', 'organization')" in output
    assert "rename assumed: company -> organization" in output
    assert "drop_table" not in output and "create_table" not in output
    assert project.rows("organization") == [{"cid": 1, "cname": "Acme", "clocation": "Paris"}]
    assert project.schema()["employee"]["foreign_keys"] == [(("company_id",), "organization", ("cid",))]
    project.flask("db", "downgrade")
    assert "organization" not in project.tables()
    assert project.rows("company") == [{"cid": 1, "cname": "Acme", "clocation": "Paris"}]
    assert project.schema()["employee"]["foreign_keys"] == [(("company_id",), "company", ("cid",))]


def test_names_that_follow_the_convention_follow_the_rename(project: Project) -> None:
    start(project, convention=True)
    project.write_app(models(Company="Organization", company="organization", name="full_name", email="mail"))
    project.flask("db", "migrate")
    project.flask("db", "upgrade")
    names = object_names(project.engine)
    assert names["employee"][0] == "ix_employee_mail"
    if project.dialect == "postgresql":
        assert names["employee"][1:] == [
            "uq_employee_full_name",
            "fk_employee_company_id_organization",
            "pk_employee",
        ]
        assert names["organization"] == ["uq_organization_cname", "pk_organization"]
        assert names["sequences"] == ["employee_id_seq", "organization_cid_seq"]
    again = project.flask("db", "migrate", "--exit-code", ok=False)
    assert "No changes in schema detected" in again.output
    project.flask("db", "downgrade")
    assert object_names(project.engine)["employee"][0] == "ix_employee_email"


def test_renames_in_two_tables_and_an_added_column_in_one_migration(
    project: Project, reference_url: str
) -> None:
    start(project)
    project.write_app(
        models(clocation="city", name="full_name", extra="    age = db.Column(db.Integer)")
    )

    output = round_trip(project, reference_url)

    assert "rename assumed: company.clocation -> city" in output
    assert "rename assumed: employee.name -> full_name" in output
    assert adds(output, "age")
    assert project.rows("company") == [{"cid": 1, "cname": "Acme", "city": "Paris"}]
    assert project.rows("employee", order_by="id")[0] == {
        "id": 1,
        "full_name": "Ada",
        "email": "ada@example.com",
        "company_id": 1,
        "age": None,
    }


RETYPED = """
class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    {name} = db.Column(db.String(80), nullable=False)
    age = db.Column(db.String({length}))
"""


def test_a_column_renamed_and_another_retyped_in_one_table_downgrades(
    project: Project, reference_url: str
) -> None:
    # The narrower type archives the old values: their restore splits the table's changes in
    # two on the way down, and the rename back comes after the retype's rebuild.
    upgraded(project, RETYPED.format(name="name", length=50))
    project.execute("INSERT INTO employee (id, name, age) VALUES (1, 'Ada', '36'), (2, 'Linus', '54')")
    project.write_app(RETYPED.format(name="full_name", length=10))

    # round_trip: upgrade gives the create_all() schema, a second migrate finds nothing,
    # downgrade gives the old schema back, and re-upgrade works.
    output = round_trip(project, reference_url, "--rename", "employee.name=full_name")

    assert "rename from --rename: employee.name -> full_name" in output
    assert project.rows("employee", order_by="id") == [
        {"id": 1, "full_name": "Ada", "age": "36"},
        {"id": 2, "full_name": "Linus", "age": "54"},
    ]
    project.flask("db", "downgrade")
    assert project.rows("employee", order_by="id") == [
        {"id": 1, "name": "Ada", "age": "36"},
        {"id": 2, "name": "Linus", "age": "54"},
    ]
    assert project.columns("employee")["age"]["type"].length == 50


DEFAULTED = """
class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    {name} = db.Column(db.String(80), nullable=True{default})
"""


def server_default(text: str) -> str:
    return f", server_default={text!r}" if text else ""


@pytest.mark.parametrize(
    ("old_default", "new_default"),
    [("", "anonymous"), ("n/a", "anonymous"), ("n/a", "")],
    ids=["default-added", "default-changed", "default-removed"],
)
def test_a_column_renamed_with_a_new_server_default_gets_both_both_ways(
    project: Project, reference_url: str, old_default: str, new_default: str
) -> None:
    # Renaming a column and giving it a default is one model edit: the guessed rename must carry
    # the default's change along, and the downgrade must put the old default back.
    upgraded(project, DEFAULTED.format(name="name", default=server_default(old_default)))
    project.execute("INSERT INTO employee (id, name) VALUES (1, 'Ada'), (2, NULL)")
    project.write_app(DEFAULTED.format(name="full_name", default=server_default(new_default)))

    # round_trip: upgrade gives the create_all() schema (defaults included), a second migrate
    # finds nothing, downgrade gives the old schema back, and re-upgrade works.
    output = round_trip(project, reference_url)

    assert "rename assumed: employee.name -> full_name" in output
    assert "drop_column" not in output and "add_column" not in output
    assert project.rows("employee", order_by="id") == [
        {"id": 1, "full_name": "Ada"},
        {"id": 2, "full_name": None},
    ]
    project.execute("INSERT INTO employee (id) VALUES (3)")
    assert project.rows("employee", order_by="id")[2] == {"id": 3, "full_name": new_default or None}
    project.execute("DELETE FROM employee WHERE id = 3")
    project.flask("db", "downgrade")
    project.execute("INSERT INTO employee (id) VALUES (3)")
    assert project.rows("employee", order_by="id") == [
        {"id": 1, "name": "Ada"},
        {"id": 2, "name": None},
        {"id": 3, "name": old_default or None},
    ]


@pytest.mark.parametrize(
    ("new_type", "comment"),
    [("db.String(80)", ""), ("db.String", ", comment='full name'")],
    ids=["length-given", "comment-added"],
)
def test_a_column_renamed_with_a_new_length_or_comment_gets_both_both_ways(
    project: Project, reference_url: str, new_type: str, comment: str
) -> None:
    # Alembic calls VARCHAR and VARCHAR(80) the same type, and a comment is no part of a
    # candidate: the rename is guessed, and the length or comment must come along.
    if comment and project.dialect == "sqlite":
        pytest.skip("SQLite keeps no column comments")
    column = "\n    {name} = db.Column({type}, nullable=True{comment})\n"
    head = "\nclass Employee(db.Model):\n    id = db.Column(db.Integer, primary_key=True)"
    upgraded(project, head + column.format(name="name", type="db.String", comment=""))
    project.execute("INSERT INTO employee (id, name) VALUES (1, 'Ada')")
    project.write_app(head + column.format(name="full_name", type=new_type, comment=comment))

    output = round_trip(project, reference_url)

    assert "rename assumed: employee.name -> full_name" in output
    assert project.rows("employee") == [{"id": 1, "full_name": "Ada"}]
    project.flask("db", "downgrade")
    assert project.rows("employee") == [{"id": 1, "name": "Ada"}]


def test_ambiguous_renames_are_refused_with_the_flags_that_settle_them(sqlite_project: Project) -> None:
    project = sqlite_project
    start(project)
    project.write_app(
        models(email="mail", extra="    backup_mail = db.Column(db.String(120), index=True)")
    )

    refused = project.flask("db", "migrate", ok=False)
    assert "Error: Ambiguous renames, not guessed: employee.email -> mail, employee.email -> backup_mail" in (
        refused.stderr
    )
    assert "--rename employee.email=mail" in refused.stderr
    assert "--no-renames" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert len(scripts(project)) == 1

    project.flask("db", "migrate", "--rename", "employee.email=mail")
    script = scripts(project)[-1].read_text()
    assert "rename from --rename: employee.email -> mail" in script
    assert adds(script, "backup_mail")
    project.flask("db", "upgrade")
    assert project.rows("employee", order_by="id")[0]["mail"] == "ada@example.com"


def test_rename_flags_for_a_table_and_a_column(sqlite_project: Project) -> None:
    project = sqlite_project
    start(project)
    project.write_app(models(Company="Organization", company="organization", name="full_name"))

    migrate = project.flask(
        "db", "migrate", "--rename", "employee.name=full_name", "--rename", "company=organization"
    )
    assert "Rename table company -> organization (from --rename)" in migrate.stderr
    script = scripts(project)[-1].read_text()
    assert "# flask-evolve: rename from --rename: company -> organization" in script
    project.flask("db", "upgrade")
    assert project.rows("organization")[0]["cname"] == "Acme"
    assert project.rows("employee", order_by="id")[0]["full_name"] == "Ada"


def test_rename_flag_that_matches_nothing_is_an_error(sqlite_project: Project) -> None:
    project = sqlite_project
    start(project)
    project.write_app(models(name="full_name"))
    wrong = project.flask("db", "migrate", "--rename", "employee.nme=full_name", ok=False)
    assert wrong.stderr.strip().splitlines()[-1].startswith("Error: --rename employee.nme=full_name:")
    assert len(scripts(project)) == 1


def test_renamed_from_hints_on_the_models_and_no_churn_afterwards(project: Project) -> None:
    start(project)
    # Two String(120) columns appear where one went: ambiguous without the hint.
    project.write_app(
        models(
            Company="Organization",
            company="organization",
            company_args='__table_args__ = {"info": {"renamed_from": "company"}}\n    ',
            email="mail",
            extra=(
                "    mail = db.Column(db.String(120), index=True, info={'renamed_from': 'email'})\n"
                "    backup_mail = db.Column(db.String(120), index=True)"
            ),
        ).replace("    mail = db.Column(db.String(120), index=True)\n", "", 1)
    )
    migrate = project.flask("db", "migrate")
    assert "Rename column employee.email -> mail (from renamed_from on the model)" in migrate.stderr
    assert "Rename table company -> organization (from renamed_from on the model)" in migrate.stderr
    project.flask("db", "upgrade")
    assert project.rows("employee", order_by="id")[0]["mail"] == "ada@example.com"
    assert project.rows("organization")[0]["cname"] == "Acme"

    again = project.flask("db", "migrate", "--exit-code", ok=False)
    assert "No changes in schema detected" in again.output


def no_rename(migrate: Result, script: str) -> bool:
    """Drop + add was written (whatever the SQLite plan renders it as), no rename."""
    return (
        "new_column_name" not in script
        and "flask-evolve: rename" not in script
        and "Rename column" not in migrate.stderr
        and "Detected removed column 'employee.name'" in migrate.stderr
    )


def start_without_employees(project: Project) -> None:
    """As ``start``, with employee empty: on a table with rows, the drop + add of its NOT NULL
    column is refused (tests/test_autogenerate_matrix.py), which is not what these tests are about."""
    start(project)
    project.execute("DELETE FROM employee")


def test_no_renames_gives_drop_and_add(sqlite_project: Project) -> None:
    project = sqlite_project
    start_without_employees(project)
    project.write_app(models(name="full_name"))
    migrate = project.flask("db", "migrate", "--no-renames")
    assert no_rename(migrate, scripts(project)[-1].read_text())


def test_rename_policy_off_on_the_extension(sqlite_project: Project) -> None:
    project = sqlite_project
    start_without_employees(project)
    project.write_app(models(name="full_name"), migrate_args='rename_policy="off"')
    migrate = project.flask("db", "migrate")
    assert no_rename(migrate, scripts(project)[-1].read_text())


@pytest.mark.parametrize(("answer", "renamed"), [("y\n", True), ("n\n", False)])
def test_terminal_prompt_asks_like_django(sqlite_project: Project, answer: str, renamed: bool) -> None:
    project = sqlite_project
    start_without_employees(project)
    project.write_app(models(name="full_name"))
    migrate = project.flask(
        "db", "migrate", input=answer, env={"FLASK_EVOLVE_INTERACTIVE": "1"}
    )
    assert "Did you rename employee.name to employee.full_name (VARCHAR(80))? [y/N]" in migrate.stderr
    script = scripts(project)[-1].read_text()
    assert ("rename confirmed at the prompt: employee.name -> full_name" in script) is renamed
    assert no_rename(migrate, script) is not renamed


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux script(1) for a real terminal")
def test_prompt_on_a_real_terminal(sqlite_project: Project) -> None:
    project = sqlite_project
    start(project)
    project.write_app(models(name="full_name"))
    completed = subprocess.run(
        ["script", "-qec", f"{sys.executable} -m flask db migrate", "/dev/null"],
        cwd=project.path,
        env=project.env(),
        input="y\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Did you rename employee.name to employee.full_name (VARCHAR(80))? [y/N]" in completed.stdout
    assert "rename confirmed at the prompt" in scripts(project)[-1].read_text()


LONG_NAME = "employee_" + "x" * 54  # 63 characters: PostgreSQL's longest name
LONG_TABLE = """
class Employee(db.Model):
    __tablename__ = "{table}"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), unique=True)
{extra}"""
NEW_EMPLOYEE = """
class NewEmployee(db.Model):
    __tablename__ = "employee"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), unique=True)
"""


def test_a_table_renamed_to_a_63_character_name_frees_its_old_key_names(project: Project) -> None:
    # The convention's names for the renamed table are too long and SQLAlchemy shortens them
    # (pk_employee_xxx..._1a2b): the keys must get those names, or a new table of the old
    # name collides with its own pk_employee / uq_employee_name.
    project.write_app(LONG_TABLE.format(table="employee", extra=""))
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO employee (id, name) VALUES (1, 'Ada'), (2, 'Linus')")

    project.write_app(LONG_TABLE.format(table=LONG_NAME, extra=""))
    project.flask("db", "migrate", "-m", "long", "--rename", f"employee={LONG_NAME}")
    project.flask("db", "upgrade")
    again = project.flask("db", "migrate", "--exit-code", ok=False)
    assert again.returncode == 1 and "No changes in schema detected." in again.output, again

    project.write_app(LONG_TABLE.format(table=LONG_NAME, extra=NEW_EMPLOYEE))
    project.flask("db", "migrate", "-m", "new employee")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO employee (id, name) VALUES (1, 'Grace')")
    assert project.rows(LONG_NAME, order_by="id") == [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Linus"}]
    assert project.rows("employee") == [{"id": 1, "name": "Grace"}]

    project.execute("DELETE FROM employee")
    project.flask("db", "downgrade", "--", "-2")
    assert project.rows("employee", order_by="id") == [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Linus"}]
    assert project.tables() == {"employee", "alembic_version"}
