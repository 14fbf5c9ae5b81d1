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
    include_object = context.opts.get("include_object")
    include_name = context.opts.get("include_name")
    excluded = []
    for table in metadata.sorted_tables:
        if include_name is not None and not include_name(table.name, "table", {"schema_name": table.schema}):
            excluded.append((table.name, "include_name"))
        elif include_object is not None and not include_object(table, table.name, "table", False, None):
            excluded.append((table.name, "include_object"))
    return excluded


def explain_no_changes(context: MigrationContext, root: Path | None = None) -> list[str]:
    """Sentences that explain an empty autogenerate, each naming the fix; empty if nothing looks wrong."""
    metadatas = _metadatas(context.opts.get("target_metadata"))
    tables = [t for m in metadatas for t in m.sorted_tables]
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
    connection = context.connection
    if connection is not None and not context.as_sql:
        inspector = sa.inspect(connection)
        version_table = context.version_table
        existing = set(inspector.get_table_names())
        if version_table not in existing and {t.name for t in tables} <= existing:
            lines.append(
                f"The tables exist but the database has no {version_table} table (made by db.create_all()?), "
                f"and they match the models: run `flask db stamp head` to record that the database is at "
                f"the latest revision."
            )
    return lines
