"""Why autogenerate found nothing: models never imported, tables made by create_all(), filtered tables."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.runtime.migration import MigrationContext

_SKIPPED_DIRS = {".venv", "venv", "env", ".git", "migrations", "node_modules", "__pycache__", "site-packages"}
_MODEL_MARKERS = ("db.Model)", "(DeclarativeBase)", "declarative_base(")


def _metadatas(target: Any) -> list[sa.MetaData]:
    if target is None:
        return []
    if isinstance(target, sa.MetaData):
        return [target]
    return [m for m in target if isinstance(m, sa.MetaData)]


def _python_files(root: Path, depth: int = 3) -> Iterator[Path]:
    for directory, dirs, files in os.walk(root):
        here = Path(directory)
        dirs[:] = [d for d in dirs if d not in _SKIPPED_DIRS and not d.startswith(".")]
        if len(here.relative_to(root).parts) >= depth:
            dirs[:] = []
        for name in files:
            if name.endswith(".py"):
                yield here / name


def model_modules(root: Path) -> list[str]:
    """Dotted names of the modules under ``root`` that appear to define model classes."""
    found = []
    for path in sorted(_python_files(root)):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if any(marker in text for marker in _MODEL_MARKERS):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if parts:
                found.append(".".join(parts))
    return found


def excluded_tables(context: MigrationContext, metadata: sa.MetaData) -> list[tuple[str, str]]:
    """(table, filter) for each model table an ``include_object``/``include_name`` filter leaves out."""
    from flask_evolve.autogen.fingerprint import app_filters

    include_name, include_object = app_filters(context.opts)
    excluded = []
    # Definition order: sorting thousands of tables by dependency costs seconds, on every no-change run.
    for table in metadata.tables.values():
        if include_name is not None and not include_name(table.name, "table", {"schema_name": table.schema}):
            excluded.append((table.name, "include_name"))
        elif include_object is not None and not include_object(table, table.name, "table", False, None):
            excluded.append((table.name, "include_object"))
    return excluded


def explain_no_changes(context: MigrationContext, root: Path | None = None) -> list[str]:
    """Sentences that explain an empty autogenerate, each naming the fix; empty if nothing looks wrong."""
    metadatas = _metadatas(context.opts.get("target_metadata"))
    tables = [t for m in metadatas for t in m.tables.values()]
    lines: list[str] = []
    if not tables:
        modules = [m for m in model_modules(root or Path.cwd()) if m not in {"app", "wsgi"}]
        if modules:
            lines.append(
                f"The models' MetaData has no tables: nothing imported your models. "
                f"Import them where the app is built, e.g. `import {modules[0]}`."
            )
        else:
            lines.append(
                "The models' MetaData has no tables: nothing imported your models. Import the module "
                "that defines your db.Model classes in the app module (or in create_app())."
            )
        return lines
    for metadata in metadatas:
        for table, via in excluded_tables(context, metadata):
            lines.append(f"Model table '{table}' is excluded by the {via} filter, so it is never compared.")
    unversioned = unversioned_tables(context)
    if unversioned and len(unversioned) == len({t.name for t in tables}):
        lines.append(
            f"The tables exist but the database records no revision in {context.version_table} "
            f"(made by db.create_all()?), and they match the models: write the initial revision against "
            f"an empty database, then run `flask db stamp head` here."
        )
    return lines


def unversioned_tables(context: MigrationContext) -> list[str]:
    """Model tables that exist in a database without a version table, when no revision exists yet."""
    connection = context.connection
    if connection is None or context.as_sql or context.script is None or context.script.get_heads():
        return []
    # Alembic creates the version table before comparing, so "none" means "empty".
    if context.get_current_heads():
        return []
    existing = set(sa.inspect(connection).get_table_names())
    metadatas = _metadatas(context.opts.get("target_metadata"))
    return sorted(t.name for m in metadatas for t in m.tables.values() if t.name in existing)


def warn_first_revision_over_existing_tables(context: MigrationContext) -> str | None:
    """The warning for a first revision autogenerated against tables made by ``create_all()``."""
    tables = unversioned_tables(context)
    if not tables:
        return None
    return (
        f"The database already has {', '.join(tables)} but no revision in {context.version_table} "
        f"(made by db.create_all()?): this first revision holds only the difference shown above and "
        f"cannot build an empty database. Make the tables match the models, then run "
        f"`flask db stamp head` instead; or migrate against an empty database."
    )
