"""The Flask extension object: Migrate, the per-app state in app.extensions['migrate'], Config."""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, g, has_app_context

from flask_evolve.errors import NoDatabaseError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

ConfigureCallback = Callable[["AlembicConfig"], "AlembicConfig"]

#: Options of ours that ride along in Migrate(**kwargs) but must not reach
#: Alembic's context.configure(), which rejects unknown keywords in some paths.
EVOLVE_OPTIONS = frozenset(
    {
        "rename_policy",
        "naming_convention",
        "archive_drops",
        "lock_timeout",
        "verify",
        "fast_autogenerate",
        "lint_ignore",
    }
)


def checked_lock_timeout(value: Any) -> float | None:
    """``Migrate(lock_timeout=...)`` as seconds; a ValueError naming the fix if it is not a wait.

    Checked when the app builds its Migrate, not when a migration first has to wait: nan and
    inf would otherwise wait for ever or crash, and a negative value give up at once, and only
    when another migration happens to hold the lock.
    """
    if value is None:
        return None
    seconds: float | None = None
    if not isinstance(value, bool):
        with contextlib.suppress(TypeError, ValueError):
            seconds = float(value)
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(
            f"Migrate(lock_timeout={value!r}) is not a number of seconds: give one such as 30, "
            f"or None to wait for another migration for ever."
        )
    return seconds


class _MigrateConfig:
    """What env.py files read from ``app.extensions['migrate']``.

    Every env.py that Flask-Migrate ever generated reads ``.db``,
    ``.configure_args`` and sometimes ``.metadata`` from here.
    """

    def __init__(self, migrate: Migrate, db: Any, **kwargs: Any) -> None:
        self.migrate = migrate
        self.db = db
        self.directory = migrate.directory
        self._given_configure_args = kwargs
        self._configure_args: dict[str, Any] | None = None

    @property
    def configure_args(self) -> dict[str, Any]:
        """``context.configure()`` arguments: the app's own, plus our comparators and the
        ``include_name`` hook that hides the archive's tables.

        ``process_revision_directives`` is here only if the app gave one: our autogenerate
        pipeline is passed by ``flask db migrate``/``revision`` to Alembic's command itself
        (see :func:`revision_hook`), because the env.py files of Flask-Migrate 2.0 to 4.0.4
        pass their own hook next to ``**configure_args`` and a second one is a TypeError.
        Built on first use, so that app start-up imports nothing of Alembic.
        """
        from flask_evolve.runtime.logs import keep_progress_visible

        # Old env.py files read this right after their fileConfig() call.
        keep_progress_visible()
        if self._configure_args is None:
            from flask_evolve.autogen import comparators
            from flask_evolve.autogen.archive import exclude_archive_tables

            args = dict(self._given_configure_args)
            # Detection Flask-Migrate leaves off; the app's own values win.
            args.setdefault("compare_server_default", comparators.compare_server_default)
            args.setdefault("autogenerate_plugins", list(comparators.DEFAULT_PLUGINS))
            args["include_name"] = exclude_archive_tables(args.get("include_name"))
            self._configure_args = args
        return self._configure_args

    def revision_hook(self) -> Any:
        """Our autogenerate pipeline, as the command-level ``process_revision_directives`` of
        Alembic's ``command.revision()``; Alembic calls it before the env.py's own hook."""
        from flask_evolve.autogen.pipeline import make_process_revision_directives
        from flask_evolve.environment import bind_names

        return make_process_revision_directives(
            self._given_configure_args.get("process_revision_directives"),
            database_names=bind_names,
            configure_args=self.configure_args,
        )

    @configure_args.setter
    def configure_args(self, value: dict[str, Any]) -> None:
        self._configure_args = value

    @property
    def metadata(self) -> Any:
        """The models' MetaData (old env.py files read it from here)."""
        return self.db.metadata


def _template_root() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


@functools.cache
def _alembic_config_class() -> type[AlembicConfig]:
    # Alembic is imported only when a command runs, never when the app imports
    # the extension, so that `flask --help` and app start-up stay cheap.
    from alembic.config import Config as AlembicConfig

    class Config(AlembicConfig):
        """Alembic's Config, with our templates as the default template directory."""

        def __init__(self, *args: Any, template_directory: str | None = None, **kwargs: Any):
            self.template_directory = template_directory
            super().__init__(*args, **kwargs)

        def get_template_directory(self) -> str:
            return self.template_directory or _template_root()

        def print_stdout(self, text: str, *arg: Any) -> None:
            # Alembic prints the database URL (`current -v`) with only its netloc password hidden.
            from flask_evolve.errors import hide_url_credentials

            super().print_stdout(hide_url_credentials(str(text) % arg if arg else str(text)))

    return Config


def __getattr__(name: str) -> Any:
    if name == "Config":
        return _alembic_config_class()
    raise AttributeError(name)


