"""The rename matcher and policy on op trees, without a database: candidates, ambiguity, rewriting."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import render_python_code
from alembic.migration import MigrationContext
from alembic.operations import ops
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_evolve.autogen.naming import NAMING_CONVENTION, convention_name
from flask_evolve.autogen.rename_ops import RenameColumnOp, RenameTableOp
from flask_evolve.autogen.rename_policy import (
    ColumnRename,
    RenameError,
    TableRename,
    decide,
    parse_hints,
)
from flask_evolve.autogen.renames import (
    Schemas,
    TreeChanges,
    apply_renames,
    choose_renames,
)

IMPL = MigrationContext.configure(dialect_name="sqlite").impl


def types_differ(a: sa.Column[Any], b: sa.Column[Any]) -> bool:
    return bool(IMPL.compare_type(a, b))


def employee(metadata: sa.MetaData, *columns: sa.Column[Any], name: str = "employee") -> sa.Table:
    return sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True), *columns)


def column_tree(table: str, dropped: list[sa.Column[Any]], added: list[sa.Column[Any]]) -> ops.UpgradeOps:
    sub: list[Any] = [ops.AddColumnOp.from_column_and_tablename(None, table, c) for c in added]
    sub += [ops.DropColumnOp.from_column_and_tablename(None, table, c) for c in dropped]
    return ops.UpgradeOps([ops.ModifyTableOps(table, sub)])


def choose(tree: ops.UpgradeOps, old: sa.MetaData, new: sa.MetaData, **kwargs: Any) -> Any:
    schemas = Schemas(old.tables, new.tables, types_differ)
    kwargs.setdefault("hints", parse_hints([]))
    kwargs.setdefault("policy", "auto")
    kwargs.setdefault("interactive", False)
    return choose_renames(TreeChanges.of(tree), schemas, **kwargs), schemas


def test_varchar_in_the_database_matches_string_in_the_models() -> None:
    old, new = sa.MetaData(), sa.MetaData()
    employee(old, sa.Column("name", sa.VARCHAR(80), nullable=False))
    employee(new, sa.Column("full_name", sa.String(80), nullable=False))
    tree = column_tree("employee", [old.tables["employee"].c.name], [new.tables["employee"].c.full_name])
    outcome, _ = choose(tree, old, new)
    assert outcome.renames == [ColumnRename("employee", "name", "full_name", "VARCHAR(80)")]


@pytest.mark.parametrize(
    ("old_column", "new_column"),
    [
        (sa.Column("name", sa.String(80)), sa.Column("full_name", sa.String(120))),
        (sa.Column("name", sa.String(80)), sa.Column("full_name", sa.Integer)),
        (sa.Column("name", sa.String(80), nullable=False), sa.Column("full_name", sa.String(80))),
        (sa.Column("name", sa.String(80), unique=True), sa.Column("full_name", sa.String(80))),
        (sa.Column("name", sa.String(80)), sa.Column("full_name", sa.String(80), index=True)),
    ],
    ids=["length", "type", "nullability", "unique", "index"],
)
def test_a_pair_that_differs_beyond_its_name_is_no_candidate(
    old_column: sa.Column[Any], new_column: sa.Column[Any]
) -> None:
    old, new = sa.MetaData(), sa.MetaData()
    employee(old, old_column)
    employee(new, new_column)
    tree = column_tree("employee", [old_column], [new_column])
    outcome, _ = choose(tree, old, new)
    assert outcome.renames == [] and outcome.ambiguous == []


def test_two_matching_added_columns_are_ambiguous_and_a_hint_settles_it() -> None:
    old, new = sa.MetaData(), sa.MetaData()
    employee(old, sa.Column("email", sa.String(120)))
    employee(new, sa.Column("mail", sa.String(120)), sa.Column("backup", sa.String(120)))
    table = new.tables["employee"]
    tree = column_tree("employee", [old.tables["employee"].c.email], [table.c.mail, table.c.backup])
    outcome, _ = choose(tree, old, new)
    assert outcome.renames == []
    assert {r.new for r in outcome.ambiguous} == {"mail", "backup"}

    outcome, _ = choose(tree, old, new, hints=parse_hints(["employee.email=mail"]))
    assert [(r.old, r.new, r.reason) for r in outcome.renames] == [("email", "mail", "--rename")]
    assert outcome.ambiguous == []


def test_a_hint_for_a_pair_that_differs_is_refused() -> None:
    old, new = sa.MetaData(), sa.MetaData()
    employee(old, sa.Column("age", sa.Integer))
    employee(new, sa.Column("years", sa.String(10)))
    tree = column_tree("employee", [old.tables["employee"].c.age], [new.tables["employee"].c.years])
    with pytest.raises(RenameError, match="differ beyond their name"):
        choose(tree, old, new, hints=parse_hints(["employee.age=years"]))


def test_policy_off_guesses_nothing_but_keeps_stated_renames() -> None:
    old, new = sa.MetaData(), sa.MetaData()
    employee(old, sa.Column("name", sa.String(80)))
    employee(new, sa.Column("full_name", sa.String(80)))
    tree = column_tree("employee", [old.tables["employee"].c.name], [new.tables["employee"].c.full_name])
    assert choose(tree, old, new, policy="off")[0].renames == []
    stated = choose(tree, old, new, policy="off", hints=parse_hints(["employee.name=full_name"]))[0]
    assert [r.reason for r in stated.renames] == ["--rename"]


def test_prompt_asks_each_free_pair_and_skips_pairs_already_taken() -> None:
    candidates = [
        ColumnRename("employee", "email", "mail"),
        ColumnRename("employee", "email", "backup"),
        ColumnRename("employee", "phone", "backup"),
    ]
    asked: list[str] = []

    def ask(question: str) -> bool:
        asked.append(question)
        return "email" in question

    decision = decide(candidates, policy="auto", interactive=True, ask=ask)
    assert [(c.old, c.new, c.reason) for c in decision.accepted] == [
        ("email", "mail", "confirmed"),
    ]
    assert asked == [
        "Did you rename employee.email to employee.mail? [y/N] ",
        "Did you rename employee.phone to employee.backup? [y/N] ",
    ]


def test_table_rename_carries_indexes_and_renames_convention_named_ones() -> None:
    old, new = sa.MetaData(), sa.MetaData()
    sa.Table(
        "company", old, sa.Column("cid", sa.Integer, primary_key=True), sa.Column("cname", sa.String(80))
    )
    sa.Index("ix_company_cname", old.tables["company"].c.cname)
    sa.Table(
        "organization",
        new,
        sa.Column("cid", sa.Integer, primary_key=True),
        sa.Column("cname", sa.String(80), index=True),
    )
    tree = ops.UpgradeOps(
        [
            ops.CreateTableOp.from_table(new.tables["organization"]),
            ops.CreateIndexOp.from_index(next(iter(new.tables["organization"].indexes))),
            ops.DropTableOp.from_table(old.tables["company"]),
        ]
    )
    outcome, schemas = choose(tree, old, new)
    assert outcome.renames == [TableRename("company", "organization")]
    apply_renames(tree, outcome.renames, schemas)

    code = render_python_code(tree)
    assert "op.rename_table('company', 'organization')" in code
    assert "drop_index('ix_company_cname'" in code
    assert "create_index(op.f('ix_organization_cname')" in code
    assert code.index("drop_index") < code.index("rename_table") < code.index("create_index")

    # The downgrade, reversed, runs in a valid order too: drop the new index, rename
    # back, recreate the old one.
    down = ops.DowngradeOps([])
    tree.reverse_into(down)
    code = render_python_code(down)
    assert code.index("drop_index") < code.index("rename_table('organization', 'company')")
    assert code.index("rename_table") < code.index("create_index('ix_company_cname'")


IDENTIFIERS = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True).filter(lambda n: n != "id")


@settings(max_examples=60, deadline=None)
@given(old_name=IDENTIFIERS, new_name=IDENTIFIERS, length=st.integers(1, 300), nullable=st.booleans())
def test_any_single_matching_pair_is_renamed_and_reversed(
    old_name: str, new_name: str, length: int, nullable: bool
) -> None:
    if old_name == new_name:
        return
    old, new = sa.MetaData(), sa.MetaData()
    employee(old, sa.Column(old_name, sa.String(length), nullable=nullable))
    employee(new, sa.Column(new_name, sa.String(length), nullable=nullable))
    tree = column_tree(
        "employee", [old.tables["employee"].c[old_name]], [new.tables["employee"].c[new_name]]
    )
    outcome, schemas = choose(tree, old, new)
    assert [(r.old, r.new) for r in outcome.renames] == [(old_name, new_name)]
    apply_renames(tree, outcome.renames, schemas)
    assert len(tree.ops) == 1
    rename = tree.ops[0]
    assert isinstance(rename, RenameColumnOp)
    back = rename.reverse()
    assert (back.column_name, back.new_column_name) == (new_name, old_name)
    assert isinstance(RenameTableOp("a", "b").reverse(), RenameTableOp)


@settings(max_examples=60, deadline=None)
@given(names=st.lists(IDENTIFIERS, min_size=3, max_size=3, unique=True))
def test_two_same_shaped_added_columns_are_never_guessed(names: list[str]) -> None:
    dropped, first, second = names
    old, new = sa.MetaData(), sa.MetaData()
    employee(old, sa.Column(dropped, sa.Text))
    employee(new, sa.Column(first, sa.Text), sa.Column(second, sa.Text))
    table = new.tables["employee"]
    tree = column_tree("employee", [old.tables["employee"].c[dropped]], [table.c[first], table.c[second]])
    outcome, _ = choose(tree, old, new)
    assert outcome.renames == []
    assert len(outcome.ambiguous) == 2


def test_convention_names_match_sqlalchemys() -> None:
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    parent = sa.Table("company", metadata, sa.Column("cid", sa.Integer, primary_key=True))
    table = sa.Table(
        "employee",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String, unique=True),
        sa.Column("company_id", sa.ForeignKey(parent.c.cid)),
    )
    expected = {type(c).__name__: c.name for c in table.constraints}
    assert expected["UniqueConstraint"] == convention_name("uq", "employee", ["name"])
    assert expected["PrimaryKeyConstraint"] == convention_name("pk", "employee", ["id"])
    assert expected["ForeignKeyConstraint"] == convention_name(
        "fk", "employee", ["company_id"], referred_table="company", referred_columns=["cid"]
    )
    assert convention_name("ck", "employee", [], condition="age > 0") == convention_name(
        "ck", "employee", [], condition="age > 0"
    )
    long = convention_name("uq", "t" * 60, ["c" * 60], max_length=63)
    assert len(long) <= 63 and long == convention_name("uq", "t" * 60, ["c" * 60], max_length=63)


# -- hints that name a schema -----------------------------------------------------------------


def schema_column_tree(
    schema: str | None, table: str, dropped: list[sa.Column[Any]], added: list[sa.Column[Any]]
) -> ops.ModifyTableOps:
    sub: list[Any] = [ops.AddColumnOp.from_column_and_tablename(schema, table, c) for c in added]
    sub += [ops.DropColumnOp.from_column_and_tablename(schema, table, c) for c in dropped]
    return ops.ModifyTableOps(table, sub, schema=schema)


def choose_in_schemas(tree: ops.UpgradeOps, old: sa.MetaData, new: sa.MetaData, *flags: str) -> Any:
    schemas = Schemas(old.tables, new.tables, types_differ, default_schema="public")
    hints = parse_hints(flags)
    return choose_renames(TreeChanges.of(tree), schemas, hints=hints, policy="off", interactive=False)


def other_item_and_company(*, item_column: str, company: str) -> sa.MetaData:
    metadata = sa.MetaData()
    key = sa.Column("id", sa.Integer, primary_key=True)
    sa.Table("item", metadata, key, sa.Column(item_column, sa.String(80)), schema="other")
    key = sa.Column("id", sa.Integer, primary_key=True)
    sa.Table(company, metadata, key, sa.Column("name", sa.String(80)), schema="other")
    return metadata


def other_schema_tree(old: sa.MetaData, new: sa.MetaData) -> ops.UpgradeOps:
    return ops.UpgradeOps(
        [
            schema_column_tree(
                "other", "item", [old.tables["other.item"].c.name], [new.tables["other.item"].c.title]
            ),
            ops.CreateTableOp.from_table(new.tables["other.organization"]),
            ops.DropTableOp.from_table(old.tables["other.company"]),
        ]
    )


def test_a_schema_in_front_of_a_hint_names_a_table_or_column_there() -> None:
    old = other_item_and_company(item_column="name", company="company")
    new = other_item_and_company(item_column="title", company="organization")
    tree = other_schema_tree(old, new)
    outcome = choose_in_schemas(tree, old, new, "other.item.name=title", "other.company=organization")
    assert outcome.renames == [
        TableRename("other.company", "other.organization", reason="--rename", schema="other"),
        ColumnRename("other.item", "name", "title", "VARCHAR(80)", reason="--rename"),
    ]
    assert [r.flag for r in outcome.renames] == [
        "--rename other.company=organization",
        "--rename other.item.name=title",
    ]
    # The default schema spelled out names the table without a schema: there is no public.company to drop.
    with pytest.raises(RenameError, match="drops neither column company of table public nor table company"):
        choose_in_schemas(tree, old, new, "public.company=organization")


def test_a_name_that_is_both_a_schema_and_a_table_makes_a_short_hint_ambiguous() -> None:
    # Schema "other" drops table "x"; default-schema table "other" drops column "x".
    old, new = sa.MetaData(), sa.MetaData()
    for metadata, table, column in ((old, "x", "x"), (new, "y", "y")):
        key = sa.Column("id", sa.Integer, primary_key=True)
        sa.Table(table, metadata, key, sa.Column("v", sa.String(80)), schema="other")
        key = sa.Column("id", sa.Integer, primary_key=True)
        sa.Table("other", metadata, key, sa.Column(column, sa.Integer))
    tree = ops.UpgradeOps(
        [
            ops.CreateTableOp.from_table(new.tables["other.y"]),
            ops.DropTableOp.from_table(old.tables["other.x"]),
            schema_column_tree(None, "other", [old.tables["other"].c.x], [new.tables["other"].c.y]),
        ]
    )
    with pytest.raises(RenameError) as refused:
        choose_in_schemas(tree, old, new, "other.x=y")
    message = str(refused.value)
    assert "--rename other.x=y is ambiguous" in message
    assert "--rename public.other.x=y" in message and "info={\"renamed_from\": \"x\"}" in message
    assert "\n" not in message

    column = choose_in_schemas(tree, old, new, "public.other.x=y")
    assert column.renames == [ColumnRename("other", "x", "y", "INTEGER", reason="--rename")]


@pytest.mark.parametrize("flag", ["a.b.c.d=e", "a..b=c", "a.b=c.d", "a=", "=b"])
def test_a_hint_that_is_not_one_to_three_names_is_refused(flag: str) -> None:
    with pytest.raises(RenameError, match="is not understood"):
        parse_hints([flag])
