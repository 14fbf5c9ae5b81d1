"""One function per `flask db` command, over Alembic's command API; they raise MigrationError, never exit."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from flask import current_app

from flask_evolve.errors import (
    REVISION_MAP_WARNINGS,
    CheckError,
    MigrationError,
    NoChangesError,
    UserInputError,
    check_violation,
    database_advice,
    database_error_line,
    display_url,
    enum_value_violation,
    explain_alembic_error,
    explain_database_error,
    explain_revision_map_warning,
    foreign_key_violation,
    not_null_violation,
    unique_violation,
)
from flask_evolve.legacy_env import legacy_env_support
from flask_evolve.migration_run import is_multidb, migration_run
from flask_evolve.revision_input import checked_rev_id, script_message

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


def _default_sync_engine() -> Any:
    """The default database's engine, usable from synchronous code.

    For an aioflask app, a synchronous driver on its AsyncEngine's URL (NullPool: nothing to dispose).
    """
    from flask_evolve.environment import default_engine
    from flask_evolve.runtime.locks import synchronous_engine

    return synchronous_engine(default_engine())[0]


def _database_revisions() -> tuple[str, ...]:
    """The revisions recorded in the default database, or () if it cannot tell."""
    from sqlalchemy import text

    try:
        engine = _default_sync_engine()
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version"))
            return tuple(row[0] for row in rows)
    except Exception:
        return ()


def _head_count(directory: PathLike | None) -> int:
    """How many heads the migrations folder has, or 1 if it cannot tell (only read on error paths)."""
    from alembic.script import ScriptDirectory

    try:
        return len(ScriptDirectory.from_config(_config(directory)).get_heads())
    except Exception:
        return 1


@contextmanager
def _explained(directory: PathLike | None) -> Iterator[None]:
    """Turn Alembic's errors into one-line MigrationErrors that say what to run next."""
    from alembic.util import CommandError

    from flask_evolve.runtime import backup, locks, recovery, transactions
    from flask_evolve.runtime.logs import app_logging_preserved

    try:
        # Every command that may run env.py passes here.
        with app_logging_preserved(), warnings.catch_warnings(), legacy_env_support(_directory(directory)):
            for pattern in REVISION_MAP_WARNINGS:
                warnings.filterwarnings("error", message=pattern)
            yield
    except MigrationError:
        raise
    except UserWarning as exc:
        if not any(re.match(pattern, str(exc)) for pattern in REVISION_MAP_WARNINGS):
            raise
        raise MigrationError(
            explain_revision_map_warning(str(exc), directory=_directory(directory))
        ) from None
    except (
        locks.LockTimeout,
        locks.LockUnavailable,
        transactions.ForeignKeyViolation,
        recovery.StaleRebuildError,
        backup.BackupError,
    ) as exc:
        raise MigrationError(str(exc)) from exc
    except CommandError as exc:
        message = str(exc)
        revisions = _database_revisions() if "Can't locate revision" in message else ()
        heads = _head_count(directory) if "not up to date" in message else 1
        raise MigrationError(
            explain_alembic_error(
                message,
                directory=_directory(directory),
                command=_migrate_extension().command,
                database_revisions=revisions,
                head_count=heads,
            )
        ) from exc
    except Exception as exc:
        explained = _explain_failure(exc, directory)
        if explained is None:
            raise
        raise MigrationError(explained) from exc


def _display_path(path: str) -> str:
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _script_frame(exc: BaseException, folder: str) -> tuple[str, int, str] | None:
    """File, line and function of the innermost traceback frame in the migrations folder."""
    found = None
    traceback = exc.__traceback__
    while traceback is not None:
        code = traceback.tb_frame.f_code
        filename = os.path.abspath(code.co_filename)
        if filename.startswith(folder + os.sep):
            found = (filename, traceback.tb_lineno, code.co_name)
        traceback = traceback.tb_next
    return found


def _default_database() -> tuple[str, Any]:
    try:
        engine = _default_sync_engine()
    except Exception:
        return "the database", None
    return display_url(engine.url), engine


