"""The safety commands on histories that real projects have: never a false all-clear.

Every history here is one Flask-Evolve wrote itself with `flask db migrate`, edited afterwards
the way projects edit theirs (decorators, a broken step), and checked through the real CLI.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.harness import Project
from tests.postgres_server import PostgresServer
from tests.test_safety_cli import EMPLOYEE

NICKNAME = "    nickname = db.Column(db.String(30))"
NICKNAME_AND_EMAIL = NICKNAME + "\n    email = db.Column(db.String(80))"


def revision_files(project: Project) -> list[Path]:
    return sorted((project.migrations / "versions").glob("*.py"))


def revision_of(project: Project, message: str) -> tuple[str, Path]:
    """The id and file of the revision whose file name ends with ``message`` (spaces as ``_``)."""
    [path] = [p for p in revision_files(project) if p.stem.endswith(message.replace(" ", "_"))]
    return path.stem.split("_")[0], path


def generated_history(project: Project, *columns: str) -> None:
    """``employee``, then one revision per extra column line, each written by `flask db migrate`,
    upgraded, with rows in the table."""
    project.write_app(EMPLOYEE.format(extra=""))
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "employee")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO employee (name) VALUES ('Ada'), ('Grace')")
    for number, _ in enumerate(columns, start=1):
        project.write_app(EMPLOYEE.format(extra="\n".join(columns[:number])))
        project.flask("db", "migrate", "-m", f"column {number}")
        project.flask("db", "upgrade")


# -- verify and lint on decorated revisions (item 12) ----------------------------------------

# As ihatemoney's migrations/utils.py skip_if_sqlite: a decorator that may skip a step on one database.
SKIP_ON = '''

def skip_on(dialect_name):
    def decorate(func):
        {wraps}
        def wrapper(*args, **kwargs):
            if op.get_bind().engine.dialect.name == dialect_name:
                return None
            return func(*args, **kwargs)
        return wrapper
    return decorate
'''


def decorate_revisions(project: Project, *, wraps: bool) -> None:
    """Wrap every revision's upgrade() and downgrade() in ``skip_on("mssql")``."""
    decorator = SKIP_ON.format(wraps="@functools.wraps(func)" if wraps else "")
    for path in revision_files(project):
        source = path.read_text()
        imports = "import sqlalchemy as sa\n"
        source = source.replace(imports, f"import functools\n{imports}{decorator}", 1)
        source = re.sub(r"^def (upgrade|downgrade)\(\):", r'@skip_on("mssql")\n\g<0>', source, flags=re.M)
        path.write_text(source)


@pytest.mark.parametrize("wraps", [False, True], ids=["plain-wrapper", "functools-wraps"])
def test_verify_and_lint_check_decorated_revisions_as_single_database_ones(
    project: Project, wraps: bool
) -> None:
    generated_history(project, NICKNAME)
    decorate_revisions(project, wraps=wraps)

    result = project.flask("db", "verify")
    assert "verify: OK: 2 revision(s) replayed" in result.stdout
    assert "[default]" not in result.stdout  # not mistaken for a multi-database history
    steps = json.loads(project.flask("db", "verify", "--format", "json").stdout)["steps"]
    assert [(s["ok"], s["database"]) for s in steps] == [(True, None), (True, None)]

    lint = project.flask("db", "lint")
    assert "not checked" not in lint.stdout and "lint: OK" in lint.stdout

    # The decorated history still runs on the app's own database, rows and all.
    project.flask("db", "downgrade")
    project.flask("db", "upgrade")
    assert project.rows("employee", order_by="id") == [
        {"id": 1, "name": "Ada", "nickname": None},
        {"id": 2, "name": "Grace", "nickname": None},
    ]


# -- verify after a failed step (item 12) -----------------------------------------------------


