"""Running revisions through `flask db`: upgrade, downgrade, current, stamp, check, online and with --sql."""

from __future__ import annotations

import ast

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
    raw = repr(context.get_x_argument())
    op.execute(sa.text("INSERT INTO audit (tag, x) VALUES ('raw', :x)").bindparams(x=raw))


def downgrade():
    op.drop_table("audit")
'''


def context_x_list(project: Project) -> list[str]:
    """The -x values as env.py saw them, as a list (duplicates included)."""
    [(raw,)] = project.query("SELECT x FROM audit WHERE tag = 'raw'")
    return ast.literal_eval(raw)


R1 = '''"""initial

Revision ID: r1
Revises:
"""
from alembic import op
import sqlalchemy as sa

revision = "r1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade():
    op.drop_table("user")
'''
R2 = '''"""email

Revision ID: r2
Revises: r1
"""
from alembic import op
import sqlalchemy as sa

revision = "r2"
down_revision = "r1"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=120), nullable=True))


def downgrade():
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("email")
'''


def setup_two_revisions(project: Project) -> tuple[str, str]:
    """init, then the revisions `migrate` writes for `user` and then `user.email`; database left empty."""
    project.write_app(USER.format(extra=EMAIL))
    project.flask("db", "init")
    (project.migrations / "versions" / "r1_initial.py").write_text(R1)
    (project.migrations / "versions" / "r2_email.py").write_text(R2)
    return "r1", "r2"


def test_upgrade_and_downgrade_step_by_step_keep_the_rows(project: Project) -> None:
    setup_two_revisions(project)
    assert project.tables() == set()

    project.flask("db", "upgrade", "+1")
    assert project.version() == ["r1"]
    project.execute("INSERT INTO \"user\" (name) VALUES ('ada'), ('bob')")
    project.flask("db", "upgrade")
    assert project.version() == ["r2"]
    assert project.rows("user", order_by="id") == [
        {"id": 1, "name": "ada", "email": None},
        {"id": 2, "name": "bob", "email": None},
    ]
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

    # downgrade --sql defaults to one step down from head. These are hand-written
    # Flask-Migrate-style scripts (batch mode), so neither the SQLite planner nor the archive applies.
    if project.dialect == "sqlite":
        # Batch mode must reflect the table to drop a SQLite column: Alembic refuses offline.
        refused = project.flask("db", "downgrade", "--sql", ok=False)
        assert "Error: This operation cannot proceed in --sql mode" in refused.stderr
    else:
        downgrade_sql = project.flask("db", "downgrade", "--sql").stdout
        assert "DROP COLUMN email" in downgrade_sql and "DROP TABLE" not in downgrade_sql
    assert "DROP TABLE" in project.flask("db", "downgrade", "--sql", "r1:base").stdout
    assert project.version() == ["r1"] and "email" not in project.columns("user")


def test_tag_and_x_arguments_reach_the_migration(project: Project) -> None:
    project.write_app(USER.format(extra=""))
    project.flask("db", "init")
    project.flask("db", "migrate", "-m", "initial", "--rev-id", "r1")
    (project.migrations / "versions" / "audit.py").write_text(AUDIT_REVISION.format(down="r1"))

    project.flask("db", "-x", "who=group", "upgrade", "--tag", "release-7", "-x", "why=test")
    assert project.rows("audit")[0] == {"tag": "release-7", "x": "who=group,why=test"}

    project.flask("db", "downgrade", "--tag", "ignored", "-x", "a=b")
    assert "audit" not in project.tables()

    offline = project.flask("db", "upgrade", "--sql", "--tag", "offline-tag", "-x", "k=v").stdout
    assert "'offline-tag', 'k=v'" in offline

    # The group's -x alone reaches env.py once; -x values can come from the environment too.
    project.flask("db", "-x", "only=group", "upgrade")
    assert project.rows("audit")[0] == {"tag": "", "x": "only=group"}
    assert context_x_list(project) == ["only=group"]
    project.flask("db", "downgrade")
    from_env = project.flask("db", "upgrade", "--sql", env={"FLASK_DB_X_ARG": "a=1 b=2"}).stdout
    assert "'', 'a=1,b=2'" in from_env


def test_stamp_records_a_revision_without_running_it(project: Project) -> None:
    setup_two_revisions(project)
    project.flask("db", "upgrade", "r1")
    project.execute("INSERT INTO \"user\" (name) VALUES ('ada')")

    stamp_sql = project.flask("db", "stamp", "--sql", "r2").stdout
    assert "INSERT INTO alembic_version (version_num) VALUES ('r2')" in stamp_sql
    assert project.version() == ["r1"]

    project.flask("db", "stamp", "r2")
    assert project.version() == ["r2"] and "email" not in project.columns("user")
    project.flask("db", "stamp", "--tag", "t", "base")
    assert project.version() == []

    # A revision the folder does not know: only --purge can overwrite it.
    project.execute("INSERT INTO alembic_version (version_num) VALUES ('gone')")
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
    assert "Error: " in behind.stderr and "`flask db upgrade`" in behind.stderr
    assert "Traceback" not in behind.stderr

    project.flask("db", "upgrade")
    project.flask("db", "check")

    project.write_app(USER.format(extra=EMAIL))
    changed = project.flask("db", "check", ok=False)
    assert "Error: " in changed.stderr and "email" in changed.output
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
