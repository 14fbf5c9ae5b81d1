"""Hand-written revision files and a Flask-Migrate 4.x style env.py, for tests that need exact scripts."""

from __future__ import annotations

import textwrap
from pathlib import Path

REVISION_TEMPLATE = '''\
"""{message}

Revision ID: {rev}
Revises: {down}
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


def write_revision(
    migrations: Path,
    rev: str,
    down: str | None,
    upgrade: str,
    downgrade: str = "pass",
    *,
    message: str | None = None,
) -> Path:
    """Write ``versions/<rev>.py`` with the given ``upgrade()`` / ``downgrade()`` bodies."""
    body = REVISION_TEMPLATE.format(
        message=message or rev,
        rev=rev,
        down=down,
        upgrade=textwrap.indent(textwrap.dedent(upgrade).strip() or "pass", "    "),
        downgrade=textwrap.indent(textwrap.dedent(downgrade).strip() or "pass", "    "),
    )
    path = migrations / "versions" / f"{rev}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


#: The env.py Flask-Migrate 4.x writes into new projects (single database), written from its
#: documented behaviour: fileConfig logging, get_engine(), configure_args, one begin_transaction().
FLASK_MIGRATE_ENV = '''\
import logging
from logging.config import fileConfig

from flask import current_app

from alembic import context

config = context.config
fileConfig(config.config_file_name)
logger = logging.getLogger('alembic.env')


def get_engine():
    try:
        return current_app.extensions['migrate'].db.get_engine()
    except (TypeError, AttributeError):
        return current_app.extensions['migrate'].db.engine


def get_engine_url():
    try:
        return get_engine().url.render_as_string(hide_password=False).replace('%', '%%')
    except AttributeError:
        return str(get_engine().url).replace('%', '%%')


config.set_main_option('sqlalchemy.url', get_engine_url())
target_db = current_app.extensions['migrate'].db


def get_metadata():
    if hasattr(target_db, 'metadatas'):
        return target_db.metadatas[None]
    return target_db.metadata


def run_migrations_offline():
    url = config.get_main_option("sqlalchemy.url")
    context.configure(url=url, target_metadata=get_metadata(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, 'autogenerate', False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info('No changes in schema detected.')

    conf_args = current_app.extensions['migrate'].configure_args
    if conf_args.get("process_revision_directives") is None:
        conf_args["process_revision_directives"] = process_revision_directives

    connectable = get_engine()

    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=get_metadata(), **conf_args)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''

FLASK_MIGRATE_INI = """\
[alembic]

[loggers]
keys = root,sqlalchemy,alembic,flask_migrate

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARN
handlers = console
qualname =

[logger_sqlalchemy]
level = WARN
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[logger_flask_migrate]
level = INFO
handlers =
qualname = flask_migrate

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
"""


def use_flask_migrate_env(migrations: Path) -> None:
    """Replace the migrations folder's env.py and alembic.ini with Flask-Migrate 4.x's."""
    (migrations / "env.py").write_text(FLASK_MIGRATE_ENV)
    (migrations / "alembic.ini").write_text(FLASK_MIGRATE_INI)