def test_verify_reports_the_steps_after_a_failure_as_not_replayed(project: Project) -> None:
    generated_history(project, NICKNAME, NICKNAME_AND_EMAIL)
    broken, path = revision_of(project, "column 1")
    source = path.read_text()
    fails = '    op.drop_table("no_such_table")\n'
    path.write_text(source.replace("def upgrade():\n", f"def upgrade():\n{fails}", 1))
    last, _ = revision_of(project, "column 2")

    result = project.flask("db", "verify", ok=False)
    assert re.search(rf"^  FAIL {broken} ", result.stdout, re.M)
    assert re.search(rf"^  SKIP {last} ", result.stdout, re.M), result.stdout
    assert not re.search(rf"^  ok +{last} ", result.stdout, re.M)
    assert "not replayed: an earlier step failed" in result.stdout
    assert "verify: FAILED (1 problem, 1 step not replayed)" in result.stdout

    steps = json.loads(project.flask("db", "verify", "--format", "json", ok=False).stdout)["steps"]
    assert [(s["ok"], s["replayed"]) for s in steps] == [(True, True), (False, True), (False, False)]
    # The app's own database was not touched.
    assert project.rows("employee", order_by="id")[0] == {
        "id": 1, "name": "Ada", "nickname": None, "email": None
    }


# -- lossy type changes are refused by migrate (item 7) ---------------------------------------


def test_migrate_refuses_a_type_change_that_would_lose_a_stored_value_and_writes_nothing(
    project: Project,
) -> None:
    generated_history(project, "    code = db.Column(db.String(10))")
    project.execute("UPDATE employee SET code = 'A1' WHERE name = 'Ada'")
    project.execute("UPDATE employee SET code = '2' WHERE name = 'Grace'")
    written = revision_files(project)
    schema = project.schema()

    project.write_app(EMPLOYEE.format(extra="    code = db.Column(db.Integer)"))
    refused = project.flask("db", "migrate", "-m", "code int", ok=False)
    [line] = [line for line in refused.stderr.splitlines() if line.startswith("Error:")]
    assert line.startswith("Error: cannot change employee.code to INTEGER: ")
    assert "'A1'" in line or '"A1"' in line  # the value, in SQLite's or PostgreSQL's words
    assert "fix or remove such values first, or keep the column's type; nothing was written." in line
    assert "Traceback" not in refused.output
    assert revision_files(project) == written
    assert project.schema() == schema

    project.execute("UPDATE employee SET code = '1' WHERE name = 'Ada'")
    project.flask("db", "migrate", "-m", "code int")
    project.flask("db", "upgrade")
    assert [row["code"] for row in project.rows("employee", order_by="id")] == [1, 2]


# -- scratch databases of killed runs (item 14) ------------------------------------------------


def scratch_databases(project: Project) -> dict[str, str | None]:
    """Every Flask-Evolve scratch database on the server, with its comment."""
    rows = project.query(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
        "WHERE datname LIKE 'flask\\_evolve\\_scratch\\_%'"
    )
    return dict(rows)  # type: ignore[arg-type]


