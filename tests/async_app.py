"""A Flask app whose db object hands out AsyncEngines, as Alchemical's aio API does (aioflask templates)."""

from __future__ import annotations

ASYNC_APP = """\
import os

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.ext.asyncio import create_async_engine

from flask_evolve import Migrate

ASYNC_DRIVERS = {{"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg_async"}}


def async_url(url):
    url = sa.make_url(url)
    return url.set(drivername=ASYNC_DRIVERS[url.get_backend_name()])


class AsyncDatabase:
    \"\"\"What env.py files use of Alchemical's aio Alchemical: get_engine(), metadatas, bind_names().\"\"\"

    def __init__(self, url, binds=None):
        self.urls = {{None: async_url(url)}}
        self.urls.update({{name: async_url(bind) for name, bind in (binds or {{}}).items()}})
        self.metadatas = {{name: sa.MetaData() for name in self.urls}}
        self.engines_by_bind = {{}}

    @property
    def metadata(self):
        return self.metadatas[None]

    def get_engine(self, bind=None):
        if bind not in self.engines_by_bind:
            self.engines_by_bind[bind] = create_async_engine(self.urls[bind])
        return self.engines_by_bind[bind]

    def bind_names(self):
        return [name for name in self.urls if name is not None]


app = Flask(__name__)
binds = {{"db1": os.environ["BIND_URL"]}} if os.environ.get("BIND_URL") else None
db = AsyncDatabase(os.environ["DATABASE_URL"], binds)
migrate = Migrate(app, db)

user = sa.Table(
    "user",
    db.metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(128)),
{user_columns}
)
if binds:
    group = sa.Table(
        "group",
        db.metadatas["db1"],
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128)),
    )
"""


def async_app_source(*user_columns: str) -> str:
    """The app module's text; ``user_columns`` are extra ``sa.Column(...)`` source lines for ``user``."""
    return ASYNC_APP.format(user_columns="\n".join(f"    {column}," for column in user_columns))