def _explain_failure(exc: Exception, directory: PathLike | None) -> str | None:
    """One line for an error from a migration script, env.py or the database; ``None``: a bug of ours.

    Names the file and line that failed and the revision the database is at
    afterwards, so the user knows what to fix and what state they are in.
    """
    from sqlalchemy.exc import DBAPIError, IdentifierError, SQLAlchemyError

    folder = os.path.abspath(_directory(directory))
    if isinstance(exc, SyntaxError) and exc.filename:
        filename = os.path.abspath(exc.filename)
        if filename.startswith(folder + os.sep):
            return (
                f"Syntax error in {_display_path(filename)}, line {exc.lineno}: {exc.msg}: "
                f"fix the file, then run the command again."
            )
    if isinstance(exc, ImportError) and str(exc).startswith("Can't find Python file") and str(
        exc
    ).endswith("env.py"):
        return (
            f"No env.py in '{_display_path(folder)}': restore it from version control, or copy "
            f"the one `flask db init` writes into a new folder."
        )
    if isinstance(exc, IdentifierError):
        return f"{str(exc).rstrip('.')}: give it a shorter name in the models, then run the command again."
    is_database_error = isinstance(exc, SQLAlchemyError)
    what = database_error_line(exc) if is_database_error else _exception_line(exc)
    location = _script_frame(exc, folder)
    if location is not None:
        filename, line, function = location
        where = f"{_display_path(filename)}, line {line}"
        if function == "<module>" and os.path.basename(filename) != "env.py":
            # Alembic loads every revision file before it runs any of them.
            return f"{where}: {what}: fix the file, then run the command again."
        if os.path.basename(filename) == "env.py":
            if isinstance(exc, DBAPIError):
                # Alembic's own statements (version table, reflection) run from env.py.
                return explain_database_error(exc, database=_default_database()[0])
            return f"{where} failed: {what}: fix env.py, then run the command again."
        url, engine = _default_database()
        outcome = _outcome_of_failed_migration(engine)
        fix = (database_advice(what) if is_database_error else None) or "fix the migration"
        what, fix = _data_failure(exc, engine, what) or (what, fix)
        return f"{where} failed: {what}; {outcome}: {fix}, then run the command again."
    if isinstance(exc, DBAPIError):
        url, _ = _default_database()
        return explain_database_error(exc, database=url)
    if is_database_error:
        return f"{what}."
    return None


def _outcome_of_failed_migration(engine: Any) -> str:
    """What a failed migration left behind: the revision the database records now, read after the failure."""
    from flask_evolve.runtime.transactions import is_transactional

    revisions = _database_revisions()
    at = f"revision {', '.join(revisions)}" if revisions else "no revision (empty)"
    if engine is not None and is_transactional(engine):
        return f"that migration was rolled back and the database is at {at}"
    return (
        f"statements before the failure may have been applied (no transactional DDL "
        f"on this database); the database records {at}"
    )


#: A migration's own refusal speaks of its own step; the steps before it may have committed.
_NOTHING_CHANGED = re.compile(r"(?:[,;.]\s*(?:and\s+)?|\s+)nothing was changed\.?\s*$", re.I)


@contextmanager
def _where_the_downgrade_stopped(directory: PathLike | None, sql: bool) -> Iterator[None]:
    """When a downgrade script refuses to go on (a purged archive, a refused ``--fill``) after earlier
    steps committed (each migration commits on its own), say where the database is now, not that
    nothing was changed."""
    if sql:
        yield
        return
    before = sorted(_database_revisions())
    try:
        yield
    except MigrationError as exc:
        location = _script_frame(exc, os.path.abspath(_directory(directory)))
        after = sorted(_database_revisions())
        if location is None or os.path.basename(location[0]) == "env.py" or after == before:
            raise
        was = ", ".join(before) or "base"
        now = ", ".join(after) or "no revision (base)"
        what = _NOTHING_CHANGED.sub("", str(exc).strip()).rstrip(".")
        back = f"flask {_migrate_extension().command} upgrade {was}"
        error = MigrationError(
            f"{what}; that step was rolled back, but the steps before it were applied: the database is "
            f"now at {now} (it was at {was}); `{back}` takes it back."
        )
        error.exit_code = exc.exit_code
        raise error from exc


