"""Autogenerate skips tables that provably match their models, and never misses a change by doing so.

The safety argument is checked directly: for each model change, Alembic's comparison with the
skip hooks must render exactly the same migration as Alembic's comparison without them, and the
change must be detected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import produce_migrations, render_python_code
from alembic.migration import MigrationContext
from alembic.operations import ops
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.pool import NullPool

from flask_evolve.autogen.comparators import DEFAULT_PLUGINS, compare_server_default
from flask_evolve.autogen.fingerprint import skip_unchanged_tables, split_create_table, unchanged_tables
from tests.harness import Project

Tables = dict[str, list[Any]]


def base_tables() -> Tables:
    """Table name -> Column/constraint/Index arguments; fresh objects on every call."""
    return {
        "company": [
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(80), nullable=False, unique=True),
            sa.Column("country", sa.String(2), index=True),
            sa.Column("founded", sa.Date),
        ],
        "employee": [
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(80), nullable=False),
            sa.Column("email", sa.String(120), nullable=False),
            sa.Column("salary", sa.Numeric(10, 2)),
            sa.Column("active", sa.Boolean, nullable=False),
            sa.Column("notes", sa.Text, comment="free text"),
            sa.Column("company_id", sa.Integer, sa.ForeignKey("company.id", ondelete="CASCADE")),
            sa.Index("ix_employee_email", "email", unique=True),
            sa.Index("ix_employee_name_company", "name", "company_id"),
        ],
        "setting": [
            sa.Column("key", sa.String(40), primary_key=True),
            sa.Column("value", sa.Text, server_default="x"),
        ],
        "audit": [
            sa.Column("id", sa.BigInteger, primary_key=True),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("ratio", sa.Float),
            sa.Column("employee_id", sa.Integer, sa.ForeignKey("employee.id")),
        ],
    }


def build(tables: Tables) -> sa.MetaData:
    metadata = sa.MetaData()
    for name, items in tables.items():
        sa.Table(name, metadata, *items)
    return metadata


def _replace(tables: Tables, table: str, name: str, new: Any) -> Tables:
    tables[table] = [new if getattr(item, "name", None) == name else item for item in tables[table]]
    return tables


def _without(tables: Tables, table: str, name: str) -> Tables:
    tables[table] = [item for item in tables[table] if getattr(item, "name", None) != name]
    return tables


def _fk(target: str, **kw: Any) -> sa.Column:
    return sa.Column("company_id", sa.Integer, sa.ForeignKey(target, **kw))


#: Model changes, each touching the named table only.
CHANGES: dict[str, tuple[str, Callable[[Tables], Tables]]] = {
    "add column": ("employee", lambda t: t["employee"].append(sa.Column("age", sa.Integer)) or t),
    "drop column": ("employee", lambda t: _without(t, "employee", "notes")),
    "rename column": (
        "company",
        lambda t: _replace(t, "company", "founded", sa.Column("founded_on", sa.Date)),
    ),
    "longer string": (
        "employee",
        lambda t: _replace(t, "employee", "name", sa.Column("name", sa.String(100), nullable=False)),
    ),
    "integer to bigint": (
        "employee",
        lambda t: _replace(t, "employee", "company_id", sa.Column("company_id", sa.BigInteger)),
    ),
    "numeric precision": (
        "employee",
        lambda t: _replace(t, "employee", "salary", sa.Column("salary", sa.Numeric(12, 2))),
    ),
    "nullable": (
        "employee",
        lambda t: _replace(t, "employee", "email", sa.Column("email", sa.String(120), nullable=True)),
    ),
    "not null": (
        "company",
        lambda t: _replace(t, "company", "founded", sa.Column("founded", sa.Date, nullable=False)),
    ),
    "add index": ("employee", lambda t: t["employee"].append(sa.Index("ix_employee_active", "active")) or t),
    "drop index": ("employee", lambda t: _without(t, "employee", "ix_employee_name_company")),
    "index not unique": (
        "employee",
        lambda t: _replace(t, "employee", "ix_employee_email", sa.Index("ix_employee_email", "email")),
    ),
    "index columns": (
        "employee",
        lambda t: _replace(
            t, "employee", "ix_employee_name_company", sa.Index("ix_employee_name_company", "name")
        ),
    ),
    "add unique": ("employee", lambda t: t["employee"].append(sa.UniqueConstraint("name", "email")) or t),
    "drop unique": (
        "company",
        lambda t: _replace(t, "company", "name", sa.Column("name", sa.String(80), nullable=False)),
    ),
    "drop foreign key": (
        "employee",
        lambda t: _replace(t, "employee", "company_id", sa.Column("company_id", sa.Integer)),
    ),
    "foreign key on delete": ("employee", lambda t: _replace(t, "employee", "company_id", _fk("company.id"))),
    "add foreign key": (
        "audit",
        lambda t: (
            (
                _replace(t, "audit", "ratio", sa.Column("ratio", sa.Float))
                and t["audit"].append(sa.Column("company_id", sa.Integer, sa.ForeignKey("company.id")))
            )
            or t
        ),
    ),
    "server default added": (
        "company",
        lambda t: _replace(
            t, "company", "country", sa.Column("country", sa.String(2), index=True, server_default="FR")
        ),
    ),
    "server default changed": (
        "setting",
        lambda t: _replace(t, "setting", "value", sa.Column("value", sa.Text, server_default="y")),
    ),
    "comment changed": (
        "employee",
        lambda t: _replace(t, "employee", "notes", sa.Column("notes", sa.Text, comment="other")),
    ),
    "timezone dropped": (
        "audit",
        lambda t: _replace(t, "audit", "at", sa.Column("at", sa.DateTime, nullable=False)),
    ),
    "column check added": (
        "company",
        lambda t: _replace(
            t, "company", "founded", sa.Column("founded", sa.Date, sa.CheckConstraint("founded > 0"))
        ),
    ),
    "add table": ("badge", lambda t: {**t, "badge": [sa.Column("id", sa.Integer, primary_key=True)]}),
    "drop table": ("audit", lambda t: {k: v for k, v in t.items() if k != "audit"}),
}


#: Changes Alembic's own comparison does not see (other rewriters deal with them); the skip must
#: then change nothing either.
ALEMBIC_MISSES = {
    ("sqlite", "drop unique"),
    ("sqlite", "column check added"),
    ("postgresql", "column check added"),
}
#: Model changes that change no DDL on that database: nothing to detect, and nothing is.
NO_DDL_CHANGE = {("sqlite", "comment changed"), ("sqlite", "timezone dropped")}


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(database_url, poolclass=NullPool)
    build(base_tables()).create_all(engine)
    yield engine
    engine.dispose()


def migration_code(connection: sa.Connection, metadata: sa.MetaData, *, skip: bool) -> list[str]:
    """The upgrade operations Alembic autogenerates for ``metadata``, each rendered as Python, sorted.

    Sorted because Alembic orders some operations (foreign-key drops) by set iteration, which
    changes with the hash seed: the two paths must produce the same operations, in any order.
    """
    # The comparison Migrate() configures by default: Flask-Evolve's server-default comparator.
    opts: dict[str, Any] = {"compare_type": True, "compare_server_default": compare_server_default}
    if skip:
        opts = skip_unchanged_tables(connection, metadata, opts)
    context = MigrationContext.configure(connection, opts=opts)
    return rendered_ops(produce_migrations(context, metadata).upgrade_ops)


def rendered_ops(upgrade_ops: ops.UpgradeOps) -> list[str]:
    """Each operation of ``upgrade_ops`` rendered as Python on its own, sorted: the ops as a multiset."""
    rendered = []
    for op in upgrade_ops.ops:
        inner = op.ops if isinstance(op, ops.ModifyTableOps) else [op]
        for each in inner:
            wrapped = ops.ModifyTableOps(op.table_name, [each]) if each is not op else each
            rendered.append(render_python_code(ops.UpgradeOps(ops=[wrapped])))
    return sorted(rendered)


def test_a_database_made_from_the_models_is_unchanged(engine: sa.Engine) -> None:
    metadata = build(base_tables())
    with engine.connect() as connection:
        unchanged = unchanged_tables(connection, metadata)
        assert migration_code(connection, metadata, skip=True) == migration_code(
            connection, metadata, skip=False
        )
    # PostgreSQL stores server defaults in a form this module does not predict: `setting` is compared.
    expected = {"company", "employee", "audit"} | ({"setting"} if engine.dialect.name == "sqlite" else set())
    assert unchanged == expected


@pytest.mark.parametrize("change", list(CHANGES))
def test_every_change_is_still_detected(engine: sa.Engine, change: str) -> None:
    table, mutate = CHANGES[change]
    metadata = build(mutate(base_tables()))
    key = (engine.dialect.name, change)
    with engine.connect() as connection:
        assert (table in unchanged_tables(connection, metadata)) == (key in NO_DDL_CHANGE)
        fast = migration_code(connection, metadata, skip=True)
        full = migration_code(connection, metadata, skip=False)
    assert fast == full
    if key not in ALEMBIC_MISSES | NO_DDL_CHANGE:
        assert fast, f"{change} went undetected"


def test_the_apps_own_filters_still_apply(engine: sa.Engine) -> None:
    metadata = build(CHANGES["add column"][1](base_tables()))
    seen: list[tuple[str | None, str]] = []

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        seen.append((name, type_))
        return not (type_ == "column" and name == "age")

    with engine.connect() as connection:
        opts = skip_unchanged_tables(connection, metadata, {"include_object": include_object})
        context = MigrationContext.configure(connection, opts=opts)
        upgrade_ops = produce_migrations(context, metadata).upgrade_ops
    assert upgrade_ops is not None and upgrade_ops.is_empty()
    assert ("age", "column") in seen


def test_a_table_the_app_hides_from_reflection_is_compared_as_without_the_skip(engine: sa.Engine) -> None:
    metadata = build(base_tables())

    def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
        return not (type_ == "table" and name == "company")

    codes = []
    with engine.connect() as connection:
        for skip in (True, False):
            opts: dict[str, Any] = {"include_name": include_name}
            if skip:
                opts = skip_unchanged_tables(connection, metadata, opts)
            context = MigrationContext.configure(connection, opts=opts)
            # As a multiset: Alembic orders some ops by set iteration (see migration_code).
            codes.append(rendered_ops(produce_migrations(context, metadata).upgrade_ops))
    assert codes[0] == codes[1]
    assert any("create_table('company'" in code for code in codes[0])


class SortCountingMetaData(sa.MetaData):
    """A MetaData that counts how often its tables are sorted by dependency."""

    sorts = 0

    @property
    def sorted_tables(self) -> list[sa.Table]:
        self.sorts += 1
        return super().sorted_tables


def ordered_code(connection: sa.Connection, metadata: sa.MetaData, *, skip: bool) -> str:
    """The whole upgrade as Alembic renders it, in its order, with Migrate()'s default plugins."""
    opts: dict[str, Any] = {
        "compare_type": True,
        "compare_server_default": compare_server_default,
        "autogenerate_plugins": list(DEFAULT_PLUGINS),
    }
    if skip:
        opts = skip_unchanged_tables(connection, metadata, opts)
    context = MigrationContext.configure(connection, opts=opts)
    return render_python_code(produce_migrations(context, metadata).upgrade_ops)


