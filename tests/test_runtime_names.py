"""Names that break naive tools (keywords, quotes, spaces, injection, non-ASCII, >63 bytes) migrate."""

from __future__ import annotations

from functools import cache

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_evolve.autogen.identifiers import kept_by_postgresql
from tests.harness import Project
from tests.postgres_server import PostgresServer

INJECTION = '"; DROP TABLE x; --'
LONG_TABLE = "a_table_name_that_is_long_but_still_fits_in_postgres_limit_ok"  # 61 bytes
LONG_INDEX = "ix_" + "very_long_index_name_" * 4  # 87 bytes: over PostgreSQL's 63

# Constraint and index names built from the long table name exceed 63 bytes;
# SQLAlchemy shortens convention names deterministically (name + hash).
CONVENTION = """
MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})
"""

MODELS = f"""
class Order(db.Model):
    __tablename__ = "order"
    id = db.Column(db.Integer, primary_key=True)
    group = db.Column("group", db.String(20))
    user = db.Column("user", db.String(20), index=True)


class Quoted(db.Model):
    __tablename__ = 'we"ird name'
    id = db.Column(db.Integer, primary_key=True)
    spaced = db.Column("with space", db.String(20))
    injected = db.Column({INJECTION!r}, db.String(20))
    apostrophe = db.Column("it's", db.String(20))


class Cafe(db.Model):
    __tablename__ = "café_表"
    id = db.Column(db.Integer, primary_key=True)
    naïve = db.Column("naïve", db.String(20), unique=True)
    order_id = db.Column(db.Integer, db.ForeignKey("order.id"))


class Long(db.Model):
    __tablename__ = {LONG_TABLE!r}
    id = db.Column(db.Integer, primary_key=True)
    value = db.Column(db.Integer, index=True, unique=True)
    order_id = db.Column(db.Integer, db.ForeignKey("order.id"))
"""


def test_awkward_names_migrate_round_trip_and_are_quoted_in_sql(project: Project) -> None:
    project.write_app(
        MODELS, imports="from sqlalchemy import MetaData", db_args=f"metadata={CONVENTION.strip()}"
    )
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "awkward names")
    sql = project.flask("db", "upgrade", "--sql").stdout
    project.flask("db", "upgrade")

    expected_tables = {"order", "we\"ird name", "café_表", LONG_TABLE, "alembic_version"}
    assert project.tables() == expected_tables
    assert "x" not in project.tables()
    assert set(project.columns("we\"ird name")) == {"id", "with space", INJECTION, "it's"}
    preparer = project.engine.dialect.identifier_preparer
    for name in ("order", "user", "group", "we\"ird name", "with space", INJECTION, "it's"):
        assert preparer.quote(name) in sql, name
    assert '"""; DROP TABLE x; --"' in sql

    with project.engine.begin() as connection:
        order = sa.table("order", sa.column("id"), sa.column("group"), sa.column("user"))
        connection.execute(order.insert().values(id=1, group="g", user="u"))
        weird = sa.table("we\"ird name", sa.column("id"), sa.column(INJECTION))
        connection.execute(weird.insert().values({"id": 1, INJECTION: "safe"}))
        cafe = sa.table("café_表", sa.column("id"), sa.column("naïve"), sa.column("order_id"))
        connection.execute(cafe.insert().values(id=1, naïve="ü", order_id=1))
    assert project.rows("we\"ird name") == [{"id": 1, "with space": None, INJECTION: "safe", "it's": None}]

    # The live schema matches the models: nothing left to migrate.
    again = project.flask("db", "migrate", "--exit-code", ok=False)
    assert "No changes in schema detected" in again.output
    project.flask("db", "downgrade", "base")
    assert project.tables() == {"alembic_version"}


def test_an_explicit_name_over_postgresqls_limit_is_refused_in_one_line(project: Project) -> None:
    project.write_app(
        f"""
class Item(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    value = db.Column(db.Integer)
    __table_args__ = (db.Index({LONG_INDEX!r}, "value"),)
"""
    )
    project.flask("db", "init")
    if project.dialect == "sqlite":
        project.flask("db", "migrate")
        project.flask("db", "upgrade")
        return
    result = project.flask("db", "migrate", ok=False)
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: Identifier '{LONG_INDEX}' exceeds maximum length of 63 characters: "
        f"give it a shorter name in the models, then run the command again."
    )
    assert not list((project.migrations / "versions").glob("*.py"))


TOO_LONG_TABLE = "a_really_long_table_name_that_goes_well_past_the_postgresql_limit"  # 65 bytes
WIDE_COLUMN = "é" * 32  # 32 characters, 64 bytes in UTF-8: over PostgreSQL's 63 bytes
ITEM = """
class Item(db.Model):
    id = db.Column(db.Integer, primary_key=True)
{extra}
"""
# (models, how the refusal starts, the fix it names)
CUT_SHORT = [
    (
        ITEM.format(extra="")
        + f"""
class Long(db.Model):
    __tablename__ = {TOO_LONG_TABLE!r}
    id = db.Column(db.Integer, primary_key=True)
""",
        f"Error: table name '{TOO_LONG_TABLE}' is 65 bytes, and PostgreSQL keeps only 63 ",
        "set __tablename__ to a name of at most 63 bytes",
    ),
    (
        ITEM.format(extra=f"    wide = db.Column({WIDE_COLUMN!r}, db.Integer)"),
        f"Error: column name '{WIDE_COLUMN}' of table item is 64 bytes, and PostgreSQL keeps only 63 ",
        "name it in at most 63 bytes (db.Column('short_name', ...))",
    ),
]


def test_a_table_or_column_name_postgresql_would_cut_short_is_refused(project: Project) -> None:
    project.write_app(ITEM.format(extra=""))
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "item")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO item (id) VALUES (1)")
    written = sorted((project.migrations / "versions").glob("*.py"))
    schema = project.schema()

    for models, start, fix in CUT_SHORT:
        project.write_app(models)
        if project.dialect == "sqlite":  # no such limit there: it migrates
            project.flask("db", "migrate", "--dry-run")
            continue
        refused = project.flask("db", "migrate", "-m", "long", ok=False)
        [line] = [line for line in refused.stderr.splitlines() if line.startswith("Error:")]
        assert line.startswith(start), line
        assert line.endswith(f"and would never match the model again: {fix}; nothing was written."), line
        assert "Traceback" not in refused.output
        assert sorted((project.migrations / "versions").glob("*.py")) == written
        assert project.schema() == schema and project.rows("item") == [{"id": 1}]


@cache
def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


@pytest.mark.postgresql
@settings(max_examples=300, deadline=None)
@given(name=st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=70))
def test_the_refusal_knows_exactly_what_postgresql_keeps_of_a_name(
    postgres_server: PostgresServer, name: str
) -> None:
    engine = _engine(postgres_server.admin_url)
    with engine.connect() as connection:
        kept = connection.execute(sa.text("SELECT CAST(:name AS name)"), {"name": name}).scalar()
    assert kept_by_postgresql(name) == kept
