"""The `flask db` click commands: parse the options, call flask_evolve.commands, print one-line errors."""

from __future__ import annotations

import atexit
import functools
import gc
import json
import math
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from flask import current_app, g
from flask.cli import AppGroup, FlaskGroup, NoAppException, ScriptInfo

from flask_evolve import commands
from flask_evolve.errors import MigrationError, hide_credentials, is_secret_name, url_secrets

F = TypeVar("F", bound=Callable[..., Any])

_DIRECTORY_HELP = 'Migration script directory (default is "migrations")'
_SQL_HELP = "Don't emit SQL to database - dump to standard output instead"
_TAG_HELP = 'Arbitrary "tag" name - can be used by custom env.py scripts'
_X_ARG_HELP = "Additional arguments consumed by custom env.py scripts"
_HEAD_HELP = "Specify head revision or <branchname>@head to base new revision on"
_SPLICE_HELP = 'Allow a non-head revision as the "head" to splice onto'
_BRANCH_LABEL_HELP = "Specify a branch label to apply to the new revision"
_VERSION_PATH_HELP = "Specify specific path from config for version file"
_REV_ID_HELP = "Specify a hardcoded revision id instead of generating one"
_VERBOSE_HELP = "Use more verbose output"


def _directory_option(f: F) -> F:
    return click.option("-d", "--directory", default=None, help=_DIRECTORY_HELP)(f)


def _x_arg_option(f: F) -> F:
    return click.option("-x", "--x-arg", multiple=True, help=_X_ARG_HELP)(f)