@contextmanager
def _where_the_upgrade_stopped(
    directory: PathLike | None, config: AlembicConfig, sql: bool
) -> Iterator[None]:
    """When an upgrade script refuses to go on (a lossy type change, a foreign key check) after
    earlier steps committed (each migration commits on its own), say where the database is now,
    not that nothing was changed.

    Where it started comes from Alembic's ``on_version_apply`` callback, in memory: the version
    table is read again only on the failure path, never when the upgrade succeeds.
    """
    from flask_evolve.migration_run import is_multidb

    if sql or is_multidb(config):
        # Several version tables: one "was/now" would describe only the default database.
        yield
        return
    started: list[str] = []

    def first_step(*, ctx: Any, step: Any, heads: set[str], run_args: Any) -> None:
        if not started:
            before = (set(heads) - set(step.destination_revision_ids)) | set(step.source_revision_ids)
            started.extend(sorted(before) or ["base"])

    args = current_app.extensions["migrate"].configure_args
    had = "on_version_apply" in args
    own = args.get("on_version_apply")
    theirs = [] if own is None else [own] if callable(own) else list(own)
    args["on_version_apply"] = [*theirs, first_step]
    try:
        yield
    except MigrationError as exc:
        location = _script_frame(exc, os.path.abspath(_directory(directory)))
        if not started or location is None or os.path.basename(location[0]) == "env.py":
            raise
        after = sorted(_database_revisions()) or ["base"]
        if after == started:
            raise  # one transaction for the run (--single-transaction): all of it rolled back
        was, now = ", ".join(started), ", ".join(after)
        what = _NOTHING_CHANGED.sub("", str(exc).strip()).rstrip(".")
        name = _migrate_extension().command
        error = MigrationError(
            f"{what}; that step was rolled back, but the steps before it were applied: the database is "
            f"now at {now} (it was at {was}); fix that migration, then `flask {name} upgrade` goes on "
            f"from there (`flask {name} downgrade {was}` takes it back)."
        )
        error.exit_code = exc.exit_code
        raise error from exc
    finally:
        if had:
            args["on_version_apply"] = own
        else:
            args.pop("on_version_apply", None)


def _data_failure(exc: Exception, engine: Any, line: str) -> tuple[str, str] | None:
    """What failed and the fix when the rows, not the script, stopped a migration (values a new
    NOT NULL, UNIQUE, CHECK, foreign key or enum type does not allow); None otherwise."""
    from sqlalchemy.exc import SQLAlchemyError

    lost_value = enum_value_violation(exc)  # wrapped in alembic-postgresql-enum's ValueError
    if lost_value is not None:
        return _enum_value_failure(engine, *lost_value)
    if not isinstance(exc, SQLAlchemyError):
        return None
    if (not_null := not_null_violation(line)) is not None:
        return _not_null_failure(engine, *not_null)
    if (repeated := unique_violation(exc)) is not None:
        return _unique_failure(engine, *repeated)
    if (broken := check_violation(exc)) is not None:
        return _check_failure(*broken)
    if (dangling := foreign_key_violation(exc)) is not None:
        table, first, referred = dangling
        return (
            f"rows of {table} reference missing rows of {referred} (first: {first})",
            f"point those rows at existing {referred} rows or delete them first, or take the "
            f"ForeignKey off the model and write the migration again",
        )
    return None


def _rebuilt_table(table: str) -> str:
    """The table a SQLite rebuild's copy (ours or Alembic's batch mode) stands for."""
    from flask_evolve.autogen.sqlite_plan import REBUILD_PREFIX

    for prefix in (REBUILD_PREFIX, "_alembic_tmp_"):
        table = table.removeprefix(prefix)
    return table


def _not_null_failure(engine: Any, table: str, column: str) -> tuple[str, str]:
    """What failed and the fix, when rows had no value for a NOT NULL column (the script was
    probably written against a database where the table was empty)."""
    from flask_evolve.autogen.not_null import count_without_value

    table = _rebuilt_table(table)
    rows = count_without_value(engine, table, column) if engine is not None else None
    which = f"{rows} of {table}" if rows else f"rows of {table}"
    what = f"{table}.{column} is NOT NULL and {which} would have no value in it"
    fix = (
        f"give those rows a value in that migration (a server_default=... on the column, or an UPDATE "
        f"before it; `flask {_migrate_extension().command} migrate --fill {table}.{column}=VALUE` writes "
        f"one), or make the column nullable"
    )
    return what, fix


