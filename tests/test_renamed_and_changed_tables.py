"""A table renamed AND changed in one migration: a rename, then its other changes; rows kept both ways."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from flask_evolve.autogen.renames import strong_overlap
from tests.harness import Project
from tests.test_autogenerate_matrix import FK_ON
from tests.test_constraint_names import as_existing_project
from tests.test_renames import create_all_schema, reference_url, round_trip, scripts  # noqa: F401 (a fixture)

OLD = """
class Company(db.Model):
    cid = db.Column(db.Integer, primary_key=True)
    cname = db.Column(db.String(80), unique=True, nullable=False)
    clocation = db.Column(db.String(120), index=True)
    size = db.Column(db.Integer)
    motto = db.Column(db.String(50))


class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    company_id = db.Column(db.Integer, db.ForeignKey("company.cid"))
"""

# Renamed, a column renamed, one added, one dropped, one made NOT NULL (a rebuild on SQLite).
NEW = """
class Organization(db.Model):{table_args}
    cid = db.Column(db.Integer, primary_key=True)
    cname = db.Column(db.String(80), unique=True, nullable=False)
    location = db.Column(db.String(120), index=True)
    size = db.Column(db.Integer, nullable=False)
    founded = db.Column(db.Integer)


class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    company_id = db.Column(db.Integer, db.ForeignKey("organization.cid"))
"""

COMPANIES = [
    {"cid": 1, "cname": "Acme", "clocation": "Paris", "size": 3, "motto": "go"},
    {"cid": 2, "cname": "Initech", "clocation": "Rome", "size": 40, "motto": None},
]
EMPLOYEES = [{"id": 1, "company_id": 1}, {"id": 2, "company_id": 2}, {"id": 3, "company_id": 2}]


def _start(project: Project, *, imports: str = "") -> None:
    project.write_app(OLD, imports=imports)
    project.flask("db", "init")
    # An existing project: the database names constraints itself, as create_all() does.
    as_existing_project(project)
    project.flask("db", "migrate", "-m", "initial")
    project.flask("db", "upgrade")
    project.execute(
        "INSERT INTO company (cid, cname, clocation, size, motto) "
        "VALUES (:cid, :cname, :clocation, :size, :motto)",
        COMPANIES,
    )
    project.execute("INSERT INTO employee (id, company_id) VALUES (:id, :company_id)", EMPLOYEES)


def _assert_renamed_rows(project: Project) -> None:
    assert project.rows("organization", order_by="cid") == [
        {"cid": c["cid"], "cname": c["cname"], "location": c["clocation"], "size": c["size"], "founded": None}
        for c in COMPANIES
    ]
    assert project.rows("employee", order_by="id") == EMPLOYEES


@pytest.mark.parametrize("fk_on", [False, True], ids=["fk-off", "fk-on"])
def test_a_table_renamed_and_changed_keeps_its_rows(
    project: Project, reference_url: str, fk_on: bool  # noqa: F811
) -> None:
    if fk_on and project.dialect != "sqlite":
        pytest.skip("PRAGMA foreign_keys is SQLite's")
    imports = FK_ON if fk_on else ""
    _start(project, imports=imports)
    project.write_app(NEW.format(table_args=""), imports=imports)

    # round_trip: upgrade gives the create_all() schema and names, a second migrate finds
    # nothing, downgrade gives the old schema and names back, and re-upgrade works.
    output = round_trip(project, reference_url)

    assert "Rename table company -> organization, then change it (assumed: 3 of 5 columns" in output
    assert "Rename column organization.clocation -> location" in output
    assert "op.rename_table('company', 'organization')" in output
    assert "create_table" not in output and "drop_table" not in output
    upgrade = output.split("def downgrade")[0]
    # The table's other changes run on its new name, after the rename.
    assert upgrade.index("rename_table('company', 'organization')") < upgrade.index("founded")
    _assert_renamed_rows(project)
    assert project.schema()["employee"]["foreign_keys"] == [(("company_id",), "organization", ("cid",))]

    project.flask("db", "downgrade")
    assert "organization" not in project.tables()
    # The dropped motto comes back from the archive too.
    assert project.rows("company", order_by="cid") == COMPANIES
    assert project.rows("employee", order_by="id") == EMPLOYEES
    project.flask("db", "upgrade")
    _assert_renamed_rows(project)


def test_a_renamed_from_hint_settles_a_renamed_and_changed_table_among_two(sqlite_project: Project) -> None:
    # (SQLite only: on PostgreSQL the archive of the new table dropped on downgrade keeps a sequence.)
    project = sqlite_project
    _start(project)
    old_schema = project.schema()
    # A second added table just as alike makes the guess ambiguous; the model hint settles it.
    twin = NEW.format(table_args="").split("\n\nclass Employee")[0].replace("Organization", "Firm")
    hinted = NEW.format(table_args='\n    __table_args__ = {"info": {"renamed_from": "company"}}')
    project.write_app(hinted + twin)

    migrate = project.flask("db", "migrate", env={"FLASK_EVOLVE_INTERACTIVE": "0"})
    assert "Rename table company -> organization (from renamed_from on the model)" in migrate.stderr
    project.flask("db", "upgrade")
    _assert_renamed_rows(project)
    assert project.rows("firm") == []
    again = project.flask("db", "migrate", "--exit-code", ok=False)
    assert "No changes in schema detected" in again.output
    project.flask("db", "downgrade")
    assert project.schema() == old_schema
    assert [r["cname"] for r in project.rows("company", order_by="cid")] == ["Acme", "Initech"]


def test_ambiguous_renamed_and_changed_tables_are_refused(sqlite_project: Project) -> None:
    project = sqlite_project
    _start(project)
    twin = NEW.format(table_args="").split("\n\nclass Employee")[0].replace("Organization", "Firm")
    project.write_app(NEW.format(table_args="") + twin)
    refused = project.flask("db", "migrate", ok=False, env={"FLASK_EVOLVE_INTERACTIVE": "0"})
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: Ambiguous renames, not guessed: company -> "), line
    assert "company -> organization" in line and "company -> firm" in line
    assert "flask db migrate --rename company=" in line
    assert "Traceback" not in refused.output
    assert len(scripts(project)) == 1

    project.flask("db", "migrate", "--rename", "company=organization")
    project.flask("db", "upgrade")
    _assert_renamed_rows(project)


def test_the_prompt_says_the_table_also_changed(sqlite_project: Project) -> None:
    project = sqlite_project
    _start(project)
    project.write_app(NEW.format(table_args=""))
    migrate = project.flask("db", "migrate", input="y\ny\n", env={"FLASK_EVOLVE_INTERACTIVE": "1"})
    assert (
        "Did you rename table company to organization and change it (3 of 5 columns in common)? [y/N]"
        in migrate.stderr
    )
    project.flask("db", "upgrade")
    _assert_renamed_rows(project)


def test_no_renames_keeps_drop_and_create(sqlite_project: Project) -> None:
    project = sqlite_project
    _start(project)
    project.write_app(NEW.format(table_args=""))
    project.flask("db", "migrate", "--no-renames")
    script = scripts(project)[-1].read_text()
    assert "op.create_table('organization'" in script and "rename_table" not in script


def _table(metadata: sa.MetaData, name: str, *columns: str, key: str = "id") -> sa.Table:
    others = (sa.Column(c, sa.String(9)) for c in columns)
    return sa.Table(name, metadata, sa.Column(key, sa.Integer, primary_key=True), *others)


def _same_type(a: sa.Column[Any], b: sa.Column[Any]) -> bool:
    return False


@pytest.mark.parametrize(
    ("old", "new", "alike"),
    [
        (("a", "b", "c"), ("a", "b", "d"), "3 of 4 columns in common"),
        (("a", "b", "c"), ("a", "x"), "2 of 4 columns in common"),
        (("a",), ("b",), None),  # only the key in common
        (("a", "b", "c", "d", "e"), ("a", "x"), None),  # less than half
    ],
)
def test_strong_overlap_needs_the_key_and_half_the_columns(
    old: tuple[str, ...], new: tuple[str, ...], alike: str | None
) -> None:
    db, models = sa.MetaData(), sa.MetaData()
    result = strong_overlap(_table(db, "company", *old), _table(models, "organization", *new), _same_type)
    assert result == alike


def test_strong_overlap_needs_the_same_primary_key() -> None:
    db, models = sa.MetaData(), sa.MetaData()
    company = _table(db, "company", "a", "b")
    organization = _table(models, "organization", "a", "b", key="oid")
    assert strong_overlap(company, organization, _same_type) is None


# The app's own convention names a foreign key after the table it refers to, so renaming that table
# renames the foreign key of another table too: on SQLite that table is rebuilt, after the rename.
FK_NAME = "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"
REFERRED_CONVENTION = f'metadata=sa.MetaData(naming_convention={{"fk": "{FK_NAME}"}})'
REFERRED = """
class Company(db.Model):
    __tablename__ = "{table}"
    __table_args__ = {{"info": {{"renamed_from": "company"}}}}
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False, server_default={default})


