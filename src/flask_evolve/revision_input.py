"""What the user gives for a new revision file (its id and message), checked before Alembic sees it."""

from __future__ import annotations

import re

from flask_evolve.errors import UserInputError

#: Names Alembic resolves as symbols before it looks for a revision of that id.
RESERVED_REVISION_IDS = frozenset({"head", "heads", "base", "current"})

# ASCII only: the id becomes a file name, a Python string and a value in SQL statements.
_REVISION_ID = re.compile(r"[A-Za-z0-9_]+")

#: Alembic's ``alembic_version.version_num`` is VARCHAR(32): a longer id is written to a file
#: fine but only fails at ``upgrade`` (PostgreSQL: "value too long"), after the work is done.
MAX_REVISION_ID_LENGTH = 32


def checked_rev_id(rev_id: str | None) -> str | None:
    """``rev_id`` if it is safe to use as a revision id; else a one-line :class:`UserInputError`."""
    if rev_id is None:
        return None
    if not _REVISION_ID.fullmatch(rev_id):
        raise UserInputError(
            f"--rev-id {rev_id!r} is not a revision id: use only ASCII letters, digits and underscores "
            f"(or leave it out to get a generated one)."
        )
    if len(rev_id) > MAX_REVISION_ID_LENGTH:
        raise UserInputError(
            f"--rev-id '{rev_id}' is {len(rev_id)} characters long; the alembic_version table holds at most "
            f"{MAX_REVISION_ID_LENGTH}: choose a shorter id."
        )
    if rev_id.lower() in RESERVED_REVISION_IDS:
        raise UserInputError(
            f"--rev-id '{rev_id}' is a name Alembic reserves ({', '.join(sorted(RESERVED_REVISION_IDS))}): "
            f"choose another id."
        )
    return rev_id


def script_message(message: str | None) -> str | None:
    """``message`` escaped for the docstring a revision template puts it in.

    Python reads the escaped text back as the message itself (``Script.doc``, ``history``),
    and an ordinary message (no backslash, no triple quote, no trailing quote) is left as it
    is, so the file is the one Flask-Migrate writes. Escaping here, before any template,
    covers the ``script.py.mako`` of projects that came from Flask-Migrate too.
    """
    if message is None:
        return None
    if "\x00" in message:
        raise UserInputError(
            "-m/--message contains a NUL character, which a Python file cannot hold: remove it."
        )
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:
        raise UserInputError(
            "-m/--message is not valid text (undecodable bytes): give it in your terminal's encoding."
        ) from None
    escaped = message.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if escaped.endswith('"'):
        # A template that closes the docstring on the same line ("""${message}""") would read 4 quotes.
        escaped = escaped[:-1] + '\\"'
    return escaped
