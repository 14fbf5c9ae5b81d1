"""Lossless downgrades: what an upgrade drops, the downgrade brings back, schema and every value."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.harness import Project
from tests.test_cli_multidb import BINDS

IMPORTS = "from sqlalchemy import MetaData"
# Named constraints, so that the downgrade can recreate exactly the old ones on both databases.
DB_ARGS = (
    'metadata=MetaData(naming_convention={"ix": "ix_%(column_0_label)s", '
    '"uq": "uq_%(table_name)s_%(column_0_name)s", "ck": "ck_%(table_name)s_%(constraint_name)s", '
    '"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s", "pk": "pk_%(table_name)s"})'
)

COMPANY = """
class Company(db.Model):
    cid = db.Column(db.Integer, primary_key=True)
    cname = db.Column(db.String(80), unique=True, nullable=False)
    city = db.Column(db.String(80), index=True)
"""


def employee(*columns: str) -> str:
    body = "\n".join(f"    {c}" for c in columns)
    return f"""
class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False)
{body}
"""


def write(project: Project, models: str, migrate_args: str = "") -> None:
    project.write_app(models, imports=IMPORTS, db_args=DB_ARGS, migrate_args=migrate_args)


def start(project: Project, models: str, rows: dict[str, list[dict[str, Any]]]) -> None:
    """init + first migration + upgrade, then insert the rows."""
    write(project, models)
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial")
    project.flask("db", "upgrade")
    for table, values in rows.items():
        columns = list(values[0])
        project.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})",
            values,
        )


#: Flask-Evolve's record of each archive's columns and types (there while an archive is).
SHAPES = "_evolve_archive_shapes"


def archive_tables(project: Project) -> set[str]:
    """The archive tables (the registry of their shapes is not one)."""
    return {t for t in project.tables(archive=True) if t.startswith("_evolve_archive_") and t != SHAPES}


def snapshot(project: Project, order: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The app's schema (archive tables left out) and the rows of the given tables."""
    schema = {t: v for t, v in project.schema().items() if not t.startswith("_evolve_archive_")}
    return schema, {table: project.rows(table, by) for table, by in order.items()}


def round_trip(project: Project, new_models: str, order: dict[str, str]) -> str:
    """Migrate to ``new_models``, upgrade, downgrade; assert the schema and every row came back."""
    before = snapshot(project, order)
    write(project, new_models)
    migrate = project.flask("db", "migrate", "-m", "drop")
    script = next(p for p in (project.migrations / "versions").glob("*_drop.py")).read_text()
    project.flask("db", "upgrade")
    assert archive_tables(project), "the upgrade kept nothing"
    project.flask("db", "check")  # the archive is not a change to migrate
    project.flask("db", "downgrade")
    assert snapshot(project, order) == before
    assert archive_tables(project) == set()
    return script + migrate.stderr


def test_drop_nullable_column_comes_back_with_its_values(project: Project) -> None:
    start(
        project,
        employee("nickname = db.Column(db.String(40))"),
        {"employee": [{"name": "Ada", "nickname": "ada"}, {"name": "Bob", "nickname": None}]},
    )
    output = round_trip(project, employee(), {"employee": "id"})
    assert "op.archive_columns('employee', ['nickname'], key=['id']" in output
    assert "Archiving employee.nickname" in output


def test_drop_not_null_unique_column(project: Project) -> None:
    start(
        project,
        employee("email = db.Column(db.String(120), unique=True, nullable=False)"),
        {"employee": [{"name": f"n{i}", "email": f"e{i}@example.com"} for i in range(50)]},
    )
    round_trip(project, employee(), {"employee": "id"})
    assert project.columns("employee")["email"]["nullable"] is False
    # UNIQUE is back: a duplicate is refused.
    with pytest.raises(Exception, match=r"(?i)unique"):
        project.execute("INSERT INTO employee (name, email) VALUES ('dup', 'e1@example.com')")


def test_drop_foreign_key_column(project: Project) -> None:
    models = COMPANY + employee("company_id = db.Column(db.Integer, db.ForeignKey('company.cid'))")
    start(
        project,
        models,
        {
            "company": [{"cname": "Acme", "city": "Paris"}, {"cname": "Bolt", "city": None}],
            "employee": [
                {"name": "Ada", "company_id": 1},
                {"name": "Bob", "company_id": 2},
                {"name": "Cy", "company_id": None},
            ],
        },
    )
    round_trip(project, COMPANY + employee(), {"company": "cid", "employee": "id"})
    assert project.schema()["employee"]["foreign_keys"] == [(("company_id",), "company", ("cid",))]


REGION = """
class Region(db.Model):
    rid = db.Column(db.Integer, primary_key=True)
    rname = db.Column(db.String(80), nullable=False)
"""
COMPANY_IN_REGION = COMPANY + "    region_id = db.Column(db.Integer, db.ForeignKey('region.rid'))\n"


