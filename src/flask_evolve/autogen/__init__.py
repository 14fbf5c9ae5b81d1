"""Autogenerate intelligence: comparators and rewriters over Alembic's op tree; knows nothing of Flask."""
