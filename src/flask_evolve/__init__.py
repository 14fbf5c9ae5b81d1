"""Flask-Evolve's public API: Migrate, Config, the programmatic commands and the errors they raise."""

from __future__ import annotations

from typing import Any

from flask_evolve.commands import (
    branches,
    check,
    current,
    downgrade,
    edit,
    heads,
    history,
    init,
    lint,
    list_templates,
    merge,
    migrate,
    revision,
    show,
    stamp,
    status,
    upgrade,
    verify,
)
from flask_evolve.errors import CheckError, MigrationError, NoChangesError, NoDatabaseError, UserInputError
from flask_evolve.extension import Migrate

__all__ = [
    "NAMING_CONVENTION",
    "CheckError",
    "Config",
    "Migrate",
    "MigrationError",
    "NoChangesError",
    "NoDatabaseError",
    "UserInputError",
    "alembic_version",
    "branches",
    "check",
    "current",
    "downgrade",
    "edit",
    "heads",
    "history",
    "init",
    "lint",
    "list_templates",
    "manage",
    "merge",
    "migrate",
    "revision",
    "show",
    "stamp",
    "status",
    "upgrade",
    "verify",
]


def manage(app: Any, args: list[str] | None = None) -> None:
    """Run the app's CLI from its ``__main__`` block: ``python app.py db upgrade``."""
    from flask_evolve.cli import manage as _manage

    _manage(app, args)


def __getattr__(name: str) -> Any:
    # Alembic is imported on first use only, to keep app start-up cheap.
    if name == "Config":
        from flask_evolve.extension import _alembic_config_class

        return _alembic_config_class()
    if name == "NAMING_CONVENTION":
        from flask_evolve.autogen.naming import NAMING_CONVENTION

        return NAMING_CONVENTION
    if name == "alembic_version":
        from importlib.metadata import version

        return tuple(int(part) for part in version("alembic").split(".")[:3])
    raise AttributeError(f"module 'flask_evolve' has no attribute {name!r}")