def test_drop_table_referenced_by_another_table(project: Project) -> None:
    models = (
        REGION
        + COMPANY_IN_REGION
        + employee("company_id = db.Column(db.Integer, db.ForeignKey('company.cid'))")
    )
    start(
        project,
        models,
        {
            "region": [{"rname": "North"}, {"rname": "South"}],
            "company": [
                {"cname": "Acme", "city": "Paris", "region_id": 1},
                {"cname": "Bolt", "city": "Oslo", "region_id": None},
            ],
            "employee": [{"name": "Ada", "company_id": 1}, {"name": "Bob", "company_id": 2}],
        },
    )
    order = {"region": "rid", "company": "cid", "employee": "id"}
    before = snapshot(project, order)
    without_company = REGION + employee("company_id = db.Column(db.Integer)")
    output = round_trip(project, without_company, order)
    # Renamed into the archive; on SQLite a table with foreign keys is copied (see below).
    archived = "archive_rows" if project.dialect == "sqlite" else "archive_table"
    assert f"op.{archived}('company'" in output
    # The table came back with its sequence: new rows get fresh keys.
    project.execute("INSERT INTO company (cname) VALUES ('Cargo')")
    assert [r["cid"] for r in project.rows("company", "cid")] == [1, 2, 3]
    project.execute("DELETE FROM company WHERE cid = 3")

    # Archived, the table constrains nothing: a new table may reuse its name, index and
    # constraint names, and the rows it pointed at may go.
    project.flask("db", "upgrade")
    archived = next(iter(archive_tables(project)))
    if project.dialect == "postgresql":
        assert sa.inspect(project.engine).get_foreign_keys(archived) == []
    write(project, without_company + COMPANY)
    project.flask("db", "migrate", "-m", "company again")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO company (cname, city) VALUES ('New', 'Rome')")
    project.flask("db", "downgrade")
    project.flask("db", "downgrade")
    assert snapshot(project, order) == before
    if project.dialect == "postgresql":
        assert project.columns("company")["cid"]["default"] == "nextval('company_cid_seq'::regclass)"
    # The second company table went into the archive on the way down, with its row.
    assert "1 archive table(s)" in project.flask("db", "archive").stdout


def test_drop_two_columns_of_a_table_with_a_composite_key_and_a_long_name(project: Project) -> None:
    table = "quarterly_department_budget_allocation_snapshot_entries"
    models = f"""
class Entry(db.Model):
    __tablename__ = "{table}"
    year = db.Column(db.Integer, primary_key=True, autoincrement=False)
    dept = db.Column(db.String(10), primary_key=True)
    amount = db.Column(db.Numeric(12, 2), nullable=False)
    note = db.Column(db.Text)
    approved = db.Column(db.Boolean, nullable=False, server_default=db.false())
"""
    rows = [
        {"year": 2024, "dept": "ops", "amount": "10.50", "note": "a", "approved": True},
        {"year": 2024, "dept": "dev", "amount": "99.99", "note": None, "approved": False},
        {"year": 2025, "dept": "ops", "amount": "0.01", "note": "c'quote", "approved": True},
    ]
    start(project, models, {table: rows})
    without = models.replace("    note = db.Column(db.Text)\n", "").replace(
        "    amount = db.Column(db.Numeric(12, 2), nullable=False)\n", ""
    )
    round_trip(project, without, {table: "dept"})
    assert max(len(t) for t in project.tables(archive=True)) <= 63


@pytest.mark.postgresql
def test_a_dropped_table_with_a_60_byte_name_gets_its_own_sequence_back(
    postgres_url: str, tmp_path: Path
) -> None:
    """PostgreSQL shortens ``<table>_id_seq`` past 63 bytes; the restored table's sequence keeps that name."""
    table = "customer_loyalty_program_membership_renewal_reminder_entries"
    assert len(table.encode()) == 60
    project = Project(tmp_path, postgres_url)
    try:
        entry = f"""
class Entry(db.Model):
    __tablename__ = "{table}"
    id = db.Column(db.Integer, primary_key=True)
    label = db.Column(db.String(20), nullable=False)
"""
        start(project, COMPANY + entry, {table: [{"label": "a"}, {"label": "b"}, {"label": "c"}]})
        sequences = "SELECT relname FROM pg_class WHERE relkind = 'S' ORDER BY relname"
        serial = f"SELECT pg_get_serial_sequence('{table}', 'id')"
        original = project.query(serial)
        before = project.query(sequences)

        write(project, COMPANY)
        project.flask("db", "migrate", "-m", "drop")
        project.flask("db", "upgrade")
        project.flask("db", "downgrade")

        assert project.query(serial) == original
        assert project.query(sequences) == before
        project.execute(f"INSERT INTO {table} (label) VALUES ('d')")
        assert [(r["id"], r["label"]) for r in project.rows(table, "id")] == [
            (1, "a"),
            (2, "b"),
            (3, "c"),
            (4, "d"),
        ]
    finally:
        project.dispose()


