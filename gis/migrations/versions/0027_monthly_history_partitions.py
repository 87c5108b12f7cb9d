"""Monthly partitions of the append-only history: case_transitions and audit_log.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-03

Both tables only grow (tens of millions of rows a year at city level) and are read by period:
partitioning them by month of `at` (declarative RANGE partitioning, months in city time,
Asia/Shanghai) lets a period query scan only its months and lets old months be archived and
dropped whole (`citygrid db partitions archive`) instead of deleted row by row.

Each table is rebuilt: the old one is renamed, a partitioned one with the same columns,
checks, indexes, triggers, row-level security, policies and grants takes its name, every row
is copied over, and the old one is dropped. The primary key becomes (id, at) because a
partitioned table's unique keys must hold the partition key; `case_extensions` therefore
refers to a transition by (transition_id, transition_at), the latter filled by a trigger so
inserting code is unchanged.

`cases` stays a plain table: case_media, case_verifications, case_extensions,
open311_requests and its own repeat_of / repeat_group_id point at cases(id); partitioning it
would make every one of them carry reported_at too, and a case's row is updated throughout its
life (status, due times) unlike the history. Its period queries use cases_reported_at_idx.

The function `citygrid_month_partition(parent, month)` creates one month (moving any rows of
that month out of the DEFAULT partition) and gives it the parent's grants, row-level security,
policies and TRUNCATE guard: the schema's default privileges would otherwise hand
citygrid_app UPDATE and DELETE on a new audit_log partition, and citygrid_grid_owner a
partition of case_transitions without row-level security. Only the schema owner may call it.
"""

from alembic import op
from sqlalchemy import text

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

CITY_ZONE = "Asia/Shanghai"
MONTHS_AHEAD = 3