def wait_for(condition: Callable[[], str | None], what: str, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_later_verify_removes_the_scratch_database_of_a_killed_verify_and_no_other(
    project: Project, postgres_server: PostgresServer
) -> None:
    generated_history(project, NICKNAME)
    _, path = revision_of(project, "column 1")
    script = path.read_text()
    sleep = 'op.execute("SELECT pg_sleep(60)")'
    path.write_text(script.replace("def upgrade():\n", f"def upgrade():\n    {sleep}\n"))
    # A verify that runs now, in another process of this host: its scratch database stays.
    live = "flask_evolve_scratch_concurrent"
    postgres_server.create_database(live)
    with postgres_server._admin_engine().connect() as admin:
        admin.exec_driver_sql(
            f"COMMENT ON DATABASE {live} IS "
            f"'flask-evolve scratch database of process {os.getpid()} on {socket.gethostname()}'"
        )
    try:
        verify = subprocess.Popen(
            [sys.executable, "-m", "flask", "db", "verify"],
            cwd=project.path, env=project.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )

        def sleeping_in_its_scratch_database() -> str | None:
            busy = project.query(
                "SELECT datname FROM pg_stat_activity WHERE query = :sleep AND datname = ANY(:scratch)",
                {"sleep": "SELECT pg_sleep(60)", "scratch": list(scratch_databases(project))},
            )
            return busy[0][0] if busy else None

        killed = wait_for(sleeping_in_its_scratch_database, "verify to replay the sleeping step")
        verify.send_signal(signal.SIGKILL)
        verify.wait(timeout=30)
        assert killed in scratch_databases(project)  # nothing dropped it

        path.write_text(script)
        result = project.flask("db", "verify")
        assert "verify: OK: 2 revision(s)" in result.stdout
        [line] = [line for line in result.stderr.splitlines() if "scratch database" in line]
        assert line.endswith(
            f"Removed 1 scratch database(s) that killed Flask-Evolve runs on this host left behind: {killed}."
        )
        left = scratch_databases(project)
        assert killed not in left and live in left
    finally:
        postgres_server.drop_database(live)


def _owned_scratch_dir(root: Path, name: str, pid: int, host: str) -> Path:
    """A SQLite scratch directory as a run of process ``pid`` on ``host`` leaves it."""
    directory = root / f"flask-evolve-scratch-{name}"
    directory.mkdir()
    (directory / "owner").write_text(f"flask-evolve scratch database of process {pid} on {host}")
    (directory / "scratch.db").write_bytes(b"")
    return directory


@pytest.mark.parametrize("command", [("verify",), ("status",), ("check", "--drift")], ids=" ".join)
def test_the_next_run_removes_the_sqlite_scratch_copy_of_a_killed_verify_and_no_other(
    sqlite_project: Project, command: tuple[str, ...]
) -> None:
    project = sqlite_project
    generated_history(project, NICKNAME)
    before = project.schema(), project.rows("employee", order_by="id"), project.version()
    _, path = revision_of(project, "column 1")
    script = path.read_text()
    path.write_text(script.replace("def upgrade():\n", "def upgrade():\n    import time; time.sleep(60)\n"))
    # Its own temp directory, so that only this test's runs are in it.
    temp = project.path.parent / "temp"
    temp.mkdir()
    env = {"TMPDIR": str(temp)}
    gone_pid = subprocess.Popen(["true"])  # a pid that is surely gone
    gone_pid.wait()
    # A run still going (this test's own process), one of an older version (no owner file),
    # and one of another host: none of them may be touched.
    live = _owned_scratch_dir(temp, "live", os.getpid(), socket.gethostname())
    elsewhere = _owned_scratch_dir(temp, "elsewhere", gone_pid.pid, "some-other-host")
    unowned = temp / "flask-evolve-scratch-unowned"
    unowned.mkdir()
    others = {live, elsewhere, unowned}

    verify = subprocess.Popen(
        [sys.executable, "-m", "flask", "db", "verify"],
        cwd=project.path, env=project.env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )

    def replaying_in_its_scratch_copy() -> str | None:
        # Only that verify makes scratch copies in this temp directory.
        for directory in set(temp.iterdir()) - others:
            if (directory / "scratch.db").exists():
                return str(directory)
        return None

    killed = Path(wait_for(replaying_in_its_scratch_copy, "verify to replay the sleeping step"))
    verify.send_signal(signal.SIGKILL)
    verify.wait(timeout=30)
    assert killed.is_dir()  # nothing removed it

    path.write_text(script)
    result = project.flask("db", *command, env=env)
    [line] = [line for line in result.stderr.splitlines() if "scratch database" in line]
    assert line.endswith(
        "Removed 1 SQLite scratch database(s) that killed Flask-Evolve runs on this host left behind: "
        f"{killed}."
    ), result
    # The killed run's copy is gone, this run removed its own, the others are as they were.
    assert set(temp.iterdir()) == others
    assert (live / "scratch.db").exists() and (elsewhere / "scratch.db").exists()
    assert (project.schema(), project.rows("employee", order_by="id"), project.version()) == before


# -- a check that could not run is a failure (item 2) -----------------------------------------

# A data step that needs rows: offline, where queries find none, `None > 100` raises.
NEEDS_ROWS = """\
    rows = op.get_bind().execute(sa.text("SELECT count(*) FROM employee")).scalar()
    if rows > 100:
        raise RuntimeError("too many rows for one transaction")
"""


def test_lint_and_status_fail_when_a_revision_could_not_be_checked(project: Project) -> None:
    generated_history(project, NICKNAME)
    unchecked, path = revision_of(project, "column 1")
    path.write_text(path.read_text().replace("def upgrade():\n", f"def upgrade():\n{NEEDS_ROWS}", 1))

    lint = project.flask("db", "lint", ok=False)
    assert f"{unchecked}  not checked: its upgrade() could not be captured (TypeError: " in lint.stdout
    verdict = "lint: FAILED (1 revision not checked): no findings in 2 revision(s)."
    assert lint.stdout.splitlines()[-1] == verdict
    as_json = json.loads(project.flask("db", "lint", "--format", "json", ok=False).stdout)
    assert as_json["failed"] is True and list(as_json["uncaptured"]) == [unchecked]

    project.flask("db", "downgrade")
    status = project.flask("db", "status", ok=False)
    assert f"  {unchecked}  column 1" in status.stdout
    assert "      not checked: TypeError: " in status.stdout
    assert status.stdout.splitlines()[-1].startswith("Not checked: the risks of 1 pending revision")
    as_json = json.loads(project.flask("db", "status", "--format", "json", ok=False).stdout)
    assert as_json["complete"] is False and as_json["pending"][0]["uncaptured"].startswith("TypeError: ")
    # Nothing was changed by looking.
    assert project.version() == [revision_of(project, "employee")[0]]


def test_status_and_check_drift_fail_when_the_drift_check_could_not_run(project: Project) -> None:
    generated_history(project, NICKNAME)
    # Edited after it ran: its upgrade now reads a table that only the live database has.
    project.execute("CREATE TABLE legacy_nicknames (id INTEGER PRIMARY KEY, nick VARCHAR(30))")
    _, path = revision_of(project, "column 1")
    reads_legacy = '    op.execute("INSERT INTO legacy_nicknames (id, nick) SELECT id, name FROM employee")\n'
    path.write_text(path.read_text().replace("def upgrade():\n", f"def upgrade():\n{reads_legacy}", 1))

    status = project.flask("db", "status", ok=False)
    [drift] = [line for line in status.stdout.splitlines() if line.startswith("Drift:")]
    assert drift.startswith("Drift:            not checked (") and "legacy_nicknames" in drift
    assert status.stdout.splitlines()[-1].startswith("Not checked: drift")
    assert json.loads(project.flask("db", "status", "--format", "json", ok=False).stdout)["complete"] is False

    check = project.flask("db", "check", "--drift", ok=False)
    [line] = [line for line in check.stderr.splitlines() if line.startswith("Error:")]
    assert line.startswith("Error: Could not check the database for drift: ") and "legacy_nicknames" in line
    assert check.returncode == 5 and "Traceback" not in check.output
    assert "No new upgrade operations detected" not in check.output

    # Without the edit, the drift check runs again, and finds the table made by hand.
    path.write_text(path.read_text().replace(reads_legacy, ""))
    assert "table legacy_nicknames is extra" in project.flask("db", "status").stdout
    assert project.flask("db", "check", "--drift", ok=False).returncode == 4
    project.execute("DROP TABLE legacy_nicknames")
    assert "Drift:            no" in project.flask("db", "status").stdout
    project.flask("db", "check", "--drift")


# -- the risk report and lint on generated drops, renames and rebuilds (item 13) ----------------

STAFF = """
class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
{employee}


if os.environ.get("STAGE") != "after":
    class Dept(db.Model):
        id = db.Column(db.Integer, primary_key=True)
        title = db.Column(db.String(80))
"""
BEFORE = """\
    name = db.Column(db.String(80), nullable=False)
    code = db.Column(db.String(10))
    nickname = db.Column(db.String(30))"""
# name renamed, code made INTEGER, nickname and the dept table dropped: one SQLite rebuild of employee.
AFTER = """\
    full_name = db.Column(db.String(80), nullable=False, info={"renamed_from": "name"})
    code = db.Column(db.Integer)"""


def test_the_risk_report_and_lint_flag_drops_and_renames_with_what_the_archive_keeps(
    project: Project,
) -> None:
    project.write_app(STAFF.format(employee=BEFORE))
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "staff")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO dept (title) VALUES ('R&D'), ('Sales')")
    project.execute(
        "INSERT INTO employee (name, code, nickname) VALUES ('Ada', '1', 'ada'), ('Bob', '2', NULL)"
    )

    project.write_app(STAFF.format(employee=AFTER))
    after = {"STAGE": "after"}
    report = project.flask("db", "migrate", "-m", "contract", env=after).stderr
    revision, path = revision_of(project, "contract")
    if project.dialect == "sqlite":
        assert "_evolve_new_employee" in path.read_text()  # the changes are one table rebuild
    kept = "kept in the archive for the downgrade"
    assert f"EV101 error: drops table dept, {kept}: 2 rows leave the app" in report
    assert "EV401 notice: drops table dept: the running app version may still use it" in report
    assert (
        f"EV102 error: drops column employee.nickname, {kept}: 1 row of employee holds a value that "
        "leaves the app (only a downgrade brings it back)."
    ) in report
    assert "EV401 notice: renames column employee.name to full_name" in report
    assert "will be lost" not in report and "will be deleted" not in report
    for noise in ("check foreign keys", "execute SQL", "ensure lossless", "check archive"):
        assert noise not in report

    lint = project.flask("db", "lint", "--format", "json", env=after, ok=False)
    running = "the running app version may still use it"
    found = {(f["revision"], f["rule"], f["message"]) for f in json.loads(lint.stdout)["findings"]}
    assert {
        (revision, "EV101", f"drops table dept, {kept}"),
        (revision, "EV401", f"drops table dept: {running}"),
        (revision, "EV102", f"drops column employee.nickname, {kept}"),
        (revision, "EV401", f"drops column employee.nickname: {running}"),
        (revision, "EV401", f"renames column employee.name to full_name: {running}"),
    } <= found
    assert "EV102" not in {rule for _, rule, message in found if "code" in message}  # kept, converted

    project.flask("db", "upgrade", env=after)
    assert project.rows("employee", order_by="id") == [
        {"id": 1, "full_name": "Ada", "code": 1},
        {"id": 2, "full_name": "Bob", "code": 2},
    ]
    assert project.rows(next(t for t in project.tables(archive=True) if t.endswith("_dept"))) == [
        {"id": 1, "title": "R&D"}, {"id": 2, "title": "Sales"}
    ]


