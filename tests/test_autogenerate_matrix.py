"""Every kind of model change, end to end through the real CLI on populated tables: SQLite (FKs on/off), PG.

All changes of the matrix go into ONE migration (each on its own tables, so this is
also the "many tables at once" combination); per change we assert the create_all()
schema after upgrade, the rows, a clean second migrate, the old schema and rows after
downgrade, and a working re-upgrade. Changes that must be refused run on their own.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.harness import Project, snapshot_schema

FK_ON = """
from sqlalchemy import event
from sqlalchemy.engine import Engine


@event.listens_for(Engine, "connect")
def _foreign_keys_on(dbapi_connection, record):
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        dbapi_connection.execute("PRAGMA foreign_keys=ON")
"""


@dataclass
class Change:
    name: str
    old: str
    new: str
    rows: str  # INSERT statements run after the first upgrade
    tables: tuple[str, ...]


def _c(name: str, old: str, new: str, rows: str, *tables: str) -> Change:
    return Change(name, textwrap.dedent(old), textwrap.dedent(new), rows, tables)


PK = "id = db.Column(db.Integer, primary_key=True)"

CHANGES = [
    _c(
        "add nullable column",
        f"class T01(db.Model):\n    {PK}\n    a = db.Column(db.String(20))\n",
        f"class T01(db.Model):\n    {PK}\n    a = db.Column(db.String(20))\n    b = db.Column(db.Integer)\n",
        "INSERT INTO t01 (a) VALUES ('x'), ('y')",
        "t01",
    ),
    _c(
        "add NOT NULL column with server default",
        f"class T02(db.Model):\n    {PK}\n    a = db.Column(db.String(20))\n",
        f"class T02(db.Model):\n    {PK}\n    a = db.Column(db.String(20))\n"
        "    b = db.Column(db.Integer, nullable=False, server_default='7')\n",
        "INSERT INTO t02 (a) VALUES ('x')",
        "t02",
    ),
    _c(
        "drop nullable column",
        f"class T03(db.Model):\n    {PK}\n    a = db.Column(db.String(20))\n    b = db.Column(db.Integer)\n",
        f"class T03(db.Model):\n    {PK}\n    a = db.Column(db.String(20))\n",
        "INSERT INTO t03 (a, b) VALUES ('x', 1)",
        "t03",
    ),
    _c(
        "drop NOT NULL column (downgrade re-adds it on a populated table)",
        f"class T04(db.Model):\n    {PK}\n    a = db.Column(db.String(20))\n"
        "    b = db.Column(db.String(20), nullable=False)\n",
        f"class T04(db.Model):\n    {PK}\n    a = db.Column(db.String(20))\n",
        "INSERT INTO t04 (a, b) VALUES ('x', 'bee'), ('y', 'bee')",
        "t04",
    ),
    _c(
        "set a length on String",
        f"class T05(db.Model):\n    {PK}\n    a = db.Column(db.String)\n",
        f"class T05(db.Model):\n    {PK}\n    a = db.Column(db.String(80))\n",
        "INSERT INTO t05 (a) VALUES ('x')",
        "t05",
    ),
    _c(
        "widen a String",
        f"class T06(db.Model):\n    {PK}\n    a = db.Column(db.String(10))\n",
        f"class T06(db.Model):\n    {PK}\n    a = db.Column(db.String(40))\n",
        "INSERT INTO t06 (a) VALUES ('short')",
        "t06",
    ),
    _c(
        "set precision on Numeric",
        f"class T07(db.Model):\n    {PK}\n    a = db.Column(db.Numeric)\n",
        f"class T07(db.Model):\n    {PK}\n    a = db.Column(db.Numeric(10, 2))\n",
        "INSERT INTO t07 (a) VALUES (1.25)",
        "t07",
    ),
    _c(
        "String holding numbers becomes Integer",
        f"class T08(db.Model):\n    {PK}\n    a = db.Column(db.String(10))\n",
        f"class T08(db.Model):\n    {PK}\n    a = db.Column(db.Integer)\n",
        "INSERT INTO t08 (a) VALUES ('12'), ('7')",
        "t08",
    ),
    _c(
        "make a column NOT NULL",
        f"class T09(db.Model):\n    {PK}\n    a = db.Column(db.String(20))\n",
        f"class T09(db.Model):\n    {PK}\n    a = db.Column(db.String(20), nullable=False)\n",
        "INSERT INTO t09 (a) VALUES ('x')",
        "t09",
    ),
    _c(
        "make a column nullable",
        f"class T10(db.Model):\n    {PK}\n    a = db.Column(db.String(20), nullable=False)\n",
        f"class T10(db.Model):\n    {PK}\n    a = db.Column(db.String(20))\n",
        "INSERT INTO t10 (a) VALUES ('x')",
        "t10",
    ),
    _c(
        "add a server default",
        f"class T11(db.Model):\n    {PK}\n    a = db.Column(db.String(20))\n",
        f"class T11(db.Model):\n    {PK}\n    a = db.Column(db.String(20), server_default='new')\n",
        "INSERT INTO t11 (a) VALUES ('x')",
        "t11",
    ),
    _c(
        "change a server default",
        f"class T12(db.Model):\n    {PK}\n    a = db.Column(db.Integer, server_default='1')\n",
        f"class T12(db.Model):\n    {PK}\n    a = db.Column(db.Integer, server_default='2')\n",
        "INSERT INTO t12 (a) VALUES (5)",
        "t12",
    ),
    _c(
        "drop a server default (CURRENT_TIMESTAMP)",
        f"class T13(db.Model):\n    {PK}\n    a = db.Column(db.DateTime, server_default=db.func.now())\n",
        f"class T13(db.Model):\n    {PK}\n    a = db.Column(db.DateTime)\n",
        "INSERT INTO t13 (a) VALUES ('2024-01-02 03:04:05')",
        "t13",
    ),
    _c(
        "boolean server default flips",
        f"class T14(db.Model):\n    {PK}\n    a = db.Column(db.Boolean, server_default=db.false())\n",
        f"class T14(db.Model):\n    {PK}\n    a = db.Column(db.Boolean, server_default=db.true())\n",
        "INSERT INTO t14 (a) VALUES (true)",
        "t14",
    ),
    _c(
        "string default with a quote",
        f'class T15(db.Model):\n    {PK}\n    a = db.Column(db.String(20), server_default="it\'s")\n',
        f'class T15(db.Model):\n    {PK}\n    a = db.Column(db.String(20), server_default="it\'s")\n'
        "    b = db.Column(db.Integer)\n",
        "INSERT INTO t15 (a) VALUES ('x')",
        "t15",
    ),
    _c(
        "add an index",
        f"class T16(db.Model):\n    {PK}\n    a = db.Column(db.String(20))\n",
        f"class T16(db.Model):\n    {PK}\n    a = db.Column(db.String(20), index=True)\n",
        "INSERT INTO t16 (a) VALUES ('x')",
        "t16",
    ),
    _c(
        "drop an index",
        f"class T17(db.Model):\n    {PK}\n    a = db.Column(db.String(20), index=True)\n",
        f"class T17(db.Model):\n    {PK}\n    a = db.Column(db.String(20))\n",
        "INSERT INTO t17 (a) VALUES ('x')",
        "t17",
    ),
    _c(
        "add a unique constraint",
        f"class T18(db.Model):\n    {PK}\n    a = db.Column(db.String(20))\n",
        f"class T18(db.Model):\n    {PK}\n    a = db.Column(db.String(20))\n"
        "    __table_args__ = (db.UniqueConstraint('a', name='uq_t18_a'),)\n",
        "INSERT INTO t18 (a) VALUES ('x'), ('y')",
        "t18",
    ),
    _c(
        "drop a named unique constraint",
        f"class T19(db.Model):\n    {PK}\n    a = db.Column(db.String(20))\n"
        "    __table_args__ = (db.UniqueConstraint('a', name='uq_t19_a'),)\n",
        f"class T19(db.Model):\n    {PK}\n    a = db.Column(db.String(20))\n",
        "INSERT INTO t19 (a) VALUES ('x')",
        "t19",
    ),
    _c(
        "add a foreign key (column + named FK)",
        f"class T20p(db.Model):\n    {PK}\n\nclass T20c(db.Model):\n    {PK}\n"
        "    a = db.Column(db.Integer)\n",
        f"class T20p(db.Model):\n    {PK}\n\nclass T20c(db.Model):\n    {PK}\n"
        "    a = db.Column(db.Integer, db.ForeignKey('t20p.id', name='fk_t20c_a'))\n",
        "INSERT INTO t20p (id) VALUES (1); INSERT INTO t20c (a) VALUES (1)",
        "t20p",
        "t20c",
    ),
    _c(
        "rebuild a parent that has ON DELETE CASCADE children",
        f"class T21p(db.Model):\n    {PK}\n    a = db.Column(db.String(20))\n\n"
        f"class T21c(db.Model):\n    {PK}\n"
        "    p = db.Column(db.Integer, db.ForeignKey('t21p.id', ondelete='CASCADE'))\n",
        f"class T21p(db.Model):\n    {PK}\n    a = db.Column(db.String(20), nullable=False)\n\n"
        f"class T21c(db.Model):\n    {PK}\n"
        "    p = db.Column(db.Integer, db.ForeignKey('t21p.id', ondelete='CASCADE'))\n",
        "INSERT INTO t21p (id, a) VALUES (1, 'x'); INSERT INTO t21c (p) VALUES (1), (1)",
        "t21p",
        "t21c",
    ),
    _c(
        "add a table",
        f"class T22(db.Model):\n    {PK}\n",
        f"class T22(db.Model):\n    {PK}\n\nclass T22b(db.Model):\n    {PK}\n"
        "    a = db.Column(db.String(5))\n",
        "INSERT INTO t22 (id) VALUES (1)",
        "t22",
        "t22b",
    ),
    _c(
        "drop a table",
        f"class T23(db.Model):\n    {PK}\n\nclass T23b(db.Model):\n    {PK}\n"
        "    a = db.Column(db.String(5))\n",
        f"class T23(db.Model):\n    {PK}\n",
        "INSERT INTO t23 (id) VALUES (1)",
        "t23",
        "t23b",
    ),
    _c(
        "add a named CHECK constraint",
        f"class T24(db.Model):\n    {PK}\n    a = db.Column(db.Integer)\n",
        f"class T24(db.Model):\n    {PK}\n    a = db.Column(db.Integer)\n"
        "    __table_args__ = (db.CheckConstraint('a > 0', name='ck_t24_a'),)\n",
        "INSERT INTO t24 (a) VALUES (3)",
        "t24",
    ),
    _c(
        "add a column to a table with AUTOINCREMENT and COLLATE, next to a type change",
        f"class T25(db.Model):\n    {PK}\n    a = db.Column(db.String(20, collation='NOCASE'))\n"
        "    b = db.Column(db.String(10))\n    __table_args__ = {'sqlite_autoincrement': True}\n",
        f"class T25(db.Model):\n    {PK}\n    a = db.Column(db.String(20, collation='NOCASE'))\n"
        "    b = db.Column(db.String(5))\n    __table_args__ = {'sqlite_autoincrement': True}\n",
        "INSERT INTO t25 (a, b) VALUES ('x', 'b')",
        "t25",
    ),
    _c(
        "add a column comment",
        f"class T26(db.Model):\n    {PK}\n    a = db.Column(db.String(20))\n",
        f"class T26(db.Model):\n    {PK}\n    a = db.Column(db.String(20), comment='what a is')\n",
        "INSERT INTO t26 (a) VALUES ('x')",
        "t26",
    ),
    _c(
        "add, drop and retype in one table",
        f"class T27(db.Model):\n    {PK}\n    a = db.Column(db.String(20))\n    b = db.Column(db.Integer)\n",
        f"class T27(db.Model):\n    {PK}\n    a = db.Column(db.String(30), nullable=False)\n"
        "    c = db.Column(db.Boolean, server_default=db.true())\n",
        "INSERT INTO t27 (a, b) VALUES ('x', 2)",
        "t27",
    ),
]

CHANGES += [
    _c(
        "add an unnamed CHECK",
        f"class T28(db.Model):\n    {PK}\n    a = db.Column(db.Integer)\n",
        f"class T28(db.Model):\n    {PK}\n    a = db.Column(db.Integer, db.CheckConstraint('a > 0'))\n",
        "INSERT INTO t28 (a) VALUES (3)",
        "t28",
    ),
    _c(
        "drop an unnamed CHECK",
        f"class T29(db.Model):\n    {PK}\n    a = db.Column(db.Integer)\n"
        "    __table_args__ = (db.CheckConstraint('a < 100'),)\n",
        f"class T29(db.Model):\n    {PK}\n    a = db.Column(db.Integer)\n",
        "INSERT INTO t29 (a) VALUES (3)",
        "t29",
    ),
    _c(
        "change an unnamed CHECK, keep another",
        f"class T31(db.Model):\n    {PK}\n    a = db.Column(db.Integer, db.CheckConstraint('a > 0'))\n"
        "    b = db.Column(db.String(5))\n    __table_args__ = (db.CheckConstraint(\"b <> ''\"),)\n",
        f"class T31(db.Model):\n    {PK}\n    a = db.Column(db.Integer, db.CheckConstraint('a >= 0'))\n"
        "    b = db.Column(db.String(5))\n    __table_args__ = (db.CheckConstraint(\"b <> ''\"),)\n",
        "INSERT INTO t31 (a, b) VALUES (3, 'x')",
        "t31",
    ),
]

CHANGES += [
    _c(
        "drop a UNIQUE NOT NULL column (downgrade gives each row its own placeholder)",
        f"class T30(db.Model):\n    {PK}\n    a = db.Column(db.String(20), unique=True, nullable=False)\n"
        "    b = db.Column(db.Integer, nullable=False)\n"
        "    __table_args__ = (db.UniqueConstraint('b', name='uq_t30_b'),)\n",
        f"class T30(db.Model):\n    {PK}\n",
        "INSERT INTO t30 (a, b) VALUES ('x', 1), ('y', 2)",
        "t30",
    ),
]

# Comments exist on PostgreSQL only; sqlite_autoincrement/COLLATE NOCASE are SQLite spellings.
SQLITE_ONLY = {
    "add a column to a table with AUTOINCREMENT and COLLATE, next to a type change",
}


def _models(changes: list[Change], which: str) -> str:
    return "\n\n".join(getattr(change, which) for change in changes)


def _value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (Decimal, float)):
        return str(Decimal(str(value)).normalize())
    return str(value) if value is not None else None


def _data(project: Project, tables: set[str]) -> dict[str, list[dict[str, Any]]]:
    return {
        t: [{k: _value(v) for k, v in row.items()} for row in project.rows(t, order_by="id")]
        for t in sorted(tables)
        if t in project.tables()
    }


def _kept(
    before: dict[str, list[dict[str, Any]]],
    after: dict[str, list[dict[str, Any]]],
    new_schema: dict[str, Any],
) -> None:
    """Every row of every surviving table is still there, with its surviving columns unchanged."""
    for table, rows in before.items():
        if table not in after or table not in new_schema:
            continue
        assert len(after[table]) == len(rows), table
        for old, new in zip(rows, after[table], strict=True):
            shared = set(old) & set(new) & set(new_schema[table]["columns"])
            assert {k: old[k] for k in shared} == {k: new[k] for k in shared}, table


@pytest.fixture(params=["sqlite-fk-off", "sqlite-fk-on", "postgresql"])
def matrix_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """(kind, url of the migrated database, url of a fresh database for create_all)."""
    if request.param.startswith("sqlite"):
        yield request.param, f"sqlite:///{tmp_path / 'app.db'}", f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    request.applymarker(pytest.mark.postgresql)
    server = request.getfixturevalue("postgres_server")
    url, fresh = server.create_database(), server.create_database()
    yield request.param, url, fresh
    for database in (url, fresh):
        server.drop_database(sa.make_url(database).database)


def _create_all_schema(project: Project, models: str, fresh_url: str, fk_on: bool) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    source = (
        f"import sqlalchemy as sa\nfrom flask_sqlalchemy import SQLAlchemy\ndb = SQLAlchemy()\n\n{models}"
    )
    exec(compile(source, "<models>", "exec"), namespace)
    engine = sa.create_engine(fresh_url, poolclass=sa.pool.NullPool)
    try:
        namespace["db"].metadata.create_all(engine)
        return snapshot_schema(engine)
    finally:
        engine.dispose()


def test_every_change_round_trips_with_rows(matrix_db: tuple[str, str, str], tmp_path: Path) -> None:
    kind, url, fresh_url = matrix_db
    changes = [c for c in CHANGES if kind.startswith("sqlite") or c.name not in SQLITE_ONLY]
    assert len(changes) >= 25 or kind == "postgresql"
    path = tmp_path / "project"
    path.mkdir()
    project = Project(path, url)
    fk_on = kind == "sqlite-fk-on"
    imports = FK_ON if fk_on else ""
    tables = {t for c in changes for t in c.tables}
    try:
        project.write_app(_models(changes, "old"), imports=imports)
        project.flask("db", "init")
        project.flask("db", "migrate", "-m", "old")
        project.flask("db", "upgrade")
        old_schema = project.schema()
        for change in changes:
            for statement in change.rows.split(";"):
                project.execute(statement)
        before = _data(project, tables)

        project.write_app(_models(changes, "new"), imports=imports)
        migrate = project.flask("db", "migrate", "-m", "new")
        scripts = sorted((project.migrations / "versions").glob("*.py"))
        assert len(scripts) == 2, migrate  # 1. migrate wrote a script
        if kind.startswith("sqlite"):
            # What SQLite can ALTER in place is never a table copy; every other table is copied once.
            script = next(t for t in (p.read_text() for p in scripts) if t.startswith('"""new'))
            upgrade_part = script.split("def downgrade")[0]
            assert "add_column(sa.Column('b'" in upgrade_part and "_evolve_new_t01" not in upgrade_part
            assert "op.drop_column('t03', 'b')" in upgrade_part and "_evolve_new_t03" not in upgrade_part
            assert all(upgrade_part.count(f"CREATE TABLE _evolve_new_{t} ") <= 1 for t in tables)
        project.flask("db", "upgrade")
        new_schema = project.schema()
        expected = _create_all_schema(project, _models(changes, "new"), fresh_url, fk_on)
        for table in sorted(set(expected) | set(new_schema)):  # 2. the create_all() schema
            assert new_schema.get(table) == expected.get(table), (table, migrate.stderr)
        after = _data(project, tables)
        _kept(before, after, new_schema)  # 3. rows survive
        again = project.flask("db", "migrate", "--exit-code", ok=False)  # 4. nothing left to detect
        assert "No changes in schema detected" in again.output, again

        project.flask("db", "downgrade")  # 5. the old schema, rows intact
        downgraded = project.schema()
        for table in sorted(set(old_schema) | set(downgraded)):
            assert downgraded.get(table) == old_schema.get(table), table
        _kept(before, _data(project, tables), new_schema)
        project.flask("db", "upgrade")  # 6. re-upgrade
        assert project.schema() == new_schema
        _kept(before, _data(project, tables), new_schema)
    finally:
        project.dispose()


