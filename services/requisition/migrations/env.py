from alembic import context

from services.common.db import run_migrations

run_migrations(context.config)