# -- PostgreSQL's own names for unnamed constraints, through archive and restore ---------------

EMAIL_UNIQUE = "    email = db.Column(db.String(120), unique=True)"
NO_CONVENTION = 'naming_convention="off"'


def key_constraints(project: Project, table: str) -> tuple[str | None, list[tuple[str | None, list[str]]]]:
    """The primary key's name and the unique constraints (name, columns): PostgreSQL's names for
    unnamed ones (``employee_email_key``); SQLite has none."""
    inspector = sa.inspect(project.engine)
    uniques = sorted((u["name"] or "", u["column_names"]) for u in inspector.get_unique_constraints(table))
    return inspector.get_pk_constraint(table)["name"], [(name or None, columns) for name, columns in uniques]


def test_verify_replays_the_drop_of_a_column_with_an_unnamed_unique_without_a_naming_convention(
    project: Project,
) -> None:
    project.write_app(EMPLOYEE.format(extra=EMAIL_UNIQUE), migrate_args=NO_CONVENTION)
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "employee")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO employee (name, email) VALUES ('Ada', 'ada@example.com'), ('Grace', NULL)")
    keys = key_constraints(project, "employee")
    if project.dialect == "postgresql":
        assert keys == ("employee_pkey", [("employee_email_key", ["email"])])

    project.write_app(EMPLOYEE.format(extra=""), migrate_args=NO_CONVENTION)
    project.flask("db", "migrate", "-m", "drop email")
    project.flask("db", "upgrade")
    assert project.rows("employee", order_by="id") == [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}]

    # The replay goes down past the creation of employee and up again before it drops the
    # column: the re-created table must have the constraint names the drop was written with.
    result = project.flask("db", "verify")
    assert "verify: OK: 2 revision(s) replayed" in result.stdout, result

    project.flask("db", "downgrade")
    assert project.rows("employee", order_by="id") == [
        {"id": 1, "name": "Ada", "email": "ada@example.com"},
        {"id": 2, "name": "Grace", "email": None},
    ]
    assert key_constraints(project, "employee") == keys
    project.execute("INSERT INTO employee (name, email) VALUES ('Linus', 'linus@example.com')")
    with pytest.raises(sa.exc.IntegrityError):
        project.execute("INSERT INTO employee (name, email) VALUES ('Eve', 'ada@example.com')")