def _finite_seconds(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    # FloatRange lets nan (no comparison holds) and inf through.
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of seconds: give one such as 30.")
    return value


def _lock_timeout_option(f: F) -> F:
    return click.option(
        "--lock-timeout",
        type=click.FloatRange(min=0),
        callback=_finite_seconds,
        default=None,
        metavar="SECONDS",
        help="Give up if another migration holds the lock for longer than this (default: wait)",
    )(f)


def _single_transaction_option(f: F) -> F:
    return click.option(
        "--single-transaction",
        is_flag=True,
        default=None,
        help="Run all pending migrations in one transaction instead of one per migration",
    )(f)


def _one_line_errors(f: F) -> F:
    """Print a MigrationError as one `Error:` line on stderr and exit non-zero."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except MigrationError as exc:
            click.echo(f"Error: {hide_credentials(str(exc), _known_secrets())}", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


def _known_secrets() -> list[str]:
    """The credentials of the app's database URLs and of --scratch-url, masked wherever they appear in
    an error (a driver may echo one in a form :func:`hide_credentials` does not recognise)."""
    config = current_app.config if current_app else {}
    context = click.get_current_context(silent=True)
    secrets = []
    try:
        binds = config.get("SQLALCHEMY_BINDS") or {}
        urls = [config.get("SQLALCHEMY_DATABASE_URI"), *binds.values()]
        urls.append(context.params.get("scratch_url") if context else None)
        for url in urls:
            options = url if isinstance(url, dict) else {"url": url}
            if options.get("url"):
                secrets += url_secrets(options["url"])
            for given in (options, config.get("SQLALCHEMY_ENGINE_OPTIONS") or {}):
                arguments = given.get("connect_args") or {}
                secrets += [str(value) for name, value in arguments.items() if is_secret_name(name)]
    except Exception:  # an odd config must not turn the one error line into a traceback
        pass
    return secrets


_exit_collection_skipped = False


def _spare_collections_over_the_app() -> None:
    """Leave the app's objects out of the garbage collections of the command and of Python's shutdown.

    Those collections walk every object still alive (about 900,000 for 2,000 models: tables,
    columns, mappers) to find cycles in memory the operating system takes back anyway; at
    N=2,000 they were most of a no-change ``migrate``'s time after the app's import. At exit the
    live objects are moved to the permanent generation (``gc.freeze``): the remaining ``atexit``
    handlers still run and objects are still freed by reference count; only objects in reference
    cycles that are still alive at exit are not collected, which Python never promises anyway.
    During the command the objects that exist when it starts (the app's) are frozen the same
    way, so that the collections its own allocations trigger do not walk them either, and thawed
    when the command's context closes: a long-running process that invokes a command keeps its
    normal collections.
    """
    global _exit_collection_skipped
    if not _exit_collection_skipped:
        _exit_collection_skipped = True
        atexit.register(gc.freeze)
    gc.freeze()
    click.get_current_context().call_on_close(gc.unfreeze)


def _directory_or_group(directory: str | None) -> str | None:
    return directory or g.get("directory")


@click.group(cls=AppGroup)
@_directory_option
@_x_arg_option
def db(directory: str | None, x_arg: tuple[str, ...]) -> None:
    """Perform database migrations."""
    _spare_collections_over_the_app()
    # Read back by Migrate.get_config() (x_arg, added before the command's own -x) and the commands below.
    g.directory = directory
    g.x_arg = x_arg


@db.command()
@_one_line_errors
def list_templates() -> None:
    """List available templates."""
    commands.list_templates()


@db.command()
@_directory_option
@click.option("--multidb", is_flag=True, help="Support multiple databases")
@click.option("-t", "--template", default=None, help='Repository template to use (default is "flask")')
@click.option(
    "--package",
    is_flag=True,
    help="Write empty __init__.py files to the environment and version locations",
)
@_one_line_errors
def init(directory: str | None, multidb: bool, template: str | None, package: bool) -> None:
    """Creates a new migration repository."""
    commands.init(_directory_or_group(directory), multidb, template, package)


@db.command()
@_directory_option
@click.option("-m", "--message", default=None, help="Revision message")
@click.option(
    "--autogenerate",
    is_flag=True,
    help="Populate revision script with candidate migration operations, "
    "based on comparison of database to model",
)
@click.option("--sql", is_flag=True, help=_SQL_HELP)
@click.option("--head", default="head", help=_HEAD_HELP)
@click.option("--splice", is_flag=True, help=_SPLICE_HELP)
@click.option("--branch-label", default=None, help=_BRANCH_LABEL_HELP)
@click.option("--version-path", default=None, help=_VERSION_PATH_HELP)
@click.option("--rev-id", default=None, help=_REV_ID_HELP)
@_one_line_errors
def revision(
    directory: str | None,
    message: str | None,
    autogenerate: bool,
    sql: bool,
    head: str,
    splice: bool,
    branch_label: str | None,
    version_path: str | None,
    rev_id: str | None,
) -> None:
    """Create a new revision file."""
    commands.revision(
        _directory_or_group(directory),
        message,
        autogenerate,
        sql,
        head,
        splice,
        branch_label,
        version_path,
        rev_id,
    )


@db.command()
@_directory_option
@click.option("-m", "--message", default=None, help="Revision message")
@click.option("--sql", is_flag=True, help=_SQL_HELP)
@click.option("--head", default="head", help=_HEAD_HELP)
@click.option("--splice", is_flag=True, help=_SPLICE_HELP)
@click.option("--branch-label", default=None, help=_BRANCH_LABEL_HELP)
@click.option("--version-path", default=None, help=_VERSION_PATH_HELP)
@click.option("--rev-id", default=None, help=_REV_ID_HELP)
@_x_arg_option
@click.option(
    "--exit-code",
    is_flag=True,
    help="Exit with status 1 when no changes are detected and nothing is written",
)
@click.option(
    "--rename",
    "renames",
    multiple=True,
    metavar="OLD=NEW",
    help="State a rename: [SCHEMA.]TABLE.OLD_COLUMN=NEW_COLUMN or [SCHEMA.]OLD_TABLE=NEW_TABLE (repeatable)",
)
@click.option("--no-renames", is_flag=True, help="Never guess renames: dropped + added stay drop + add")
@click.option("--dry-run", is_flag=True, help="Show the script and the risk report, write nothing")
@click.option(
    "--verify/--no-verify",
    default=None,
    help="Run the new step on a scratch copy of the schema (default: on)",
)
@click.option(
    "--no-archive",
    is_flag=True,
    help="Drop columns and tables for good: don't keep their data for the downgrade",
)
@click.option(
    "--fill",
    multiple=True,
    metavar="TABLE.COLUMN=VALUE",
    help="Value for existing rows of a column the migration adds or makes NOT NULL (repeatable)",
)
@_one_line_errors
def migrate(
    directory: str | None,
    message: str | None,
    sql: bool,
    head: str,
    splice: bool,
    branch_label: str | None,
    version_path: str | None,
    rev_id: str | None,
    x_arg: tuple[str, ...],
    exit_code: bool,
    renames: tuple[str, ...],
    no_renames: bool,
    dry_run: bool,
    verify: bool | None,
    no_archive: bool,
    fill: tuple[str, ...],
) -> None:
    """Autogenerate a new revision file (Alias for 'revision --autogenerate')"""
    options: dict[str, object] = {}
    if fill:
        options["fill"] = commands.parse_fill(fill)
    if renames:
        options["renames"] = list(renames)
    if no_renames:
        options["no_renames"] = True
    if no_archive:
        options["archive_drops"] = False
    commands.migrate(
        _directory_or_group(directory),
        message,
        sql,
        head,
        splice,
        branch_label,
        version_path,
        rev_id,
        x_arg,
        exit_code=exit_code,
        options=options,
        dry_run=dry_run,
        verify=verify,
    )


@db.command()
@_directory_option
@click.argument("revision", default="head")
@_one_line_errors
def edit(directory: str | None, revision: str) -> None:
    """Edit a revision file"""
    commands.edit(_directory_or_group(directory), revision)


@db.command()
@_directory_option
@click.option("-m", "--message", default=None, help="Merge revision message")
@click.option("--branch-label", default=None, help=_BRANCH_LABEL_HELP)
@click.option("--rev-id", default=None, help=_REV_ID_HELP)
@click.argument("revisions", nargs=-1)
@_one_line_errors
def merge(
    directory: str | None,
    message: str | None,
    branch_label: str | None,
    rev_id: str | None,
    revisions: tuple[str, ...],
) -> None:
    """Merge two revisions together, creating a new revision file"""
    commands.merge(_directory_or_group(directory), revisions, message, branch_label, rev_id)


@db.command()
@_directory_option
@click.option("--sql", is_flag=True, help=_SQL_HELP)
@click.option("--tag", default=None, help=_TAG_HELP)
@_x_arg_option
@_lock_timeout_option
@_single_transaction_option
@click.option(
    "--backup", is_flag=True, help="Copy the SQLite database file next to it before migrating"
)
@click.argument("revision", default="head")
@_one_line_errors
def upgrade(
    directory: str | None,
    sql: bool,
    tag: str | None,
    x_arg: tuple[str, ...],
    lock_timeout: float | None,
    single_transaction: bool | None,
    backup: bool,
    revision: str,
) -> None:
    """Upgrade to a later version"""
    commands.upgrade(
        _directory_or_group(directory),
        revision,
        sql,
        tag,
        x_arg,
        lock_timeout=lock_timeout,
        single_transaction=single_transaction,
        backup=backup,
    )


@db.command()
@_directory_option
@click.option("--sql", is_flag=True, help=_SQL_HELP)
@click.option("--tag", default=None, help=_TAG_HELP)
@_x_arg_option
@_lock_timeout_option
@_single_transaction_option
@click.option(
    "--fill",
    multiple=True,
    metavar="TABLE.COLUMN=VALUE",
    help="Value for a restored NOT NULL column in rows that have no archived value",
)
@click.argument("revision", default="-1")
@_one_line_errors
def downgrade(
    directory: str | None,
    sql: bool,
    tag: str | None,
    x_arg: tuple[str, ...],
    lock_timeout: float | None,
    single_transaction: bool | None,
    fill: tuple[str, ...],
    revision: str,
) -> None:
    """Revert to a previous version"""
    commands.downgrade(
        _directory_or_group(directory),
        revision,
        sql,
        tag,
        x_arg,
        lock_timeout=lock_timeout,
        single_transaction=single_transaction,
        options={"fill": commands.parse_fill(fill)} if fill else None,
    )


@db.command()
@_directory_option
@click.argument("revision", default="head")
@_one_line_errors
def show(directory: str | None, revision: str) -> None:
    """Show the revision denoted by the given symbol."""
    commands.show(_directory_or_group(directory), revision)


@db.command()
@_directory_option
@click.option(
    "-r", "--rev-range", default=None, help="Specify a revision range; format is [start]:[end]"
)
@click.option("-v", "--verbose", is_flag=True, help=_VERBOSE_HELP)
@click.option("-i", "--indicate-current", is_flag=True, help="Indicate current version")
@_one_line_errors
def history(
    directory: str | None, rev_range: str | None, verbose: bool, indicate_current: bool
) -> None:
    """List changeset scripts in chronological order."""
    commands.history(_directory_or_group(directory), rev_range, verbose, indicate_current)


@db.command()
@_directory_option
@click.option("-v", "--verbose", is_flag=True, help=_VERBOSE_HELP)
@click.option(
    "--resolve-dependencies", is_flag=True, help="Treat dependency versions as down revisions"
)
@_one_line_errors
def heads(directory: str | None, verbose: bool, resolve_dependencies: bool) -> None:
    """Show current available heads in the script directory"""
    commands.heads(_directory_or_group(directory), verbose, resolve_dependencies)


@db.command()
@_directory_option
@click.option("-v", "--verbose", is_flag=True, help=_VERBOSE_HELP)
@_one_line_errors
def branches(directory: str | None, verbose: bool) -> None:
    """Show current branch points"""
    commands.branches(_directory_or_group(directory), verbose)


@db.command()
@_directory_option
@click.option("-v", "--verbose", is_flag=True, help=_VERBOSE_HELP)
@_one_line_errors
def current(directory: str | None, verbose: bool) -> None:
    """Display the current revision for each database."""
    commands.current(_directory_or_group(directory), verbose)


@db.command()
@_directory_option
@click.option("--sql", is_flag=True, help=_SQL_HELP)
@click.option("--tag", default=None, help=_TAG_HELP)
@click.option(
    "--purge", is_flag=True, help="Delete the version in the alembic_version table before stamping"
)
@_lock_timeout_option
@click.argument("revision", default="head")
@_one_line_errors
def stamp(
    directory: str | None,
    sql: bool,
    tag: str | None,
    revision: str,
    purge: bool,
    lock_timeout: float | None,
) -> None:
    """'stamp' the revision table with the given revision; don't run any migrations"""
    commands.stamp(
        _directory_or_group(directory), revision, sql, tag, purge, lock_timeout=lock_timeout
    )


@db.command()
@_directory_option
@click.option("--drift", is_flag=True, help="Look for drift even when models and database agree")
@_one_line_errors
def check(directory: str | None, drift: bool) -> None:
    """Check if there are any new operations to migrate"""
    commands.check(_directory_or_group(directory), drift=drift)


@db.command()
@_directory_option
@click.option("--scratch-url", default=None, help="An empty database to replay on (default: a temporary one)")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
@_one_line_errors
def verify(directory: str | None, scratch_url: str | None, output_format: str) -> None:
    """Replay the history on a scratch database and check every step."""
    if output_format == "json":
        result = commands.verify(_directory_or_group(directory), scratch_url=scratch_url)
        click.echo(json.dumps(result.as_dict(), indent=2))
        sys.exit(0 if result.ok else 1)
    click.echo("Replaying the history on a scratch database (up, down, up again per step):")
    result = commands.verify(
        _directory_or_group(directory),
        scratch_url=scratch_url,
        on_step=lambda step: click.echo(step.line()),
    )
    for problem in result.problems:
        click.echo(f"  FAIL {problem}")
    verdict = result.lines()[-1]
    # click.echo drops the colour when stdout is not a terminal.
    click.echo(click.style(verdict, fg="green" if result.ok else "red"))
    if not result.ok:
        sys.exit(1)


@db.command()
@_directory_option
@click.argument("rev_range", required=False, metavar="[RANGE]")
@click.option(
    "--fail-on",
    type=click.Choice(["notice", "warning", "error"]),
    default="error",
    show_default=True,
    help="Exit with status 1 when a finding is at least this severe",
)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
@click.option("--dialect", default=None, help="Judge for this database kind (default: the app's)")
@click.option("--ignore", multiple=True, help="Rule ID to skip (repeatable)")
@click.option("--rules", "list_rules", is_flag=True, help="List the rules and exit")
@_one_line_errors
def lint(
    directory: str | None,
    rev_range: str | None,
    fail_on: str,
    output_format: str,
    dialect: str | None,
    ignore: tuple[str, ...],
    list_rules: bool,
) -> None:
    """Check revision scripts for risky operations.

    RANGE is a revision, start:end, start: or :end (default: all).
    """
    if list_rules:
        from flask_evolve.safety.report import rule_catalogue

        for rule in rule_catalogue():
            click.echo(f"{rule['id']}  {rule['name']:<30} {rule['severity']:<8} {rule['doc']}")
        return
    result = commands.lint(_directory_or_group(directory), rev_range, dialect=dialect, ignore=ignore)
    click.echo(result.to_json(fail_on) if output_format == "json" else result.render(fail_on))
    if result.failed(fail_on):
        sys.exit(1)


@db.command()
@_directory_option
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
@click.option("--no-drift", is_flag=True, help="Skip the drift check (replays the history)")
@click.option("--scratch-url", default=None, help="An empty database for the drift check")
@_one_line_errors
def status(directory: str | None, output_format: str, no_drift: bool, scratch_url: str | None) -> None:
    """Show revisions, pending migrations with their risks, and drift."""
    result = commands.status(_directory_or_group(directory), drift=not no_drift, scratch_url=scratch_url)
    if output_format == "json":
        click.echo(result.to_json())
    else:
        click.echo(result.render(colour=sys.stdout.isatty()))
    if result.not_checked:
        sys.exit(1)


def _app_load_error(exc: BaseException) -> str:
    """One line for an app that fails to import: the exception and the user's file and line."""
    cause: BaseException = exc
    if isinstance(exc, NoAppException):
        if exc.__context__ is None:
            return exc.format_message().strip().splitlines()[0]
        cause = exc.__context__
    where = ""
    # The user's line, not ours: Migrate() itself refuses a bad option (ValueError).
    own_package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    traceback = cause.__traceback__
    while traceback is not None:
        filename = traceback.tb_frame.f_code.co_filename
        if (
            not filename.startswith("<")
            and "site-packages" not in filename
            and not os.path.abspath(filename).startswith(own_package)
        ):
            where = f" ({os.path.relpath(filename)}, line {traceback.tb_lineno})"
        traceback = traceback.tb_next
    if isinstance(cause, SyntaxError) and cause.filename:
        where = f" ({os.path.relpath(cause.filename)}, line {cause.lineno})"
    text = str(cause).strip().splitlines()
    what = f"{type(cause).__name__}: {text[0]}" if text else type(cause).__name__
    return f"Could not load the app: {what}{where}: fix it, then run the command again."


class _PassThroughCommand(click.Command):
    """A command that keeps its raw arguments, ``--`` included, to hand them over untouched."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["flask_evolve.raw_args"] = list(args)
        return super().parse_args(ctx, args)


@click.command(
    "db",
    cls=_PassThroughCommand,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def db_plugin(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Perform database migrations."""
    # Registered as a `flask.commands` plugin so that `flask db …` reaches us even
    # when the app fails to import: Flask would print that error with its traceback
    # and then "No such command 'db'". We load the app ourselves, say what broke in
    # one line, and hand over to the `db` group the app registered (ours, or any
    # other extension's).
    if not current_app:
        try:
            app = ctx.ensure_object(ScriptInfo).load_app()
        except Exception as exc:
            click.echo(f"Error: {hide_credentials(_app_load_error(exc))}", err=True)
            sys.exit(1)
        ctx.with_resource(app.app_context())
    else:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    name = ctx.info_name or "db"
    target = app.cli.get_command(ctx, name)
    if target is None or target is db_plugin:
        state = app.extensions.get("migrate")
        command = getattr(getattr(state, "migrate", None), "command", None)
        if command and command != name:
            hint = f"this app's migration commands are `flask {command} …` (Migrate(command={command!r}))"
        else:
            hint = "add `Migrate(app, db)` (from flask_evolve) to the app"
        click.echo(f"Error: No such command '{name}': {hint}.", err=True)
        sys.exit(2)
    # click's parser drops `--`, which `flask db downgrade -- -2` needs to reach the real group.
    raw_args = ctx.meta.get("flask_evolve.raw_args", list(args))
    with target.make_context(ctx.info_name, raw_args, parent=ctx.parent) as sub_ctx:
        target.invoke(sub_ctx)


@db.command()
@_directory_option
@click.option("--purge", is_flag=True, help="Delete the archived data for good")
@click.option("--before", default=None, help="With --purge: only what revisions older than REV archived")
@_one_line_errors
def archive(directory: str | None, purge: bool, before: str | None) -> None:
    """List the dropped data kept for downgrades, or purge it."""
    commands.archive(_directory_or_group(directory), purge=purge, before=before)


def manage(app: Any, args: list[str] | None = None) -> None:
    """Run the app's CLI from its own ``__main__`` block: ``python app.py db upgrade``.

    The Flask 3 replacement for Flask-Script's ``Manager(app).run()``::

        if __name__ == "__main__":
            from flask_evolve import manage
            manage(app)
    """
    FlaskGroup(create_app=lambda: app).main(args=args)
