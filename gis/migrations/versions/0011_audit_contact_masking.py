"""Reporters' contact details never reach the audit log in clear.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-09

The audit trigger of 0010 copied whole rows, so every Open311 request put the reporter's
e-mail, names, phone, device and account ids into `audit_log.after`, which `GET /audit` returns.
`open311_requests` is the only table holding a member of the public's contact details (phones
in `grid_owners`, `stations` and `facilities` are published service numbers; staff accounts are
`users`, whose password hash the trigger already drops). From now on the trigger replaces each
non-null contact value with a fixed marker: the log still says that a contact field was set or
changed, never what it holds. A hash would not do: an 11-digit mobile number is found from its
hash in minutes. Rows already logged are redacted the same way; the append-only guard is
switched off for that one UPDATE inside this migration's transaction.
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

CONTACT_KEYS = ("reporter_email", "reporter_first_name", "reporter_last_name",
                "reporter_phone", "device_id", "account_id")
REDACTED = "[redacted]"

_KEYS_SQL = "ARRAY[" + ", ".join(f"'{k}'" for k in CONTACT_KEYS) + "]"

REDACT_FUNCTION = f"""
    CREATE OR REPLACE FUNCTION citygrid_redact_contact(row_json jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE SET search_path = public, pg_temp AS $$
    DECLARE
        key text;
    BEGIN
        IF row_json IS NULL OR jsonb_typeof(row_json) <> 'object' THEN
            RETURN row_json;
        END IF;
        FOREACH key IN ARRAY {_KEYS_SQL} LOOP
            IF row_json ? key AND jsonb_typeof(row_json -> key) <> 'null' THEN
                row_json := jsonb_set(row_json, ARRAY[key], to_jsonb('{REDACTED}'::text));
            END IF;
        END LOOP;
        RETURN row_json;
    END $$
"""

# As in 0010, plus: an UPDATE that changes only contact fields is still logged (compared in
# clear, before redaction), and open311_requests rows are redacted before they are written.
AUDIT_FUNCTION = """
    CREATE OR REPLACE FUNCTION citygrid_audit() RETURNS trigger
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
        IF TG_TABLE_NAME = 'open311_requests' THEN  -- reporters' contact data stays out
            old_row := citygrid_redact_contact(old_row);
            new_row := citygrid_redact_contact(new_row);
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
"""

# 0010's function, restored on downgrade.
AUDIT_FUNCTION_0010 = AUDIT_FUNCTION.replace("""
        IF TG_TABLE_NAME = 'open311_requests' THEN  -- reporters' contact data stays out
            old_row := citygrid_redact_contact(old_row);
            new_row := citygrid_redact_contact(new_row);
        END IF;""", "")


def upgrade() -> None:
    op.execute(REDACT_FUNCTION)
    op.execute(AUDIT_FUNCTION)
    # The log is append-only by trigger; this one-off redaction is the exception, done in the
    # migration's transaction so no other write slips through while the guard is off.
    op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    op.execute("""
        UPDATE audit_log
        SET before = citygrid_redact_contact(before), after = citygrid_redact_contact(after)
        WHERE table_name = 'open311_requests'
          AND (before IS DISTINCT FROM citygrid_redact_contact(before)
               OR after IS DISTINCT FROM citygrid_redact_contact(after))
    """)
    op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")


def downgrade() -> None:
    # Redacted rows stay redacted: the clear values are gone by design.
    op.execute(AUDIT_FUNCTION_0010)
    op.execute("DROP FUNCTION IF EXISTS citygrid_redact_contact(jsonb)")