#: Long enough that the archive's names for its constraints are shortened with a hash.
CERTIFICATES = """
class EmployeeTrainingCertificateRecord(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    code = db.Column(db.String(20), unique=True, nullable=False)
"""
CERTIFICATE_TABLE = "employee_training_certificate_record"


def test_a_table_archived_and_restored_keeps_the_names_postgresql_gave_its_unnamed_constraints(
    project: Project,
) -> None:
    project.write_app(EMPLOYEE.format(extra="") + CERTIFICATES, migrate_args=NO_CONVENTION)
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "tables")
    project.flask("db", "upgrade")
    project.execute(f"INSERT INTO {CERTIFICATE_TABLE} (code) VALUES ('first-aid'), ('forklift')")
    rows = [{"id": 1, "code": "first-aid"}, {"id": 2, "code": "forklift"}]
    keys, schema = key_constraints(project, CERTIFICATE_TABLE), project.schema()
    if project.dialect == "postgresql":
        assert keys == (f"{CERTIFICATE_TABLE}_pkey", [(f"{CERTIFICATE_TABLE}_code_key", ["code"])])

    # Down past the creation (archived), up again (re-created, rows copied back): same names,
    # not employee_training_certificate_record_pkey1 next to an archive holding the old ones.
    project.flask("db", "downgrade", "base")
    project.flask("db", "upgrade")
    assert project.rows(CERTIFICATE_TABLE, order_by="id") == rows
    assert (key_constraints(project, CERTIFICATE_TABLE), project.schema()) == (keys, schema)

    # Dropped (archived) and brought back by the downgrade, also by a drop written by hand
    # without the constraints= list: the archive's hashed names are mapped back.
    project.write_app(EMPLOYEE.format(extra=""), migrate_args=NO_CONVENTION)
    project.flask("db", "migrate", "-m", "drop certificates")
    _, path = revision_of(project, "drop certificates")
    for by_hand in (False, True):
        if by_hand:
            path.write_text(re.sub(r", constraints=\[[^]]*\]", "", path.read_text()))
            assert "constraints=" not in path.read_text()
        project.flask("db", "upgrade")
        assert CERTIFICATE_TABLE not in project.tables()
        assert "verify: OK" in project.flask("db", "verify").stdout
        project.flask("db", "downgrade")
        assert project.rows(CERTIFICATE_TABLE, order_by="id") == rows
        assert (key_constraints(project, CERTIFICATE_TABLE), project.schema()) == (keys, schema)


