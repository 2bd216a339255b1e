"""Database engine, sessions and per-service Alembic migrations.

SQLite is the embedded default, PostgreSQL the production and CI database. Each service owns its
tables (named with the service as prefix) and its own Alembic history, recorded in its own version
table, so services migrate independently and never touch each other's tables.
Design: docs/design/schema.md
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlmodel import Session

from services.common.settings import Settings

SERVICES_DIR = Path(__file__).resolve().parent.parent


def make_engine(settings: Settings) -> Engine:
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            # WAL lets readers (the gateway's queries) run while the archive writes.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


@contextmanager
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as s:
        yield s


def ping(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False


def alembic_config(service: str, engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    config.set_main_option("version_table", f"alembic_version_{service}")
    config.attributes["engine"] = engine
    return config


def migrate(service: str, engine: Engine) -> None:
    """Bring the service's tables to the newest revision (idempotent)."""
    # "heads": a service may carry parallel branches of migrations (written at the same time).
    command.upgrade(alembic_config(service, engine), "heads")


def run_migrations(config: Config) -> None:
    """The body of every service's migrations/env.py (online mode only: we always have a DB)."""
    from alembic import context

    engine: Engine = config.attributes["engine"]
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            version_table=config.get_main_option("version_table"),
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