ITEM = """
class Item(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    code = db.Column({code_type})
"""


@pytest.mark.parametrize(
    ("old_type", "new_type", "values", "new_sql", "shown"),
    [
        ("db.String(10)", "db.Integer", "('12'), ('abc')", "INTEGER", "abc"),
        ("db.Float", "db.Integer", "(2.0), (1.5)", "INTEGER", "1.5"),
    ],
)
def test_a_type_change_that_would_alter_values_is_refused_before_anything_is_written(
    project: Project, old_type: str, new_type: str, values: str, new_sql: str, shown: str
) -> None:
    project.write_app(ITEM.format(code_type=old_type))
    project.flask("db", "init")
    project.flask("db", "migrate")
    project.flask("db", "upgrade")
    project.write_app(ITEM.format(code_type=new_type))
    project.flask("db", "migrate")
    # Rows that arrive after the script was written (another database, say production): `migrate`
    # refuses them when they are there already, the script's own check stops `upgrade` otherwise.
    project.execute(f"INSERT INTO item (code) VALUES {values}")
    schema, version, rows = project.schema(), project.version(), project.rows("item", order_by="id")

    refused = project.flask("db", "upgrade", ok=False)

    assert f"Error: cannot change item.code to {new_sql}: " in refused.stderr, refused
    assert shown in refused.stderr.splitlines()[-1]
    assert "Traceback" not in refused.output
    assert project.schema() == schema and project.version() == version
    assert project.rows("item", order_by="id") == rows


