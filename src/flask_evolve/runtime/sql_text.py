"""Literal SQL for ``op.execute`` and ``sa.text``: escape what ``text()`` would take for a bound parameter."""

from __future__ import annotations

import re

# sqlalchemy.text() reads ``:name`` as a bound parameter unless a word character, a colon or a
# backslash comes before it (so ``10:30`` and ``x::int`` stay), and it turns ``\:name`` into ``:name``.
# A literal must therefore escape both: a ``:name`` that would bind, and a ``\`` before a colon
# that would otherwise be eaten. The patterns mirror SQLAlchemy's own (sql/compiler.py BIND_PARAMS,
# BIND_PARAMS_ESC).
_BIND_LIKE = re.compile(r"(?<![:\w\\])(?=:\w+(?![:\w]))|(?<=\\)(?=:\w*(?![:\w]))")
_ESCAPED = re.compile(r"\\(:\w*)(?![:\w])")


def text_safe(sql: str) -> str:
    """``sql`` spelled so that ``sqlalchemy.text(result)`` runs exactly ``sql``, with no parameters.

    ``UPDATE t SET note = ':x'`` becomes ``UPDATE t SET note = '\\:x'``; SQL without such a
    colon (``'10:30'``, ``x::int``) comes back unchanged, so scripts stay readable.
    """
    return _BIND_LIKE.sub(lambda _match: "\\", sql)


def plain_sql(source: str) -> str:
    """What ``sqlalchemy.text(source)`` runs when it has no parameters: the inverse of :func:`text_safe`."""
    return _ESCAPED.sub(r"\1", source)
