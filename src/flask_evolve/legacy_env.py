"""The `db` a pre-4.0 Flask-Migrate multidb env.py expects, shown from a Flask-SQLAlchemy 3 `db`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import current_app
from sqlalchemy import MetaData

from flask_evolve.errors import MigrationError

# Those env.py files pick each bind's tables out of `db.metadata` by `info['bind_key']`,
# and 4.0 added the `metadatas` branch that Flask-SQLAlchemy 3 needs.
_FINDS_BINDS_IN_ONE_METADATA = re.compile(r"""\.info\.get\(\s*['"]bind_key['"]\s*\)""")


def needs_legacy_view(env_py: str, db: Any) -> bool:
    """Whether this env.py would miss the binds' models of this ``db``."""
    return (
        hasattr(db, "metadatas")
        and "metadatas" not in env_py
        and bool(_FINDS_BINDS_IN_ONE_METADATA.search(env_py))
    )


class LegacyMultidbView:
    """A Flask-SQLAlchemy 3 ``db`` as Flask-SQLAlchemy 2 showed it to env.py.

    ``metadata`` holds every bind's tables, each tagged with its bind key in ``info``;
    ``get_engine(app, bind)`` takes the old arguments. Everything else is the real ``db``.
    """

    def __init__(self, db: Any) -> None:
        self._db = db
        self._metadata: MetaData | None = None

    @property
    def metadata(self) -> MetaData:
        if self._metadata is None:
            self._metadata = _all_binds_in_one(self._db.metadatas)
        return self._metadata

    def get_engine(self, app: Any = None, bind: str | None = None, *, bind_key: str | None = None) -> Any:
        key = bind if bind is not None else bind_key
        return self._db.engines[key or None]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def _all_binds_in_one(metadatas: dict[str | None, MetaData]) -> MetaData:
    default = metadatas.get(None)
    combined = MetaData(naming_convention=dict(default.naming_convention) if default is not None else None)
    owner: dict[str, str | None] = {}
    for key, metadata in metadatas.items():
        for name, table in metadata.tables.items():
            if name in owner:
                raise MigrationError(
                    f"Table '{name}' is in bind {_bind_label(owner[name])} and in bind {_bind_label(key)}, "
                    "which this env.py (Flask-Migrate before 4.0) cannot tell apart: replace it with "
                    "the env.py that `flask db init --multidb` writes."
                )
            owner[name] = key
            table.to_metadata(combined).info["bind_key"] = key
    return combined


def _bind_label(key: str | None) -> str:
    return "'default'" if key is None else f"'{key}'"


@contextmanager
def legacy_env_support(script_location: str | None) -> Iterator[None]:
    """Show a pre-4.0 multidb env.py in ``script_location`` the ``db`` it was written for."""
    state = current_app.extensions.get("migrate")
    db = getattr(state, "db", None)
    if state is None or db is None or not script_location:
        yield
        return
    try:
        with open(os.path.join(script_location, "env.py"), encoding="utf-8") as f:
            env_py = f.read()
    except OSError:
        env_py = ""
    if not needs_legacy_view(env_py, db):
        yield
        return
    state.db = LegacyMultidbView(db)
    try:
        yield
    finally:
        state.db = db
