"""Replay the migration history on a scratch database: up, down, up again, and compare with the models."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from flask_evolve.errors import sqlstate
from flask_evolve.safety.capture import CaptureError, capture, quiet_alembic
from flask_evolve.safety.schema import SchemaState, schema_state, state_differences
from flask_evolve.safety.scratch import ScratchError, copy_schema, scratch_engine

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import Script, ScriptDirectory

#: ``context.configure()`` arguments that change what a comparison with the models sees.
COMPARE_ARGS = (
    "include_object",
    "include_name",
    "include_schemas",
    "compare_type",
    "compare_server_default",
    "version_table",
    "version_table_schema",
)


def database_label(bind: str | None) -> str:
    """How a database of a multi-database folder is named in the output."""
    return bind or "default"


@dataclass(frozen=True)
class Target:
    """One database whose history is replayed.

    :param engine: the live database; only its kind and URL are used, except by
        :func:`verify_new_revision`, which copies its schema.
    :param metadata: the models of that database, to compare head with (None: skip).
    :param bind: None for a single-database migrations folder; in a multi-database
        one, ``""`` for the default database, else the bind key: the scripts run
        with ``engine_name=bind`` (their ``upgrade_<bind>()`` functions).
    """

    engine: sa.Engine
    metadata: sa.MetaData | None = None
    bind: str | None = None


@dataclass
class Step:
    """One revision's round trip: upgrade, downgrade back, upgrade again."""

    revision: str
    message: str
    timings: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    #: The database of a multi-database folder ("" the default one, else the bind key), else None.
    database: str | None = None
    #: What the replay did besides the round trip (not a problem), one line each.
    notes: list[str] = field(default_factory=list)
    #: A phase failed on PostgreSQL's column limit (SQLSTATE 54011), which a fresh scratch may avoid.
    column_limit: bool = False
    #: An earlier step failed, so this one was not replayed: unchecked, never a pass.
    replayed: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems and self.replayed

    def line(self) -> str:
        times = "  ".join(f"{name} {seconds * 1000:.0f}ms" for name, seconds in self.timings.items())
        verdict = "SKIP" if not (self.replayed or self.problems) else "ok" if self.ok else "FAIL"
        where = f"[{database_label(self.database)}] " if self.database is not None else ""
        text = f"  {verdict:<4} {self.revision}  {where}{self.message[:40]:<40}  {times}".rstrip()
        return "\n".join([text, *(f"         {line}" for line in [*self.notes, *self.problems])])


@dataclass
class Verification:
    """Everything ``verify`` found: per-step results and history-wide problems."""

    steps: list[Step] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    scope: str = ""
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and all(s.ok for s in self.steps)

    def lines(self) -> list[str]:
        if self.skipped:
            return [f"verify: skipped: {self.skipped}"]
        lines = [s.line() for s in self.steps]
        lines += [f"  FAIL {p}" for p in self.problems]
        failed = sum(bool(s.problems) for s in self.steps) + len(self.problems)
        unreplayed = sum(not s.replayed for s in self.steps)
        counts = [f"{failed} problem{'s' if failed != 1 else ''}"] if failed else []
        counts += [f"{unreplayed} step{'s' if unreplayed != 1 else ''} not replayed"] if unreplayed else []
        verdict = "OK" if self.ok else f"FAILED ({', '.join(counts)})"
        databases = {s.database for s in self.steps if s.database is not None}
        revisions = len({s.revision for s in self.steps if s.replayed})
        on = f" on {len(databases)} databases" if len(databases) > 1 else ""
        scope = self.scope or f"{revisions} revision(s) replayed{on}"
        lines.append(f"verify: {verdict}: {scope} in {self.seconds:.2f}s.")
        return lines

    def summary(self) -> str:
        return "\n".join(self.lines())

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 4),
            "problems": self.problems,
            "steps": [
                {"revision": s.revision, "message": s.message, "ok": s.ok, "replayed": s.replayed,
                 "timings": s.timings, "problems": s.problems, "notes": s.notes, "database": s.database}
                for s in self.steps
            ],
        }


# -- running scripts on a connection, without the project's env.py --------------------------


