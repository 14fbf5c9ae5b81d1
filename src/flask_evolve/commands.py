"""One function per `flask db` command, over Alembic's command API; they raise MigrationError, never exit."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from flask import current_app

from flask_evolve.errors import MigrationError, NoChangesError, explain_alembic_error

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

    from flask_evolve.extension import Migrate

PathLike = str | os.PathLike[str]


def _migrate_extension() -> Migrate:
    try:
        state = current_app.extensions["migrate"]
    except KeyError:
        raise MigrationError(
            "Flask-Evolve is not set up on this app: add `Migrate(app, db)`."
        ) from None
    return state.migrate


def _directory(directory: PathLike | None) -> str:
    return str(directory) if directory is not None else _migrate_extension().directory


def _database_revisions() -> tuple[str, ...]:
    """The revisions recorded in the default database, or () if it cannot tell."""
    from sqlalchemy import text

    try:
        engine = _migrate_extension().require_db().engine
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version"))
            return tuple(row[0] for row in rows)
    except Exception:
        return ()


@contextmanager
def _explained(directory: PathLike | None) -> Iterator[None]:
    """Turn Alembic's errors into one-line MigrationErrors that say what to run next."""
    from alembic.util import CommandError

    from flask_evolve.runtime.logs import app_logging_preserved

    try:
        with app_logging_preserved():
            yield
    except MigrationError:
        raise
    except CommandError as exc:
        message = str(exc)
        revisions = _database_revisions() if "Can't locate revision" in message else ()
        raise MigrationError(
            explain_alembic_error(
                message,
                directory=_directory(directory),
                command=_migrate_extension().command,
                database_revisions=revisions,
            )
        ) from exc


def _config(
    directory: PathLike | None,
    *,
    x_arg: str | Iterable[str] | None = None,
    opts: Iterable[str] | None = None,
    need_db: bool = True,
    options: Mapping[str, Any] | None = None,
) -> AlembicConfig:
    """The Alembic Config for a command, carrying Flask-Evolve's options for the pipeline.

    :param options: per-invocation options (CLI flags); they override the ones
        given to ``Migrate(...)``.
    """
    from flask_evolve.autogen.pipeline import OPTIONS_ATTRIBUTE

    migrate = _migrate_extension()
    if need_db:
        migrate.require_db()
    config = migrate.get_config(directory, x_arg=x_arg, opts=opts)
    config.attributes[OPTIONS_ATTRIBUTE] = {**migrate.evolve_options, **(options or {})}
    return config


def list_templates() -> list[tuple[str, str]]:
    """List the available repository templates, as (name, synopsis) pairs, and print them."""
    from flask_evolve.extension import _alembic_config_class

    config = _alembic_config_class()()
    root = config.get_template_directory()
    templates = []
    for name in sorted(os.listdir(root)):
        readme = os.path.join(root, name, "README")
        if not os.path.isfile(readme):
            continue
        with open(readme) as f:
            templates.append((name, next(f, "").strip()))
    config.print_stdout("Available templates:\n")
    for name, synopsis in templates:
        config.print_stdout("%s - %s", name, synopsis)
    return templates


def init(
    directory: PathLike | None = None,
    multidb: bool = False,
    template: str | None = None,
    package: bool = False,
) -> None:
    """Create a new migrations folder.

    :param template: a template name (``flask list-templates``) or a path to a
        template folder of your own.
    """
    from alembic import command

    from flask_evolve.extension import _alembic_config_class

    directory = _directory(directory)
    _migrate_extension().require_db()
    template_directory = None
    if template is not None and ("/" in template or "\\" in template):
        # "./custom" must stay a path: split before normalising it away.
        template_directory, template = os.path.split(template.rstrip("/\\"))
        template_directory = template_directory or os.curdir
        if not os.path.isdir(os.path.join(template_directory, template)):
            raise MigrationError(
                f"No template folder at '{os.path.join(template_directory, template)}': "
                f"give a path to a folder with env.py, script.py.mako and alembic.ini.mako."
            )
    config = _alembic_config_class()(template_directory=template_directory)
    config.set_main_option("script_location", directory)
    config.config_file_name = os.path.join(directory, "alembic.ini")
    config = _migrate_extension().call_configure_callbacks(config)
    if template is None:
        template = "flask-multidb" if multidb else "flask"
    with _explained(directory):
        command.init(config, directory, template=template, package=package)