def _upgrade_dropping_email(project: Project, email: str) -> None:
    start(
        project,
        employee(email),
        {
            "employee": [
                {"name": "Ada", "email": "ada@example.com"},
                {"name": "Bob", "email": "bob@example.com"},
            ]
        },
    )
    write(project, employee())
    project.flask("db", "migrate", "-m", "drop")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO employee (name) VALUES ('Cy')")


def test_rows_inserted_after_the_upgrade_get_the_server_default(project: Project) -> None:
    _upgrade_dropping_email(
        project, "email = db.Column(db.String(120), nullable=False, server_default='none@example.com')"
    )
    project.flask("db", "downgrade")
    assert [(r["name"], r["email"]) for r in project.rows("employee", "id")] == [
        ("Ada", "ada@example.com"),
        ("Bob", "bob@example.com"),
        ("Cy", "none@example.com"),
    ]


def test_rows_inserted_after_the_upgrade_stop_a_not_null_downgrade_until_filled(project: Project) -> None:
    _upgrade_dropping_email(project, "email = db.Column(db.String(120), nullable=False)")
    upgraded = snapshot(project, {"employee": "id"})
    version = project.version()

    stopped = project.flask("db", "downgrade", ok=False)
    assert "Error: 1 row(s) of employee" in stopped.stderr
    assert "--fill employee.email=VALUE" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert snapshot(project, {"employee": "id"}) == upgraded
    assert project.version() == version
    assert archive_tables(project)

    project.flask("db", "downgrade", "--fill", "employee.email=unknown@example.com")
    assert [(r["name"], r["email"]) for r in project.rows("employee", "id")] == [
        ("Ada", "ada@example.com"),
        ("Bob", "bob@example.com"),
        ("Cy", "unknown@example.com"),
    ]
    assert project.columns("employee")["email"]["nullable"] is False


def test_a_downgrade_fill_that_looks_like_a_bound_parameter_is_written_as_it_is(project: Project) -> None:
    _upgrade_dropping_email(project, "email = db.Column(db.String(120), nullable=False)")
    project.flask("db", "downgrade", "--fill", "employee.email=:none")
    assert [(r["name"], r["email"]) for r in project.rows("employee", "id")] == [
        ("Ada", "ada@example.com"),
        ("Bob", "bob@example.com"),
        ("Cy", ":none"),
    ]


def test_purged_archive_stops_the_downgrade(project: Project) -> None:
    start(
        project,
        COMPANY + employee("email = db.Column(db.String(120))"),
        {
            "company": [{"cname": "Acme", "city": "Paris"}],
            "employee": [{"name": "Ada", "email": "ada@example.com"}],
        },
    )
    write(project, employee())
    project.flask("db", "migrate", "-m", "drop")
    project.flask("db", "upgrade")
    listed = project.flask("db", "archive").stdout
    assert "employee.email" in listed and "table company" in listed

    purged = project.flask("db", "archive", "--purge").stdout
    assert purged.count("Purged") == 2
    assert archive_tables(project) == set()
    assert SHAPES not in project.tables(archive=True)  # the registry goes with the last archive
    assert "The archive is empty" in project.flask("db", "archive").stdout
    upgraded = project.schema()

    stopped = project.flask("db", "downgrade", ok=False)
    assert "is no longer there" in stopped.stderr and "purged" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert project.schema() == upgraded

    stamped = project.flask("db", "stamp", "base").output
    assert "Warning: the data revision" in stamped and "is no longer there" in stamped


def _upgrade_dropping_company_and_email(project: Project) -> str:
    """Revision "drop" archives table company and employee.email; returns its script."""
    start(
        project,
        COMPANY + employee("email = db.Column(db.String(120))"),
        {
            "company": [{"cname": "Acme", "city": "Paris"}],
            "employee": [{"name": "Ada", "email": "ada@example.com"}, {"name": "Bob", "email": None}],
        },
    )
    write(project, employee())
    project.flask("db", "migrate", "-m", "drop")
    project.flask("db", "upgrade")
    return next((project.migrations / "versions").glob("*_drop.py")).read_text()


# What someone may have done to the archive since the upgrade: SQL run on the two archives
# (the archived company table, the archived employee.email), and what the error must name.
TAMPERINGS = {
    "a column added": (["ALTER TABLE {company} ADD COLUMN extra INTEGER"], "not archived: extra"),
    "a type changed": (
        [
            "CREATE TABLE tampered AS SELECT id, CAST(length(email) AS INTEGER) AS email FROM {email}",
            "DROP TABLE {email}",
            "ALTER TABLE tampered RENAME TO {email}",
        ],
        "email is ",
    ),
    "another table's archive renamed into place": (
        [
            "ALTER TABLE {email} RENAME TO swapped",
            "ALTER TABLE {company} RENAME TO {email}",
            "ALTER TABLE swapped RENAME TO {company}",
        ],
        "missing ",
    ),
}


