"""Alembic environment: runs synmon's migrations against the URL it is given."""

from alembic import context
from sqlalchemy import pool

from app.storage.db import include_name, make_engine
from app.storage.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "synmon passes the database URL to Alembic"
engine = make_engine(url, poolclass=pool.NullPool)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name(connection),
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
