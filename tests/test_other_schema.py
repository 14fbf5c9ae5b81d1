"""Tables outside the default schema (PostgreSQL): changes and renames round-trip with rows."""

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


# -- renames in another schema -----------------------------------------------------------------

RENAME_MODELS = """
class Company(db.Model):
    __tablename__ = "{company}"
    __table_args__ = {{"schema": "other"{company_info}}}
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), unique=True, nullable=False)
{company_extra}

class Item(db.Model):
    __table_args__ = {{"schema": "other"}}
    id = db.Column(db.Integer, primary_key=True)
    {name} = db.Column(db.String(80), index=True{name_args})
    qty = db.Column(db.Integer)
    company_id = db.Column(db.Integer, db.ForeignKey("other.{company}.id"))
{extra}

class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    company_id = db.Column(db.Integer, db.ForeignKey("other.{company}.id"))
"""


def rename_models(
    *,
    company: str = "company",
    company_info: str = "",
    name: str = "name",
    name_args: str = "",
    extra: str = "",
    company_extra: str = "",
) -> str:
    return RENAME_MODELS.format(
        company=company,
        company_info=company_info,
        name=name,
        name_args=name_args,
        extra=extra,
        company_extra=company_extra,
    )


def full_snapshot(project: Project) -> dict[str, Any]:
    """Every table of both schemas with its columns and the names of its keys, constraints and indexes."""
    inspector = sa.inspect(project.engine)
    found: dict[str, Any] = {}
    for schema in ("other", None):
        for table in sorted(inspector.get_table_names(schema=schema)):
            if table == "alembic_version" or table.startswith("_evolve"):
                continue
            found[f"{schema}.{table}"] = {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table, schema)
                ],
                "pk": inspector.get_pk_constraint(table, schema)["name"],
                "unique": sorted(
                    (u["name"], tuple(u["column_names"]))
                    for u in inspector.get_unique_constraints(table, schema)
                ),
                "fks": sorted(
                    (
                        fk["name"],
                        fk["referred_schema"],
                        fk["referred_table"],
                        tuple(fk["constrained_columns"]),
                    )
                    for fk in inspector.get_foreign_keys(table, schema)
                ),
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table, schema)
                ),
            }
    found["sequences"] = sorted(inspector.get_sequence_names(schema="other"))
    return found


def company_data(project: Project, company: str = "company", name: str = "name") -> list[Any]:
    return [
        project.query(f"SELECT id, name FROM other.{company} ORDER BY id"),
        project.query(f"SELECT id, {name}, qty, company_id FROM other.item ORDER BY id"),
        project.query("SELECT id, company_id FROM employee ORDER BY id"),
    ]


@pytest.fixture
def company_project(postgres_url: str, tmp_path: Path) -> Iterator[Project]:
    project = Project(tmp_path, postgres_url)
    project.execute("CREATE SCHEMA other")
    project.write_app(rename_models(), migrate_args=ARGS)
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO other.company (name) VALUES ('acme'), ('globex')")
    project.execute(
        "INSERT INTO other.item (name, qty, company_id) VALUES ('a', 1, 1), ('b', 2, 2), ('c', 3, NULL)"
    )
    project.execute("INSERT INTO employee (company_id) VALUES (2), (1)")
    yield project
    project.dispose()


def latest_script(project: Project) -> str:
    return sorted((project.migrations / "versions").glob("*.py"), key=lambda p: p.stat().st_mtime)[
        -1
    ].read_text()


def round_trip(
    project: Project, old: dict[str, Any], data: list[Any], *, company: str, name: str
) -> dict[str, Any]:
    """upgrade -> nothing left to migrate -> downgrade (old schema, same rows) -> upgrade again."""
    project.flask("db", "upgrade")
    new = full_snapshot(project)
    assert company_data(project, company, name) == data
    assert_no_changes(project)
    project.flask("db", "downgrade")
    assert full_snapshot(project) == old
    assert company_data(project) == data
    project.flask("db", "upgrade")
    assert full_snapshot(project) == new
    assert company_data(project, company, name) == data
    return new