#: Renamed to this, employee keeps its sequence employee_id_seq (<name>_id_seq would pass 63 bytes).
LONG_NAME = "personnel_department_employee_records_kept_since_twenty_twen"
RENAMED_EMPLOYEE = f"""
class Person(db.Model):
    __tablename__ = "{LONG_NAME}"
    __table_args__ = {{"info": {{"renamed_from": "employee"}}}}
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False)
"""
NEW_EMPLOYEE = """
class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(80), nullable=False)
"""


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_restored_table_gets_back_the_numbered_sequence_postgresql_gave_it(project: Project) -> None:
    project.write_app(EMPLOYEE.format(extra=""))
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "employee")
    project.flask("db", "upgrade")
    project.write_app(RENAMED_EMPLOYEE)
    project.flask("db", "migrate", "-m", "rename")
    project.flask("db", "upgrade")
    project.write_app(RENAMED_EMPLOYEE + NEW_EMPLOYEE)
    project.flask("db", "migrate", "-m", "new employee")
    project.flask("db", "upgrade")
    project.execute("INSERT INTO employee (title) VALUES ('boss')")
    schema = project.schema()
    assert schema["employee"]["columns"]["id"]["default"] == "nextval('employee_id_seq1'::regclass)"

    project.write_app(RENAMED_EMPLOYEE)
    project.flask("db", "migrate", "-m", "drop employee")
    project.flask("db", "upgrade")
    assert "verify: OK" in project.flask("db", "verify").stdout
    project.flask("db", "downgrade")
    assert project.schema() == schema
    project.execute("INSERT INTO employee (title) VALUES ('clerk')")
    assert project.rows("employee", order_by="id") == [
        {"id": 1, "title": "boss"}, {"id": 2, "title": "clerk"}
    ]


