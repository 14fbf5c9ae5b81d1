"""The exceptions Flask-Evolve raises, and the translation of Alembic's errors into one-line advice."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any


class MigrationError(Exception):
    """A command could not do what was asked; the message says what to do next.

    The programmatic commands (``flask_evolve.upgrade()`` …) raise this where
    Flask-Migrate would call ``sys.exit(1)``, so an app can call them at start-up
    and decide itself what a failure means.
    """

    exit_code = 1


class NoDatabaseError(MigrationError):
    """``Migrate`` was never given a database object."""


class NoChangesError(MigrationError):
    """``migrate --exit-code`` found nothing to write."""


class CheckError(MigrationError):
    """``check`` found something out of step; the exit code says what.

    1: the models have changes no migration covers (as in Flask-Migrate);
    3: the database is not at the head revision;
    4: the database differs from what its recorded revision should look like (drift);
    5: the check could not run (the message says why: an unreachable database, or ``check --drift``
       could not compare the database with its recorded revision).
    """

    MODELS_CHANGED = 1
    NOT_AT_HEAD = 3
    DRIFT = 4
    NOT_CHECKED = 5

    def __init__(self, message: str, exit_code: int = MODELS_CHANGED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UserInputError(MigrationError):
    """A revision argument, option or file given by the user is wrong."""

    exit_code = 2


_MULTIPLE_HEADS = re.compile(r"Multiple head revisions are present|Multiple heads are present")
_UNKNOWN_DB_REVISION = re.compile(r"Can't locate revision identified by '([^']+)'")


def explain_alembic_error(
    message: str,
    *,
    directory: str,
    command: str = "db",
    database_revisions: tuple[str, ...] = (),
    head_count: int = 1,
) -> str:
    """Turn an Alembic ``CommandError`` message into one line that says what to run next.

    :param message: the Alembic error text.
    :param directory: the migrations folder, for the advice.
    :param command: the CLI group name (``db`` unless renamed).
    :param database_revisions: the revisions the database records, if known,
        to tell an unknown database revision from a typo in an argument.
    :param head_count: how many heads the folder has, when the database is
        behind: upgrading cannot help while the history is split.
    """
    first_line = message.strip().splitlines()[0] if message.strip() else message
    flask_cmd = f"flask {command}"
    if "Path doesn't exist" in first_line or "No 'script_location' key found" in first_line:
        return (
            f"No migrations folder at '{directory}': run `{flask_cmd} init` to create it, "
            f"or pass -d/--directory."
        )
    if _MULTIPLE_HEADS.search(first_line):
        return (
            f"'{directory}' has more than one head revision: run `{flask_cmd} merge heads` "
            f"to join them, or name one (`{flask_cmd} heads` lists them)."
        )
    unknown = _UNKNOWN_DB_REVISION.search(first_line)
    if unknown:
        rev = unknown.group(1)
        if rev in database_revisions:
            return (
                f"The database is at revision '{rev}', which '{directory}' does not contain: "
                f"restore that revision file, or run `{flask_cmd} stamp --purge head` "
                f"if the schema already matches head."
            )
        return (
            f"No revision '{rev}' in '{directory}': `{flask_cmd} history` lists the revisions."
        )
    if "Target database is not up to date" in first_line and head_count > 1:
        return (
            f"'{directory}' has {head_count} head revisions and the database is not at all of them: "
            f"run `{flask_cmd} merge heads`, then `{flask_cmd} upgrade`, then try again."
        )
    if "Target database is not up to date" in first_line:
        return (
            f"The database is not at the head revision: run `{flask_cmd} upgrade` first, "
            f"then try again."
        )
    if first_line.startswith("Cycle is detected in revisions") or "Dependency cycle" in first_line:
        return (
            f"{first_line.rstrip('.')}: fix their down_revision values in '{directory}' so that "
            f"the history runs from one base to its head."
        )
    if first_line == "Range revision not allowed":
        return (
            "A range (start:end) only works with --sql (offline SQL); to migrate the database, "
            "give one target revision."
        )
    if first_line.startswith("Directory ") and "already exists" in first_line:
        return f"{first_line.rstrip('.')}: it is already a migrations folder, nothing to do."
    return first_line


#: Names of URL query / libpq connection-string parameters that hold a credential
#: (password, sslpassword, passwd, pwd, a token or secret).
_SECRET_NAME = r"[\w.-]*(?:pass(?:word|wd)?|pwd|secret|token)[\w.-]*"
#: user:password@ in a URL (the password ends at the last @ before the host).
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s/]*@", re.I)
#: name=value in a URL query or a key=value connection string; the value may be quoted (and does not end
#: with the colon of "url: message").
_SECRET_PARAMETER = re.compile(
    rf"(?<![\w.-])({_SECRET_NAME})(\s*=\s*)"
    r"(\*\*\*|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|(?:[^\s&;,)'\"]*[^\s&;,)'\":])?)",
    re.I,
)
MASK = "***"


def hide_credentials(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every credential masked, for anything we print that may hold one.

    Masks the password of URLs (``user:***@host``), credential parameters in URL
    queries and connection strings (``?password=***``, ``sslpassword='***'``), and
    each literal value in ``secrets`` (the passwords of the app's own URLs, which a
    driver might echo in a form we do not recognise).
    """
    masked = _URL_PASSWORD.sub(rf"\1{MASK}@", text)
    masked = _SECRET_PARAMETER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", masked)
    for secret in sorted({s for s in secrets if s and len(s) > 2}, key=len, reverse=True):
        masked = masked.replace(secret, MASK)
    return masked