@pytest.mark.parametrize(
    ("old_type", "new_type", "values"),
    [
        ("db.DateTime", "db.DateTime(timezone=True)", "('2024-01-02 03:04:05'), (NULL)"),
        ("db.Numeric(10, 2)", "db.Float", "(1.25), (3.50)"),
        ("db.Integer", "db.Boolean", "(1), (0)"),
        ("db.String(10)", "db.Integer", "('12'), ('7')"),
    ],
    ids=["naive to aware datetime", "numeric to float", "0 and 1 to boolean", "digits to integer"],
)
def test_a_type_change_that_keeps_every_value_migrates_and_comes_back(
    project: Project, old_type: str, new_type: str, values: str
) -> None:
    project.write_app(ITEM.format(code_type=old_type))
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "item")
    project.flask("db", "upgrade")
    project.execute(f"INSERT INTO item (code) VALUES {values}")
    before = project.rows("item", order_by="id"), project.schema()

    project.write_app(ITEM.format(code_type=new_type))
    written = project.flask("db", "migrate", "-m", "code type")  # not refused: no value would change
    if "No changes in schema detected" in written.output:
        assert project.dialect == "sqlite" and "timezone" in new_type  # one storage class for both
        return
    project.flask("db", "upgrade")
    assert len(project.rows("item", order_by="id")) == len(before[0])
    project.flask("db", "downgrade")

    assert (project.rows("item", order_by="id"), project.schema()) == before