def test_lint_flags_a_column_dropped_inside_a_rebuild_without_the_archive_too(project: Project) -> None:
    """Without the archive, only the downgrade (which rebuilds the old table) names the dropped column."""
    project.write_app(STAFF.format(employee=BEFORE))
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "staff")
    project.flask("db", "upgrade")
    project.execute(
        "INSERT INTO employee (name, code, nickname) VALUES ('Ada', '1', 'ada'), ('Bob', '2', NULL)"
    )
    project.write_app(STAFF.format(employee=AFTER))
    after = {"STAGE": "after"}
    project.flask("db", "migrate", "-m", "contract", "--no-archive", env=after)
    revision, path = revision_of(project, "contract")
    script = path.read_text()
    if project.dialect == "sqlite":
        assert "_evolve_new_employee" in script and "archive_columns" not in script  # one plain rebuild

    lint = project.flask("db", "lint", "--format", "json", env=after, ok=False)

    found = {(f["revision"], f["rule"], f["message"]) for f in json.loads(lint.stdout)["findings"]}
    running = "the running app version may still use it"
    assert {
        (revision, "EV102", "drops column employee.nickname"),
        (revision, "EV401", f"drops column employee.nickname: {running}"),
        (revision, "EV401", f"renames column employee.name to full_name: {running}"),
    } <= found, found
    # Kept (renamed, converted) columns are not taken for drops.
    assert not {message for _, rule, message in found if rule == "EV102" and "nickname" not in message}

    project.flask("db", "upgrade", env=after)
    assert set(project.columns("employee")) == {"id", "full_name", "code"}
    assert project.rows("employee", order_by="id") == [
        {"id": 1, "full_name": "Ada", "code": 1},
        {"id": 2, "full_name": "Bob", "code": 2},
    ]


# -- what the models do not know: a view on the live database ----------------------------------


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_migrate_verifies_on_a_copy_with_the_live_views_and_upgrade_says_what_to_do(project: Project) -> None:
    generated_history(project, "    code = db.Column(db.String(10))")
    project.execute("UPDATE employee SET code = '1'")
    # Made by hand (a report, say), with a function and a trigger the copy must carry too.
    project.execute("CREATE VIEW employee_codes AS SELECT id, code FROM employee WHERE name LIKE '%a%'")
    project.execute(
        "CREATE FUNCTION keep_code() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN NEW.code := coalesce(NEW.code, '0'); RETURN NEW; END $$"
    )
    project.execute(
        "CREATE TRIGGER employee_code BEFORE UPDATE OF code ON employee "
        "FOR EACH ROW EXECUTE FUNCTION keep_code()"
    )
    project.write_app(EMPLOYEE.format(extra="    code = db.Column(db.Integer)"))

    written = project.flask("db", "migrate", "-m", "code int")

    # The scratch copy had the view: the warning comes before `upgrade`, not from it.
    assert re.search(r"^  FAIL \w+ +code int", written.stderr, re.M), written.stderr
    assert "cannot alter type of a column used by a view or rule" in written.stderr
    assert "failed on a scratch copy of your schema" in written.stderr, written.stderr
    schema, rows = project.schema(), project.rows("employee", order_by="id")

    failed = project.flask("db", "upgrade", ok=False)

    [line] = [line for line in failed.stderr.splitlines() if line.startswith("Error:")]
    assert "cannot alter type of a column used by a view or rule" in line, line
    assert "drop it in that migration before the change (op.execute('DROP VIEW ...'))" in line, line
    assert "Traceback" not in failed.output
    assert (project.schema(), project.rows("employee", order_by="id")) == (schema, rows)
    assert project.query("SELECT count(*) FROM employee_codes") == [(2,)]

    # Without the view, the trigger on that column is what stops it: the copy has it too.
    project.execute("DROP VIEW employee_codes")
    for script in (project.migrations / "versions").glob("*code_int.py"):
        script.unlink()
    again = project.flask("db", "migrate", "-m", "code int")
    assert "cannot alter type of a column used in a trigger definition" in again.stderr, again.stderr
