"""Replay the migration history on a scratch database: up, down, up again, and compare with the models."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

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


@dataclass
class Step:
    """One revision's round trip: upgrade, downgrade back, upgrade again."""

    revision: str
    message: str
    timings: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        times = "  ".join(f"{name} {seconds * 1000:.0f}ms" for name, seconds in self.timings.items())
        verdict = "ok" if self.ok else "FAIL"
        text = f"  {verdict:<4} {self.revision}  {self.message[:40]:<40}  {times}".rstrip()
        return "\n".join([text, *(f"         {p}" for p in self.problems)])


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
        failed = sum(not s.ok for s in self.steps) + len(self.problems)
        verdict = "OK" if self.ok else f"FAILED ({failed} problem{'s' if failed != 1 else ''})"
        scope = self.scope or f"{len(self.steps)} revision(s) replayed"
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
                {"revision": s.revision, "message": s.message, "ok": s.ok, "timings": s.timings,
                 "problems": s.problems}
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
) -> None:
    """Upgrade (or downgrade) ``connection`` to ``destination`` with the scripts alone.

    The project's env.py is skipped on purpose: it connects to the app's own
    database, and the scripts do not need it to run.
    """
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    if script is None:
        script = ScriptDirectory.from_config(config)

    def steps(rev: Any, context: Any) -> Any:
        # The same step planning alembic.command.upgrade/downgrade use.
        if downgrade:
            return directory._downgrade_revs(destination, rev)
        return directory._upgrade_revs(destination, rev)

    directory = script
    with quiet_alembic(), EnvironmentContext(config, directory, fn=steps, destination_rev=destination) as env:
        env.configure(connection=connection, target_metadata=None)
        with env.begin_transaction():
            env.run_migrations()
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


def has_downgrade(revision: Script, dialect: str) -> str | None:
    """Why ``revision`` cannot be undone (its upgrade changes something, its downgrade nothing), or None."""
    try:
        up = capture(revision.module.upgrade, dialect)
    except CaptureError:
        return None
    try:
        down = capture(revision.module.downgrade, dialect)
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
        return lambda: run_scripts(config, connection, destination, downgrade=downgrade, script=script)

    try:
        _timed(step.timings, "up", run(revision.revision))
    except Exception as exc:
        step.problems.append(f"upgrade failed: {_first_line(exc)}")
        return None
    after = schema_state(connection)
    if isinstance(down_target, tuple | list):
        step.timings["down"] = 0.0
        return after  # A merge point: its parents were each checked on their own.
    target = down_target or "base"
    try:
        _timed(step.timings, "down", run(target, downgrade=True))
    except Exception as exc:
        step.problems.append(f"downgrade failed: {_first_line(exc)}")
        return None
    restored = schema_state(connection)
    for difference in state_differences(before, restored):
        step.problems.append(f"after downgrade, {difference}")
    try:
        _timed(step.timings, "up again", run(revision.revision))
    except Exception as exc:
        step.problems.append(f"upgrade after downgrade failed: {_first_line(exc)}")
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
    live_url: sa.URL | str,
    metadata: sa.MetaData | None,
    *,
    scratch_url: str | None = None,
    compare_args: Mapping[str, Any] | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> Verification:
    """Replay the whole history on a scratch database.

    Checks a single head; that every revision has a downgrade; for each step that
    upgrade works, downgrade restores exactly the previous schema and upgrade works
    again; and that head matches ``metadata``.

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
    dialect = sa.make_url(scratch_url or live_url).get_backend_name()
    with scratch_engine(live_url, scratch_url) as engine, engine.connect() as connection:
        before = schema_state(connection)
        broken = False
        for revision in _ordered_revisions(script):
            step = Step(revision.revision, revision.doc or "")
            missing = has_downgrade(revision, dialect)
            if missing:
                step.problems.append(missing)
            if not broken:
                after = _round_trip(config, connection, revision, before, step, script)
                if after is None:
                    broken = True  # Later steps cannot run on a half-migrated schema.
                else:
                    before = after
            result.steps.append(step)
            if on_step is not None:
                on_step(step)
        if not broken and metadata is not None and len(heads) <= 1:
            diffs = compare_with_models(connection, metadata, compare_args)
            if diffs:
                shown = "; ".join(describe_diff(d) for d in diffs[:5])
                more = f" (and {len(diffs) - 5} more)" if len(diffs) > 5 else ""
                result.problems.append(
                    f"head does not match the models: {shown}{more}: run `migrate` to add a revision."
                )
    result.seconds = time.perf_counter() - started
    return result


@contextmanager
def scratch_copy(live: sa.Engine, scratch_url: str | None = None) -> Iterator[sa.Connection]:
    """A scratch database holding an empty copy of ``live``'s schema and its recorded revision."""
    with scratch_engine(live.url, scratch_url) as engine, engine.connect() as connection:
        with live.connect() as source:
            copy_schema(source, connection)
        connection.commit()
        yield connection


def verify_new_revision(config: Config, revision: str, live: sa.Engine) -> Verification:
    """Round-trip the just-written ``revision`` on a scratch copy of the live schema."""
    from alembic.script import ScriptDirectory

    started = time.perf_counter()
    result = Verification(scope="new revision upgraded, downgraded and upgraded again on a scratch copy")
    script = ScriptDirectory.from_config(config)
    new = script.get_revision(revision)
    assert new is not None
    step = Step(new.revision, new.doc or "")
    try:
        with scratch_copy(live) as connection:
            missing = has_downgrade(new, connection.dialect.name)
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
