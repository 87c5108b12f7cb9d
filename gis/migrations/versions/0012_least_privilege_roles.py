"""Least privilege: a runtime role for the app and a read-only role for the public.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

Until now every route ran as the login role that owns the schema (on the private cluster a
SUPERUSER), so any SQL reaching PostgreSQL through a public input ran with full power. From
this revision on there are three roles:

* the **owner** (whoever runs `citygrid db migrate`): owns the tables, creates extensions, runs
  migrations, the demo loader and the CLI. It is never used by the web app.
* `citygrid_app`: the web app's runtime role for signed-in staff and for anonymous writes
  (Open311 POST). LOGIN, NOSUPERUSER, NOCREATEDB, NOCREATEROLE; it may read and write the
  tables, use the sequences and create temporary tables (batch routing), may switch to the
  row-level-security role `citygrid_grid_owner`, may only INSERT into and read the audit log,
  and cannot change the schema.
* `citygrid_public`: every anonymous read (`/public`, `/ogc`, Open311 GET). LOGIN, SELECT on
  schema `pub` only; no table in schema `public` (USAGE there only to call PostGIS), and
  temporary objects because tipg keeps its catalog functions in pg_temp.

Roles are cluster-wide, so they are created only when missing (several citygrid databases,
e.g. the test suite's, share a cluster); grants are per database and are made here. Default
privileges make tables that later migrations create readable and writable by the app role
(they still need an explicit grant to reach `citygrid_public`, by being a view in `pub`).
Tables under row-level security (migration 0010) get a policy letting the app role see every
row: before, the app was their owner and so bypassed the policies.
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

APP_ROLE = "citygrid_app"
PUBLIC_ROLE = "citygrid_public"
SCOPED_ROLE = "citygrid_grid_owner"
RLS_TABLES = ("cases", "streetlights", "manhole_covers", "case_transitions", "case_extensions",
              "open311_requests", "stall_zones")


def _create_role(name: str) -> None:
    # duplicate_object: another database of the same cluster created it concurrently.
    op.execute(f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN
                CREATE ROLE {name} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
                    NOBYPASSRLS;
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$
    """)


def upgrade() -> None:
    _create_role(APP_ROLE)
    _create_role(PUBLIC_ROLE)
    # Database-level: PUBLIC keeps CONNECT only; the two roles get what they use.
    op.execute(f"""
        DO $$ BEGIN
            EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
            EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO {APP_ROLE}',
                           current_database());
            -- TEMPORARY: tipg installs its catalog functions in pg_temp when it connects.
            EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO {PUBLIC_ROLE}',
                           current_database());
        END $$
    """)
    op.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")

    # The app role: data, not schema.
    op.execute(f"GRANT USAGE ON SCHEMA public, pub TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA pub TO {APP_ROLE}")
    op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM {APP_ROLE}")
    op.execute(f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {APP_ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT {SCOPED_ROLE} TO {APP_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE "
               f"ON TABLES TO {APP_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES "
               f"TO {APP_ROLE}")
    for table in RLS_TABLES:
        op.execute(f"CREATE POLICY {table}_app_all ON {table} TO {APP_ROLE} "
                   "USING (true) WITH CHECK (true)")

    # The public role: the published views and nothing else.
    # USAGE on schema public only to find PostGIS functions and types by name (tipg calls
    # ST_AsMVT, ST_AsGeoJSON, ...); it grants no table. The views run with their owner's
    # rights, so the public role needs no grant on the tables behind them.
    op.execute(f"GRANT USAGE ON SCHEMA public, pub TO {PUBLIC_ROLE}")
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA pub TO {PUBLIC_ROLE}")
    # citygrid's own functions (not PostGIS's) are for the app (triggers, RLS helper), not
    # for anyone who happens to reach the schema.
    op.execute(f"""
        DO $$ DECLARE f regprocedure;
        BEGIN
            FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
                     JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = 'public' AND NOT EXISTS (
                         -- PostGIS's own functions stay callable by everyone
                         SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
            LOOP
                EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
                EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO {APP_ROLE}, {SCOPED_ROLE}', f);
            END LOOP;
        END $$
    """)
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA pub GRANT SELECT ON TABLES TO {PUBLIC_ROLE}")


def downgrade() -> None:
    for table in RLS_TABLES:
        op.execute(f"DROP POLICY IF EXISTS {table}_app_all ON {table}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA pub REVOKE SELECT ON TABLES FROM {PUBLIC_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {APP_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public, pub FROM {APP_ROLE}, {PUBLIC_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public, pub FROM {APP_ROLE}, {PUBLIC_ROLE}")
    op.execute(f"REVOKE {SCOPED_ROLE} FROM {APP_ROLE}")
    op.execute(f"""
        DO $$ BEGIN
            EXECUTE format('REVOKE ALL ON DATABASE %I FROM {APP_ROLE}, {PUBLIC_ROLE}',
                           current_database());
            EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO PUBLIC', current_database());
        END $$
    """)
