"""Field work: live case events (NOTIFY), idempotency keys, the supervisor role, verifications.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03

* Every case change is written as a `case_transitions` row (creation is the 'collect' row), so
  a trigger there sends `NOTIFY citygrid_cases` with {case_id, case_no, status, action,
  grid_code, at}. NOTIFY is transactional: listeners hear of a change only when it commits,
  and never of a rolled-back one. A statement inserting more than 200 rows (a bulk load)
  sends one event with action 'bulk' instead of flooding every open page.
* `idempotency_keys`: a repeated request with the same `Idempotency-Key` from the same user
  gets the first answer back and changes nothing (field phones resend queued reports).
* Role `supervisor` (监督员) in `users`.
* `case_verifications`: a supervisor's on-site check of a handled case (核查), with who,
  when, where and the result, for the centre to see before it closes the case.
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

SCOPED_ROLE = "citygrid_grid_owner"
APP_ROLE = "citygrid_app"
BULK_LIMIT = 200
ROLES_BEFORE = "'admin', 'planner', 'dispatcher', 'grid_owner', 'analyst'"


def upgrade() -> None:
    op.execute(f"""
        CREATE FUNCTION citygrid_notify_case_transitions() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            n bigint;
            r record;
        BEGIN
            SELECT count(*) INTO n FROM new_rows;
            IF n > {BULK_LIMIT} THEN
                PERFORM pg_notify('citygrid_cases', json_build_object(
                    'case_id', NULL, 'case_no', NULL, 'status', NULL, 'action', 'bulk',
                    'grid_code', NULL, 'at', now(), 'count', n)::text);
                RETURN NULL;
            END IF;
            FOR r IN
                SELECT t.case_id, c.case_no, c.status, t.action, c.grid_code, t.at
                FROM new_rows t JOIN cases c ON c.id = t.case_id ORDER BY t.id
            LOOP
                PERFORM pg_notify('citygrid_cases', json_build_object(
                    'case_id', r.case_id, 'case_no', r.case_no, 'status', r.status,
                    'action', r.action, 'grid_code', r.grid_code, 'at', r.at)::text);
            END LOOP;
            RETURN NULL;
        END $$
    """)
    op.execute("CREATE TRIGGER case_transitions_notify AFTER INSERT ON case_transitions "
               "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
               "EXECUTE FUNCTION citygrid_notify_case_transitions()")

    op.execute("""
        CREATE TABLE idempotency_keys (
            id bigserial PRIMARY KEY,
            username text NOT NULL,
            key text NOT NULL CHECK (key ~ '^[!-~]{1,200}$'),
            method text NOT NULL,
            path text NOT NULL,
            body_sha256 char(64) NOT NULL,
            status_code integer,
            response jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            completed_at timestamptz,
            UNIQUE (username, key)
        )
    """)
    op.execute("CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at)")
    op.execute(f"GRANT SELECT, INSERT ON idempotency_keys TO {SCOPED_ROLE}")
    op.execute(f"GRANT USAGE ON SEQUENCE idempotency_keys_id_seq TO {SCOPED_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO {APP_ROLE}")
    op.execute("ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY")
    # A grid owner sees and writes only their own keys (the answers may name other cases).
    op.execute(f"CREATE POLICY idempotency_keys_own ON idempotency_keys TO {SCOPED_ROLE} "
               "USING (username = current_setting('citygrid.actor', true)) "
               "WITH CHECK (username = current_setting('citygrid.actor', true))")
    op.execute(f"CREATE POLICY idempotency_keys_app ON idempotency_keys TO {APP_ROLE} "
               "USING (true) WITH CHECK (true)")

    op.execute("ALTER TABLE users DROP CONSTRAINT users_role_check")
    op.execute(f"ALTER TABLE users ADD CONSTRAINT users_role_check "
               f"CHECK (role IN ({ROLES_BEFORE}, 'supervisor'))")

    op.execute("""
        CREATE TABLE case_verifications (
            id bigserial PRIMARY KEY,
            case_id bigint NOT NULL REFERENCES cases(id) ON DELETE RESTRICT,
            verifier text NOT NULL CHECK (btrim(verifier) <> ''),
            result text NOT NULL CHECK (result IN ('passed', 'failed')),
            note text NOT NULL DEFAULT '',
            verified_at timestamptz NOT NULL DEFAULT now(),
            geom geometry(Point, 4326) CHECK (geom IS NULL OR ST_IsValid(geom)),
            case_status text NOT NULL
        )
    """)
    op.execute("CREATE INDEX case_verifications_case_idx ON case_verifications (case_id, id)")
    op.execute("CREATE TRIGGER case_verifications_append_only BEFORE UPDATE OR DELETE "
               "ON case_verifications FOR EACH ROW EXECUTE FUNCTION case_audit_append_only()")
    op.execute("ALTER TABLE case_verifications ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY case_verifications_own_grids ON case_verifications "
               f"TO {SCOPED_ROLE} USING (case_id IN (SELECT id FROM cases))")
    op.execute(f"CREATE POLICY case_verifications_app ON case_verifications TO {APP_ROLE} "
               "USING (true) WITH CHECK (true)")
    op.execute(f"GRANT SELECT, INSERT ON case_verifications TO {APP_ROLE}")
    op.execute(f"REVOKE UPDATE, DELETE ON case_verifications FROM {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS case_verifications")
    op.execute("DELETE FROM api_tokens WHERE user_id IN "
               "(SELECT id FROM users WHERE role = 'supervisor')")
    op.execute("DELETE FROM users WHERE role = 'supervisor'")
    op.execute("ALTER TABLE users DROP CONSTRAINT users_role_check")
    op.execute(f"ALTER TABLE users ADD CONSTRAINT users_role_check "
               f"CHECK (role IN ({ROLES_BEFORE}))")
    op.execute("DROP TABLE IF EXISTS idempotency_keys")
    op.execute("DROP TRIGGER IF EXISTS case_transitions_notify ON case_transitions")
    op.execute("DROP FUNCTION IF EXISTS citygrid_notify_case_transitions()")