_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I)


def hide_url_credentials(text: str) -> str:
    """``text`` with the credentials of the URLs in it masked, and the rest left as it is."""
    return _URL.sub(lambda m: hide_credentials(m.group(0)), text)


def is_secret_name(name: str) -> bool:
    """Whether a URL query or connection parameter named ``name`` holds a credential."""
    return re.fullmatch(_SECRET_NAME, name, re.I) is not None


def display_url(url: Any) -> str:
    """A database URL (a string or SQLAlchemy URL) as we print it: every credential masked."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        rendered = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        rendered = str(url)
    return hide_credentials(rendered)


def url_secrets(url: Any) -> list[str]:
    """The credential values a database URL carries: its password and its secret query parameters."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return []
    secrets = [parsed.password] if parsed.password else []
    for name, value in parsed.query.items():
        if is_secret_name(name):
            secrets += [value] if isinstance(value, str) else list(value)
    return [str(s) for s in secrets]


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else text.strip()


def sqlstate(exc: BaseException) -> str | None:
    """A PostgreSQL error's SQLSTATE, through SQLAlchemy (psycopg 3 names it sqlstate, psycopg2 pgcode)."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def database_error_line(exc: BaseException) -> str:
    """The driver's own first line of a SQLAlchemy/DBAPI error, without the SQL, URLs or credentials."""
    orig = getattr(exc, "orig", None)
    if orig is not None:
        return hide_credentials(f"({type(orig).__module__}.{type(orig).__name__}) {_first_line(str(orig))}")
    return hide_credentials(_first_line(str(exc)))


#: Known causes of database errors, matched on the driver's text, with the fix.
_DATABASE_ADVICE: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        # PostgreSQL's lock table: one transaction locks every table, index and sequence it touches.
        re.compile(r"out of shared memory", re.I),
        "PostgreSQL's lock table is full (a migration is one transaction and locks every table, index and "
        "sequence it touches until it commits): raise max_locks_per_transaction or split the revision",
    ),
    (
        re.compile(r"cannot alter type of a column used by a view or rule", re.I),
        "a view (or rule) uses that column: drop it in that migration before the change "
        "(op.execute('DROP VIEW ...')) and create it again after, so the view follows the new type",
    ),
    (
        re.compile(r"because other objects depend on it", re.I),
        "other objects (a view, another table's foreign key) depend on it: drop them in that migration "
        "before the change and create them again after",
    ),
    (
        re.compile(r"database is locked", re.I),
        "another process holds a lock on the SQLite database: close it (or wait), then try again",
    ),
    (
        re.compile(r"readonly database|read-only", re.I),
        "the database is read-only for this user: make the file and its folder writable",
    ),
    (
        re.compile(r"unable to open database file", re.I),
        "check that the folder of the SQLite file exists and is writable",
    ),
    (
        re.compile(r"password authentication failed|authentication failed|Access denied", re.I),
        "check the user name and password in SQLALCHEMY_DATABASE_URI",
    ),
    (
        re.compile(r"role \S+ does not exist", re.I),
        "check the user name in SQLALCHEMY_DATABASE_URI",
    ),
    (
        re.compile(r"database \S+ does not exist", re.I),
        "create the database first, or fix its name in SQLALCHEMY_DATABASE_URI",
    ),
    (
        re.compile(
            r"Connection refused|could not translate host name|Name or service not known|"
            r"No such file or directory|timeout expired|could not connect|connection .* failed",
            re.I,
        ),
        "check the host and port in SQLALCHEMY_DATABASE_URI and that the server is running",
    ),
    (
        re.compile(r"Cannot add a NOT NULL column with default value NULL", re.I),
        "SQLite adds a NOT NULL column in place only with a server default: give the column a "
        "server_default, or make it nullable",
    ),
    (
        re.compile(r"file is not a database|malformed", re.I),
        "the file is not a valid SQLite database: check SQLALCHEMY_DATABASE_URI, or restore a backup",
    ),
)