class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    company_id = db.Column(db.Integer, db.ForeignKey("{table}.id"))
"""


def test_a_renamed_table_takes_the_foreign_keys_named_after_it_and_its_other_changes_along(
    project: Project, reference_url: str  # noqa: F811
) -> None:
    def models(table: str, default: str) -> None:
        project.write_app(
            REFERRED.format(table=table, default=default),
            db_args=REFERRED_CONVENTION,
            imports="import sqlalchemy as sa\n" + (FK_ON if project.dialect == "sqlite" else ""),
        )

    models("company", "None")
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO company (id, name) VALUES (1, 'acme'), (2, 'initech')")
    project.execute("INSERT INTO employee (id, company_id) VALUES (1, 1), (2, 2), (3, NULL)")

    # A rename the candidates call "alike", with a server default they do not weigh.
    models("organization", "'unnamed'")
    project.flask("db", "migrate", "-m", "rename")
    project.flask("db", "upgrade")
    again = project.flask("db", "migrate", "--exit-code", ok=False)
    assert "No changes in schema detected" in again.output, again
    schema, _ = create_all_schema(project, reference_url)
    assert project.schema() == schema
    [fk] = sa.inspect(project.engine).get_foreign_keys("employee")
    assert (fk["name"], fk["referred_table"]) == ("fk_employee_company_id_organization", "organization")
    assert project.query("SELECT id, company_id FROM employee ORDER BY id") == [(1, 1), (2, 2), (3, None)]
    assert project.query("SELECT id, name FROM organization ORDER BY id") == [(1, "acme"), (2, "initech")]

    project.flask("db", "downgrade")
    [fk] = sa.inspect(project.engine).get_foreign_keys("employee")
    assert (fk["name"], fk["referred_table"]) == ("fk_employee_company_id_company", "company")
    assert project.query("SELECT id, company_id FROM employee ORDER BY id") == [(1, 1), (2, 2), (3, None)]
    assert project.query("SELECT id, name FROM company ORDER BY id") == [(1, "acme"), (2, "initech")]
    project.flask("db", "upgrade")
    assert project.query("SELECT id, name FROM organization ORDER BY id") == [(1, "acme"), (2, "initech")]


CONVENTION = (
    'metadata=sa.MetaData(naming_convention={"pk": "pk_%(table_name)s", '
    f'"fk": "{FK_NAME}"}})'
)
RENAMED_COLUMN_AND_DROPPED = """
class Parent(db.Model):
    id = db.Column(db.Integer, primary_key=True)


