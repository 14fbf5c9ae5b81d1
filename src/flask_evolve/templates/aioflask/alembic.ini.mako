# Flask-Evolve migrations configuration.
#
# The database URL comes from the Flask app, and Flask-Evolve shows Alembic's
# progress on stderr without touching your app's loggers. Add the usual
# [loggers]/[handlers]/[formatters] sections here to take over logging.

[alembic]
# template used to generate migration files
# file_template = %%(rev)s_%%(slug)s

# set to 'true' to run the environment during
# the 'revision' command, regardless of autogenerate
# revision_environment = false

[flask_evolve]
# Give constraints the models leave unnamed a name from SQLAlchemy's documented
# convention (ix_/uq_/ck_/fk_/pk_...), so later migrations can drop or change
# them. Projects without this line keep the names they have.
naming_convention = default