class Migrate:
    """Connects a Flask app and its Flask-SQLAlchemy ``db`` to Alembic migrations.

    Same signature and defaults as Flask-Migrate's ``Migrate``.

    :param app: the Flask app, or ``None`` to call :meth:`init_app` later.
    :param db: the Flask-SQLAlchemy (or Alchemical) database object.
    :param directory: the migrations folder, a ``str`` or ``os.PathLike``.
    :param command: the name of the CLI group, ``flask <command> ...``.
    :param compare_type: passed to Alembic's ``context.configure()``.
    :param render_as_batch: passed to Alembic's ``context.configure()``.
    :param kwargs: further ``context.configure()`` arguments, used online and
        offline (``--sql``) alike.
    """

    def __init__(
        self,
        app: Flask | None = None,
        db: Any = None,
        directory: str | os.PathLike[str] = "migrations",
        command: str = "db",
        compare_type: bool = True,
        render_as_batch: bool = True,
        **kwargs: Any,
    ) -> None:
        self.configure_callbacks: list[ConfigureCallback] = []
        self.db = db
        self.command = command
        self.directory = str(directory)
        checked_lock_timeout(kwargs.get("lock_timeout"))
        self.alembic_ctx_kwargs: dict[str, Any] = kwargs
        self.alembic_ctx_kwargs["compare_type"] = compare_type
        self.alembic_ctx_kwargs["render_as_batch"] = render_as_batch
        if app is not None:
            # Unlike Flask-Migrate, register even without a db, so that
            # `flask db` can say what is missing instead of "No such command".
            self.init_app(app, db, directory)

    def init_app(
        self,
        app: Flask,
        db: Any = None,
        directory: str | os.PathLike[str] | None = None,
        command: str | None = None,
        compare_type: bool | None = None,
        render_as_batch: bool | None = None,
        **kwargs: Any,
    ) -> None:
        """Register the extension and the ``flask db`` command group on ``app``."""
        self.db = db or self.db
        self.command = command or self.command
        self.directory = str(directory or self.directory)
        checked_lock_timeout(kwargs.get("lock_timeout"))
        self.alembic_ctx_kwargs.update(kwargs)
        if compare_type is not None:
            self.alembic_ctx_kwargs["compare_type"] = compare_type
        if render_as_batch is not None:
            self.alembic_ctx_kwargs["render_as_batch"] = render_as_batch
        if not hasattr(app, "extensions"):
            app.extensions = {}
        app.extensions["migrate"] = _MigrateConfig(self, self.db, **self.alembic_configure_args)

        from flask_evolve.cli import db as db_cli_group

        app.cli.add_command(db_cli_group, name=self.command)

    @property
    def alembic_configure_args(self) -> dict[str, Any]:
        """The ``context.configure()`` arguments, without Flask-Evolve's own options."""
        return {k: v for k, v in self.alembic_ctx_kwargs.items() if k not in EVOLVE_OPTIONS}

    @property
    def evolve_options(self) -> dict[str, Any]:
        """Flask-Evolve's own options given to the constructor or ``init_app``."""
        return {k: v for k, v in self.alembic_ctx_kwargs.items() if k in EVOLVE_OPTIONS}

    def configure(self, f: ConfigureCallback) -> ConfigureCallback:
        """Decorate a function that receives and returns the Alembic Config."""
        self.configure_callbacks.append(f)
        return f

    def call_configure_callbacks(self, config: AlembicConfig) -> AlembicConfig:
        for f in self.configure_callbacks:
            config = f(config)
        return config

    def require_db(self) -> Any:
        """Return ``db``, or explain how to pass it when it was never given."""
        if self.db is None:
            raise NoDatabaseError(
                "Migrate was never given a database: use Migrate(app, db) "
                "or call migrate.init_app(app, db)."
            )
        return self.db

    def get_config(
        self,
        directory: str | os.PathLike[str] | None = None,
        x_arg: str | Iterable[str] | None = None,
        opts: Iterable[str] | None = None,
    ) -> AlembicConfig:
        """Build the Alembic Config for ``directory`` (the default folder if ``None``)."""
        from flask_evolve.runtime import revision_cache

        # Long histories: heads/current/history read the revision map from a cache.
        revision_cache.install()
        directory = str(self.directory if directory is None else directory)
        config = _alembic_config_class()(os.path.join(directory, "alembic.ini"))
        config.set_main_option("script_location", directory)
        if config.cmd_opts is None:
            config.cmd_opts = argparse.Namespace()
        for opt in opts or []:
            setattr(config.cmd_opts, opt, True)
        if not hasattr(config.cmd_opts, "x"):
            x_values: list[str] = []
            if has_app_context():
                x_values.extend(getattr(g, "x_arg", None) or [])
            if isinstance(x_arg, str):
                x_values.append(x_arg)
            elif x_arg is not None:
                x_values.extend(x_arg)
            config.cmd_opts.x = x_values
        return self.call_configure_callbacks(config)