class {model}(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    {code} = db.Column(db.Integer, nullable=False)
{active}    parent_id = db.Column(db.Integer, db.ForeignKey("parent.id"))
"""
ACTIVE = "    active = db.Column(db.Boolean, nullable=False)\n"


def test_a_renamed_and_changed_table_with_a_column_renamed_and_another_dropped_downgrades(
    project: Project, reference_url: str  # noqa: F811
) -> None:
    # The convention names the key and the foreign key after the table: both change with its name,
    # and the restore of the dropped NOT NULL column splits the downgrade's changes in two.
    def models(model: str, code: str, active: str) -> None:
        project.write_app(
            RENAMED_COLUMN_AND_DROPPED.format(model=model, code=code, active=active),
            db_args=CONVENTION,
            imports="import sqlalchemy as sa",
        )

    models("Company", "code", ACTIVE)
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO parent (id) VALUES (1)")
    project.execute(
        "INSERT INTO company (id, code, active, parent_id) VALUES (1, 10, TRUE, 1), (2, 20, FALSE, NULL)"
    )
    models("Organization", "number", "")

    # upgrade gives the create_all() schema and names, a second migrate finds nothing,
    # downgrade gives the old schema and names back, and re-upgrade works.
    output = round_trip(
        project, reference_url, "--rename", "company=organization", "--rename", "organization.code=number"
    )

    assert "op.rename_table('company', 'organization')" in output
    assert project.query("SELECT id, number, parent_id FROM organization ORDER BY id") == [
        (1, 10, 1),
        (2, 20, None),
    ]
    project.flask("db", "downgrade")
    assert "organization" not in project.tables()
    assert project.query("SELECT id, code, active, parent_id FROM company ORDER BY id") == [
        (1, 10, True, 1),
        (2, 20, False, None),
    ]
    [fk] = sa.inspect(project.engine).get_foreign_keys("company")
    assert (fk["name"], fk["referred_table"]) == ("fk_company_parent_id_parent", "parent")
    project.flask("db", "upgrade")
    assert project.query("SELECT id, number, parent_id FROM organization ORDER BY id") == [
        (1, 10, 1),
        (2, 20, None),
    ]