def _unique_failure(engine: Any, table: str, columns: list[str]) -> tuple[str, str]:
    """What failed and the fix, when rows repeat a value that a UNIQUE constraint or index of the
    migration (or a row it copies) must not repeat: the data needs fixing, not the script."""
    from flask_evolve.safety.rules import count_repeated

    table = _rebuilt_table(table)
    key = f"{table}({', '.join(columns)})"
    repeated = count_repeated(engine, table, columns) if engine is not None else None
    what = f"{key} must be unique and {repeated or 'some'} value(s) of it are repeated in the rows"
    listed = ", ".join(columns)
    fix = (
        f"make those rows unique first (`SELECT {listed}, count(*) FROM {table} GROUP BY {listed} "
        f"HAVING count(*) > 1` lists them), or take unique=True off the model and write the migration again"
    )
    return what, fix


def _check_failure(table: str | None, constraint: str) -> tuple[str, str]:
    """What failed and the fix, when rows break a CHECK constraint the migration adds (or a row it
    copies breaks one): the data needs fixing, not the script."""
    table = _rebuilt_table(table) if table else None
    what = f"rows of {table} break CHECK {constraint}" if table else f"rows break CHECK {constraint}"
    fix = (
        "make those rows satisfy it first, or change the CHECK in the model and write the migration again"
    )
    return what, fix


def _enum_value_failure(engine: Any, table: str, column: str, enum: str, value: str) -> tuple[str, str]:
    """What failed and the fix, when rows hold a value that the column's enum type loses."""
    from flask_evolve.autogen.guards import rows_holding

    count = None
    if engine is not None:
        try:
            with engine.connect() as connection:
                count = (rows_holding(connection, table, column, [value], None, array=False) or (None,))[0]
        except Exception:  # advice only: never hide the error being explained
            count = None
    rows = f"{count} row(s)" if count else "rows"
    what = f"{rows} of {table}.{column} hold {value!r}, which enum {enum} no longer has"
    fix = (
        f"change those rows to a value the enum keeps first (UPDATE {table} SET {column} = ... WHERE "
        f"{column} = '{value}'), or keep {value!r} in the enum"
    )
    return what, fix


def _exception_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


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
    import configparser

    from flask_evolve.autogen.pipeline import OPTIONS_ATTRIBUTE

    migrate = _migrate_extension()
    if need_db:
        migrate.require_db()
    try:
        config = migrate.get_config(directory, x_arg=x_arg, opts=opts)
    except configparser.Error as exc:
        ini = os.path.join(_directory(directory), "alembic.ini")
        raise MigrationError(
            f"'{ini}' is not a valid ini file ({str(exc).splitlines()[0]}): fix it, or delete it "
            f"to use the defaults."
        ) from None
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

    rev_id, message = checked_rev_id(rev_id), script_message(message)
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
            process_revision_directives=_revision_hook(),
        )


def _revision_hook() -> Any:
    """Our autogenerate pipeline, handed to Alembic's command rather than through env.py, so
    that every env.py generation runs it once (theirs pass a hook of their own)."""
    return current_app.extensions["migrate"].revision_hook()


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
    dry_run: bool = False,
    verify: bool | None = None,
) -> Any:
    """Autogenerate a new revision file by comparing the models with the database.

    Prints a risk report (changes grouped by table, flagged with rule IDs) on stderr.

    :param exit_code: raise :class:`NoChangesError` when nothing was written.
    :param options: Flask-Evolve options for this run (rename hints, …), read
        by the autogenerate pipeline; they override those given to ``Migrate``.
    :param dry_run: print the script and the report, write nothing.
    :param verify: run the new step on a scratch copy of the schema (upgrade,
        downgrade, upgrade); ``None`` follows ``Migrate(verify=...)``, default on.
    :return: the written Alembic Script, or ``None`` when there were no changes.
    """
    from alembic import command

    from flask_evolve.autogen.pipeline import DRY_RUN_ATTRIBUTE
    from flask_evolve.safety.report import REPORT_ATTRIBUTE

    rev_id, message = checked_rev_id(rev_id), script_message(message)
    run_options = {**(options or {}), **({"dry_run": True} if dry_run else {})}
    config = _config(directory, x_arg=x_arg, opts=["autogenerate"], options=run_options)
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
            process_revision_directives=_revision_hook(),
        )
    _print_reports(config.attributes.get(REPORT_ATTRIBUTE, []))
    rendered = config.attributes.get(DRY_RUN_ATTRIBUTE)
    if rendered is not None:
        config.print_stdout("# Dry run: this script was not written.\n%s", rendered)
        return None
    if written and not sql and _verify_wanted(config, verify):
        _verify_new_revision(config, written)
    if not written:
        if exit_code:
            raise NoChangesError("No changes in schema detected: no revision was written.")
        return None
    return written


