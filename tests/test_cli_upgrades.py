"""Running revisions through `flask db`: upgrade, downgrade, current, stamp, check, online and with --sql."""

from __future__ import annotations

from tests.harness import Project

USER = """
class User(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(128))
{extra}
"""
EMAIL = "    email = db.Column(db.String(120))"

# A hand-written revision that records what env.py received: --tag and -x.
AUDIT_REVISION = '''"""audit

Revision ID: audit
Revises: {down}
"""
from alembic import context, op
import sqlalchemy as sa

revision = "audit"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("audit", sa.Column("tag", sa.String(50)), sa.Column("x", sa.String(200)))
    x = context.get_x_argument(as_dictionary=True)
    pairs = ",".join(f"{{k}}={{v}}" for k, v in sorted(x.items()))
    row = {{"tag": context.get_tag_argument() or "", "x": pairs}}
    op.execute(sa.text("INSERT INTO audit (tag, x) VALUES (:tag, :x)").bindparams(**row))


def downgrade():
    op.drop_table("audit")
'''


def setup_two_revisions(project: Project) -> tuple[str, str]:
    """init, one revision creating `user`, one adding `user.email`; database left empty."""
    project.write_app(USER.format(extra=""))
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial", "--rev-id", "r1")
    project.flask("db", "upgrade")
    project.write_app(USER.format(extra=EMAIL))
    project.flask("db", "migrate", "-m", "email", "--rev-id", "r2")
    project.flask("db", "downgrade", "base")
    return "r1", "r2"


def test_upgrade_and_downgrade_step_by_step_keep_the_rows(project: Project) -> None:
    setup_two_revisions(project)
    assert project.tables() == {"alembic_version"}

    project.flask("db", "upgrade", "+1")
    assert project.version() == ["r1"]
    project.execute("INSERT INTO \"user\" (name) VALUES ('ada'), ('bob')")
    project.flask("db", "upgrade")
    assert project.version() == ["r2"]
    assert project.rows("user", order_by="id") == [
        {"id": 1, "name": "ada", "email": None},
        {"id": 2, "name": "bob", "email": None},
    ]
    project.flask("db", "current")
    assert project.flask("db", "current").stdout.split()[:2] == ["r2", "(head)"]

    project.flask("db", "downgrade")
    assert project.version() == ["r1"]
    assert project.rows("user", order_by="id") == [{"id": 1, "name": "ada"}, {"id": 2, "name": "bob"}]
    project.flask("db", "downgrade", "base")
    assert project.tables() == {"alembic_version"} and project.version() == []


def test_offline_sql_leaves_the_database_alone(project: Project) -> None:
    setup_two_revisions(project)
    project.flask("db", "upgrade", "r1")

    upgrade_sql = project.flask("db", "upgrade", "--sql", "r1:r2").stdout
    assert "ADD COLUMN email VARCHAR(120)" in upgrade_sql
    assert (
        "UPDATE alembic_version SET version_num='r2' WHERE alembic_version.version_num = 'r1'" in upgrade_sql
    )
    assert project.version() == ["r1"]

    full = project.flask("db", "upgrade", "--sql").stdout
    assert "CREATE TABLE alembic_version" in full and "CREATE TABLE" in full.split("alembic_version", 2)[-1]

    # downgrade --sql defaults to one step down from head.
    if project.dialect == "sqlite":
        # Batch mode must reflect the table to drop a SQLite column: Alembic refuses offline.
        refused = project.flask("db", "downgrade", "--sql", ok=False)
        assert "Error: This operation cannot proceed in --sql mode" in refused.stderr
    else:
        downgrade_sql = project.flask("db", "downgrade", "--sql").stdout
        assert "DROP COLUMN email" in downgrade_sql and "DROP TABLE" not in downgrade_sql
    # Lossless downgrades: the table goes into the archive instead of away.
    to_base = project.flask("db", "downgrade", "--sql", "r1:base").stdout
    assert "RENAME TO _evolve_archive_down_r1_user" in to_base
    assert project.version() == ["r1"] and "email" not in project.columns("user")


def test_tag_and_x_arguments_reach_the_migration(project: Project) -> None:
    project.write_app(USER.format(extra=""))
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial", "--rev-id", "r1")
    (project.migrations / "versions" / "audit.py").write_text(AUDIT_REVISION.format(down="r1"))

    project.flask("db", "-x", "who=group", "upgrade", "--tag", "release-7", "-x", "why=test")
    assert project.rows("audit") == [{"tag": "release-7", "x": "who=group,why=test"}]

    project.flask("db", "downgrade", "--tag", "ignored", "-x", "a=b")
    assert "audit" not in project.tables()

    offline = project.flask("db", "upgrade", "--sql", "--tag", "offline-tag", "-x", "k=v").stdout
    assert "'offline-tag', 'k=v'" in offline


def test_stamp_records_a_revision_without_running_it(project: Project) -> None:
    setup_two_revisions(project)
    project.flask("db", "upgrade", "r1")
    project.execute("INSERT INTO \"user\" (name) VALUES ('ada')")

    stamp_sql = project.flask("db", "stamp", "--sql", "r2").stdout
    assert "INSERT INTO alembic_version (version_num) VALUES ('r2')" in stamp_sql
    assert project.version() == ["r1"]

    project.flask("db", "stamp", "r2")
    assert project.version() == ["r2"] and "email" not in project.columns("user")
    project.flask("db", "stamp", "base")
    assert project.version() == []
    project.flask("db", "stamp", "--tag", "t", "r1")
    assert project.version() == ["r1"]

    # A revision the folder does not know: only --purge can overwrite it.
    project.execute("UPDATE alembic_version SET version_num = 'gone'")
    refused = project.flask("db", "stamp", "r1", ok=False)
    assert "stamp --purge" in refused.stderr
    project.flask("db", "stamp", "--purge", "r1")
    assert project.version() == ["r1"]
    assert project.rows("user") == [{"id": 1, "name": "ada"}]


def test_check_tells_whether_the_models_need_a_migration(project: Project) -> None:
    project.write_app(USER.format(extra=""))
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial")
    behind = project.flask("db", "check", ok=False)
    assert "Error: The database is not at the head revision: run `flask db upgrade` first" in behind.stderr

    project.flask("db", "upgrade")
    assert "No new upgrade operations detected" in project.flask("db", "check").output

    project.write_app(USER.format(extra=EMAIL))
    changed = project.flask("db", "check", ok=False)
    assert "Error: New upgrade operations detected" in changed.stderr
    assert "Traceback" not in changed.stderr


def test_version_table_and_other_configure_kwargs_apply_offline_too(project: Project) -> None:
    project.write_app(USER.format(extra=""), migrate_args="version_table='my_version'")
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial")

    offline = project.flask("db", "upgrade", "--sql").stdout
    # Flask-Migrate's env.py drops configure kwargs offline and writes alembic_version here.
    assert "CREATE TABLE my_version" in offline and "alembic_version" not in offline
    assert "alembic_version" not in project.flask("db", "stamp", "--sql", "head").stdout

    project.flask("db", "upgrade")
    assert project.tables() == {"user", "my_version"}
    project.execute("INSERT INTO \"user\" (name) VALUES ('ada')")
    assert project.flask("db", "current").stdout.split()[1] == "(head)"
    project.flask("db", "downgrade")
    assert project.tables() == {"my_version"}