def _added_chain(tables: Tables) -> Tables:
    """Three new tables, declared in the reverse of the order they must be created in."""
    return {
        **tables,
        "aa_grandchild": [sa.Column("id", sa.Integer, primary_key=True),
                          sa.Column("child_id", sa.Integer, sa.ForeignKey("mm_child.id"))],
        "mm_child": [sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("parent_id", sa.Integer, sa.ForeignKey("zz_parent.id"))],
        "zz_parent": [sa.Column("id", sa.Integer, primary_key=True),
                      sa.Column("company_id", sa.Integer, sa.ForeignKey("company.id"))],
    }


@pytest.mark.parametrize(
    "change",
    [
        "no change",
        "one added table",
        "added tables that depend on each other",
        "added tables and a changed one",
    ],
)
def test_tables_are_created_in_the_order_alembic_gives_without_the_skip(
    engine: sa.Engine, change: str
) -> None:
    """With the skip, Alembic is handed the model tables unsorted when at most one is new (their
    order then changes nothing); several new tables come in Alembic's dependency order."""
    mutate: dict[str, Callable[[Tables], Tables]] = {
        "no change": lambda t: t,
        "one added table": CHANGES["add table"][1],
        "added tables that depend on each other": _added_chain,
        "added tables and a changed one": lambda t: _added_chain(CHANGES["add column"][1](t)),
    }
    codes = []
    with engine.connect() as connection:
        for skip in (True, False):
            metadata = SortCountingMetaData()
            for name, items in mutate[change](base_tables()).items():
                sa.Table(name, metadata, *items)
            codes.append(ordered_code(connection, metadata, skip=skip))
            if skip:
                sorts_with_skip = metadata.sorts
    assert codes[0] == codes[1]
    if "depend" in change or "and a changed" in change:
        created = [line.split("'")[1] for line in codes[0].splitlines() if "op.create_table(" in line]
        assert created == ["zz_parent", "mm_child", "aa_grandchild"]
        assert sorts_with_skip == 1
    else:
        assert sorts_with_skip == 0
    if change == "no change":
        assert "pass" in codes[0]