def _print_reports(reports: Sequence[Any]) -> None:
    import sys

    for report in reports:
        if report.changes:
            sys.stderr.write(report.render(colour=sys.stderr.isatty()) + "\n")


def _verify_targets(scripts: Iterable[Any]) -> list[Any]:
    """The databases to verify: each bind too when the folder's scripts are multi-database ones.

    :param scripts: revisions of the folder (none: a multi-database folder
        when the app has binds).
    """
    from flask_evolve.environment import app_databases, bind_names
    from flask_evolve.runtime.locks import synchronous_engine
    from flask_evolve.safety.capture import is_multidb_script
    from flask_evolve.safety.verify import Target

    revisions = list(scripts)
    multidb = any(is_multidb_script(r) for r in revisions) if revisions else bool(bind_names())
    # Replays and comparisons are synchronous: an AsyncEngine (aioflask) is read through a
    # synchronous driver on its URL.
    return [
        Target(synchronous_engine(d.engine)[0], d.metadata, d.name if multidb else None)
        for d in app_databases(multidb=multidb)
    ]


def _verify_wanted(config: AlembicConfig, verify: bool | None) -> bool:
    from flask_evolve.autogen.pipeline import OPTIONS_ATTRIBUTE

    if verify is not None:
        return verify
    return bool(config.attributes.get(OPTIONS_ATTRIBUTE, {}).get("verify", True))


def _verify_new_revision(config: AlembicConfig, written: Any) -> None:
    """Upgrade, downgrade and upgrade the new step on a scratch copy of the live schema; warn on failure."""
    import sys

    from flask_evolve.safety.drift import version_table_of
    from flask_evolve.safety.verify import verify_new_revision

    scripts = written if isinstance(written, list) else [written]
    targets = _verify_targets(scripts)
    for script in scripts:
        result = verify_new_revision(
            config, script.revision, targets, version_table=version_table_of(_compare_args())
        )
        sys.stderr.write(result.summary() + "\n")
        if not result.ok:
            sys.stderr.write(
                f"Warning: {script.path} failed on a scratch copy of your schema: "
                f"fix it before `flask {_migrate_extension().command} upgrade`.\n"
            )


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

    rev_id, message = checked_rev_id(rev_id), script_message(message)
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
    *,
    lock_timeout: float | None = None,
    single_transaction: bool | None = None,
    backup: bool = False,
) -> None:
    """Upgrade the database to a later revision.

    Holds the migration lock for the whole run, and runs each migration in its
    own transaction (SQLite included), so a failure leaves the database at the
    last revision that completed.

    :param lock_timeout: seconds to wait for another migration at most
        (default: ``Migrate(lock_timeout=...)``, else for ever).
    :param single_transaction: run every pending migration in one transaction
        instead of one per migration.
    :param backup: copy the SQLite database next to it first (SQLite only).
    """
    from alembic import command

    config = _config(directory, x_arg=x_arg)
    with _explained(directory), _where_the_upgrade_stopped(directory, config, sql), migration_run(
        _migrate_extension(),
        config,
        sql=sql,
        lock_timeout=lock_timeout,
        single_transaction=single_transaction,
        backup=backup,
        clean_stale=True,
    ):
        command.upgrade(config, revision, sql=sql, tag=tag)