FUNCTIONS = f"""
CREATE FUNCTION citygrid_copy_access(src regclass, dst regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    roles text;
    clause text;
BEGIN
    -- Privileges: exactly the source's (default privileges gave dst more).
    FOR r IN SELECT DISTINCT a.grantee FROM pg_class c, aclexplode(c.relacl) a
             WHERE c.oid = dst AND a.grantee <> c.relowner LOOP
        EXECUTE format('REVOKE ALL ON %s FROM %s', dst,
                       CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE r.grantee::regrole::text END);
    END LOOP;
    FOR r IN SELECT a.grantee, a.privilege_type FROM pg_class c, aclexplode(c.relacl) a
             WHERE c.oid = src AND a.grantee <> c.relowner LOOP
        EXECUTE format('GRANT %s ON %s TO %s', r.privilege_type, dst,
                       CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE r.grantee::regrole::text END);
    END LOOP;
    -- Row-level security and its policies, so reading dst by its own name shows no more.
    IF (SELECT relrowsecurity FROM pg_class WHERE oid = src) THEN
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', dst);
        FOR r IN SELECT p.* FROM pg_policy p WHERE p.polrelid = src
                 AND NOT EXISTS (SELECT 1 FROM pg_policy q
                                 WHERE q.polrelid = dst AND q.polname = p.polname) LOOP
            SELECT string_agg(CASE WHEN x = 0 THEN 'PUBLIC' ELSE x::regrole::text END, ', ')
              INTO roles FROM unnest(r.polroles) x;
            clause := format('CREATE POLICY %I ON %s AS %s FOR %s TO %s', r.polname, dst,
                CASE WHEN r.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                CASE r.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT'
                              WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                roles);
            IF r.polqual IS NOT NULL THEN
                clause := clause || ' USING (' || pg_get_expr(r.polqual, src) || ')';
            END IF;
            IF r.polwithcheck IS NOT NULL THEN
                clause := clause || ' WITH CHECK (' || pg_get_expr(r.polwithcheck, src) || ')';
            END IF;
            EXECUTE clause;
        END LOOP;
    END IF;
    -- BEFORE TRUNCATE statement guards are not inherited by partitions: copy them.
    FOR r IN SELECT t.tgname, t.tgfoid FROM pg_trigger t
             WHERE t.tgrelid = src AND NOT t.tgisinternal
               AND t.tgtype & 1 = 0 AND t.tgtype & 2 <> 0 AND t.tgtype & 32 <> 0
               AND NOT EXISTS (SELECT 1 FROM pg_trigger u
                               WHERE u.tgrelid = dst AND u.tgname = t.tgname) LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %s FOR EACH STATEMENT '
                       'EXECUTE FUNCTION %s()', r.tgname, dst, r.tgfoid::regproc);
    END LOOP;
END $$;

CREATE FUNCTION citygrid_month_partition(parent regclass, month date) RETURNS regclass
LANGUAGE plpgsql AS $$
DECLARE
    first_day date := date_trunc('month', month)::date;
    lo timestamptz := first_day::timestamp AT TIME ZONE '{CITY_ZONE}';
    hi timestamptz := (first_day + interval '1 month')::timestamp AT TIME ZONE '{CITY_ZONE}';
    nsp text;
    base text;
    name text;
    key text;
    part regclass;
    dflt regclass;
    moving bigint := 0;
    fk record;
    fkeys text[] := ARRAY[]::text[];
BEGIN
    SELECT n.nspname, c.relname INTO nsp, base
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = parent;
    name := base || '_' || to_char(first_day, 'YYYYMM');
    part := to_regclass(format('%I.%I', nsp, name));
    IF part IS NOT NULL THEN
        RETURN part;
    END IF;
    SELECT a.attname INTO key FROM pg_partitioned_table p
      JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
     WHERE p.partrelid = parent;
    dflt := to_regclass(format('%I.%I', nsp, base || '_default'));
    IF dflt IS NOT NULL THEN
        EXECUTE format('SELECT count(*) FROM %s WHERE %I >= $1 AND %I < $2', dflt, key, key)
           INTO moving USING lo, hi;
    END IF;
    IF moving = 0 THEN
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                       nsp, name, parent, lo, hi);
    ELSE
        -- The month's rows wait in DEFAULT, which must lose them before the month can be
        -- attached; the append-only guards are lifted on DEFAULT for this one move only.
        EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       nsp, name, parent);
        EXECUTE format('INSERT INTO %I.%I SELECT * FROM %s WHERE %I >= $1 AND %I < $2',
                       nsp, name, dflt, key, key) USING lo, hi;
        -- A foreign key into the parent checks each partition on its own, so it would see
        -- the rows as gone: it is dropped for the move and added back, validating every row.
        FOR fk IN SELECT c.conrelid::regclass AS child, c.conname,
                         pg_get_constraintdef(c.oid) AS def
                    FROM pg_constraint c
                   WHERE c.contype = 'f' AND c.confrelid = parent AND c.conparentid = 0 LOOP
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.child, fk.conname);
            fkeys := array_append(fkeys, format('ALTER TABLE %s ADD CONSTRAINT %I %s',
                                                fk.child, fk.conname, fk.def));
        END LOOP;
        EXECUTE format('ALTER TABLE %s DISABLE TRIGGER USER', dflt);
        EXECUTE format('DELETE FROM %s WHERE %I >= $1 AND %I < $2', dflt, key, key)
           USING lo, hi;
        EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                       parent, nsp, name, lo, hi);
        FOR i IN 1 .. coalesce(array_length(fkeys, 1), 0) LOOP
            EXECUTE fkeys[i];
        END LOOP;
        EXECUTE format('ALTER TABLE %s ENABLE TRIGGER USER', dflt);
    END IF;
    part := format('%I.%I', nsp, name)::regclass;
    PERFORM citygrid_copy_access(parent, part);
    RETURN part;
END $$;

REVOKE EXECUTE ON FUNCTION citygrid_copy_access(regclass, regclass) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION citygrid_month_partition(regclass, date) FROM PUBLIC;
"""

CASE_TRANSITIONS = """
CREATE TABLE case_transitions (
    id bigint NOT NULL DEFAULT nextval('case_transitions_id_seq'),
    case_id bigint NOT NULL REFERENCES cases(id) ON DELETE RESTRICT,
    action text NOT NULL CHECK (action IN ('collect', 'file', 'reject', 'dispatch', 'handle',
        'report', 'close', 'rework', 'evaluate', 'extend', 'reply')),
    from_status text CHECK (from_status IN ('collected', 'filed', 'dispatched', 'handled',
        'reported', 'closed', 'evaluated', 'rejected')),
    to_status text NOT NULL CHECK (to_status IN ('collected', 'filed', 'dispatched', 'handled',
        'reported', 'closed', 'evaluated', 'rejected')),
    actor text NOT NULL CHECK (btrim(actor) <> ''),
    at timestamptz NOT NULL,
    note text NOT NULL DEFAULT '',
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT case_transitions_check CHECK ((action = 'collect') = (from_status IS NULL)),
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE INDEX case_transitions_case_idx ON case_transitions (case_id, at, id);
CREATE INDEX case_transitions_at_idx ON case_transitions (at);
CREATE TRIGGER case_transitions_append_only BEFORE UPDATE OR DELETE ON case_transitions
    FOR EACH ROW EXECUTE FUNCTION case_audit_append_only();
"""

