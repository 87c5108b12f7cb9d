"""Users, API tokens, an append-only audit log of every write, and row-level security.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

* `users` (roles admin / planner / dispatcher / grid_owner / analyst; the public is anonymous
  and has no row) and `api_tokens` (only the SHA-256 of a token is stored, so a copy of the
  database does not hand out sessions).
* `audit_log` is filled by one trigger function on every table people write to: who (the
  `citygrid.actor` setting of the transaction, else the database role), when, what, the row
  before and after as JSON (geometries as GeoJSON). It runs as SECURITY DEFINER so the
  restricted role below can write audit rows through it but never directly; a second trigger
  refuses UPDATE, DELETE and TRUNCATE on the log itself. The demo loader may switch auditing
  off for its bulk seed (`citygrid.audit = off`) and writes one summary row instead.
* Row-level security for grid owners: the API runs a grid owner's transactions as role
  `citygrid_grid_owner` with `citygrid.owner_name` set; the policies let that role see and
  change only cases, streetlights, manhole covers and stall zones in grids the owner holds
  today. Roles are cluster-wide, so the role is created only when missing. The application's
  own login role owns the tables and so is not subject to the policies.
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ROLES = "'admin', 'planner', 'dispatcher', 'grid_owner', 'analyst'"
SCOPED_ROLE = "citygrid_grid_owner"

# Tables whose writes are audited: everything people edit, not code tables seeded once.
AUDITED = ("districts", "subdistricts", "communities", "grid_cells", "grid_owners", "stations",
           "roads", "stall_zones", "zone_grids", "sensitive_sites", "streetlights",
           "manhole_covers", "facilities", "cases", "case_extensions", "open311_requests",
           "responsibility_rules", "deadline_rules", "users")

OWNED_GRIDS = "(SELECT citygrid_owned_grids())"
POLICIES = {
    "cases": f"grid_code IN {OWNED_GRIDS}",
    "streetlights": f"grid_code IN {OWNED_GRIDS}",
    "manhole_covers": f"grid_code IN {OWNED_GRIDS}",
    # Subqueries on cases and zone_grids run under their own policies / grants as this role.
    "case_transitions": "case_id IN (SELECT id FROM cases)",
    "case_extensions": "case_id IN (SELECT id FROM cases)",
    "open311_requests": "case_id IN (SELECT id FROM cases)",
    "stall_zones": f"id IN (SELECT zone_id FROM zone_grids WHERE grid_code IN {OWNED_GRIDS})",
}


def upgrade() -> None:
    op.execute(f"""
        CREATE TABLE users (
            id serial PRIMARY KEY,
            username text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9_.@-]{{2,64}}$'),
            display_name text NOT NULL DEFAULT '',
            role text NOT NULL CHECK (role IN ({ROLES})),
            -- A grid owner's name as in grid_owners.owner_name: their grids are the ones they
            -- hold today.
            owner_name text,
            password_hash text NOT NULL,
            active boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            CHECK ((role = 'grid_owner') = (owner_name IS NOT NULL))
        )
    """)
    op.execute("""
        CREATE TABLE api_tokens (
            token_sha256 char(64) PRIMARY KEY CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
            user_id integer NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            revoked_at timestamptz,
            CHECK (expires_at > created_at)
        )
    """)
    op.execute("CREATE INDEX api_tokens_user ON api_tokens (user_id)")
    op.execute("""
        CREATE TABLE audit_log (
            id bigserial PRIMARY KEY,
            at timestamptz NOT NULL DEFAULT clock_timestamp(),
            actor text NOT NULL,
            actor_role text,
            action text NOT NULL CHECK (action IN ('INSERT', 'UPDATE', 'DELETE', 'BULK')),
            table_name text NOT NULL,
            row_key text,
            before jsonb,
            after jsonb,
            request text,
            txid bigint NOT NULL DEFAULT txid_current()
        )
    """)
    op.execute("CREATE INDEX audit_log_table_key ON audit_log (table_name, row_key)")
    op.execute("CREATE INDEX audit_log_at ON audit_log (at)")
    op.execute("""
        CREATE FUNCTION citygrid_audit() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
        DECLARE
            old_row jsonb := CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END;
            new_row jsonb := CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END;
            any_row jsonb := coalesce(new_row, old_row);
        BEGIN
            IF current_setting('citygrid.audit', true) = 'off' THEN
                RETURN NULL;
            END IF;
            IF TG_TABLE_NAME = 'users' THEN  -- never copy password hashes into the log
                old_row := old_row - 'password_hash';
                new_row := new_row - 'password_hash';
            END IF;
            IF TG_OP = 'UPDATE' AND old_row = new_row THEN
                RETURN NULL;
            END IF;
            INSERT INTO audit_log (actor, actor_role, action, table_name, row_key, before,
                                   after, request)
            VALUES (coalesce(nullif(current_setting('citygrid.actor', true), ''),
                             'db:' || session_user),
                    nullif(current_setting('citygrid.actor_role', true), ''),
                    TG_OP, TG_TABLE_NAME,
                    coalesce(any_row ->> 'id', any_row ->> 'code', any_row ->> 'case_id',
                             any_row ->> 'zone_id'),
                    old_row, new_row,
                    nullif(current_setting('citygrid.request', true), ''));
            RETURN NULL;
        END $$
    """)
    for table in AUDITED:
        op.execute(f"CREATE TRIGGER {table}_audit AFTER INSERT OR UPDATE OR DELETE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION citygrid_audit()")
    op.execute("""
        CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$
    """)
    op.execute("CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
               "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()")
    op.execute("CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
               "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()")

    op.execute(f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{SCOPED_ROLE}') THEN
                CREATE ROLE {SCOPED_ROLE} NOLOGIN;
            END IF;
        END $$
    """)
    # The app's login role switches to the scoped role with SET LOCAL ROLE.
    op.execute(f"GRANT {SCOPED_ROLE} TO current_user")
    op.execute(f"GRANT USAGE ON SCHEMA public, pub TO {SCOPED_ROLE}")
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public, pub TO {SCOPED_ROLE}")
    op.execute(f"REVOKE SELECT ON users, api_tokens, audit_log FROM {SCOPED_ROLE}")
    op.execute(f"GRANT UPDATE ON cases, streetlights, manhole_covers TO {SCOPED_ROLE}")
    op.execute(f"GRANT INSERT ON case_transitions, case_extensions TO {SCOPED_ROLE}")
    op.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {SCOPED_ROLE}")
    op.execute("""
        CREATE FUNCTION citygrid_owned_grids() RETURNS SETOF text
        LANGUAGE sql STABLE AS $$
            SELECT grid_code::text FROM grid_owners
            WHERE owner_name = current_setting('citygrid.owner_name', true)
              AND valid_from <= current_date
              AND (valid_to IS NULL OR valid_to > current_date)
        $$
    """)
    for table, condition in POLICIES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {table}_own_grids ON {table} TO {SCOPED_ROLE} "
                   f"USING ({condition}) WITH CHECK ({condition})")


def downgrade() -> None:
    for table in POLICIES:
        op.execute(f"DROP POLICY IF EXISTS {table}_own_grids ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute("DROP FUNCTION IF EXISTS citygrid_owned_grids()")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public, pub FROM {SCOPED_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {SCOPED_ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public, pub FROM {SCOPED_ROLE}")
    for table in AUDITED:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_audit ON {table}")
    op.execute("DROP TABLE IF EXISTS audit_log")
    op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    op.execute("DROP FUNCTION IF EXISTS citygrid_audit()")
    op.execute("DROP TABLE IF EXISTS api_tokens")
    op.execute("DROP TABLE IF EXISTS users")