def test_a_sqlite_rebuild_keeps_views_triggers_and_expression_indexes(sqlite_project: Project) -> None:
    project = sqlite_project
    log = (
        "\n\nclass Log(db.Model):\n    id = db.Column(db.Integer, primary_key=True)\n"
        "    code = db.Column(db.String(10))\n"
    )
    project.write_app(ITEM.format(code_type="db.String(10)") + log, imports=FK_ON)
    project.flask("db", "init")
    project.flask("db", "migrate")
    project.flask("db", "upgrade")
    project.execute("CREATE VIEW item_codes AS SELECT id, code FROM item")
    project.execute(
        "CREATE TRIGGER item_log AFTER INSERT ON item BEGIN INSERT INTO log (code) VALUES (new.code); END"
    )
    project.execute("CREATE INDEX ix_item_lower ON item (lower(code))")
    project.execute("INSERT INTO item (code) VALUES ('Ab')")

    project.write_app(ITEM.format(code_type="db.String(10), nullable=False") + log, imports=FK_ON)
    project.flask("db", "migrate")
    project.flask("db", "upgrade")

    assert project.query("SELECT code FROM item_codes") == [("Ab",)]
    project.execute("INSERT INTO item (code) VALUES ('Cd')")
    assert project.query("SELECT code FROM log ORDER BY id") == [("Ab",), ("Cd",)]
    indexes = project.query("SELECT name FROM sqlite_master WHERE type = 'index'")
    assert ("ix_item_lower",) in indexes
    assert project.columns("item")["code"]["nullable"] is False
    project.flask("db", "downgrade")
    assert project.columns("item")["code"]["nullable"] is True
    assert project.query("SELECT code FROM item_codes ORDER BY id") == [("Ab",), ("Cd",)]