def archive_state(project: Project) -> tuple[Any, ...]:
    """Employee's schema and rows, every archive's rows, and the version: what a refusal keeps."""
    archived = {a: sorted(repr(r) for r in project.rows(a)) for a in archive_tables(project)}
    return snapshot(project, {"employee": "id"}), archived, project.version()


@pytest.mark.parametrize("tampering", list(TAMPERINGS))
def test_a_changed_archive_stops_the_downgrade_before_anything_changes(
    project: Project, tampering: str
) -> None:
    _upgrade_dropping_company_and_email(project)
    archives = archive_tables(project)
    company = next(a for a in archives if a.endswith("_company"))
    email = next(a for a in archives if a.endswith("_employee"))
    statements, difference = TAMPERINGS[tampering]
    for statement in statements:
        project.execute(statement.format(company=company, email=email))

    before = archive_state(project)

    stopped = project.flask("db", "downgrade", ok=False)
    error = stopped.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: the archive table _evolve_archive_"), stopped
    assert f"{company} is not what revision" in error or f"{email} is not what revision" in error
    assert difference in error and error.endswith("Nothing was changed."), error
    assert "Traceback" not in stopped.output
    assert archive_state(project) == before


def test_an_archive_kept_by_a_script_without_archive_types_still_comes_back(project: Project) -> None:
    """Scripts generated before ``check_archive(types=...)`` existed keep downgrading."""
    script = _upgrade_dropping_company_and_email(project)
    path = next((project.migrations / "versions").glob("*_drop.py"))
    assert ", types={" in script
    path.write_text(re.sub(r", types=\{[^}]*\}", "", script))
    project.flask("db", "downgrade")
    assert [(r["name"], r["email"]) for r in project.rows("employee", "id")] == [
        ("Ada", "ada@example.com"),
        ("Bob", None),
    ]
    assert [r["cname"] for r in project.rows("company", "cid")] == ["Acme"]
    assert archive_tables(project) == set()


TEAM = """
class Team(db.Model):
    tid = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(40), nullable=False)
"""


def _upgrade_a_legacy_revision(project: Project) -> None:
    """Revision "drop" archives tables company and team and employee.email, written as Flask-Evolve
    generated it before ``check_archive(..., types=...)``: its checks name no types, and a table's
    check no columns (``op.check_archive('company', revision='...')``)."""
    start(
        project,
        COMPANY + TEAM + employee("email = db.Column(db.String(120))"),
        {
            "company": [{"cname": "Acme", "city": "Paris"}, {"cname": "Bolt", "city": None}],
            "team": [{"title": "core"}],
            "employee": [{"name": "Ada", "email": "ada@example.com"}, {"name": "Bob", "email": None}],
        },
    )
    write(project, employee())
    project.flask("db", "migrate", "-m", "drop")
    path = next((project.migrations / "versions").glob("*_drop.py"))
    legacy = re.sub(r", types=\{[^}]*\}", "", path.read_text())
    assert "types=" not in legacy and re.search(r"op\.check_archive\('company', revision='\w+'\)", legacy)
    path.write_text(legacy)
    project.flask("db", "upgrade")


# What someone may have done to the archives of that legacy revision since its upgrade.
LEGACY_TAMPERINGS = {
    "a column added to a table's archive": (
        ["ALTER TABLE {company} ADD COLUMN extra INTEGER"],
        "{company} is not what revision",
        "not archived: extra",
    ),
    "a type changed in a column archive": (
        [
            "CREATE TABLE tampered AS SELECT id, CAST(length(email) AS INTEGER) AS email FROM {email}",
            "DROP TABLE {email}",
            "ALTER TABLE tampered RENAME TO {email}",
        ],
        "{email} is not what revision",
        "email is ",
    ),
    "two table archives swapped": (
        [
            "ALTER TABLE {team} RENAME TO swapped",
            "ALTER TABLE {company} RENAME TO {team}",
            "ALTER TABLE swapped RENAME TO {company}",
        ],
        " is not what revision",
        "missing ",
    ),
}


def _legacy_archives(project: Project) -> dict[str, str]:
    archives = archive_tables(project)
    return {
        name: next(a for a in archives if a.endswith(f"_{table}"))
        for name, table in (("company", "company"), ("team", "team"), ("email", "employee"))
    }


@pytest.mark.parametrize("tampering", list(LEGACY_TAMPERINGS))
def test_a_changed_archive_of_a_revision_without_archive_types_stops_the_downgrade(
    project: Project, tampering: str
) -> None:
    """The shape recorded when the archive was written protects histories older than ``types=``."""
    _upgrade_a_legacy_revision(project)
    archives = _legacy_archives(project)
    statements, which, difference = LEGACY_TAMPERINGS[tampering]
    for statement in statements:
        project.execute(statement.format(**archives))

    before = archive_state(project)

    stopped = project.flask("db", "downgrade", ok=False)
    error = stopped.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: the archive table _evolve_archive_"), stopped
    assert which.format(**archives) in error and difference in error, error
    assert error.endswith("then run the downgrade again. Nothing was changed."), error
    assert "Traceback" not in stopped.output
    assert archive_state(project) == before


