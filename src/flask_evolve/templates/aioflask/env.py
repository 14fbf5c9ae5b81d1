"""Alembic environment of this project: Flask-Evolve runs it, so package upgrades reach it."""

from flask_evolve.environment import run_migrations

run_migrations()