def run_scripts(
    config: Config,
    connection: sa.Connection,
    destination: str,
    *,
    downgrade: bool = False,
    script: ScriptDirectory | None = None,
    bind: str | None = None,
    version_table: str = "alembic_version",
) -> None:
    """Upgrade (or downgrade) ``connection`` to ``destination`` with the scripts alone.

    The project's env.py is skipped on purpose: it connects to the app's own
    database, and the scripts do not need it to run.

    :param bind: in a multi-database folder, the database this connection stands
        for: the scripts get ``engine_name=bind``, as the multidb env.py passes it.
    :param version_table: where the scratch database records its revision.
    """
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    from flask_evolve.runtime.operations import register_script_operations

    register_script_operations()
    if script is None:
        script = ScriptDirectory.from_config(config)

    def steps(rev: Any, context: Any) -> Any:
        # The same step planning alembic.command.upgrade/downgrade use.
        if downgrade:
            return directory._downgrade_revs(destination, rev)
        return directory._upgrade_revs(destination, rev)

    directory = script
    with quiet_alembic(), EnvironmentContext(config, directory, fn=steps, destination_rev=destination) as env:
        env.configure(connection=connection, target_metadata=None, version_table=version_table)
        with env.begin_transaction():
            env.run_migrations(**({} if bind is None else {"engine_name": bind}))
    if connection.in_transaction():
        connection.commit()


def _timed(timings: dict[str, float], name: str, fn: Callable[[], Any]) -> None:
    start = time.perf_counter()
    try:
        fn()
    finally:
        timings[name] = time.perf_counter() - start


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


#: PostgreSQL's SQLSTATE for "tables can have at most 1600 columns".
TOO_MANY_COLUMNS = "54011"

COLUMN_LIMIT_WORDS = (
    "PostgreSQL's limit of 1,600 columns per table counts dropped columns, and each down/up round trip "
    "of verify drops and re-adds the columns a step adds"
)


#: PostgreSQL's SQLSTATE for "out of shared memory", which its lock table raises when full.
OUT_OF_MEMORY = "53200"


def _is_column_limit(exc: BaseException) -> bool:
    return sqlstate(exc) == TOO_MANY_COLUMNS


