"""Engines and sessions; the URL comes from settings or from the private cluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from gis.platform.cluster import PrivateCluster
from gis.platform.errors import DatabaseUnavailableError
from gis.platform.settings import Settings


def database_url(settings: Settings, *, dbname: str | None = None, start: bool = True) -> URL:
    """URL of the database: the configured one, or the private cluster's (started if asked)."""
    if settings.db.url:
        url = make_url(settings.db.url)
        return url.set(database=dbname) if dbname else url
    cluster = PrivateCluster(settings.cluster)
    status = cluster.up() if start else cluster.status()
    if not status.running:
        raise DatabaseUnavailableError(
            f"the private cluster in {status.data_dir} is not running; run `citygrid db up`"
        )
    return make_url(status.url(settings.cluster.user, dbname or settings.db.name))


APP_ROLE = "citygrid_app"
PUBLIC_ROLE = "citygrid_public"
Role = Literal["app", "public"]


def role_url(settings: Settings, role: Role, *, start: bool = True) -> URL:
    """URL the web app uses for `role`: runtime staff (`app`) or anonymous reads (`public`)."""
    explicit = settings.db.app_url if role == "app" else settings.db.public_url
    if explicit:
        return make_url(explicit)
    owner = database_url(settings, start=start)
    password = settings.db.app_password if role == "app" else settings.db.public_password
    # The private cluster trusts loopback connections, so its roles need no password.
    return owner.set(username=APP_ROLE if role == "app" else PUBLIC_ROLE, password=password)


def session_options(settings: Settings, role: Role) -> dict[str, str]:
    """Server settings of every connection of `role`'s pool: timeouts, and no JIT."""
    timeout = (settings.db.public_statement_timeout_ms if role == "public"
               else settings.db.statement_timeout_ms)
    # No JIT: the app's statements are short, and PostgreSQL compiles any plan costed above
    # jit_above_cost. A grid owner's cases tile (row-level security rules out the spatial index,
    # so the estimate is a sequential scan) spent ~500 ms compiling to run for ~20 ms.
    # constraint_exclusion off: the app has no inheritance or UNION ALL children for it to
    # prune, and with its default ('partition') PostgreSQL proves every CHECK of every monthly
    # partition of cases against a lookup by id: ~1.7 ms of planning at 18 months, ~0.5 off.
    return {"statement_timeout": str(timeout),
            "idle_in_transaction_session_timeout": str(settings.db.idle_in_transaction_timeout_ms),
            "jit": "off", "constraint_exclusion": "off"}


def libpq_options(options: dict[str, str]) -> str:
    """`options` as libpq's `-c name=value` string."""
    return " ".join(f"-c {name}={value}" for name, value in options.items())


def libpq_dsn(url: URL) -> str:
    """The same database as a plain postgresql:// DSN, for drivers other than SQLAlchemy's."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(url: URL | str, *, pool_size: int = 5,
                options: dict[str, str] | None = None) -> Engine:
    """Engine with pre-ping so the app survives a database restart; `options` per connection."""
    connect_args = {"options": libpq_options(options)} if options else {}
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size,
                         future=True, connect_args=connect_args)


def _admin_engine(url: URL) -> Engine:
    # CREATE/DROP DATABASE cannot run inside a transaction block.
    return create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT",
                         poolclass=NullPool)


def ensure_database(url: URL) -> bool:
    """Create the database named in `url` if it does not exist; True when created."""
    admin = _admin_engine(url)
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                  {"n": url.database}).scalar()
            if exists:
                return False
            conn.execute(text(f'CREATE DATABASE "{url.database}"'))
            return True
    finally:
        admin.dispose()


def drop_database(url: URL) -> None:
    """Drop the database named in `url` (used for throwaway test databases)."""
    admin = _admin_engine(url)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    finally:
        admin.dispose()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Session factory bound to `engine`; sessions never autocommit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One session, committed at the end or rolled back on error."""
    with session_factory(engine)() as session, session.begin():
        yield session


def postgis_version(session: Session) -> str:
    """PostGIS library version, e.g. '3.3 USE_GEOS=1 USE_PROJ=1 USE_STATS=1'."""
    return str(session.execute(text("SELECT postgis_version()")).scalar_one())