MOOD = """
import enum


class Mood(enum.Enum):
{values}


class Person(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    mood = db.Column(db.Enum(Mood, name="mood"), nullable=False)
"""


def _people_with_moods(project: Project, *moods: str) -> None:
    """A history `flask db migrate` wrote for ``person`` with a native ``mood`` enum, upgraded."""
    project.write_app(MOOD.format(values="".join(f"    {m} = {n}\n" for n, m in enumerate(moods, 1))))
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "people")
    project.flask("db", "upgrade")


@pytest.mark.postgresql
def test_postgresql_enum_values_added_and_removed_and_the_type_dropped_on_downgrade(
    postgres_url: str, tmp_path: Path
) -> None:
    project = Project(tmp_path, postgres_url)
    try:
        _people_with_moods(project, "happy", "sad")
        project.execute("INSERT INTO person (mood) VALUES ('happy'), ('sad')")
        enum_values = (
            "SELECT e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid ORDER BY e.enumsortorder"
        )

        project.write_app(MOOD.format(values="    happy = 1\n    sad = 2\n    meh = 3\n"))
        project.flask("db", "migrate", "-m", "meh")
        project.flask("db", "upgrade")
        assert project.query(enum_values) == [("happy",), ("sad",), ("meh",)]
        again = project.flask("db", "migrate", "--exit-code", ok=False)
        assert "No changes in schema detected" in again.output

        project.flask("db", "downgrade")
        assert project.query(enum_values) == [("happy",), ("sad",)]
        assert len(project.rows("person")) == 2
        project.flask("db", "downgrade")
        assert project.query("SELECT typname FROM pg_type WHERE typname = 'mood'") == []
        project.flask("db", "upgrade", "head")
        assert project.query(enum_values) == [("happy",), ("sad",), ("meh",)]
    finally:
        project.dispose()