def _is_lock_table_full(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    hint = getattr(getattr(orig, "diag", None), "message_hint", None) or str(orig)
    return sqlstate(exc) == OUT_OF_MEMORY and "max_locks_per_transaction" in hint


def lock_table_words(connection: sa.Connection) -> str:
    """Why a step ran out of shared memory on PostgreSQL, with the server's numbers, and what to do."""
    if connection.in_transaction():
        connection.rollback()
    locks, connections, prepared = connection.exec_driver_sql(
        "SELECT current_setting('max_locks_per_transaction')::int, current_setting('max_connections')::int, "
        "current_setting('max_prepared_transactions')::int"
    ).one()
    connection.rollback()
    return (
        "PostgreSQL's lock table is full: a migration is one transaction, which locks every table, index "
        "and sequence it creates, alters or drops until it commits, and this server has room for about "
        "max_locks_per_transaction * (max_connections + max_prepared_transactions) = "
        f"{locks} * ({connections} + {prepared}) = {locks * (connections + prepared):,} locks, shared by "
        "all sessions: raise max_locks_per_transaction (a server restart) or split the revision; "
        "the same steps fail the same way on your database"
    )


def _failed(step: Step, what: str, exc: BaseException, connection: sa.Connection) -> None:
    if _is_column_limit(exc):
        step.column_limit = True
        step.problems.append(f"{what} failed: {COLUMN_LIMIT_WORDS} ({_first_line(exc)})")
    elif _is_lock_table_full(exc):
        step.problems.append(f"{what} failed: {lock_table_words(connection)} ({_first_line(exc)})")
    else:
        step.problems.append(f"{what} failed: {_first_line(exc)}")


def has_downgrade(revision: Script, dialect: str, bind: str | None = None) -> str | None:
    """Why ``revision`` cannot be undone (its upgrade changes something, its downgrade nothing), or None."""
    kw = {} if bind is None else {"engine_name": bind}
    try:
        up = capture(lambda: revision.module.upgrade(**kw), dialect)
    except CaptureError:
        return None
    try:
        down = capture(lambda: revision.module.downgrade(**kw), dialect)
    except CaptureError as exc:
        if "NotImplementedError" in str(exc):
            return "downgrade() raises NotImplementedError"
        return None
    if up and not down:
        return "downgrade() does nothing, but upgrade() changes the schema"
    return None


def _round_trip(
    config: Config,
    connection: sa.Connection,
    revision: Script,
    before: SchemaState,
    step: Step,
    script: ScriptDirectory | None = None,
) -> SchemaState | None:
    """Upgrade to ``revision``, downgrade and compare with ``before``, upgrade again; return the schema."""
    down_target = revision.down_revision

    def run(destination: str, downgrade: bool = False) -> Callable[[], None]:
        return lambda: run_scripts(
            config, connection, destination, downgrade=downgrade, script=script, bind=step.database
        )

    try:
        _timed(step.timings, "up", run(revision.revision))
    except Exception as exc:
        _failed(step, "upgrade", exc, connection)
        return None
    after = schema_state(connection)
    if isinstance(down_target, tuple | list):
        step.timings["down"] = 0.0
        return after  # A merge point: its parents were each checked on their own.
    target = down_target or "base"
    try:
        _timed(step.timings, "down", run(target, downgrade=True))
    except Exception as exc:
        _failed(step, "downgrade", exc, connection)
        return None
    restored = schema_state(connection)
    for difference in state_differences(before, restored):
        step.problems.append(f"after downgrade, {difference}")
    try:
        _timed(step.timings, "up again", run(revision.revision))
    except Exception as exc:
        _failed(step, "upgrade after downgrade", exc, connection)
        return None
    again = schema_state(connection)
    for difference in state_differences(after, again):
        step.problems.append(f"second upgrade differs: {difference}")
    return again


def _ordered_revisions(script: ScriptDirectory) -> list[Script]:
    return list(reversed(list(script.walk_revisions("base", "heads"))))


def compare_with_models(
    connection: sa.Connection, metadata: sa.MetaData, compare_args: Mapping[str, Any] | None = None
) -> list[Any]:
    """Alembic's structural comparison of ``connection``'s schema with ``metadata`` (empty list if equal)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    opts = {"compare_type": True, **{k: v for k, v in (compare_args or {}).items() if k in COMPARE_ARGS}}
    context = MigrationContext.configure(connection, opts={**opts, "target_metadata": metadata})
    return list(compare_metadata(context, metadata))


def describe_diff(diff: Any) -> str:
    """One Alembic diff tuple in words: ``add_column employee.nickname``."""
    if isinstance(diff, list):
        return "; ".join(describe_diff(d) for d in diff)
    kind, *rest = diff
    for item in rest:
        if isinstance(item, sa.Column) and item.table is not None:
            return f"{kind} {item.table.name}.{item.name}"
    for item in rest:
        if isinstance(item, sa.Table):
            return f"{kind} {item.name}"
        if isinstance(item, sa.Index | sa.Constraint):
            table = getattr(item, "table", None)
            return f"{kind} {item.name or ''} on {getattr(table, 'name', '?')}".replace("  ", " ")
    names = [str(item) for item in rest if isinstance(item, str) and item]
    return f"{kind} {'.'.join(names)}".strip()


def verify_history(
    config: Config,
    targets: Sequence[Target],
    *,
    scratch_url: str | None = None,
    compare_args: Mapping[str, Any] | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> Verification:
    """Replay the whole history on a scratch database, one per target database.

    Checks a single head; that every revision has a downgrade; for each step that
    upgrade works, downgrade restores exactly the previous schema and upgrade works
    again; and that head matches each target's models.

    :param scratch_url: an empty database to replay on instead of a temporary
        one; the targets use it one after the other (it is emptied in between).
    :param on_step: called after each step, to print progress as it happens.
    """
    from alembic.script import ScriptDirectory

    started = time.perf_counter()
    result = Verification()
    script = ScriptDirectory.from_config(config)
    heads = script.get_heads()
    if len(heads) > 1:
        result.problems.append(
            f"{len(heads)} heads ({', '.join(sorted(heads))}): run `merge heads` to join them."
        )
    revisions = _ordered_revisions(script)
    for target in targets:
        _replay(config, script, revisions, target, result, scratch_url, compare_args, on_step,
                compare_head=len(heads) <= 1)
    result.seconds = time.perf_counter() - started
    return result


def _replay(
    config: Config,
    script: ScriptDirectory,
    revisions: Sequence[Script],
    target: Target,
    result: Verification,
    scratch_url: str | None,
    compare_args: Mapping[str, Any] | None,
    on_step: Callable[[Step], None] | None,
    *,
    compare_head: bool,
) -> None:
    """One target's replay, base to head, on its own scratch database; steps and problems go to ``result``."""
    dialect = sa.make_url(scratch_url or target.engine.url).get_backend_name()
    with ExitStack() as scratch:
        connection = _scratch_connection(scratch, target.engine.url, scratch_url)
        before = schema_state(connection)
        broken = False
        for revision in revisions:
            step = Step(revision.revision, revision.doc or "", database=target.bind)
            missing = has_downgrade(revision, dialect, target.bind)
            if not broken:
                after = _round_trip(config, connection, revision, before, step, script)
                if after is None and step.column_limit:
                    # The dropped columns of earlier round trips still count on the table; a
                    # database upgraded straight to the previous step has each column once. A
                    # given --scratch-url is emptied on exit, so it can start again too.
                    scratch.close()
                    connection = _scratch_connection(scratch, target.engine.url, scratch_url)
                    step, after, before = _retry_on_fresh_scratch(
                        config, connection, revision, before, step, script
                    )
                if after is None:
                    broken = True  # Later steps cannot run on a half-migrated schema.
                else:
                    before = after
            else:
                step.replayed = False
                step.notes.append("not replayed: an earlier step failed")
            if missing:
                step.problems.insert(0, missing)
            result.steps.append(step)
            if on_step is not None:
                on_step(step)
        if not broken and target.metadata is not None and compare_head:
            diffs = compare_with_models(connection, target.metadata, compare_args)
            if diffs:
                shown = "; ".join(describe_diff(d) for d in diffs[:5])
                more = f" (and {len(diffs) - 5} more)" if len(diffs) > 5 else ""
                where = f"[{database_label(target.bind)}] " if target.bind is not None else ""
                result.problems.append(
                    f"{where}head does not match the models: {shown}{more}: run `migrate` to add a revision."
                )


def _scratch_connection(stack: ExitStack, live_url: sa.URL, scratch_url: str | None) -> sa.Connection:
    engine = stack.enter_context(scratch_engine(live_url, scratch_url))
    return stack.enter_context(engine.connect())


def _retry_on_fresh_scratch(
    config: Config,
    connection: sa.Connection,
    revision: Script,
    before: SchemaState,
    failed: Step,
    script: ScriptDirectory,
) -> tuple[Step, SchemaState | None, SchemaState]:
    """Upgrade the empty ``connection`` straight to ``revision``'s parent, then round-trip it again.

    Returns the step's new result, the schema after it (None if it failed) and the schema it started from.
    """
    step = Step(failed.revision, failed.message, database=failed.database)
    down = revision.down_revision
    if isinstance(down, tuple | list):
        return failed, None, before  # A merge point has no single parent to upgrade to.
    start = time.perf_counter()
    try:
        if down is not None:
            run_scripts(config, connection, down, script=script, bind=step.database)
    except Exception as exc:
        failed.problems.append(f"a fresh scratch database upgraded from base failed too: {_first_line(exc)}")
        return failed, None, before
    fresh = schema_state(connection)
    step.notes.append(
        f"{COLUMN_LIMIT_WORDS}: continued on a fresh scratch database upgraded from base to "
        f"{down or 'base'} in one go ({time.perf_counter() - start:.1f}s)"
    )
    for difference in state_differences(before, fresh):
        step.problems.append(f"upgrading from base in one go differs from step by step: {difference}")
    after = _round_trip(config, connection, revision, fresh, step, script)
    return step, after, fresh


@contextmanager
def scratch_copy(
    live: sa.Engine, scratch_url: str | None = None, version_table: str = "alembic_version"
) -> Iterator[sa.Connection]:
    """A scratch database holding an empty copy of ``live``'s schema and its recorded revision."""
    with scratch_engine(live.url, scratch_url) as engine, engine.connect() as connection:
        with live.connect() as source:
            copy_schema(source, connection, version_table)
        connection.commit()
        yield connection


def verify_new_revision(
    config: Config, revision: str, targets: Sequence[Target], *, version_table: str = "alembic_version"
) -> Verification:
    """Round-trip the just-written ``revision`` on a scratch copy of each target's live schema.

    :param version_table: where the live databases record their revision.
    """
    from alembic.script import ScriptDirectory

    started = time.perf_counter()
    result = Verification(scope="new revision upgraded, downgraded and upgraded again on a scratch copy")
    script = ScriptDirectory.from_config(config)
    new = script.get_revision(revision)
    assert new is not None
    for target in targets:
        step = Step(new.revision, new.doc or "", database=target.bind)
        try:
            with scratch_copy(target.engine, version_table=version_table) as connection:
                missing = has_downgrade(new, connection.dialect.name, target.bind)
                if missing:
                    step.problems.append(missing)
                _round_trip(config, connection, new, schema_state(connection), step, script)
        except ScratchError as exc:
            result.skipped = f"{exc} (--no-verify skips this step)"
            return result
        except Exception as exc:
            step.problems.append(f"could not verify: {_first_line(exc)}")
        result.steps.append(step)
    result.seconds = time.perf_counter() - started
    return result
