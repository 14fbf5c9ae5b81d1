"""Unit tests of the archive's pure parts: table names, reverse() pairs, rendering, the name filter."""

from __future__ import annotations

from alembic.autogenerate import render_python_code
from alembic.operations import ops
from hypothesis import given
from hypothesis import strategies as st

from flask_evolve.autogen.archive import exclude_archive_tables
from flask_evolve.runtime.archive_ops import (
    ArchiveColumnsOp,
    ArchiveRowsOp,
    ArchiveTableOp,
    ArchiveValuesOp,
    RestoreColumnsOp,
    RestoreRowsOp,
    RestoreTableOp,
    RestoreValuesOp,
    archive_name,
    is_archive_table,
)

identifiers = st.text(
    st.characters(min_codepoint=97, max_codepoint=122) | st.just("_"), min_size=1, max_size=90
)
revisions = st.text("0123456789abcdef", min_size=12, max_size=12)


@given(revisions, identifiers, st.sampled_from(["upgrade", "downgrade"]))
def test_archive_names_fit_postgresql_and_are_deterministic(revision: str, table: str, on: str) -> None:
    name = archive_name(revision, table, on)
    assert len(name.encode()) <= 63
    assert is_archive_table(name)
    assert name == archive_name(revision, table, on)


@given(revisions, identifiers, identifiers)
def test_different_tables_get_different_archives(revision: str, first: str, second: str) -> None:
    if first != second:
        assert archive_name(revision, first) != archive_name(revision, second)


def test_what_an_upgrade_and_a_downgrade_archive_never_share_a_table() -> None:
    assert archive_name("abc123abc123", "employee") != archive_name("abc123abc123", "employee", "downgrade")


@given(revisions, identifiers, st.sampled_from(["upgrade", "downgrade"]))
def test_dropped_columns_and_original_values_of_one_table_get_two_archives(
    revision: str, table: str, on: str
) -> None:
    values = archive_name(revision, table, on, kind="values")
    assert values != archive_name(revision, table, on) and len(values.encode()) <= 63


def test_reverse_pairs() -> None:
    archive = ArchiveColumnsOp("t", ["a", "b"], key=["id", "k"], revision="r1", schema="s")
    restore = archive.reverse()
    assert isinstance(restore, RestoreColumnsOp)
    assert (restore.table_name, restore.columns, restore.key, restore.revision, restore.schema) == (
        "t",
        ["a", "b"],
        ["id", "k"],
        "r1",
        "s",
    )
    again = restore.reverse()
    assert isinstance(again, ArchiveColumnsOp) and again.columns == ["a", "b"]

    table = ArchiveTableOp("t", revision="r1", constraints=["pk_t"])
    assert isinstance(table.reverse(), RestoreTableOp) and table.reverse().constraints == ["pk_t"]
    assert isinstance(table.reverse().reverse(), ArchiveTableOp)
    down = ArchiveTableOp("t", revision="r1", on="downgrade")
    assert isinstance(down.reverse(), RestoreRowsOp)
    assert down.reverse().reverse().on == "downgrade"


def test_scripts_show_the_archive_as_plain_op_calls() -> None:
    upgrade = ops.UpgradeOps(
        [
            ArchiveColumnsOp("employee", ["email"], key=["id"], revision="abc"),
            ArchiveTableOp("company", revision="abc"),
        ]
    )
    code = render_python_code(upgrade)
    assert "op.archive_columns('employee', ['email'], key=['id'], revision='abc')" in code
    assert "op.archive_table('company', revision='abc')" in code
    downgrade = render_python_code(upgrade.reverse())
    assert "op.restore_table('company', revision='abc')" in downgrade
    assert "op.restore_columns('employee', ['email'], key=['id'], revision='abc')" in downgrade


def test_type_change_and_copied_table_ops_reverse_and_render() -> None:
    archive = ArchiveValuesOp("item", ["price"], key=["id"], revision="abc")
    restore = RestoreValuesOp(
        "item", ["price"], key=["id"], revision="abc", types={"price": "NUMERIC(12, 2)"}
    )
    assert isinstance(archive.reverse(), RestoreValuesOp) and isinstance(restore.reverse(), ArchiveValuesOp)
    rows = ArchiveRowsOp("company", revision="abc")
    assert isinstance(rows.reverse(), RestoreRowsOp) and rows.reverse().on == "upgrade"
    assert isinstance(rows.reverse().reverse(), ArchiveRowsOp)
    code = render_python_code(ops.UpgradeOps([archive, restore, rows, rows.reverse()]))
    assert "op.archive_values('item', ['price'], key=['id'], revision='abc')" in code
    assert "types={'price': 'NUMERIC(12, 2)'}" in code
    assert "op.archive_rows('company', revision='abc')" in code
    assert "op.restore_rows('company', revision='abc', on='upgrade')" in code
    enums = ArchiveTableOp("t", revision="abc", enums={"s": "status"}, defaults={"s": "'a'::status"})
    assert enums.reverse().enums == {"s": "status"} and enums.reverse().defaults == {"s": "'a'::status"}


def test_include_name_hides_archive_tables_and_asks_the_apps_own_filter() -> None:
    seen = []

    def apps_filter(name: str | None, type_: str, parents: dict) -> bool:
        seen.append(name)
        return name != "legacy"

    include = exclude_archive_tables(apps_filter)
    assert include("_evolve_archive_abc_employee", "table", {}) is False
    assert include("legacy", "table", {}) is False
    assert include("employee", "table", {}) is True
    assert seen == ["legacy", "employee"]
    assert exclude_archive_tables(None)("employee", "table", {}) is True
