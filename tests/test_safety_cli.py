"""The safety net through the real CLI: risk report, --dry-run, lint, verify, check, diagnostics, status."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.harness import Project
from tests.test_cli_multidb import BINDS, GROUP_LABEL, migrated_multidb
from tests.test_cli_multidb import MODELS as MULTIDB_MODELS

EMPLOYEE = """
class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False)
{extra}
"""
AGE = "    age = db.Column(db.Integer, nullable=True)"
AGE_NOT_NULL = "    age = db.Column(db.Integer, nullable=False)"

SCRIPT = '''"""{message}

Revision ID: {rev}
Revises: {down}
Create Date: 2026-01-01 00:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
{upgrade}


def downgrade():
{downgrade}
'''

CREATE_EMPLOYEE = """
    op.create_table(
        "employee",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
"""
ADD_AGE = """
    with op.batch_alter_table("employee") as batch_op:
        batch_op.add_column(sa.Column("age", sa.Integer(), nullable=True))
"""
DROP_AGE = """
    with op.batch_alter_table("employee") as batch_op:
        batch_op.drop_column("age")
"""


def write_revision(
    project: Project, rev: str, down: str | None, upgrade: str, downgrade: str = "pass", message: str = ""
) -> None:
    def body(code: str) -> str:
        return textwrap.indent(textwrap.dedent(code).strip(), "    ")

    (project.migrations / "versions" / f"{rev}_{message or rev}.py").write_text(
        SCRIPT.format(
            message=message or rev, rev=rev, down=down, upgrade=body(upgrade), downgrade=body(downgrade)
        )
    )


def history(project: Project, extra: str = AGE, **app: str) -> None:
    """A project at head with two hand-written revisions: employee, then employee.age."""
    project.write_app(EMPLOYEE.format(extra=extra), **app)
    project.flask("db", "init")
    write_revision(project, "r1", None, CREATE_EMPLOYEE, 'op.drop_table("employee")', "employee")
    write_revision(project, "r2", "r1", ADD_AGE, DROP_AGE, "age")


# -- the risk report at migrate time ------------------------------------------------------------


def test_migrate_counts_the_rows_a_change_trips_over_and_reports_risks_keeping_alembic_lines(
    project: Project,
) -> None:
    history(project)
    project.flask("db", "upgrade")
    project.execute("INSERT INTO employee (name, age) VALUES ('Ada', 36), ('Grace', NULL), ('Linus', NULL)")

    project.write_app(EMPLOYEE.format(extra=AGE_NOT_NULL))
    refused = project.flask("db", "migrate", "-m", "age required", ok=False)
    assert "employee.age becomes NOT NULL and 2 rows of employee have NULL in it" in refused.stderr
    migrate = project.flask("db", "migrate", "-m", "age required", "--fill", "employee.age=0")

    assert "Detected NOT NULL on column 'employee.age'" in migrate.stderr
    assert "employee" in migrate.stderr and "alter column age (NOT NULL)" in migrate.stderr
    assert "EV201" not in migrate.stderr  # the rows get --fill's value first
    if project.dialect == "postgresql":
        assert "EV304" in migrate.stderr
    assert "verify: OK" in migrate.stderr
    assert project.rows("employee", order_by="id")[1]["age"] is None


def test_migrate_verifies_the_new_step_before_anyone_upgrades(project: Project) -> None:
    history(project, extra="    age = db.Column(db.String(10))")
    write_revision(project, "r2", "r1", """
        with op.batch_alter_table("employee") as batch_op:
            batch_op.add_column(sa.Column("age", sa.String(10), nullable=True))
    """, DROP_AGE, "age")
    project.flask("db", "upgrade")

    project.write_app(EMPLOYEE.format(extra="    age = db.Column(db.Integer)"))
    migrate = project.flask("db", "migrate", "-m", "age int")

    assert "EV204" in migrate.stderr
    # The type guard gives PostgreSQL's ALTER a USING cast, so the new step passes on the scratch
    # copy of both databases (a PostgreSQL-only failure is seeded in the verify tests below).
    assert "verify: OK" in migrate.stderr
    if project.dialect == "postgresql":
        script = next((project.migrations / "versions").glob("*age_int.py")).read_text()
        assert "postgresql_using" in script
    assert project.version() == ["r2"]


def test_dry_run_shows_the_script_and_report_and_writes_nothing(sqlite_project: Project) -> None:
    project = sqlite_project
    history(project)
    project.flask("db", "upgrade")
    project.write_app(EMPLOYEE.format(extra=""))

    dry = project.flask("db", "migrate", "--dry-run")

    # The SQLite planner drops natively (op.drop_column('employee', 'age')), after archiving the values.
    assert "drop_column('employee', 'age')" in dry.stdout
    assert "def downgrade():" in dry.stdout
    assert "EV102" in dry.stderr
    written = sorted(p.name for p in (project.migrations / "versions").glob("*.py"))
    assert written == ["r1_employee.py", "r2_age.py"]

    real = project.flask("db", "migrate", "-m", "drop age", "--no-verify")
    assert "EV102" in real.stderr and "verify:" not in real.output
    assert len(list((project.migrations / "versions").glob("*.py"))) == 3


# -- lint -----------------------------------------------------------------------------------


def test_lint_flags_existing_scripts_and_can_be_silenced(sqlite_project: Project) -> None:
    project = sqlite_project
    history(project)
    write_revision(project, "r3", "r2", DROP_AGE, ADD_AGE, "drop age")

    lint = project.flask("db", "lint", ok=False)
    assert lint.returncode == 1
    assert "r3  EV102 error" in lint.stdout and "EV401" in lint.stdout
    assert project.flask("db", "lint", "r1:r2").returncode == 0

    as_json = project.flask("db", "lint", "--format", "json", "--fail-on", "notice", ok=False)
    report = json.loads(as_json.stdout)
    assert {(f["revision"], f["rule"]) for f in report["findings"]} == {("r3", "EV102"), ("r3", "EV401")}

    script = project.migrations / "versions" / "r3_drop age.py"
    script.write_text("# flask-evolve: allow EV102\n" + script.read_text())
    assert "EV102" not in project.flask("db", "lint").stdout

    script.write_text(script.read_text().replace("# flask-evolve: allow EV102\n", ""))
    project.write_app(EMPLOYEE.format(extra=AGE), migrate_args="lint_ignore=['EV102']")
    assert "EV102" not in project.flask("db", "lint").stdout


def test_lint_checks_data_migrations_that_use_get_bind(sqlite_project: Project) -> None:
    project = sqlite_project
    history(project, extra="    email = db.Column(db.String(80), nullable=False)")
    write_revision(project, "r3", "r2", """
        op.add_column("employee", sa.Column("email", sa.String(80), nullable=True))
        bind = op.get_bind()
        for id_, name in bind.execute(sa.text("SELECT id, name FROM employee")).fetchall():
            email = f"{name.lower()}@example.com"
            bind.execute(sa.text("UPDATE employee SET email = :e WHERE id = :i"), {"e": email, "i": id_})
        with op.batch_alter_table("employee") as batch_op:
            batch_op.alter_column("email", existing_type=sa.String(80), nullable=False)
            batch_op.drop_column("age")
    """, """
        with op.batch_alter_table("employee") as batch_op:
            batch_op.add_column(sa.Column("age", sa.Integer(), nullable=True))
            batch_op.drop_column("email")
    """, "email")
    # Needs a row to exist: offline there is none, so it cannot be followed to its end.
    write_revision(project, "r4", "r3", """
        count = op.get_bind().execute(sa.text("SELECT count(*) FROM employee")).scalar()
        if count > 0:
            op.drop_column("employee", "email")
    """, "pass", "needs rows")

    lint = project.flask("db", "lint", "--format", "json", ok=False)
    report = json.loads(lint.stdout)
    assert {(f["revision"], f["rule"]) for f in report["findings"]} >= {("r3", "EV201"), ("r3", "EV102")}
    assert list(report["uncaptured"]) == ["r4"] and "TypeError" in report["uncaptured"]["r4"]
    assert "Traceback" not in lint.stderr
    text = project.flask("db", "lint", ok=False).stdout
    assert "r4  not checked: its upgrade() could not be captured (TypeError" in text

    project.flask("db", "upgrade", "r2")
    project.execute("INSERT INTO employee (name, age) VALUES ('Ada', 36)")
    project.flask("db", "upgrade", "r3")
    assert project.rows("employee") == [{"id": 1, "name": "Ada", "email": "ada@example.com"}]


def test_lint_rules_lists_every_rule(sqlite_project: Project) -> None:
    sqlite_project.write_app(EMPLOYEE.format(extra=""))
    listing = sqlite_project.flask("db", "lint", "--rules").stdout
    for rule in ("EV101", "EV102", "EV103", "EV201", "EV202", "EV203", "EV204", "EV205", "EV301", "EV302",
                 "EV303", "EV304", "EV401"):
        assert rule in listing


# -- verify ---------------------------------------------------------------------------------


def test_verify_passes_a_sound_history(project: Project) -> None:
    history(project)
    result = project.flask("db", "verify")
    assert "ok   r1" in result.stdout and "ok   r2" in result.stdout
    assert "verify: OK: 2 revision(s)" in result.stdout
    as_json = json.loads(project.flask("db", "verify", "--format", "json").stdout)
    assert as_json["ok"] and [s["revision"] for s in as_json["steps"]] == ["r1", "r2"]
    assert project.tables() <= {"alembic_version"}  # the app's own database was not touched


def test_verify_catches_a_downgrade_that_does_not_restore_a_column(project: Project) -> None:
    history(project)
    write_revision(project, "r3", "r2", DROP_AGE, "pass  # forgot to add age back", "drop age")
    project.write_app(EMPLOYEE.format(extra=""))

    result = project.flask("db", "verify", ok=False)
    assert "FAIL r3" in result.stdout
    assert "after downgrade, column employee.age is missing" in result.stdout
    assert "downgrade() does nothing" in result.stdout


def test_verify_compares_server_defaults_whatever_their_spelling(project: Project) -> None:
    history(project, extra="    age = db.Column(db.Integer)\n    nickname = db.Column(db.String(30))")
    write_revision(project, "r2", "r1", """
        with op.batch_alter_table("employee") as batch_op:
            batch_op.add_column(sa.Column("age", sa.Integer(), server_default="0", nullable=True))
    """, DROP_AGE, "age")
    drop_default = """
        with op.batch_alter_table("employee") as batch_op:
            batch_op.alter_column("age", existing_type=sa.Integer(), server_default=None)
            batch_op.add_column(sa.Column("nickname", sa.String(30), nullable=True))
    """
    # The default comes back written as 0 where r2 wrote '0': the same default.
    write_revision(project, "r3", "r2", drop_default, """
        with op.batch_alter_table("employee") as batch_op:
            batch_op.drop_column("nickname")
            batch_op.alter_column("age", existing_type=sa.Integer(), server_default=sa.text("(0)"))
    """, "no default")
    assert "verify: OK: 3 revision(s)" in project.flask("db", "verify").stdout

    write_revision(project, "r3", "r2", drop_default, """
        with op.batch_alter_table("employee") as batch_op:
            batch_op.drop_column("nickname")
    """, "no default")
    result = project.flask("db", "verify", ok=False)
    assert "FAIL r3" in result.stdout
    assert "after downgrade, column employee.age has no server default, expected server default 0" in (
        result.stdout
    )
    project.flask("db", "upgrade")
    project.execute("INSERT INTO employee (name) VALUES ('Ada')")
    assert project.rows("employee") == [{"id": 1, "name": "Ada", "age": None, "nickname": None}]


def test_verify_catches_a_downgrade_that_does_not_restore_a_check_constraint(project: Project) -> None:
    history(project, extra=AGE + "\n    nickname = db.Column(db.String(30))")
    write_revision(project, "r2", "r1", """
        with op.batch_alter_table("employee") as batch_op:
            batch_op.add_column(sa.Column("age", sa.Integer(), nullable=True))
        with op.batch_alter_table("employee") as batch_op:
            batch_op.create_check_constraint("ck_employee_age", "age >= 0")
    """, """
        with op.batch_alter_table("employee") as batch_op:
            batch_op.drop_constraint("ck_employee_age", type_="check")
        with op.batch_alter_table("employee") as batch_op:
            batch_op.drop_column("age")
    """, "age")
    write_revision(project, "r3", "r2", """
        with op.batch_alter_table("employee") as batch_op:
            batch_op.drop_constraint("ck_employee_age", type_="check")
            batch_op.add_column(sa.Column("nickname", sa.String(30), nullable=True))
    """, """
        with op.batch_alter_table("employee") as batch_op:
            batch_op.drop_column("nickname")
    """, "no check")

    result = project.flask("db", "verify", ok=False)
    assert "ok   r2" in result.stdout and "FAIL r3" in result.stdout
    missing = [line for line in result.stdout.splitlines() if line.strip().startswith("after downgrade,")]
    assert len(missing) == 1 and "age >= 0" in missing[0] and missing[0].endswith("on employee is missing")

    project.flask("db", "upgrade", "r2")
    project.execute("INSERT INTO employee (name, age) VALUES ('Ada', 36)")
    with pytest.raises(Exception, match=r"(?i)check"):
        project.execute("INSERT INTO employee (name, age) VALUES ('Bob', -1)")
    assert project.rows("employee") == [{"id": 1, "name": "Ada", "age": 36}]


def test_verify_catches_a_missing_downgrade(sqlite_project: Project) -> None:
    project = sqlite_project
    history(project, extra=AGE + "\n    email = db.Column(db.String(80))")
    write_revision(
        project, "r3", "r2", 'op.add_column("employee", sa.Column("email", sa.String(80)))',
        'raise NotImplementedError("no way back")', "email",
    )
    result = project.flask("db", "verify", ok=False)
    assert "downgrade() raises NotImplementedError" in result.stdout
    assert "verify: FAILED" in result.stdout


def test_verify_catches_a_head_that_does_not_match_the_models(sqlite_project: Project) -> None:
    project = sqlite_project
    history(project, extra=AGE + "\n    nickname = db.Column(db.String(30))")
    result = project.flask("db", "verify", ok=False)
    assert "head does not match the models: add_column employee.nickname" in result.stdout


def test_verify_catches_two_heads(sqlite_project: Project) -> None:
    project = sqlite_project
    history(project)
    create_t = 'op.create_table("t", sa.Column("id", sa.Integer, primary_key=True))'
    write_revision(project, "r2b", "r1", create_t, 'op.drop_table("t")', "branch")
    result = project.flask("db", "verify", ok=False)
    assert "2 heads (r2, r2b)" in result.stdout


def text_age_then_integer(project: Project) -> None:
    """employee.age added as VARCHAR, then made INTEGER: SQLite's batch copy converts the values,
    PostgreSQL refuses without a USING clause."""
    history(project, extra="    age = db.Column(db.Integer)")
    write_revision(project, "r2", "r1", """
        with op.batch_alter_table("employee") as batch_op:
            batch_op.add_column(sa.Column("age", sa.String(10), nullable=True))
    """, DROP_AGE, "age")
    write_revision(project, "r3", "r2", """
        with op.batch_alter_table("employee") as batch_op:
            batch_op.alter_column("age", existing_type=sa.String(10), type_=sa.Integer())
    """, """
        with op.batch_alter_table("employee") as batch_op:
            batch_op.alter_column("age", existing_type=sa.Integer(), type_=sa.String(10))
    """, "age int")


def test_verify_catches_a_migration_that_fails_on_postgresql_only(project: Project) -> None:
    text_age_then_integer(project)
    if project.dialect == "sqlite":
        assert "verify: OK" in project.flask("db", "verify").stdout
    else:
        result = project.flask("db", "verify", ok=False)
        assert "FAIL r3" in result.stdout and "upgrade failed" in result.stdout
        assert "cannot be cast automatically" in result.stdout


@pytest.mark.postgresql
def test_a_sqlite_project_verifies_its_history_on_postgresql(
    sqlite_project: Project, postgres_url: str
) -> None:
    project = sqlite_project
    text_age_then_integer(project)
    result = project.flask("db", "verify", "--scratch-url", postgres_url, ok=False)
    assert "FAIL r3" in result.stdout and "cannot be cast automatically" in result.stdout
    assert project.tables() <= {"alembic_version"}


def test_verify_replays_every_database_of_a_multidb_project(
    project: Project, second_database_url: str
) -> None:
    env = {"BIND_URL": second_database_url}
    bind = Project(project.path, second_database_url)
    project.write_app(MULTIDB_MODELS.format(extra=""), config=BINDS)
    project.flask("db", "init", "--multidb", env=env)
    initial = project.flask("db", "migrate", "-m", "initial", env=env)
    assert "[default] initial" in initial.stderr and "[db1] initial" in initial.stderr
    assert "verify: OK" in initial.stderr
    project.flask("db", "upgrade", env=env)
    bind.execute("INSERT INTO \"group\" (name) VALUES ('admins')")
    project.write_app(MULTIDB_MODELS.format(extra=GROUP_LABEL), config=BINDS)
    label = project.flask("db", "migrate", "-m", "label", env=env)
    assert "ok   " in label.stderr and "[db1] label" in label.stderr and "verify: OK" in label.stderr
    [label_rev] = [p for p in (project.migrations / "versions").glob("*_label.py")]
    revision = label_rev.name.split("_")[0]

    result = project.flask("db", "verify", env=env)
    for database in ("default", "db1"):
        assert f"[{database}] initial" in result.stdout and f"[{database}] label" in result.stdout
    assert "verify: OK: 2 revision(s) replayed on 2 databases" in result.stdout
    # Neither live database was touched.
    assert project.tables() == {"user", "alembic_version"} and bind.tables() == {"group", "alembic_version"}
    assert bind.rows("group") == [{"id": 1, "name": "admins"}]

    # The bind's downgrade forgets to drop the column it added: only db1's step fails.
    script = label_rev.read_text()
    downgrade_db1 = script.split("def downgrade_db1():")[1]
    label_rev.write_text(script.replace(downgrade_db1, "\n    pass\n"))
    broken = project.flask("db", "verify", env=env, ok=False)
    assert f"ok   {revision}  [default] label" in broken.stdout
    assert f"FAIL {revision}  [db1] label" in broken.stdout
    assert "after downgrade, column group.label is extra" in broken.stdout
    assert "verify: FAILED (1 problem)" in broken.stdout
    steps = json.loads(project.flask("db", "verify", "--format", "json", env=env, ok=False).stdout)["steps"]
    assert [(s["database"], s["ok"]) for s in steps] == [
        ("", True), ("", True), ("db1", True), ("db1", False)
    ]
    label_rev.write_text(script)

    # A model of the bind that no migration creates.
    project.write_app(
        MULTIDB_MODELS.format(extra=GROUP_LABEL + "\n    rank = db.Column(db.Integer)"),
        config=BINDS,
    )
    stale = project.flask("db", "verify", env=env, ok=False)
    assert "[db1] head does not match the models: add_column group.rank" in stale.stdout
    assert "[default] head does not match" not in stale.stdout

    project.flask("db", "upgrade", env=env)
    assert bind.rows("group") == [{"id": 1, "name": "admins", "label": None}]
    bind.dispose()


# -- check ----------------------------------------------------------------------------------


def test_check_tells_models_changed_not_at_head_and_drift_apart(project: Project) -> None:
    history(project)
    assert project.flask("db", "check", ok=False).returncode == 3  # not upgraded yet
    project.flask("db", "upgrade")
    assert "No new upgrade operations detected" in project.flask("db", "check").stdout

    project.execute("ALTER TABLE employee ADD COLUMN nickname VARCHAR(30)")
    drift = project.flask("db", "check", ok=False)
    assert drift.returncode == 4
    assert "column employee.nickname is extra" in drift.stderr
    assert "changed outside migrations" in drift.stderr
    project.execute("ALTER TABLE employee DROP COLUMN nickname")

    # Added by hand to the database and to the models, but never to a migration.
    project.execute("ALTER TABLE employee ADD COLUMN email VARCHAR(80)")
    project.write_app(EMPLOYEE.format(extra=AGE + "\n    email = db.Column(db.String(80))"))
    assert project.flask("db", "check").returncode == 0
    assert project.flask("db", "check", "--drift", ok=False).returncode == 4
    project.execute("ALTER TABLE employee DROP COLUMN email")

    changed = project.flask("db", "check", ok=False)
    assert changed.returncode == 1
    assert "New upgrade operations detected: add_column employee.email" in changed.stderr


FILTERS = (
    "version_table='my_version', "
    "include_object=lambda obj, name, kind, reflected, other: not (kind == 'table' and name == 'legacy'), "
    "include_name=lambda name, kind, parents: not (kind == 'column' and name.startswith('tmp_'))"
)


def test_check_looks_at_every_database_of_a_multidb_project(
    project: Project, second_database_url: str
) -> None:
    env, bind = migrated_multidb(project, second_database_url)
    bind.execute("INSERT INTO \"group\" (name) VALUES ('admins')")
    assert "No new upgrade operations detected" in project.flask("db", "check", "--drift", env=env).stdout

    # A column added by hand to the bind only: drift, named with its database.
    bind.execute("ALTER TABLE \"group\" ADD COLUMN nickname VARCHAR(30)")
    drifted = project.flask("db", "check", env=env, ok=False)
    assert drifted.returncode == 4
    assert "The database db1 differs from what revision" in drifted.stderr
    assert "group.nickname" in drifted.stderr and "Traceback" not in drifted.stderr
    bind.execute("ALTER TABLE \"group\" DROP COLUMN nickname")
    assert bind.rows("group") == [{"id": 1, "name": "admins"}]

    # A model of the bind changed: models changed, in db1.
    project.write_app(MULTIDB_MODELS.format(extra=GROUP_LABEL), config=BINDS)
    changed = project.flask("db", "check", env=env, ok=False)
    assert changed.returncode == 1
    assert "add_column group.label (database db1)" in changed.stderr

    # Migrated but the bind is behind (stamped back by hand): not at head, in db1.
    project.flask("db", "migrate", "-m", "label", env=env)
    project.flask("db", "upgrade", env=env)
    assert "No new upgrade operations detected" in project.flask("db", "check", env=env).stdout
    initial = next((project.migrations / "versions").glob("*_initial.py")).name.split("_")[0]
    bind.execute(f"UPDATE alembic_version SET version_num = '{initial}'")
    behind = project.flask("db", "check", env=env, ok=False)
    assert behind.returncode == 3
    assert f"The database db1 is at {initial}, not at head" in behind.stderr
    assert bind.rows("group") == [{"id": 1, "name": "admins", "label": None}]
    bind.dispose()


def test_drift_leaves_out_what_migrations_do_not_manage(project: Project) -> None:
    history(project, migrate_args=FILTERS)
    project.flask("db", "upgrade")
    project.execute("INSERT INTO employee (name, age) VALUES ('Ada', 36)")
    # A dropped column is archived (an _evolve_archive_ table), checked on a scratch copy that records
    # its revision in the app's own version table.
    project.write_app(EMPLOYEE.format(extra=""), migrate_args=FILTERS)
    assert "verify: OK" in project.flask("db", "migrate", "-m", "drop age").stderr
    project.flask("db", "upgrade")
    assert {"my_version", "employee"} <= project.tables(archive=True)
    assert any(t.startswith("_evolve_archive_") for t in project.tables(archive=True))

    # Made by hand, but left out of migrations by the app's include_object / include_name.
    project.execute("CREATE TABLE legacy (id INTEGER PRIMARY KEY)")
    project.execute("ALTER TABLE employee ADD COLUMN tmp_cache VARCHAR(10)")
    assert "No new upgrade operations detected" in project.flask("db", "check", "--drift").stdout
    assert "Drift:            no" in project.flask("db", "status").stdout

    project.execute("ALTER TABLE employee ADD COLUMN nickname VARCHAR(30)")
    drift = project.flask("db", "check", ok=False)
    assert drift.returncode == 4
    assert "(column employee.nickname is extra)" in drift.stderr
    status = json.loads(project.flask("db", "status", "--format", "json").stdout)
    assert status["drift"] is True and status["drift_details"] == ["column employee.nickname is extra"]
    assert project.rows("employee") == [{"id": 1, "name": "Ada", "tmp_cache": None, "nickname": None}]


# -- "No changes in schema detected" explained ---------------------------------------------


def test_empty_metadata_names_the_module_to_import(sqlite_project: Project) -> None:
    project = sqlite_project
    (project.path / "models.py").write_text(
        "from app import db\n\n\nclass Employee(db.Model):\n"
        "    id = db.Column(db.Integer, primary_key=True)\n"
    )
    project.write_app("")
    project.flask("db", "init")
    result = project.flask("db", "migrate")
    assert "No changes in schema detected" in result.stderr
    assert "nothing imported your models" in result.stderr and "`import models`" in result.stderr


def test_tables_made_by_create_all_propose_stamp_head(sqlite_project: Project) -> None:
    project = sqlite_project
    project.write_app(EMPLOYEE.format(extra=AGE))
    table = "CREATE TABLE employee (id INTEGER NOT NULL, name VARCHAR(80) {}, age INTEGER, PRIMARY KEY (id))"
    project.execute(table.format("NULL"))
    project.flask("db", "init")
    differing = project.flask("db", "migrate", "--dry-run").stderr
    assert "alter column name (NOT NULL)" in differing
    assert "no revision in alembic_version" in differing and "cannot build an empty database" in differing

    project.execute("DROP TABLE employee")
    project.execute(table.format("NOT NULL"))
    same = project.flask("db", "migrate")
    assert "No changes in schema detected" in same.stderr
    assert "records no revision in alembic_version" in same.stderr and "flask db stamp head" in same.stderr


def test_a_model_table_excluded_by_include_object_is_named(sqlite_project: Project) -> None:
    project = sqlite_project
    project.write_app(
        EMPLOYEE.format(extra=AGE),
        migrate_args="include_object=lambda obj, name, kind, reflected, other: name != 'employee'",
    )
    project.flask("db", "init")
    result = project.flask("db", "migrate")
    assert "Model table 'employee' is excluded by the include_object filter" in result.stderr


# -- status ---------------------------------------------------------------------------------


@pytest.mark.parametrize("drifted", [False, True])
def test_status_shows_revisions_pending_risks_and_drift(sqlite_project: Project, drifted: bool) -> None:
    project = sqlite_project
    history(project)
    write_revision(project, "r3", "r2", DROP_AGE, ADD_AGE, "drop age")
    project.flask("db", "upgrade", "r2")
    project.execute("INSERT INTO employee (name, age) VALUES ('Ada', 36)")
    if drifted:
        project.execute("CREATE INDEX ix_by_hand ON employee (name)")

    text = project.flask("db", "status").stdout
    assert "Current revision: r2" in text and "Head revision:    r3" in text
    assert "r3  drop age  [EV102 EV401]" in text
    assert "1 row of employee holds a value that will be lost" in text
    assert ("Drift:            yes" in text) is drifted

    status = json.loads(project.flask("db", "status", "--format", "json").stdout)
    assert status["current"] == ["r2"] and status["heads"] == ["r3"] and not status["up_to_date"]
    assert [p["revision"] for p in status["pending"]] == ["r3"]
    assert status["drift"] is drifted


def test_status_shows_the_archive_size(project: Project) -> None:
    history(project)
    project.flask("db", "upgrade")
    project.execute("INSERT INTO employee (name, age) VALUES ('Ada', 36), ('Grace', 45)")
    assert "Archive:          empty" in project.flask("db", "status", "--no-drift").stdout

    project.write_app(EMPLOYEE.format(extra=""))
    project.flask("db", "migrate", "-m", "drop age")
    project.flask("db", "upgrade")

    text = project.flask("db", "status").stdout
    assert "in 1 table(s), 2 row(s) kept for downgrades (`flask db archive` lists them" in text
    assert "Drift:            no" in text  # the archive table is not drift
    status = json.loads(project.flask("db", "status", "--format", "json").stdout)
    [table] = status["archive"]["tables"]
    assert (table["kept"], table["dropped_by"], table["rows"]) == ("employee.age", "upgrade", 2)
    assert table["bytes"] > 0 and status["archive"]["bytes"] == table["bytes"]
    assert status["archive"]["rows"] == 2
    assert project.rows("employee", order_by="id") == [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}]

    project.flask("db", "archive", "--purge")
    assert json.loads(project.flask("db", "status", "--format", "json", "--no-drift").stdout)["archive"] == {
        "tables": [], "rows": 0, "bytes": 0
    }


def test_the_safety_commands_work_from_python(sqlite_project: Project) -> None:
    import subprocess
    import sys

    project = sqlite_project
    history(project, extra="")
    write_revision(project, "r3", "r2", DROP_AGE, ADD_AGE, "drop age")
    script = textwrap.dedent("""
        import flask_evolve
        from app import app
        with app.app_context():
            print(sorted({f.rule for f in flask_evolve.lint().findings}))
            print(flask_evolve.verify().ok)
            print(flask_evolve.status(drift=False).as_dict()["pending"][0]["revision"])
            try:
                flask_evolve.check()
            except flask_evolve.CheckError as exc:
                print(exc.exit_code)
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=project.path, env=project.env(), capture_output=True, text=True
    )
    assert done.stdout.split("\n")[:4] == ["['EV102', 'EV401']", "True", "r1", "3"], done.stderr


def test_status_counts_the_archive_of_every_database(project: Project, second_database_url: str) -> None:
    env, bind = migrated_multidb(project, second_database_url, GROUP_LABEL)
    bind.execute("INSERT INTO \"group\" (name, label) VALUES ('admins', 'A'), ('staff', 'S')")
    assert "Archive:          empty" in project.flask("db", "status", "--no-drift", env=env).stdout

    # Only the bind drops a column: the archive is in db1, and status counts it.
    project.write_app(MULTIDB_MODELS.format(extra=""), config=BINDS)
    project.flask("db", "migrate", "-m", "drop label", env=env)
    project.flask("db", "upgrade", env=env)
    assert bind.rows("group", order_by="id") == [{"id": 1, "name": "admins"}, {"id": 2, "name": "staff"}]

    text = project.flask("db", "status", "--no-drift", env=env).stdout
    assert "in 1 table(s), 2 row(s) kept for downgrades" in text
    status = json.loads(project.flask("db", "status", "--format", "json", "--no-drift", env=env).stdout)
    [table] = status["archive"]["tables"]
    assert (table["database"], table["kept"], table["rows"]) == ("db1", "group.label", 2)
    assert status["archive"]["rows"] == 2 and status["archive"]["bytes"] == table["bytes"]

    # A drop in the default database too: both archives are counted.
    project.execute("INSERT INTO \"user\" (name) VALUES ('ada')")
    without_user_name = MULTIDB_MODELS.replace("    name = db.Column(db.String(128))\n", "", 1)
    project.write_app(without_user_name.format(extra=""), config=BINDS)
    project.flask("db", "migrate", "-m", "drop user name", env=env)
    project.flask("db", "upgrade", env=env)
    assert project.rows("user") == [{"id": 1}]
    text = project.flask("db", "status", "--no-drift", env=env).stdout
    assert "in 2 table(s) in 2 databases, 3 row(s) kept for downgrades" in text
    status = json.loads(project.flask("db", "status", "--format", "json", "--no-drift", env=env).stdout)
    assert [(t["database"], t["kept"]) for t in status["archive"]["tables"]] == [
        (None, "user.name"), ("db1", "group.label")
    ]
    assert status["archive"]["rows"] == 3

    project.flask("db", "archive", "--purge", env=env)
    assert "Archive:          empty" in project.flask("db", "status", "--no-drift", env=env).stdout
    bind.dispose()


STATUS_ENUM = (
    '    status = db.Column(db.Enum("draft", "live", name="status"), nullable=False, server_default="draft")'
)


@pytest.mark.postgresql
def test_verify_leaves_a_given_scratch_database_as_empty_as_it_found_it(
    postgres_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    scratch_url = request.getfixturevalue("postgres_server").create_database()
    project = Project(tmp_path, postgres_url)
    project.write_app(EMPLOYEE.format(extra=STATUS_ENUM))
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO employee (name, status) VALUES ('ada', 'live')")

    # Twice: what the first replay created (the enum type, sequences) must not trip up the second.
    for _ in range(2):
        assert "verify: OK" in project.flask("db", "verify", "--scratch-url", scratch_url).stdout
    scratch = Project(tmp_path, scratch_url)
    assert scratch.tables(archive=True) == set()
    assert scratch.query("SELECT typname FROM pg_type WHERE typtype = 'e'") == []
    assert scratch.query("SELECT relname FROM pg_class WHERE relkind = 'S'") == []

    missing = str(sa.make_url(scratch_url).set(database="no_such_database"))
    refused = project.flask("db", "verify", "--scratch-url", missing, ok=False)
    assert "Could not connect to the scratch database" in refused.stderr, refused
    assert "check --scratch-url" in refused.stderr and "Traceback" not in refused.stderr
    assert project.rows("employee") == [{"id": 1, "name": "ada", "status": "live"}]
    scratch.dispose()
    project.dispose()


def test_verify_of_a_multidb_project_uses_the_given_scratch_database_for_each_database(
    project: Project, second_database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if project.dialect == "sqlite":
        scratch_url = f"sqlite:///{tmp_path / 'scratch.db'}"
    else:
        scratch_url = request.getfixturevalue("postgres_server").create_database()
    env, bind = migrated_multidb(project, second_database_url)
    bind.execute("INSERT INTO \"group\" (name) VALUES ('admins')")
    project.write_app(MULTIDB_MODELS.format(extra=GROUP_LABEL), config=BINDS)
    project.flask("db", "migrate", "-m", "label", env=env)

    result = project.flask("db", "verify", "--scratch-url", scratch_url, env=env)
    assert "[default] label" in result.stdout and "[db1] label" in result.stdout
    assert "verify: OK: 2 revision(s) replayed on 2 databases" in result.stdout
    scratch = Project(tmp_path, scratch_url)
    assert scratch.tables(archive=True) == set()
    # The live databases were not touched: the bind is still at its first revision, with its row.
    assert bind.rows("group") == [{"id": 1, "name": "admins"}]
    assert project.tables() == {"user", "alembic_version"}
    scratch.dispose()
    bind.dispose()
