"""tipg's catalog functions, installed once in schema `ogc_catalog` so /ogc can read a standby.

tipg (1.6, and its main branch) runs its `dbcatalog.sql` on every new connection: a dozen
`CREATE OR REPLACE FUNCTION pg_temp.tipg_*`, then calls `pg_temp.tipg_catalog(...)`. A hot
standby refuses any DDL ("cannot execute CREATE FUNCTION in a read-only transaction"), temporary
functions included, so with tipg's own connection setup /ogc can only read the primary.
tipg's `application_schema` setting only moves the functions to another schema; it still
creates them per connection, which the public role may not do either (least privilege).

So the owner installs the same SQL once, in schema `ogc_catalog` (migration 0032); physical
replication copies it to every standby; the app's /ogc pools (api/ogc_pools.py) set the
search path to it and run no DDL. The schema's comment records the SHA-256 of the SQL it was
made from: when an upgraded tipg ships another `dbcatalog.sql`, the app sees the mismatch, logs
it and keeps /ogc on the primary with tipg's own per-connection setup until the owner runs
`python -m gis.platform.ogc_catalog` (or a later migration) to reinstall.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files

from sqlalchemy import text
from sqlalchemy.engine import Connection

SCHEMA = "ogc_catalog"
READER_ROLE = "citygrid_public"
# The schema comment, read by the app as citygrid_public (pg_description is readable by all).
INSTALLED_DIGEST_SQL = (
    "SELECT d.description FROM pg_namespace n LEFT JOIN pg_description d "
    "ON d.objoid = n.oid AND d.classoid = 'pg_namespace'::regclass "
    f"WHERE n.nspname = '{SCHEMA}'")
DIGEST_PREFIX = "tipg dbcatalog.sql sha256 "


def catalog_sql() -> str:
    """tipg's dbcatalog.sql of the installed tipg, with its functions in SCHEMA."""
    source = (files("tipg") / "sql" / "dbcatalog.sql").read_text(encoding="utf-8")
    # The same substitution tipg makes for its application_schema.
    return source.replace("pg_temp", SCHEMA)


def catalog_digest() -> str:
    """What the schema comment says when the installed functions match this tipg."""
    return DIGEST_PREFIX + hashlib.sha256(catalog_sql().encode()).hexdigest()


def install(conn: Connection) -> None:
    """(Re)create SCHEMA with tipg's catalog functions; callable by citygrid_public only."""
    conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    conn.execute(text(f"REVOKE ALL ON SCHEMA {SCHEMA} FROM PUBLIC"))
    # Several statements with `$$` bodies and format() '%I's: sent as they are on the DBAPI
    # cursor, nothing bound (SQLAlchemy would pass an empty parameter set).
    cursor = conn.connection.cursor()
    try:
        cursor.execute(catalog_sql())
    finally:
        cursor.close()
    conn.execute(text(f"REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA {SCHEMA} FROM PUBLIC"))
    conn.execute(text(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {READER_ROLE}"))
    conn.execute(text(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {SCHEMA} TO {READER_ROLE}"))
    conn.execute(text(f"COMMENT ON SCHEMA {SCHEMA} IS '{catalog_digest()}'"))


def uninstall(conn: Connection) -> None:
    """Drop SCHEMA and its functions."""
    conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))


def main() -> None:
    """Reinstall the functions in the configured database, as its owner (after a tipg upgrade)."""
    from gis.platform.db import database_url, make_engine
    from gis.platform.settings import Settings

    engine = make_engine(database_url(Settings()))
    try:
        with engine.begin() as conn:
            install(conn)
    finally:
        engine.dispose()
    print(f"installed tipg's catalog functions in schema {SCHEMA}")


if __name__ == "__main__":
    main()