CASE_TRANSITIONS_STATEMENT_TRIGGERS = """
CREATE TRIGGER case_transitions_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON case_transitions FOR EACH STATEMENT EXECUTE FUNCTION data_version_bump();
CREATE TRIGGER case_transitions_notify AFTER INSERT ON case_transitions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION citygrid_notify_case_transitions();
"""

AUDIT_LOG = """
CREATE TABLE audit_log (
    id bigint NOT NULL DEFAULT nextval('audit_log_id_seq'),
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor text NOT NULL,
    actor_role text,
    action text NOT NULL CHECK (action IN ('INSERT', 'UPDATE', 'DELETE', 'BULK', 'SIGN_IN')),
    table_name text NOT NULL,
    row_key text,
    before jsonb,
    after jsonb,
    request text,
    txid bigint NOT NULL DEFAULT txid_current(),
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE INDEX audit_log_table_key ON audit_log (table_name, row_key);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
"""

CASE_TRANSITION_COLUMNS = ("id, case_id, action, from_status, to_status, actor, at, note, "
                           "recorded_at")
AUDIT_COLUMNS = ("id, at, actor, actor_role, action, table_name, row_key, before, after, "
                 "request, txid")

# Index names are schema-wide: the old table's must make way for the new table's.
INDEXES = {
    "case_transitions": ("case_transitions_pkey", "case_transitions_case_idx",
                         "case_transitions_at_idx"),
    "audit_log": ("audit_log_pkey", "audit_log_table_key", "audit_log_at"),
}

VIEW = "pub.service_requests"


def _save_view() -> tuple[str, str | None, list[tuple[str, str]]]:
    """Definition, comment and grants of the public view that reads case_transitions."""
    conn = op.get_bind()
    definition = conn.execute(text("SELECT pg_get_viewdef(CAST(:v AS regclass))"),
                              {"v": VIEW}).scalar_one()
    comment = conn.execute(text("SELECT obj_description(CAST(:v AS regclass), 'pg_class')"),
                           {"v": VIEW}).scalar()
    grants = conn.execute(text(
        "SELECT a.grantee::regrole::text, a.privilege_type FROM pg_class c, "
        "aclexplode(c.relacl) a WHERE c.oid = CAST(:v AS regclass) "
        "AND a.grantee <> c.relowner AND a.grantee <> 0"), {"v": VIEW}).all()
    op.execute(f"DROP VIEW {VIEW}")
    return definition, comment, [(g, p) for g, p in grants]


def _restore_view(saved: tuple[str, str | None, list[tuple[str, str]]]) -> None:
    definition, comment, grants = saved
    op.execute(f"CREATE VIEW {VIEW} AS {definition}")
    if comment is not None:
        op.get_bind().execute(text(f"COMMENT ON VIEW {VIEW} IS " + "'" +
                                   comment.replace("'", "''") + "'"))
    for grantee, privilege in grants:
        op.execute(f"GRANT {privilege} ON {VIEW} TO {grantee}")


def _rename_old(table: str, suffix: str) -> str:
    old = f"{table}_{suffix}"
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    for index in INDEXES[table]:
        op.execute(f"ALTER INDEX IF EXISTS {index} RENAME TO {index}_{suffix}")
    return old


def _restore_check_names(table: str) -> None:
    """Give the rebuilt table's checks their old names (taken by the old table meanwhile)."""
    op.execute(f"""
        DO $$
        DECLARE c record;
        BEGIN
            FOR c IN SELECT conname FROM pg_constraint
                     WHERE conrelid = '{table}'::regclass AND conname ~ '_check1$' LOOP
                EXECUTE format('ALTER TABLE {table} RENAME CONSTRAINT %I TO %I',
                               c.conname, left(c.conname, -1));
            END LOOP;
        END $$""")


def _partition_months(table: str, source: str) -> None:
    """DEFAULT plus one partition per month from the oldest row to MONTHS_AHEAD ahead."""
    op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    op.execute(f"SELECT citygrid_copy_access('{table}', '{table}_default')")
    op.execute(f"""
        SELECT citygrid_month_partition('{table}', m::date)
        FROM generate_series(
            date_trunc('month', least((SELECT min(at) FROM {source}), now())
                       AT TIME ZONE '{CITY_ZONE}'),
            date_trunc('month', now() AT TIME ZONE '{CITY_ZONE}')
                + interval '{MONTHS_AHEAD} months',
            interval '1 month') AS m""")