@pytest.mark.postgresql
def test_postgresql_enum_value_that_rows_hold_is_not_removed_and_the_failure_names_it(
    postgres_url: str, tmp_path: Path
) -> None:
    project = Project(tmp_path, postgres_url)
    try:
        _people_with_moods(project, "happy", "sad")
        project.execute("INSERT INTO person (id, mood) VALUES (1, 'happy'), (2, 'sad'), (3, 'sad')")
        versions = sorted((project.migrations / "versions").glob("*.py"))
        without_sad = MOOD.format(values="    happy = 1\n")

        # migrate: refused before writing, naming the value, the rows and the way out.
        project.write_app(without_sad)
        refused = project.flask("db", "migrate", "-m", "no sad", ok=False)
        [line] = [line for line in refused.stderr.splitlines() if line.startswith("Error:")]
        assert line.startswith("Error: cannot remove 'sad' from enum mood: 2 row(s) of person.mood"), line
        assert line.endswith("or keep 'sad' in the enum; nothing was written."), line
        assert "Traceback" not in refused.output
        assert sorted((project.migrations / "versions").glob("*.py")) == versions

        # With no row holding it the script is written; the report names the value it removes.
        project.execute("UPDATE person SET mood = 'happy'")
        written = project.flask("db", "migrate", "-m", "no sad")
        assert "enum mood: remove 'sad'" in written.output, written.output

        # Rows that hold it again by the time of the upgrade: one line, the migration rolled back.
        project.execute("UPDATE person SET mood = 'sad' WHERE id = 3")
        before = project.rows("person", order_by="id"), project.version()
        failed = project.flask("db", "upgrade", ok=False)
        [line] = [line for line in failed.stderr.splitlines() if line.startswith("Error:")]
        assert "failed: 1 row(s) of person.mood hold 'sad', which enum mood no longer has" in line, line
        assert "that migration was rolled back" in line and "WHERE mood = 'sad'" in line, line
        assert "Traceback" not in failed.output and "ValueError" not in line, line
        assert (project.rows("person", order_by="id"), project.version()) == before

        project.execute("UPDATE person SET mood = 'happy'")
        project.flask("db", "upgrade")
        assert [row["mood"] for row in project.rows("person", order_by="id")] == ["happy"] * 3
    finally:
        project.dispose()


@pytest.mark.postgresql
def test_postgresql_downgrade_of_an_added_enum_value_that_rows_now_hold_names_them(
    postgres_url: str, tmp_path: Path
) -> None:
    project = Project(tmp_path, postgres_url)
    try:
        _people_with_moods(project, "happy")
        project.write_app(MOOD.format(values="    happy = 1\n    meh = 2\n"))
        project.flask("db", "migrate", "-m", "meh")
        project.flask("db", "upgrade")
        project.execute("INSERT INTO person (id, mood) VALUES (1, 'happy'), (2, 'meh')")
        before = project.rows("person", order_by="id"), project.version()

        failed = project.flask("db", "downgrade", ok=False)

        [line] = [line for line in failed.stderr.splitlines() if line.startswith("Error:")]
        assert "failed: 1 row(s) of person.mood hold 'meh', which enum mood no longer has" in line, line
        assert "Traceback" not in failed.output
        assert (project.rows("person", order_by="id"), project.version()) == before
    finally:
        project.dispose()