def test_an_unchanged_archive_of_a_revision_without_archive_types_comes_back(project: Project) -> None:
    _upgrade_a_legacy_revision(project)
    listed = project.flask("db", "archive").stdout
    assert "shapes" not in listed and "3 archive table(s)" in listed

    project.flask("db", "downgrade")

    companies = [(r["cname"], r["city"]) for r in project.rows("company", "cid")]
    assert companies == [("Acme", "Paris"), ("Bolt", None)]
    assert [r["title"] for r in project.rows("team", "tid")] == ["core"]
    assert [(r["name"], r["email"]) for r in project.rows("employee", "id")] == [
        ("Ada", "ada@example.com"),
        ("Bob", None),
    ]
    assert archive_tables(project) == set()
    assert SHAPES not in project.tables(archive=True)  # no record left behind: the registry is gone too


def test_an_archive_written_before_its_shape_was_recorded_still_comes_back(project: Project) -> None:
    """Archives kept by an older Flask-Evolve have no record: they are restored unchecked, as before."""
    _upgrade_a_legacy_revision(project)
    project.execute(f"DROP TABLE {SHAPES}")

    project.flask("db", "downgrade")

    assert [r["cname"] for r in project.rows("company", "cid")] == ["Acme", "Bolt"]
    assert [r["title"] for r in project.rows("team", "tid")] == ["core"]
    assert [r["email"] for r in project.rows("employee", "id")] == ["ada@example.com", None]
    assert archive_tables(project) == set()


# A revision that adds something (its models, then SQL giving it data), and what may have been
# done since to the archive its downgrade kept.
DOWNGRADE_TAMPERINGS = {
    "a table the revision created": (
        COMPANY + employee(),
        ["INSERT INTO company (cname, city) VALUES ('Acme', 'Paris')"],
        ["ALTER TABLE {archive} ADD COLUMN extra INTEGER"],
        "not archived: extra",
    ),
    "a column the revision added": (
        employee("email = db.Column(db.String(120))"),
        ["UPDATE employee SET email = 'ada@example.com'"],
        [
            "CREATE TABLE tampered AS SELECT id, CAST(length(email) AS INTEGER) AS email FROM {archive}",
            "DROP TABLE {archive}",
            "ALTER TABLE tampered RENAME TO {archive}",
        ],
        "email is ",
    ),
}


@pytest.mark.parametrize("tampering", list(DOWNGRADE_TAMPERINGS))
def test_a_changed_archive_of_a_downgrade_stops_the_upgrade_that_restores_it(
    project: Project, tampering: str
) -> None:
    models, data, statements, difference = DOWNGRADE_TAMPERINGS[tampering]
    start(project, employee(), {"employee": [{"name": "Ada"}]})
    initial = project.version()
    write(project, models)
    project.flask("db", "migrate", "-m", "add")
    project.flask("db", "upgrade")
    for statement in data:
        project.execute(statement)
    project.flask("db", "downgrade")
    (archive,) = archive_tables(project)
    assert archive.startswith("_evolve_archive_down_")
    for statement in statements:
        project.execute(statement.format(archive=archive))

    before = archive_state(project)

    stopped = project.flask("db", "upgrade", ok=False)
    error = stopped.stderr.strip().splitlines()[-1]
    assert error.startswith(f"Error: the archive table {archive} is not what revision"), stopped
    assert difference in error and "after the downgrade" in error, error
    assert error.endswith("then run the upgrade again. That migration was rolled back."), error
    assert "Traceback" not in stopped.output
    assert archive_state(project) == before and project.version() == initial