def test_a_column_renamed_in_another_schema_keeps_its_rows_and_index(company_project: Project) -> None:
    project = company_project
    old, data = full_snapshot(project), company_data(project)
    project.write_app(rename_models(name="title"), migrate_args=ARGS)

    migrate = project.flask("db", "migrate", "-m", "rename")
    assert "Rename column other.item.name -> title (assumed" in migrate.output, migrate
    script = latest_script(project)
    assert "new_column_name='title'" in script and "schema='other'" in script
    assert "drop_column" not in script and "add_column" not in script

    new = round_trip(project, old, data, company="company", name="title")
    item = new["other.item"]
    assert [c[0] for c in item["columns"]] == ["id", "title", "qty", "company_id"]
    assert item["indexes"] == [("ix_other_item_title", ("title",))]


def test_a_table_renamed_in_another_schema_takes_its_keys_and_foreign_keys_along(
    company_project: Project,
) -> None:
    project = company_project
    old, data = full_snapshot(project), company_data(project)
    project.write_app(rename_models(company="organization"), migrate_args=ARGS)

    migrate = project.flask("db", "migrate", "-m", "rename")
    assert "Rename table other.company -> organization (assumed" in migrate.output, migrate
    script = latest_script(project)
    assert "op.rename_table('company', 'organization', schema='other')" in script
    assert "drop_table" not in script and "create_table" not in script

    new = round_trip(project, old, data, company="organization", name="name")
    assert "other.company" not in new
    assert new["other.organization"]["pk"] == "pk_organization"
    assert new["other.organization"]["unique"] == [("uq_organization_name", ("name",))]
    assert new["other.item"]["fks"] == [
        ("fk_item_company_id_organization", "other", "organization", ("company_id",))
    ]
    assert new["None.employee"]["fks"] == [
        ("fk_employee_company_id_organization", "other", "organization", ("company_id",))
    ]
    assert new["sequences"] == ["item_id_seq", "organization_id_seq"]
    # The sequence still feeds the key: a new row gets the next id.
    project.execute("INSERT INTO other.organization (name) VALUES ('initech')")
    assert project.query("SELECT id FROM other.organization WHERE name = 'initech'") == [(3,)]


def test_a_table_renamed_and_changed_in_another_schema(company_project: Project) -> None:
    project = company_project
    old, data = full_snapshot(project), company_data(project)
    note = "    note = db.Column(db.String(20))"
    project.write_app(rename_models(company="organization", company_extra=note), migrate_args=ARGS)

    migrate = project.flask("db", "migrate", "-m", "rename and change")
    assert "Rename table other.company -> organization, then change it" in migrate.output, migrate
    script = latest_script(project)
    assert "op.rename_table('company', 'organization', schema='other')" in script
    assert "batch_op.add_column" in script or "op.add_column('organization'" in script
    assert "drop_table" not in script and "create_table" not in script

    new = round_trip(project, old, data, company="organization", name="name")
    assert [c[0] for c in new["other.organization"]["columns"]] == ["id", "name", "note"]


TWO_NEW_COLUMNS = "    label = db.Column(db.String(80), index=True)\n"


def test_an_ambiguous_rename_in_another_schema_is_refused_in_one_line(company_project: Project) -> None:
    project = company_project
    versions = sorted((project.migrations / "versions").glob("*.py"))
    project.write_app(rename_models(name="title", extra=TWO_NEW_COLUMNS), migrate_args=ARGS)
    refused = project.flask("db", "migrate", ok=False)
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: Ambiguous renames, not guessed: "), refused
    assert "other.item.name -> title" in line and "other.item.name -> label" in line
    assert "flask db migrate --rename other.item.name=title" in line
    assert "Traceback" not in refused.output
    assert sorted((project.migrations / "versions").glob("*.py")) == versions