def database_advice(line: str) -> str | None:
    """The fix for a known database error line, if we know it."""
    for pattern, advice in _DATABASE_ADVICE:
        if pattern.search(line):
            return advice
    return None


#: A NOT NULL column left without a value: SQLite (table.column), PostgreSQL (column, relation).
_NOT_NULL = (
    (re.compile(r"NOT NULL constraint failed: [\"`]?([^\s.\"`]+)[\"`]?\.[\"`]?([^\s\"`]+)"), False),
    (re.compile(r'column "([^"]+)" of relation "([^"]+)" contains null values'), True),
    (re.compile(r'null value in column "([^"]+)" of relation "([^"]+)" violates not-null'), True),
)


def not_null_violation(line: str) -> tuple[str, str] | None:
    """``(table, column)`` when a database error says rows have no value for a NOT NULL column."""
    for pattern, column_first in _NOT_NULL:
        found = pattern.search(line)
        if found:
            first, second = found.group(1), found.group(2)
            return (second, first) if column_first else (first, second)
    return None


#: SQLite names the columns (``table.a, table.b``); an expression index is named ``index 'ix'`` instead.
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: ((?:[^\s.,']+\.[^\s,]+)(?:, [^\s.,']+\.[^\s,]+)*)")
#: PostgreSQL's DETAIL of a unique violation: ``Key (a, b)=(1, x) is duplicated.`` or ``already exists.``
_POSTGRESQL_KEY = re.compile(r"Key \((?P<columns>[^)]*)\)=")


def unique_violation(exc: BaseException) -> tuple[str, list[str]] | None:
    """``(table, columns)`` when a database error says rows repeat a value that must be unique."""
    orig = getattr(exc, "orig", None)
    if orig is None:
        return None
    found = _SQLITE_UNIQUE.search(_first_line(str(orig)))
    if found:
        pairs = [pair.split(".", 1) for pair in found.group(1).split(", ")]
        return pairs[0][0].strip('"`'), [column.strip('"`') for _, column in pairs]
    detail = _postgresql_detail(exc, "23505", _POSTGRESQL_KEY)
    if detail is None:
        return None
    table, key = detail
    return table, [column.strip().strip('"') for column in key.group("columns").split(",")]


#: PostgreSQL's DETAIL of a row pointing nowhere: ``Key (team_id)=(7) is not present in table "team".``
_POSTGRESQL_MISSING = re.compile(
    r'Key \((?P<columns>[^)]*)\)=\((?P<values>.*)\) is not present in table "(?P<table>[^"]+)"'
)


def _postgresql_diag(exc: BaseException, sqlstate: str) -> Any | None:
    """The server's error fields (psycopg 3 and psycopg2 both call them ``diag``) of an error of
    that SQLSTATE; None for any other error."""
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", getattr(orig, "pgcode", None)) != sqlstate:
        return None
    return getattr(orig, "diag", None)


def _postgresql_detail(exc: BaseException, sqlstate: str, pattern: re.Pattern[str]) -> tuple[str, Any] | None:
    """``(table, match of pattern in the DETAIL)`` of an error of that SQLSTATE."""
    diag = _postgresql_diag(exc, sqlstate)
    if diag is None:
        return None
    found = pattern.search(getattr(diag, "message_detail", None) or "")
    table = getattr(diag, "table_name", None)
    return (table, found) if found and table else None


