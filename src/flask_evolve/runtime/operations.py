"""Registers with Alembic the ops generated scripts call (op.archive_columns, op.check_foreign_keys, …)."""

from __future__ import annotations


def register_script_operations() -> None:
    """Make every ``op.<name>`` a Flask-Evolve script may call available on ``alembic.op``.

    Called wherever a revision's ``upgrade()`` / ``downgrade()`` can run: our env.py, the
    upgrade and downgrade commands (whatever env.py the project has, Flask-Migrate's of any
    generation or an app's own), and the safety net's replays and captures. Importing the
    modules registers the operations; Python's module cache makes a second call free.
    """
    import flask_evolve.autogen.guards
    import flask_evolve.runtime.archive_ops  # noqa: F401
