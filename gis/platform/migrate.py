"""Run the alembic migrations programmatically (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from psycopg2 import sql
from sqlalchemy import text
from sqlalchemy.engine import Engine

from gis.platform.db import APP_ROLE, PUBLIC_ROLE
from gis.platform.settings import Settings

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def alembic_config(engine: Engine) -> Config:
    """Alembic config pointing at gis/migrations and the engine's database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Bring the schema to `revision` in one transaction; returns the revision reached."""
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return current_revision(engine) or "base"


def current_revision(engine: Engine) -> str | None:
    """Revision the database is at, or None when never migrated."""
    with engine.connect() as conn:
        has_table = conn.execute(text("SELECT to_regclass('public.alembic_version')")).scalar()
        if not has_table:
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def set_role_passwords(engine: Engine, settings: Settings) -> list[str]:
    """Give the runtime roles the passwords configured for an external server; names set."""
    done = []
    with engine.begin() as conn:
        for role, password in ((APP_ROLE, settings.db.app_password),
                               (PUBLIC_ROLE, settings.db.public_password)):
            if password:
                # ALTER ROLE takes no bind parameters: psycopg2.sql quotes name and literal.
                statement = sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password))
                with conn.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
                    cursor.execute(statement)
                done.append(role)
    return done