def downgrade(
    directory: PathLike | None = None,
    revision: str = "-1",
    sql: bool = False,
    tag: str | None = None,
    x_arg: str | Iterable[str] | None = None,
    *,
    lock_timeout: float | None = None,
    single_transaction: bool | None = None,
    options: Mapping[str, Any] | None = None,
) -> None:
    """Revert the database to an earlier revision, under the migration lock.

    :param options: Flask-Evolve options for this run, such as
        ``{"fill": {"employee.email": "unknown"}}`` for restored NOT NULL columns.
    """
    from alembic import command

    config = _config(directory, x_arg=x_arg, options=options)
    if sql and revision == "-1":
        revision = "head:-1"
    with _explained(directory), _where_the_downgrade_stopped(directory, sql), migration_run(
        _migrate_extension(),
        config,
        sql=sql,
        lock_timeout=lock_timeout,
        single_transaction=single_transaction,
    ):
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
    *,
    lock_timeout: float | None = None,
) -> None:
    """Record a revision in the database without running any migration, under the migration lock."""
    from alembic import command
    from alembic.script import ScriptDirectory

    config = _config(directory)
    if not sql:
        # Before anything is written: `--purge` empties the version table before Alembic looks the
        # revision up, and a typo would leave the database with no recorded revision.
        with _explained(directory):
            ScriptDirectory.from_config(config).get_revisions(revision)
    with _explained(directory), migration_run(
        _migrate_extension(), config, sql=sql, lock_timeout=lock_timeout
    ):
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
    except (CommandError, RevisionError, AssertionError):
        # Not a way down (or an unknown revision, which stamp itself reports; Alembic asserts on
        # REV@head when REV has no branch label).
        return
    sources = []
    for passed_script in passed:
        with open(passed_script.path) as f:
            sources.append((passed_script.revision, f.read()))
    # A multidb script archives each database's tables in its own upgrade_<bind>().
    multidb = is_multidb(config)
    missing: list[tuple[str | None, str, str]] = []
    with _archive_databases() as databases:
        for bind, engine in databases if multidb else databases[:1]:
            with engine.connect() as connection:
                part = (bind or "") if multidb else None
                found = archive_store.purged_archives(connection, sources, bind=part)
            missing += [(bind, revision, table) for revision, table in found]
    for bind, revision, table in missing:
        config.print_stdout(
            "Warning: the data revision %s dropped from %s%s is no longer there "
            "(its archive was purged); stamping does not bring it back.",
            revision,
            table,
            f" (database {bind})" if bind else "",
        )


def check(directory: PathLike | None = None, *, drift: bool = False) -> None:
    """Fail if the models have changes that no migration covers yet, or a database is out of step.

    Raises :class:`CheckError` whose ``exit_code`` says why: 1 the models
    changed, 3 a database is not at head, 4 a database drifted from its
    recorded revision, 5 the check could not run (a database that cannot be
    reached, a broken migrations folder: the message says which). A
    multi-database app has each of its databases checked; an AsyncEngine's
    database is read through a synchronous driver on its URL.

    :param drift: compare with a scratch replay even when the models and the
        database agree (a change made by hand in both is found only this way).
    """
    from flask_evolve.environment import bind_names

    try:
        config = _config(directory)
        with _explained(directory), _synchronous_databases(multidb=bool(bind_names())) as databases:
            _check_databases(config, directory, databases, drift=drift)
    except CheckError:
        raise
    except MigrationError as exc:
        # Not exit 1: that says the models changed, and a script may act on it.
        raise CheckError(str(exc), CheckError.NOT_CHECKED) from exc