def test_sqlite_create_statements_compare_as_sets_of_elements() -> None:
    name, elements, options = split_create_table(
        "CREATE TABLE \"t\" (a INTEGER DEFAULT ',', b VARCHAR(10, 2), CHECK (a IN (1, 2))) WITHOUT ROWID"
    ) or ("", frozenset(), "")
    assert name == "t"
    assert elements == {"a INTEGER DEFAULT ','", "b VARCHAR(10, 2)", "CHECK (a IN (1, 2))"}
    assert options == "WITHOUT ROWID"
    added = split_create_table(
        "CREATE TABLE t (b VARCHAR(10, 2), CHECK (a IN (1, 2)), a INTEGER DEFAULT ',')"
    )
    assert added is not None and added[1] == elements
    assert split_create_table("CREATE TABLE t (a INTEGER DEFAULT 'x  y')") != split_create_table(
        "CREATE TABLE t (a INTEGER DEFAULT 'x y')"
    )


MODELS = """
class Company(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False, unique=True)


class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False, index=True)
    company_id = db.Column(db.Integer, db.ForeignKey("company.id"))
{extra}
"""


def test_migrate_skips_unchanged_tables_and_detects_the_changed_one(project: Project) -> None:
    project.write_app(MODELS.format(extra=""))
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO company (id, name) VALUES (1, 'Acme')")
    project.execute("INSERT INTO employee (id, name, company_id) VALUES (1, 'Ada', 1)")

    result = project.flask("db", "migrate")
    assert "No changes in schema detected." in result.output
    assert len(list((project.migrations / "versions").glob("*.py"))) == 1

    project.write_app(MODELS.format(extra="    email = db.Column(db.String(120))"))
    result = project.flask("db", "migrate", "-m", "email")
    assert "Detected added column 'employee.email'" in result.output
    project.flask("db", "upgrade")
    assert "email" in project.columns("employee")
    assert project.rows("employee", order_by="id") == [
        {"id": 1, "name": "Ada", "company_id": 1, "email": None}
    ]