def revision(
    directory: PathLike | None = None,
    message: str | None = None,
    autogenerate: bool = False,
    sql: bool = False,
    head: str = "head",
    splice: bool = False,
    branch_label: str | None = None,
    version_path: str | None = None,
    rev_id: str | None = None,
) -> Any:
    """Create a new revision file; return Alembic's Script (or list of them)."""
    from alembic import command

    config = _config(directory, opts=["autogenerate"] if autogenerate else None)
    with _explained(directory):
        return command.revision(
            config,
            message,
            autogenerate=autogenerate,
            sql=sql,
            head=head,
            splice=splice,
            branch_label=branch_label,
            version_path=version_path,
            rev_id=rev_id,
        )


def migrate(
    directory: PathLike | None = None,
    message: str | None = None,
    sql: bool = False,
    head: str = "head",
    splice: bool = False,
    branch_label: str | None = None,
    version_path: str | None = None,
    rev_id: str | None = None,
    x_arg: str | Iterable[str] | None = None,
    *,
    exit_code: bool = False,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """Autogenerate a new revision file by comparing the models with the database.

    :param exit_code: raise :class:`NoChangesError` when nothing was written.
    :param options: Flask-Evolve options for this run (rename hints, …), read
        by the autogenerate pipeline; they override those given to ``Migrate``.
    :return: the written Alembic Script, or ``None`` when there were no changes.
    """
    from alembic import command

    config = _config(directory, x_arg=x_arg, opts=["autogenerate"], options=options)
    with _explained(directory):
        written = command.revision(
            config,
            message,
            autogenerate=True,
            sql=sql,
            head=head,
            splice=splice,
            branch_label=branch_label,
            version_path=version_path,
            rev_id=rev_id,
        )
    if not written:
        if exit_code:
            raise NoChangesError("No changes in schema detected: no revision was written.")
        return None
    return written


def edit(directory: PathLike | None = None, revision: str = "current") -> None:
    """Open a revision file in $EDITOR."""
    from alembic import command

    config = _config(directory)
    with _explained(directory):
        command.edit(config, revision)


def merge(
    directory: PathLike | None = None,
    revisions: str | Sequence[str] = "",
    message: str | None = None,
    branch_label: str | None = None,
    rev_id: str | None = None,
) -> Any:
    """Merge two or more revisions into a new revision file."""
    from alembic import command

    config = _config(directory)
    with _explained(directory):
        return command.merge(
            config, revisions, message=message, branch_label=branch_label, rev_id=rev_id
        )


def upgrade(
    directory: PathLike | None = None,
    revision: str = "head",
    sql: bool = False,
    tag: str | None = None,
    x_arg: str | Iterable[str] | None = None,
) -> None:
    """Upgrade the database to a later revision."""
    from alembic import command

    config = _config(directory, x_arg=x_arg)
    with _explained(directory):
        command.upgrade(config, revision, sql=sql, tag=tag)


def downgrade(
    directory: PathLike | None = None,
    revision: str = "-1",
    sql: bool = False,
    tag: str | None = None,
    x_arg: str | Iterable[str] | None = None,
    *,
    options: Mapping[str, Any] | None = None,
) -> None:
    """Revert the database to an earlier revision.

    :param options: Flask-Evolve options for this run, such as
        ``{"fill": {"employee.email": "unknown"}}`` for restored NOT NULL columns.
    """
    from alembic import command

    config = _config(directory, x_arg=x_arg, options=options)
    if sql and revision == "-1":
        revision = "head:-1"
    with _explained(directory):
        command.downgrade(config, revision, sql=sql, tag=tag)


def show(directory: PathLike | None = None, revision: str = "head") -> None:
    """Show the revision denoted by the given symbol."""
    from alembic import command

    config = _config(directory, need_db=False)
    with _explained(directory):
        command.show(config, revision)


def history(
    directory: PathLike | None = None,
    rev_range: str | None = None,
    verbose: bool = False,
    indicate_current: bool = False,
) -> None:
    """List the revisions in chronological order."""
    from alembic import command

    config = _config(directory, need_db=indicate_current)
    with _explained(directory):
        command.history(config, rev_range, verbose=verbose, indicate_current=indicate_current)


def heads(
    directory: PathLike | None = None,
    verbose: bool = False,
    resolve_dependencies: bool = False,
) -> None:
    """Show the head revisions of the migrations folder."""
    from alembic import command

    config = _config(directory, need_db=False)
    with _explained(directory):
        command.heads(config, verbose=verbose, resolve_dependencies=resolve_dependencies)


def branches(directory: PathLike | None = None, verbose: bool = False) -> None:
    """Show the branch points of the history."""
    from alembic import command

    config = _config(directory, need_db=False)
    with _explained(directory):
        command.branches(config, verbose=verbose)


def current(directory: PathLike | None = None, verbose: bool = False) -> None:
    """Show the revision the database is at."""
    from alembic import command

    config = _config(directory)
    with _explained(directory):
        command.current(config, verbose=verbose)


def stamp(
    directory: PathLike | None = None,
    revision: str = "head",
    sql: bool = False,
    tag: str | None = None,
    purge: bool = False,
) -> None:
    """Record a revision in the database without running any migration."""
    from alembic import command

    config = _config(directory)
    with _explained(directory):
        if not sql:
            _warn_purged_archives(config, revision)
        command.stamp(config, revision, sql=sql, tag=tag, purge=purge)


def _warn_purged_archives(config: AlembicConfig, target: str) -> None:
    """Say so when stamping down past revisions whose archived data was purged: nothing brings it back."""
    from alembic.script import ScriptDirectory
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    from flask_evolve.runtime import archive_store

    current = _database_revisions()
    if not current:
        return
    script = ScriptDirectory.from_config(config)
    try:
        passed = [
            s
            for s in script.iterate_revisions(current, target, implicit_base=True)
            if s is not None and s.revision not in (target,)
        ]
    except (CommandError, RevisionError):
        return  # not a way down (or an unknown revision, which stamp itself reports)
    sources = []
    for passed_script in passed:
        with open(passed_script.path) as f:
            sources.append((passed_script.revision, f.read()))
    with _migrate_extension().require_db().engine.connect() as connection:
        missing = archive_store.purged_archives(connection, sources)
    for revision, table in missing:
        config.print_stdout(
            "Warning: the data revision %s dropped from %s is no longer there (its archive was purged); "
            "stamping does not bring it back.",
            revision,
            table,
        )


def check(directory: PathLike | None = None) -> None:
    """Fail if the models have changes that no migration covers yet."""
    from alembic import command

    config = _config(directory)
    with _explained(directory):
        command.check(config)


def parse_fill(values: Iterable[str]) -> dict[str, str]:
    """Parse ``--fill TABLE.COLUMN=VALUE`` options into ``{"table.column": "value"}``."""
    from flask_evolve.errors import UserInputError

    fills: dict[str, str] = {}
    for value in values:
        target, sep, fill = value.partition("=")
        if not sep or "." not in target:
            raise UserInputError(f"--fill expects TABLE.COLUMN=VALUE, got '{value}'.")
        fills[target.strip()] = fill
    return fills


def archive(
    directory: PathLike | None = None, purge: bool = False, before: str | None = None
) -> list[Any]:
    """List the data the archive keeps for downgrades, or purge it.

    :param purge: drop the archive tables for good (their downgrades then stop
        with an error instead of restoring).
    :param before: with ``purge``, only what revisions older than this one wrote.
    :return: the archived tables listed (or purged), as ``ArchivedTable``.
    """
    from alembic.script import ScriptDirectory

    from flask_evolve.errors import UserInputError
    from flask_evolve.runtime import archive_store

    if before is not None and not purge:
        raise UserInputError("--before goes with --purge: `flask db archive --purge --before REV`.")
    config = _config(directory)
    with _explained(directory):
        script = ScriptDirectory.from_config(config)
        revisions = [r.revision for r in script.walk_revisions()]
        older: set[str] | None = None
        if before is not None:
            target = script.get_revision(before)
            if target is None:
                raise UserInputError(f"No revision '{before}' in '{_directory(directory)}'.")
            older = {r.revision for r in script.iterate_revisions(target.revision, "base")}
            older.discard(target.revision)
    engine = _migrate_extension().require_db().engine
    with engine.begin() as connection:
        kept = archive_store.list_archive(connection, revisions)
        if purge:
            chosen = [t for t in kept if older is None or t.revision in older]
            archive_store.purge(connection, chosen)
    if purge:
        for table in chosen:
            config.print_stdout("Purged %s (%s, revision %s)", table.name, table.what, table.revision or "?")
        if not chosen:
            config.print_stdout("Nothing to purge.")
        return chosen
    if not kept:
        config.print_stdout("The archive is empty.")
        return kept
    config.print_stdout("%-14s %-10s %-36s %10s %10s", "revision", "dropped by", "kept", "rows", "size")
    for table in kept:
        config.print_stdout(
            "%-14s %-10s %-36s %10d %10s",
            table.revision or "?",
            table.on,
            table.what,
            table.rows,
            _bytes(table.size),
        )
    total = sum(t.size or 0 for t in kept)
    config.print_stdout("%d archive table(s), %s in all.", len(kept), _bytes(total))
    return kept


def _bytes(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