def upgrade() -> None:
    op.execute(FUNCTIONS)
    saved_view = _save_view()

    # case_extensions names its transition by the new key (id, at).
    op.execute("ALTER TABLE case_extensions DROP CONSTRAINT case_extensions_transition_id_fkey")
    op.execute("ALTER TABLE case_extensions ADD COLUMN transition_at timestamptz")
    op.execute("ALTER TABLE case_extensions DISABLE TRIGGER USER")
    op.execute("UPDATE case_extensions e SET transition_at = t.at FROM case_transitions t "
               "WHERE t.id = e.transition_id")
    op.execute("ALTER TABLE case_extensions ENABLE TRIGGER USER")
    op.execute("ALTER TABLE case_extensions ALTER COLUMN transition_at SET NOT NULL")
    op.execute("""
        CREATE FUNCTION case_extensions_transition_at() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.transition_at IS NULL THEN
                SELECT at INTO NEW.transition_at FROM case_transitions
                 WHERE id = NEW.transition_id;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'case_extensions.transition_id % is not a transition',
                        NEW.transition_id USING ERRCODE = 'foreign_key_violation';
                END IF;
            END IF;
            RETURN NEW;
        END $$""")
    op.execute("CREATE TRIGGER case_extensions_transition_at BEFORE INSERT ON case_extensions "
               "FOR EACH ROW EXECUTE FUNCTION case_extensions_transition_at()")

    for table, ddl, columns in (("case_transitions", CASE_TRANSITIONS, CASE_TRANSITION_COLUMNS),
                                ("audit_log", AUDIT_LOG, AUDIT_COLUMNS)):
        old = _rename_old(table, "unpartitioned")
        op.execute(ddl)
        op.execute(f"SELECT citygrid_copy_access('{old}', '{table}')")
        _partition_months(table, old)
        op.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {old}")
        op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id")
        op.execute(f"DROP TABLE {old}")
        _restore_check_names(table)
    op.execute(CASE_TRANSITIONS_STATEMENT_TRIGGERS)

    op.execute("ALTER TABLE case_extensions ADD CONSTRAINT case_extensions_transition_fkey "
               "FOREIGN KEY (transition_id, transition_at) REFERENCES case_transitions (id, at) "
               "ON DELETE RESTRICT")
    _restore_view(saved_view)


def downgrade() -> None:
    saved_view = _save_view()
    op.execute("ALTER TABLE case_extensions DROP CONSTRAINT case_extensions_transition_fkey")
    for table, columns in (("case_transitions", CASE_TRANSITION_COLUMNS),
                           ("audit_log", AUDIT_COLUMNS)):
        old = _rename_old(table, "partitioned")
        op.execute(f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        op.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id)")
        op.execute(f"SELECT citygrid_copy_access('{old}', '{table}')")
        op.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {old}")
        op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id")
        op.execute(f"DROP TABLE {old}")
        _restore_check_names(table)
    op.execute("""
        ALTER TABLE case_transitions ADD FOREIGN KEY (case_id) REFERENCES cases(id)
            ON DELETE RESTRICT;
        CREATE INDEX case_transitions_case_idx ON case_transitions (case_id, at, id);
        CREATE TRIGGER case_transitions_append_only BEFORE UPDATE OR DELETE ON case_transitions
            FOR EACH ROW EXECUTE FUNCTION case_audit_append_only();
        CREATE INDEX audit_log_table_key ON audit_log (table_name, row_key);
        CREATE INDEX audit_log_at ON audit_log (at);
        CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
            FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
    """)
    op.execute(CASE_TRANSITIONS_STATEMENT_TRIGGERS)
    op.execute("DROP TRIGGER case_extensions_transition_at ON case_extensions")
    op.execute("DROP FUNCTION case_extensions_transition_at()")
    op.execute("ALTER TABLE case_extensions DROP COLUMN transition_at")
    op.execute("ALTER TABLE case_extensions ADD CONSTRAINT case_extensions_transition_id_fkey "
               "FOREIGN KEY (transition_id) REFERENCES case_transitions(id) "
               "ON DELETE RESTRICT")
    _restore_view(saved_view)
    op.execute("DROP FUNCTION citygrid_month_partition(regclass, date)")
    op.execute("DROP FUNCTION citygrid_copy_access(regclass, regclass)")
