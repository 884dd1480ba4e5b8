"""Alembic environment for the catalog: connects with psycopg 3 through the conninfo handed over by
`media_assets.catalog.migrate`, and keeps its own version table so it can share a database with Dagster."""

import psycopg
from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

VERSION_TABLE = "media_catalog_version"

conninfo = context.config.attributes["conninfo"]
engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(conninfo), poolclass=NullPool)
with engine.connect() as connection:
    # Two processes starting at once (webserver, daemon, a run) must not both apply a revision.
    connection.exec_driver_sql("SELECT pg_advisory_lock(7243019)")
    connection.commit()
    context.configure(connection=connection, version_table=VERSION_TABLE, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