def test_a_downgrade_stopped_by_a_purged_archive_says_where_the_database_is_now(project: Project) -> None:
    """Each migration commits on its own: the steps before the one that refuses stay applied."""
    start(
        project,
        employee("email = db.Column(db.String(120))"),
        {"employee": [{"name": "Ada", "email": "ada@example.com"}]},
    )
    write(project, employee())
    project.flask("db", "migrate", "-m", "drop")
    project.flask("db", "upgrade")
    write(project, employee("age = db.Column(db.Integer)"))
    project.flask("db", "migrate", "-m", "age")
    project.flask("db", "upgrade")
    versions = project.migrations / "versions"
    drop, age = (next(versions.glob(f"*_{name}.py")).name.split("_")[0] for name in ("drop", "age"))
    project.flask("db", "archive", "--purge")
    folder = sorted(p.name for p in versions.glob("*.py"))

    stopped = project.flask("db", "downgrade", "base", ok=False)

    errors = [line for line in stopped.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in stopped.output, stopped
    assert "nothing was changed" not in errors[0], stopped
    assert f"the database is now at {drop} (it was at {age})" in errors[0], stopped
    assert f"`flask db upgrade {age}` takes it back" in errors[0], stopped
    # The "age" step was undone and committed; the "drop" step, which refused, left everything as it was.
    assert project.version() == [drop]
    assert set(project.columns("employee")) == {"id", "name"}
    assert project.rows("employee") == [{"id": 1, "name": "Ada"}]
    assert sorted(p.name for p in versions.glob("*.py")) == folder

    project.flask("db", "upgrade", age)
    assert project.version() == [age]


def test_purge_before_a_revision_keeps_newer_archives(sqlite_project: Project) -> None:
    project = sqlite_project
    start(
        project,
        employee("email = db.Column(db.String(120))", "phone = db.Column(db.String(20))"),
        {"employee": [{"name": "Ada", "email": "a@x", "phone": "1"}]},
    )
    write(project, employee("phone = db.Column(db.String(20))"))
    project.flask("db", "migrate", "-m", "drop email")
    project.flask("db", "upgrade")
    write(project, employee())
    second = project.flask("db", "migrate", "-m", "drop phone").output
    project.flask("db", "upgrade")
    head = project.version()[0]
    assert head in second

    purged = project.flask("db", "archive", "--purge", "--before", head).stdout
    assert "employee.email" in purged and "phone" not in purged
    assert {t for t in archive_tables(project)} == {f"_evolve_archive_{head}_employee"}
    # The registry keeps the record of the archive still there, and only that one.
    assert {r[0] for r in project.query(f"SELECT archive FROM {SHAPES}")} == archive_tables(project)


def test_archiving_can_be_switched_off(sqlite_project: Project) -> None:
    project = sqlite_project
    start(
        project,
        employee("email = db.Column(db.String(120))"),
        {"employee": [{"name": "Ada", "email": "a@x"}]},
    )
    write(project, employee())
    project.flask("db", "migrate", "--no-archive", "-m", "plain")
    write(project, employee(), migrate_args="archive_drops=False")
    for script in (project.migrations / "versions").glob("*_plain.py"):
        assert "archive" not in script.read_text()
        script.unlink()
    project.flask("db", "migrate", "-m", "plain")
    assert "archive" not in next((project.migrations / "versions").glob("*_plain.py")).read_text()


def test_downgrade_to_base_and_back_to_head_keeps_every_row(project: Project) -> None:
    """What a downgrade drops (tables and columns the revisions added) the next upgrade gives back."""
    start(
        project,
        COMPANY + employee("company_id = db.Column(db.Integer, db.ForeignKey('company.cid'))"),
        {
            "company": [{"cname": "Acme", "city": "Paris"}, {"cname": "Bolt", "city": None}],
            "employee": [{"name": "Ada", "company_id": 1}, {"name": "Bob", "company_id": 2}],
        },
    )
    write(
        project,
        COMPANY
        + employee(
            "company_id = db.Column(db.Integer, db.ForeignKey('company.cid'))",
            "age = db.Column(db.Integer)",
        ),
    )
    project.flask("db", "migrate", "-m", "add age")
    project.flask("db", "upgrade")
    project.execute("UPDATE employee SET age = 36 WHERE name = 'Ada'")
    order = {"company": "cid", "employee": "id"}
    head = snapshot(project, order)

    project.flask("db", "downgrade", "base")
    assert project.tables() == {"alembic_version"}
    listed = project.flask("db", "archive").stdout
    assert "table company" in listed and "downgrade" in listed

    project.flask("db", "upgrade")
    assert snapshot(project, order) == head
    assert archive_tables(project) == set()
    if project.dialect == "postgresql":  # the same sequences, not new "..._seq1" ones
        assert project.columns("company")["cid"]["default"] == "nextval('company_cid_seq'::regclass)"
    # Re-created sequences continue after the restored keys.
    project.execute("INSERT INTO employee (name) VALUES ('Cy')")
    assert [r["id"] for r in project.rows("employee", "id")] == [1, 2, 3]


def test_upgrade_sql_prints_the_archive_statements(project: Project) -> None:
    start(
        project,
        employee("nickname = db.Column(db.String(40))"),
        {"employee": [{"name": "Ada", "nickname": "a"}]},
    )
    # Offline mode cannot reflect tables for SQLite's batch mode, so this project renders plain ALTERs.
    project.write_app(employee(), imports=IMPORTS, db_args=DB_ARGS, migrate_args="render_as_batch=False")
    project.flask("db", "migrate", "-m", "drop")

    up = project.flask("db", "upgrade", "--sql").stdout
    assert "CREATE TABLE _evolve_archive_" in up and "AS SELECT id, nickname FROM employee" in up
    assert up.index("CREATE TABLE _evolve_archive_") < up.index("DROP COLUMN nickname")
    assert archive_tables(project) == set() and "nickname" in project.columns("employee")  # ran nothing
    project.flask("db", "upgrade")
    down = project.flask("db", "downgrade", "--sql", "head:-1").stdout
    assert "UPDATE employee SET nickname = a.nickname FROM _evolve_archive_" in down
    assert "nickname" not in project.columns("employee")  # ran nothing


def test_upgrade_over_a_stale_archive_stops_with_advice(sqlite_project: Project) -> None:
    project = sqlite_project
    start(
        project,
        employee("email = db.Column(db.String(120))"),
        {"employee": [{"name": "Ada", "email": "a@x"}]},
    )
    initial = project.version()
    write(project, employee())
    project.flask("db", "migrate", "-m", "drop")
    project.flask("db", "upgrade")
    project.flask("db", "stamp", initial[0])  # down without running the downgrade: the archive stays

    again = project.flask("db", "upgrade", ok=False)
    assert "already exists" in again.stderr and "flask db archive" in again.stderr
    assert "Traceback" not in again.stderr


def test_a_fill_that_the_restored_keys_would_refuse_stops_before_anything_changes(project: Project) -> None:
    start(
        project,
        COMPANY
        + employee(
            "email = db.Column(db.String(120), unique=True, nullable=False)",
            "company_id = db.Column(db.Integer, db.ForeignKey('company.cid'), nullable=False)",
        ),
        {
            "company": [{"cname": "Acme", "city": "Paris"}],
            "employee": [
                {"name": "Ada", "email": "ada@x", "company_id": 1},
                {"name": "Bob", "email": "bob@x", "company_id": 1},
            ],
        },
    )
    write(project, COMPANY + employee())
    project.flask("db", "migrate", "-m", "drop")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO employee (name) VALUES ('Cy'), ('Dee')")
    order = {"company": "cid", "employee": "id"}
    upgraded, version = snapshot(project, order), project.version()

    def refused(*fills: str) -> str:
        args = [a for fill in fills for a in ("--fill", fill)]
        stopped = project.flask("db", "downgrade", *args, ok=False)
        error = stopped.stderr.splitlines()[-1]
        assert error.startswith("Error: `--fill ") and "Traceback" not in stopped.stderr
        assert error.endswith("Nothing was changed.")
        assert snapshot(project, order) == upgraded and project.version() == version
        return error

    same = refused("employee.email=new@x", "employee.company_id=1")
    assert "would give 2 rows (inserted after revision" in same and "employee.email comes back UNIQUE" in same
    project.execute("DELETE FROM employee WHERE name = 'Dee'")
    upgraded = snapshot(project, order)
    taken = refused("employee.email=ada@x", "employee.company_id=1")
    assert "already the value of a restored row" in taken
    orphan = refused("employee.email=cy@x", "employee.company_id=7")
    assert "names no row of company" in orphan and "employee.company_id -> company.cid" in orphan
    if project.dialect == "postgresql":
        assert "not a valid value" in refused("employee.email=cy@x", "employee.company_id=seven")

    project.flask("db", "downgrade", "--fill", "employee.email=cy@x", "--fill", "employee.company_id=1")
    assert [(r["name"], r["email"], r["company_id"]) for r in project.rows("employee", "id")] == [
        ("Ada", "ada@x", 1),
        ("Bob", "bob@x", 1),
        ("Cy", "cy@x", 1),
    ]


def test_offline_upgrade_says_what_it_cannot_restore(sqlite_project: Project) -> None:
    project = sqlite_project
    start(
        project,
        employee("email = db.Column(db.String(120))"),
        {"employee": [{"name": "Ada", "email": "a@x"}]},
    )
    project.flask("db", "downgrade", "base")
    assert archive_tables(project)
    sql = project.flask("db", "upgrade", "--sql").stdout
    assert "-- Flask-Evolve: table employee is not restored offline" in sql
    assert "run `flask db upgrade` (not --sql) to restore it" in sql
    assert archive_tables(project) and project.tables() == {"alembic_version"}  # ran nothing


MULTIDB = """
class User(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80))
{user}

class Group(db.Model):
    __bind_key__ = "db1"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80))
{group}
"""


def test_archive_lists_and_purges_every_database_of_a_multidb_app(
    project: Project, second_database_url: str
) -> None:
    env = {"BIND_URL": second_database_url}
    bind = Project(project.path, second_database_url)
    email, label = "    email = db.Column(db.String(120))", "    label = db.Column(db.String(40))"
    project.write_app(MULTIDB.format(user=email, group=label), config=BINDS)
    project.flask("db", "init", "--multidb", env=env)
    project.flask("db", "migrate", "-m", "initial", env=env)
    project.flask("db", "upgrade", env=env)
    project.execute("INSERT INTO \"user\" (name, email) VALUES ('ada', 'ada@x')")
    bind.execute("INSERT INTO \"group\" (name, label) VALUES ('admins', 'A')")
    project.write_app(MULTIDB.format(user="", group=""), config=BINDS)
    project.flask("db", "migrate", "-m", "drop", env=env)
    project.flask("db", "upgrade", env=env)

    listed = project.flask("db", "archive", env=env).stdout
    lines = listed.splitlines()
    assert lines[0].split()[0] == "database"
    assert any(line.startswith("(default)") and "user.email" in line for line in lines)
    assert any(line.startswith("db1") and "group.label" in line for line in lines)
    assert "2 archive table(s)" in listed

    project.flask("db", "downgrade", env=env)
    assert project.rows("user") == [{"id": 1, "name": "ada", "email": "ada@x"}]
    assert bind.rows("group") == [{"id": 1, "name": "admins", "label": "A"}]
    project.flask("db", "upgrade", env=env)
    purged = project.flask("db", "archive", "--purge", env=env).stdout
    assert "user.email" in purged and "group.label" in purged and "in database db1" in purged
    assert archive_tables(project) == set() == archive_tables(bind)
    assert "The archive is empty" in project.flask("db", "archive", env=env).stdout

    # Stamping down past the purged archives warns for each database's lost data, and moves no data.
    initial = next((project.migrations / "versions").glob("*_initial.py")).name.split("_")[0]
    stamped = project.flask("db", "stamp", initial, env=env).stdout
    assert "dropped from user is no longer there" in stamped
    assert "dropped from group (database db1) is no longer there" in stamped
    assert project.rows("alembic_version") == [{"version_num": initial}] == bind.rows("alembic_version")
    assert project.rows("user") == [{"id": 1, "name": "ada"}]
    assert bind.rows("group") == [{"id": 1, "name": "admins"}]
    bind.dispose()


def test_an_archived_sqlite_table_does_not_hold_on_to_its_parents(sqlite_project: Project) -> None:
    """With foreign keys on, the rows an archived table pointed at can still be deleted."""
    import sqlite3

    project = sqlite_project
    models = REGION + COMPANY_IN_REGION
    start(
        project,
        models,
        {"region": [{"rname": "North"}, {"rname": "South"}], "company": [{"cname": "Acme", "region_id": 2}]},
    )
    order = {"region": "rid", "company": "cid"}
    before = snapshot(project, order)
    write(project, REGION)
    project.flask("db", "migrate", "-m", "drop")
    script = next((project.migrations / "versions").glob("*_drop.py")).read_text()
    assert "op.archive_rows('company'" in script and "op.restore_rows('company'" in script
    project.flask("db", "upgrade")
    assert "table company" in project.flask("db", "archive").stdout

    database = sa.make_url(project.database_url).database
    connection = sqlite3.connect(str(database), isolation_level=None)
    try:
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("DELETE FROM region WHERE rid = 2")  # Acme's, archived
        assert connection.execute("SELECT count(*) FROM region").fetchone() == (1,)
    finally:
        connection.close()
    project.execute("INSERT INTO region (rid, rname) VALUES (2, 'South')")

    project.flask("db", "downgrade")
    assert snapshot(project, order) == before
    assert archive_tables(project) == set()


def test_a_view_on_a_dropped_table_neither_follows_it_into_the_archive_nor_is_purged_with_it(
    project: Project,
) -> None:
    start(project, COMPANY + employee(), {"company": [{"cid": 1, "cname": "Acme", "city": "Paris"}]})
    project.execute("CREATE VIEW company_names AS SELECT cname FROM company")
    write(project, employee())

    # The scratch copy has the view: the refusal shows at migrate, before any upgrade.
    written = project.flask("db", "migrate", "-m", "drop company")
    assert "table company is read by view company_names" in written.stderr, written.stderr
    schema = project.schema()
    refused = project.flask("db", "upgrade", ok=False)
    [line] = [line for line in refused.stderr.splitlines() if line.startswith("Error:")]
    assert "table company is read by view company_names: drop or change that view in this migration" in line
    assert "Traceback" not in refused.output
    assert project.schema() == schema
    assert project.query("SELECT cname FROM company_names") == [("Acme",)]

    # Without the view it goes; a view someone then puts on the archive is not purged along with it.
    project.execute("DROP VIEW company_names")
    project.flask("db", "upgrade")
    [archive] = archive_tables(project)
    project.execute(f"CREATE VIEW old_companies AS SELECT cname FROM {archive}")
    kept = project.flask("db", "archive", "--purge", ok=False)
    [line] = [line for line in kept.stderr.splitlines() if line.startswith("Error:")]
    assert f"{archive} is read by view old_companies, which purging it would drop too" in line, line
    assert archive_tables(project) == {archive}
    assert project.query("SELECT cname FROM old_companies") == [("Acme",)]
    project.execute("DROP VIEW old_companies")
    project.flask("db", "archive", "--purge")
    assert archive_tables(project) == set()