def _check_databases(
    config: AlembicConfig, directory: PathLike | None, databases: list[Any], *, drift: bool
) -> None:
    from alembic.script import ScriptDirectory

    from flask_evolve.safety.drift import drift as drift_of
    from flask_evolve.safety.drift import recorded_revisions, version_table_of
    from flask_evolve.safety.verify import compare_with_models, describe_diff

    flask_cmd = f"flask {_migrate_extension().command}"
    compare_args = _compare_args()
    with _explained(directory):
        heads = set(ScriptDirectory.from_config(config).get_heads())
    checked = []
    for database in databases:
        # Named only where there is more than one database to tell apart.
        where = f" {database.name}" if database.name else ""
        with database.engine.connect() as connection:
            current = recorded_revisions(connection, version_table_of(compare_args))
            if heads and set(current or ()) != heads:
                at = ", ".join(current) if current else "no revision"
                raise CheckError(
                    f"The database{where} is at {at}, not at head ({', '.join(sorted(heads))}): "
                    f"run `{flask_cmd} upgrade`.",
                    CheckError.NOT_AT_HEAD,
                )
            diffs = compare_with_models(connection, database.metadata, compare_args)
        checked.append((database, where, current, diffs))
    if not any(diffs for *_, diffs in checked) and not drift:
        config.print_stdout("No new upgrade operations detected.")
        return
    for database, where, current, _ in checked if heads else []:
        bind = database.name or None
        try:
            drifted = drift_of(config, database.engine, compare_args=compare_args, bind=bind)
        except Exception as exc:
            if not drift:
                continue  # Only telling drift from model changes, which are reported below anyway.
            # Asked for, and not done: a failure, never "No new upgrade operations detected".
            from flask_evolve.safety.scratch import ScratchError

            why = str(exc) if isinstance(exc, ScratchError) else (
                f"{_exception_line(exc)}: `{flask_cmd} verify` shows which revision fails to replay"
            )
            raise CheckError(
                f"Could not check the database{where} for drift: {why}", CheckError.NOT_CHECKED
            ) from exc
        if drifted:
            raise CheckError(
                f"The database{where} differs from what revision {', '.join(current or ())} should look "
                f"like ({'; '.join(drifted[:3])}): it was changed outside migrations.",
                CheckError.DRIFT,
            )
    described = [
        describe_diff(d) + (f" (database{where})" if where else "")
        for _, where, _, diffs in checked
        for d in diffs
    ]
    if not described:
        config.print_stdout("No new upgrade operations detected.")
        return
    changed = "; ".join(described[:5]) + (" …" if len(described) > 5 else "")
    raise CheckError(
        f"New upgrade operations detected: {changed}: run `{flask_cmd} migrate`.",
        CheckError.MODELS_CHANGED,
    )


def _metadata() -> Any:
    return _migrate_extension().require_db().metadata


def _compare_args() -> dict[str, Any]:
    return dict(current_app.extensions["migrate"].configure_args)


def _lint_ignore(extra: Iterable[str] = ()) -> list[str]:
    return [*(_migrate_extension().evolve_options.get("lint_ignore") or ()), *extra]


def _scratch(fn: Any) -> Any:
    """Run ``fn``, turning a missing scratch database into a one-line error."""
    from flask_evolve.safety.scratch import ScratchError

    try:
        return fn()
    except ScratchError as exc:
        raise MigrationError(str(exc)) from exc


def verify(
    directory: PathLike | None = None,
    *,
    scratch_url: str | None = None,
    on_step: Any = None,
) -> Any:
    """Replay the whole history on a scratch database and return the :class:`Verification`.

    :param scratch_url: an empty database to use; by default a temp SQLite
        file, or a temporary PostgreSQL database created and dropped here.
    :param on_step: called with each step's result as it finishes.
    """
    from alembic.script import ScriptDirectory

    from flask_evolve.safety.verify import verify_history

    config = _config(directory)
    with _explained(directory):
        targets = _verify_targets(ScriptDirectory.from_config(config).walk_revisions())
        return _scratch(
            lambda: verify_history(
                config,
                targets,
                scratch_url=scratch_url,
                compare_args=_compare_args(),
                on_step=on_step,
            )
        )


def lint(
    directory: PathLike | None = None,
    rev_range: str | None = None,
    *,
    dialect: str | None = None,
    ignore: Iterable[str] = (),
) -> Any:
    """Run the risk rules over existing revision scripts; return the :class:`LintResult`.

    :param dialect: the database kind to judge for; the app's database by default.
    :param ignore: rule IDs to skip, on top of ``Migrate(lint_ignore=[...])``.
    """
    from flask_evolve.safety.lint import lint as lint_revisions

    config = _config(directory, need_db=False)
    if dialect is None:
        from flask_evolve.environment import default_engine

        db = _migrate_extension().db
        dialect = default_engine().dialect.name if db is not None else "postgresql"
    _require_dialect(dialect)
    with _explained(directory):
        return lint_revisions(config, dialect, rev_range, _lint_ignore(ignore))