POST = """
class Post(db.Model):
    id = db.Column(db.{id_type}, primary_key=True)
    title = db.Column(db.String(50))


class Comment(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    post_id = db.Column(db.{id_type}, db.ForeignKey("post.id"))
"""


@pytest.mark.postgresql
def test_postgresql_serial_moved_to_bigint_takes_its_sequence_along_both_ways(
    postgres_url: str, tmp_path: Path
) -> None:
    project = Project(tmp_path, postgres_url)
    sequence_type = "SELECT data_type FROM pg_sequences WHERE sequencename = 'post_id_seq'"
    try:
        project.write_app(POST.format(id_type="Integer"))
        project.flask("db", "init")
        project.flask("db", "migrate", "-m", "posts")
        project.flask("db", "upgrade")
        project.execute("INSERT INTO post (title) VALUES ('first'), ('second')")
        project.execute("INSERT INTO comment (post_id) VALUES (1), (2)")

        project.write_app(POST.format(id_type="BigInteger"))
        written = project.flask("db", "migrate", "-m", "bigint ids")
        assert "sequence of id follows it to BIGINT" in written.stderr, written.stderr
        project.flask("db", "upgrade")

        # Past INTEGER's 2,147,483,647: the point of the change.
        assert project.query(sequence_type) == [("bigint",)]
        project.execute("SELECT setval('post_id_seq', 3000000000)")
        project.execute("INSERT INTO post (title) VALUES ('third')")
        assert project.query("SELECT id, title FROM post ORDER BY id") == [
            (1, "first"), (2, "second"), (3000000001, "third")
        ]
        again = project.flask("db", "migrate", "--exit-code", ok=False)
        assert "No changes in schema detected" in again.output

        project.execute("DELETE FROM post WHERE id > 2")
        project.execute("SELECT setval('post_id_seq', 2)")
        project.flask("db", "downgrade")
        assert project.query(sequence_type) == [("integer",)]
        assert project.query("SELECT id, title FROM post ORDER BY id") == [(1, "first"), (2, "second")]
        assert project.query("SELECT post_id FROM comment ORDER BY id") == [(1,), (2,)]
    finally:
        project.dispose()


# -- NOT NULL on tables with rows: refused at migrate time, or filled with --fill --------------------

EMPLOYEE = """
class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(20){name_args})
{extra}
"""
AGE = "    age = db.Column(db.Integer, nullable=False)\n"

# (name, old models, new models, the --fill option, the refusal's words, expected rows after the fill)
NOT_NULL_REFUSALS = [
    (
        "add a NOT NULL column without a server default",
        EMPLOYEE.format(name_args="", extra=""),
        EMPLOYEE.format(name_args="", extra=AGE),
        "employee.age=0",
        "new NOT NULL column employee.age has no server default and employee has 3 rows",
        [("ada", 0), ("bob", 0), (None, 0)],
    ),
    (
        "make a column holding NULLs NOT NULL",
        EMPLOYEE.format(name_args="", extra=""),
        EMPLOYEE.format(name_args=", nullable=False", extra=""),
        "employee.name=unknown",
        "employee.name becomes NOT NULL and 1 row of employee has NULL in it",
        [("ada",), ("bob",), ("unknown",)],
    ),
]


def _employees(project: Project, *columns: str) -> list[tuple[Any, ...]]:
    return [tuple(row[c] for c in columns) for row in project.rows("employee", order_by="id")]


def _populated(project: Project, models: str) -> None:
    project.write_app(models)
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "old")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO employee (name) VALUES ('ada'), ('bob'), (NULL)")


@pytest.mark.parametrize(
    ("old", "new", "fill", "words", "filled"),
    [case[1:] for case in NOT_NULL_REFUSALS],
    ids=[case[0] for case in NOT_NULL_REFUSALS],
)
def test_not_null_without_a_value_for_existing_rows_is_refused_then_filled_with_fill(
    project: Project, old: str, new: str, fill: str, words: str, filled: list[tuple[Any, ...]]
) -> None:
    _populated(project, old)
    schema, version = project.schema(), project.version()
    rows = project.rows("employee", order_by="id")

    project.write_app(new)
    refused = project.flask("db", "migrate", "-m", "new", ok=False)
    error = refused.stderr.strip().splitlines()[-1]
    assert error.startswith(f"Error: {words}, so `flask db upgrade` would fail: "), refused
    assert "server_default=" in error and "nullable=True" in error
    assert f"`flask db migrate --fill {fill.split('=')[0]}=VALUE`" in error
    assert error.endswith("nothing was written.") and "Traceback" not in refused.output
    assert len(list((project.migrations / "versions").glob("*.py"))) == 1
    assert project.schema() == schema and project.version() == version
    assert project.rows("employee", order_by="id") == rows

    project.flask("db", "migrate", "-m", "new", "--fill", fill)
    project.flask("db", "upgrade")
    columns = ("name", "age") if "age" in fill else ("name",)
    assert _employees(project, *columns) == filled
    column = fill.split("=")[0].split(".")[1]
    assert project.columns("employee")[column]["nullable"] is False
    assert project.columns("employee")[column]["default"] is None  # the fill value is not left as a default
    again = project.flask("db", "migrate", "--exit-code", ok=False)
    assert "No changes in schema detected" in again.output, again
    project.flask("db", "downgrade")
    assert project.schema() == schema
    assert [r["id"] for r in project.rows("employee", order_by="id")] == [1, 2, 3]
    project.flask("db", "upgrade")
    assert _employees(project, *columns) == filled