STATEMENT_LOG = """
import os

import sqlalchemy


@sqlalchemy.event.listens_for(sqlalchemy.engine.Engine, "before_cursor_execute")
def _log_statement(conn, cursor, statement, parameters, context, executemany):
    if "STATEMENT_LOG" not in os.environ:
        return
    with open(os.environ["STATEMENT_LOG"], "a") as log:
        log.write(" ".join(statement.split()) + "\\n")
"""


def wide_models(count: int) -> str:
    return "\n".join(
        f"""
class T{i}(db.Model):
    __tablename__ = "t{i}"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False)
    code = db.Column(db.String(20), index=True)
    parent_id = db.Column(db.Integer, db.ForeignKey("t{max(i - 1, 0)}.id"))
"""
        for i in range(count)
    )


def no_change_statements(project: Project, tables: int) -> list[str]:
    """The SQL statements a no-change ``flask db migrate`` sends with ``tables`` tables migrated."""
    project.write_app(wide_models(tables), imports=STATEMENT_LOG)
    project.flask("db", "migrate", "-m", f"{tables} tables")
    project.flask("db", "upgrade")
    log = project.path / "statements.log"
    log.unlink(missing_ok=True)
    result = project.flask("db", "migrate", env={"STATEMENT_LOG": str(log)})
    assert "No changes in schema detected." in result.output
    # Skipped as unchanged is compared and found equal, not filtered out by the app.
    assert "excluded by" not in result.output
    return log.read_text().splitlines()


def test_the_default_configuration_skips_unchanged_tables(project: Project) -> None:
    """With Migrate()'s defaults (its own server-default comparator included), a no-change
    migrate sends as many statements for 12 tables as for 3: the 9 added tables are not read."""
    project.write_app(wide_models(1), imports=STATEMENT_LOG)
    project.flask("db", "init")
    few = no_change_statements(project, 3)
    many = no_change_statements(project, 12)
    assert len(many) == len(few), "\n".join(many)
    assert project.tables() >= {f"t{i}" for i in range(12)}


# --- random schema pairs --------------------------------------------------------------------