def _require_dialect(name: str) -> None:
    from sqlalchemy import exc
    from sqlalchemy.engine import make_url

    try:
        make_url(f"{name}://").get_dialect()
    except (exc.NoSuchModuleError, exc.ArgumentError):
        raise UserInputError(
            f"Unknown database kind '{name}': use sqlite, postgresql, mysql, mssql or oracle."
        ) from None


def status(
    directory: PathLike | None = None, *, drift: bool = True, scratch_url: str | None = None
) -> Any:
    """Gather current and head revisions, pending migrations with their risks, drift, and the archive.

    The archive counts every database of the app, as ``flask db archive`` lists it.
    """
    from alembic.script import ScriptDirectory

    from flask_evolve.safety.status import status as gather

    config = _config(directory)
    engine = _default_sync_engine()
    with _explained(directory):
        revisions = [r.revision for r in ScriptDirectory.from_config(config).walk_revisions()]
        archived = [table for _, found in _archives(revisions) for table in found]
        result = gather(
            config,
            engine,
            ignore=_lint_ignore(),
            check_drift=drift,
            scratch_url=scratch_url,
            compare_args=_compare_args(),
            archive=archived,
        )
    result.command = f"flask {_migrate_extension().command}"
    return result


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
    """List the data the archive keeps for downgrades (every database of the app), or purge it.

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
    kept = []
    chosen = []
    with _explained(directory):  # a database that cannot be reached: one line
        for connection, found in _archives(revisions):
            kept += found
            if purge:
                purged = [t for t in found if older is None or t.revision in older]
                archive_store.purge(connection, purged)
                chosen += purged
    if purge:
        for table in chosen:
            config.print_stdout(
                "Purged %s (%s, revision %s)%s",
                table.name,
                table.what,
                table.revision or "?",
                f" in database {table.bind}" if table.bind else "",
            )
        if not chosen:
            config.print_stdout("Nothing to purge.")
        return chosen
    if not kept:
        config.print_stdout("The archive is empty.")
        return kept
    # The database column only where there is more than one database to tell apart.
    binds = any(t.bind for t in kept)
    database = "%-12s " if binds else "%s"
    config.print_stdout(
        database + "%-14s %-10s %-36s %10s %10s",
        "database" if binds else "",
        "revision",
        "dropped by",
        "kept",
        "rows",
        "size",
    )
    for table in kept:
        config.print_stdout(
            database + "%-14s %-10s %-36s %10d %10s",
            (table.bind or "(default)") if binds else "",
            table.revision or "?",
            table.on,
            table.what,
            table.rows,
            archive_store.human_size(table.size),
        )
    total = sum(t.size or 0 for t in kept)
    config.print_stdout("%d archive table(s), %s in all.", len(kept), archive_store.human_size(total))
    return kept


@contextmanager
def _synchronous_databases(*, multidb: bool) -> Iterator[list[Any]]:
    """The app's databases (each bind too with ``multidb``), an AsyncEngine's read through a synchronous
    driver on its URL (disposed at the end)."""
    from contextlib import ExitStack
    from dataclasses import replace

    from flask_evolve.environment import app_databases
    from flask_evolve.runtime.locks import synchronous_engine

    with ExitStack() as stack:
        databases = []
        for database in app_databases(multidb=multidb):
            engine, created = synchronous_engine(database.engine)
            if created:
                stack.callback(engine.dispose)
            databases.append(replace(database, engine=engine))
        yield databases


@contextmanager
def _archive_databases() -> Iterator[list[tuple[str | None, Any]]]:
    """(bind name, synchronous engine) of the default database, then of each ``SQLALCHEMY_BINDS`` one."""
    with _synchronous_databases(multidb=True) as databases:
        yield [(database.name or None, database.engine) for database in databases]


def _archives(revisions: Sequence[str]) -> Iterator[tuple[Any, list[Any]]]:
    """Per database of the app: a connection in a transaction, and its ``ArchivedTable``s (bind set).

    :param revisions: the revision ids of the migrations folder, to tell which revision wrote each table.
    """
    from dataclasses import replace

    from flask_evolve.runtime import archive_store

    with _archive_databases() as databases:
        for bind, engine in databases:
            with engine.begin() as connection:
                found = archive_store.list_archive(connection, revisions)
                yield connection, [replace(t, bind=bind) for t in found]
