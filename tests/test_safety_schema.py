"""Schema snapshots compared by verify and drift: server defaults by value, CHECK constraints by text."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from flask_evolve.safety.schema import canonical_default, schema_state, state_differences


@pytest.mark.parametrize(
    ("spellings", "canonical"),
    [
        (["'0'", "0", "(0)", "'0'::integer", "((0))", "0.0"], "0"),
        (["'x'", "'x'::character varying", "('x')"], "'x'"),
        (["CURRENT_TIMESTAMP", "now()", "(CURRENT_TIMESTAMP)"], "now()"),
        (["lower(name)", "lower(name)  "], "lower(name)"),
    ],
)
def test_equal_defaults_written_differently_are_one_default(spellings: list[str], canonical: str) -> None:
    assert {canonical_default(s) for s in spellings} == {canonical}


def test_different_defaults_stay_different() -> None:
    assert canonical_default("'1'") != canonical_default("'0'") != canonical_default("'a'")
    assert canonical_default(None) is None


def _state(tmp_path: Path, name: str, ddl: str) -> object:
    engine = sa.create_engine(f"sqlite:///{tmp_path / name}")
    with engine.begin() as connection:
        connection.exec_driver_sql(ddl)
    with engine.connect() as connection:
        state = schema_state(connection)
    engine.dispose()
    return state


def test_sqlite_tables_differing_in_default_or_check_are_told_apart(tmp_path: Path) -> None:
    base = "CREATE TABLE t (id INTEGER PRIMARY KEY, age INTEGER {default}{check})"
    expected = _state(tmp_path, "a.db", base.format(default="DEFAULT '0'", check=" CHECK (age >= 0)"))
    same = _state(tmp_path, "b.db", base.format(default="DEFAULT (0)", check=" CHECK (age >= 0)"))
    changed = _state(tmp_path, "c.db", base.format(default="DEFAULT 1", check=""))

    assert state_differences(expected, same) == []  # type: ignore[arg-type]
    assert [str(d) for d in state_differences(expected, changed)] == [  # type: ignore[arg-type]
        "column t.age has server default 1, expected server default 0",
        "check constraint age >= 0 on t is missing",
    ]