@pytest.mark.parametrize(
    ("flags", "name_args", "source"),
    [
        (["--rename", "other.item.name=title"], "", "rename from --rename: other.item.name -> title"),
        (
            [],
            ', info={"renamed_from": "name"}',
            "rename from renamed_from on the model: other.item.name -> title",
        ),
    ],
    ids=["flag", "renamed_from"],
)
def test_a_stated_column_rename_in_another_schema_settles_the_ambiguity(
    company_project: Project, flags: list[str], name_args: str, source: str
) -> None:
    project = company_project
    old, data = full_snapshot(project), company_data(project)
    project.write_app(
        rename_models(name="title", name_args=name_args, extra=TWO_NEW_COLUMNS), migrate_args=ARGS
    )
    project.flask("db", "migrate", "-m", "rename", *flags)
    script = latest_script(project)
    assert f"# flask-evolve: {source}" in script
    assert "new_column_name='title'" in script
    new = round_trip(project, old, data, company="company", name="title")
    assert [c[0] for c in new["other.item"]["columns"]] == ["id", "title", "qty", "company_id", "label"]


@pytest.mark.parametrize(
    ("flags", "company_info", "source"),
    [
        (
            ["--rename", "other.company=organization"],
            "",
            "rename from --rename: other.company -> organization",
        ),
        (
            [],
            ', "info": {"renamed_from": "company"}',
            "rename from renamed_from on the model: other.company -> organization",
        ),
    ],
    ids=["flag", "renamed_from"],
)
def test_a_stated_table_rename_in_another_schema(
    company_project: Project, flags: list[str], company_info: str, source: str
) -> None:
    project = company_project
    old, data = full_snapshot(project), company_data(project)
    project.write_app(rename_models(company="organization", company_info=company_info), migrate_args=ARGS)
    project.flask("db", "migrate", "-m", "rename", "--no-renames", *flags)  # stated renames apply even so
    assert f"# flask-evolve: {source}" in latest_script(project)
    new = round_trip(project, old, data, company="organization", name="name")
    assert new["other.organization"]["pk"] == "pk_organization"


def test_the_prompt_names_the_schema(company_project: Project) -> None:
    project = company_project
    project.write_app(rename_models(name="title"), migrate_args=ARGS)
    migrate = project.flask("db", "migrate", input="y\n", env={"FLASK_EVOLVE_INTERACTIVE": "1"})
    assert "Did you rename other.item.name to other.item.title (VARCHAR(80))? [y/N]" in migrate.stderr
    assert "rename confirmed at the prompt: other.item.name -> title" in latest_script(project)


def test_a_hint_naming_nothing_in_another_schema_is_refused_in_one_line(company_project: Project) -> None:
    project = company_project
    project.write_app(rename_models(name="title"), migrate_args=ARGS)
    refused = project.flask("db", "migrate", "--rename", "other.item.nme=title", ok=False)
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: --rename other.item.nme=title: the comparison does not drop column"), (
        refused
    )
    assert "Traceback" not in refused.output


def test_a_table_moved_to_another_schema_is_refused_in_one_line(company_project: Project) -> None:
    project = company_project
    versions = sorted((project.migrations / "versions").glob("*.py"))
    moved = (
        rename_models()
        .replace(
            '__tablename__ = "company"\n    __table_args__ = {"schema": "other"}', '__tablename__ = "company"'
        )
        .replace('ForeignKey("other.company.id")', 'ForeignKey("company.id")')
    )
    project.write_app(moved, migrate_args=ARGS)
    refused = project.flask("db", "migrate", ok=False)
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: Tables that look moved to another schema"), refused
    assert "other.company -> company" in line and "SET SCHEMA" in line and "--no-renames" in line
    assert "Traceback" not in refused.output
    assert sorted((project.migrations / "versions").glob("*.py")) == versions