COLUMN_TYPES = [sa.Integer, sa.BigInteger, sa.Text, sa.Boolean, sa.Float, sa.DateTime, sa.Date]
SIZED_TYPES = [(sa.String, 10), (sa.String, 20), (sa.Numeric, 8)]


@st.composite
def column_specs(draw: st.DrawFn) -> tuple[Any, ...]:
    type_: tuple[Any, ...] = draw(st.sampled_from([(kind,) for kind in COLUMN_TYPES] + SIZED_TYPES))
    return (
        type_,  # (type class, size...): comparable, unlike type instances
        draw(st.booleans()),  # nullable
        draw(st.sampled_from([None, "unique", "index", "unique index"])),
        draw(st.sampled_from([None, "1"])),  # server default
        draw(st.sampled_from([None, "a.id", "a.id CASCADE"])),  # foreign key
    )


@st.composite
def schemas(draw: st.DrawFn) -> dict[str, dict[str, tuple[Any, ...]]]:
    """Two tables, ``a`` and ``b``, whose columns come from small pools so that equal shapes happen."""
    return {
        table: draw(st.dictionaries(st.sampled_from(["x", "y", "z"]), column_specs(), max_size=3))
        for table in ("a", "b")
    }


def schema_metadata(spec: dict[str, dict[str, tuple[Any, ...]]]) -> sa.MetaData:
    metadata = sa.MetaData()
    for table, columns in spec.items():
        items: list[Any] = [sa.Column("id", sa.Integer, primary_key=True)]
        for name, ((kind, *size), nullable, unique, default, fk) in sorted(columns.items()):
            type_ = kind(*size)
            if kind in (sa.DateTime, sa.Date):
                default = None  # '1' is no date
            args: list[Any] = []
            if fk and table == "b":
                target, *action = fk.split()
                args.append(sa.ForeignKey(target, ondelete=action[0] if action else None))
                type_ = sa.Integer()
            items.append(
                sa.Column(
                    name,
                    type_,
                    *args,
                    nullable=nullable,
                    unique=unique == "unique",
                    index=bool(unique and "index" in unique),
                    server_default=default,
                )
            )
            if unique == "unique index":
                items[-1].unique = True
        sa.Table(table, metadata, *items)
    return metadata


def check_random_pair(engine: sa.Engine, before: Any, after: Any) -> None:
    created = schema_metadata(before)
    created.create_all(engine)
    try:
        metadata = schema_metadata(after)
        with engine.connect() as connection:
            fast = migration_code(connection, metadata, skip=True)
            full = migration_code(connection, metadata, skip=False)
            unchanged = unchanged_tables(connection, metadata)
        assert fast == full
        if engine.dialect.name == "sqlite":  # PostgreSQL leaves tables with server defaults to Alembic
            assert {t for t in ("a", "b") if before[t] == after[t]} <= unchanged
    finally:
        created.drop_all(engine)


@settings(max_examples=40, deadline=None)
@given(before=schemas(), after=schemas())
def test_random_schema_pairs_give_one_migration_with_and_without_the_skip(before: Any, after: Any) -> None:
    engine = sa.create_engine("sqlite://")
    try:
        check_random_pair(engine, before, after)
    finally:
        engine.dispose()


@pytest.mark.postgresql
def test_random_schema_pairs_on_postgresql(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url, poolclass=NullPool)

    @settings(max_examples=20, deadline=None)
    @given(before=schemas(), after=schemas())
    def check(before: Any, after: Any) -> None:
        check_random_pair(engine, before, after)

    try:
        check()
    finally:
        engine.dispose()


def test_constraints_named_by_the_naming_convention_are_unchanged(database_url: str) -> None:
    """New projects name unnamed constraints by convention: the database holds those names."""
    from flask_evolve.autogen.naming import NAMING_CONVENTION

    engine = sa.create_engine(database_url, poolclass=NullPool)
    try:
        named = sa.MetaData(naming_convention=NAMING_CONVENTION)
        for name, items in base_tables().items():
            sa.Table(name, named, *items)
        named.create_all(engine)
        metadata = build(base_tables())
        with engine.connect() as connection:
            assert unchanged_tables(connection, metadata) == set()
            unchanged = unchanged_tables(connection, metadata, NAMING_CONVENTION)
            assert all(c.name is None for c in metadata.tables["employee"].foreign_key_constraints)
        assert {"company", "employee", "audit"} <= unchanged
    finally:
        engine.dispose()