def test_fill_values_that_look_like_bound_parameters_are_written_as_they_are(project: Project) -> None:
    """``:word`` in a --fill value is text, not a parameter that the upgrade would ask a value for."""
    _populated(project, EMPLOYEE.format(name_args="", extra=""))
    note = "    note = db.Column(db.String(40), nullable=False)\n"
    project.write_app(EMPLOYEE.format(name_args=", nullable=False", extra=note))

    fills = ["--fill", "employee.name=:x", "--fill", "employee.note=at 10:30 :y"]
    project.flask("db", "migrate", "-m", "fill", *fills)
    script = next((project.migrations / "versions").glob("*_fill.py")).read_text()
    assert "10:30" in script  # a colon that text() would not bind stays as typed
    project.flask("db", "upgrade")
    assert _employees(project, "name", "note") == [
        ("ada", "at 10:30 :y"),
        ("bob", "at 10:30 :y"),
        (":x", "at 10:30 :y"),
    ]
    project.flask("db", "downgrade")
    assert _employees(project, "name") == [("ada",), ("bob",), (":x",)]


def test_fill_values_are_checked_against_the_column_before_anything_is_written(project: Project) -> None:
    _populated(project, EMPLOYEE.format(name_args="", extra=""))
    project.write_app(EMPLOYEE.format(name_args="", extra=AGE))

    typo = project.flask("db", "migrate", "--fill", "employee.age=abc", ok=False)
    assert typo.returncode == 2
    assert "Error: --fill employee.age=abc: expected a whole number, for INTEGER." in typo.stderr
    unused = project.flask(
        "db", "migrate", "--fill", "employee.age=1", "--fill", "employee.salary=1", ok=False
    )
    assert "Error: --fill employee.salary=...: this migration neither adds employee.salary" in unused.stderr
    assert len(list((project.migrations / "versions").glob("*.py"))) == 1

    unique_age = "    age = db.Column(db.Integer, nullable=False, unique=True)\n"
    project.write_app(EMPLOYEE.format(name_args="", extra=unique_age))
    same = project.flask("db", "migrate", "--fill", "employee.age=1", ok=False)
    assert "--fill employee.age=1 gives 3 rows the same value, but employee.age is UNIQUE" in same.stderr
    assert len(list((project.migrations / "versions").glob("*.py"))) == 1

    # A server default is one value for every existing row too, nullable or not.
    unique_default = '    age = db.Column(db.Integer, unique=True, server_default="7")\n'
    project.write_app(EMPLOYEE.format(name_args="", extra=unique_default))
    default = project.flask("db", "migrate", ok=False)
    assert (
        "employee.age is added with a server default, which gives 3 rows the same value, "
        "but employee.age is UNIQUE" in default.stderr
    ), default
    assert len(list((project.migrations / "versions").glob("*.py"))) == 1
    assert "Traceback" not in typo.output + unused.output + same.output + default.output


@pytest.mark.parametrize("change", ["add", "set"])
def test_a_script_written_on_an_empty_table_fails_on_a_populated_one_in_one_line_and_changes_nothing(
    project: Project, change: str
) -> None:
    """The dev database was empty, production has rows: the upgrade names the fix, changes nothing."""
    _populated(project, EMPLOYEE.format(name_args="", extra=""))
    project.execute("DELETE FROM employee")
    if change == "add":
        project.write_app(EMPLOYEE.format(name_args="", extra=AGE))
    else:
        project.write_app(EMPLOYEE.format(name_args=", nullable=False", extra=""))
    project.flask("db", "migrate", "-m", "new")  # allowed: the table is empty here
    project.execute("INSERT INTO employee (name) VALUES ('ada'), (NULL)")
    schema, version, rows = project.schema(), project.version(), project.rows("employee", order_by="id")

    failed = project.flask("db", "upgrade", ok=False)

    column, count = ("age", "2 rows") if change == "add" else ("name", "1 row")
    error = failed.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: migrations/versions/"), failed
    assert f"failed: employee.{column} is NOT NULL and {count} of employee would have no value in it; " in (
        error
    )
    assert "that migration was rolled back" in error and "make the column nullable" in error
    assert f"`flask db migrate --fill employee.{column}=VALUE`" in error
    assert "Traceback" not in failed.output
    assert project.schema() == schema and project.version() == version
    assert project.rows("employee", order_by="id") == rows
