"""`flask db init --multidb`: one migrations folder for the default database and every bind."""

from __future__ import annotations

from tests.harness import Project

MODELS = """
class User(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(128))


class Group(db.Model):
    __bind_key__ = "db1"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(128))
{extra}
"""
GROUP_LABEL = "    label = db.Column(db.String(40))"
BINDS = 'app.config["SQLALCHEMY_BINDS"] = {"db1": os.environ["BIND_URL"]}'


def migrated_multidb(project: Project, bind_url: str, extra: str = "") -> tuple[dict[str, str], Project]:
    """``MODELS`` (``extra``: lines for Group) migrated and upgraded; the env to use, the bind's Project."""
    env = {"BIND_URL": bind_url}
    project.write_app(MODELS.format(extra=extra), config=BINDS)
    project.flask("db", "init", "--multidb", env=env)
    project.flask("db", "migrate", "-m", "initial", env=env)
    project.flask("db", "upgrade", env=env)
    return env, Project(project.path, bind_url)


def test_tables_land_in_their_database_and_downgrade_works(
    project: Project, second_database_url: str
) -> None:
    env = {"BIND_URL": second_database_url}
    bind = Project(project.path, second_database_url)
    project.write_app(MODELS.format(extra=""), config=BINDS)
    project.flask("db", "init", "--multidb", env=env)
    project.flask("db", "migrate", "-m", "initial", env=env)
    project.flask("db", "upgrade", env=env)
    assert project.tables() == {"user", "alembic_version"}
    assert bind.tables() == {"group", "alembic_version"}
    project.execute("INSERT INTO \"user\" (name) VALUES ('ada')")
    bind.execute("INSERT INTO \"group\" (name) VALUES ('admins')")

    project.write_app(MODELS.format(extra=GROUP_LABEL), config=BINDS)
    added = project.flask("db", "migrate", "-m", "label", env=env)
    assert "Detected added column 'group.label'" in added.stderr
    script = next((project.migrations / "versions").glob("*_label.py")).read_text()
    default_part, bind_part = script.split("def upgrade_():")[1].split("def upgrade_db1():")
    assert "add_column" not in default_part and "add_column(sa.Column('label'" in bind_part
    project.flask("db", "upgrade", env=env)
    assert bind.rows("group") == [{"id": 1, "name": "admins", "label": None}]
    assert project.rows("user") == [{"id": 1, "name": "ada"}]
    assert "No changes in schema detected" in project.flask("db", "migrate", env=env).stderr

    project.flask("db", "downgrade", env=env)
    assert bind.rows("group") == [{"id": 1, "name": "admins"}]
    project.flask("db", "downgrade", "base", env=env)
    assert project.tables() == {"alembic_version"} == bind.tables()
    bind.dispose()


def test_offline_sql_writes_one_file_per_database(project: Project, second_database_url: str) -> None:
    env = {"BIND_URL": second_database_url}
    project.write_app(MODELS.format(extra=""), config=BINDS, migrate_args="version_table='my_version'")
    project.flask("db", "init", "--multidb", env=env)
    project.flask("db", "migrate", "-m", "initial", env=env)

    project.flask("db", "upgrade", "--sql", env=env)
    default_sql = (project.path / ".sql").read_text()
    bind_sql = (project.path / "db1.sql").read_text()
    assert "CREATE TABLE my_version" in default_sql and "CREATE TABLE my_version" in bind_sql
    assert 'CREATE TABLE "user"' in default_sql or "CREATE TABLE user" in default_sql
    assert 'CREATE TABLE "group"' in bind_sql and "user" not in bind_sql.replace("my_version", "")
    assert "user" not in project.tables()