def foreign_key_violation(exc: BaseException) -> tuple[str, str, str] | None:
    """``(table, first key as "column=value", referred table)`` when a PostgreSQL error says a row
    of ``table`` points at no row of the referred table (SQLite's check names them itself)."""
    detail = _postgresql_detail(exc, "23503", _POSTGRESQL_MISSING)
    if detail is None:
        return None
    table, missing = detail
    return table, f"{missing.group('columns')}={missing.group('values')}", missing.group("table")


#: PostgreSQL casting a column to an enum that lacks one of its values (alembic-postgresql-enum's
#: ``sync_enum_values`` wraps this in a ValueError).
_ENUM_VALUE = re.compile(r'invalid input value for enum (?P<enum>[^:]+): "(?P<value>.*)"')
_ALTERED_COLUMN = re.compile(
    r'ALTER TABLE\s+(?:"[^"]+"\.)?"?(?P<table>[^"\s]+)"?\s+ALTER COLUMN\s+"?(?P<column>[^"\s]+)"?'
)


def enum_value_violation(exc: BaseException) -> tuple[str, str, str, str] | None:
    """``(table, column, enum, value)`` when a column's rows hold a value its new enum type lacks."""
    cause: BaseException | None = exc
    while cause is not None:
        found = _ENUM_VALUE.search(_first_line(str(getattr(cause, "orig", None) or "")))
        column = _ALTERED_COLUMN.search(str(getattr(cause, "statement", None) or ""))
        if found and column:
            enum = found.group("enum").split(".")[-1].strip('"')
            return column.group("table"), column.group("column"), enum, found.group("value")
        cause = cause.__cause__ or cause.__context__
    return None


_SQLITE_CHECK = re.compile(r"CHECK constraint failed: (?P<name>.+)$")
_INSERTED_TABLE = re.compile(r'INSERT INTO\s+"?(?P<table>[^\s"(]+)"?', re.I)


def check_violation(exc: BaseException) -> tuple[str | None, str] | None:
    """``(table or None, constraint)`` when a database error says rows break a CHECK constraint."""
    orig = getattr(exc, "orig", None)
    if orig is None:
        return None
    found = _SQLITE_CHECK.search(_first_line(str(orig)))
    if found:
        inserted = _INSERTED_TABLE.search(str(getattr(exc, "statement", None) or ""))
        return (inserted.group("table") if inserted else None), found.group("name")
    diag = _postgresql_diag(exc, "23514")
    if diag is None:
        return None
    name = getattr(diag, "constraint_name", None)
    return (getattr(diag, "table_name", None), name) if name else None


def explain_database_error(exc: BaseException, *, database: str) -> str:
    """One line for a database error raised outside any migration script (connecting, reading the version).

    :param database: the database URL, rendered by :func:`display_url`.
    """
    line = database_error_line(exc)
    advice = database_advice(line)
    if advice:
        return f"Database error on {database}: {line}: {advice}."
    return f"Database error on {database}: {line}."


#: Alembic only warns about these, then fails obscurely (KeyError) or picks one file at random.
REVISION_MAP_WARNINGS = (
    r"Revision \S+ is present more than once",
    r"Revision \S+ referenced from .* is not present",
)
_DUPLICATE = re.compile(r"Revision (\S+) is present more than once")
_DANGLING = re.compile(r"Revision (\S+) referenced from (\S+)(?: -> (\S+))?.* is not present")


def explain_revision_map_warning(message: str, *, directory: str) -> str:
    """One line for a broken revision history that Alembic only warns about."""
    duplicate = _DUPLICATE.search(message)
    if duplicate:
        return (
            f"Two files in '{directory}' declare revision '{duplicate.group(1)}': give one of them "
            f"a new revision id (and point the down_revision that meant it at the new id)."
        )
    dangling = _DANGLING.search(message)
    if dangling:
        referrer = dangling.group(3) or dangling.group(2)
        return (
            f"Revision '{referrer.rstrip(',')}' has down_revision '{dangling.group(1)}', which no file in "
            f"'{directory}' declares: fix its down_revision (`flask db history` lists the revisions)."
        )
    return message.strip().splitlines()[0]
