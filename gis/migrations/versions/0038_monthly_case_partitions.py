"""Monthly partitions of cases, with case_keys holding what must stay unique across months.

Revision ID: 0038
Revises: 0037
Create Date: 2026-12-04

`cases` is partitioned like case_transitions and audit_log (migration 0027): declarative RANGE
partitioning by month of `reported_at` in city time, a DEFAULT partition for months without
their own, and `citygrid_month_partition` / `citygrid db partitions` to add, list and archive
months. A period's query (indicators, reports, hotspots) then reads only its months, and a
month past the retention leaves by DETACH + DROP after its GeoParquet archive.

A partitioned table's unique keys must hold the partition key, so three guarantees of the
plain table move to a small unpartitioned table, `case_keys (id, case_no, former_case_no,
reported_at)`, filled and kept in step by triggers on `cases` (inserting code is unchanged):

- ids and case numbers stay unique across months (and across archived months: an archived
  month's keys stay behind, so a number is never given out twice);
- every foreign key that named cases(id) (case_transitions, case_media, case_verifications,
  case_extensions, field_action_times, open311_requests, cases' own repeat_of and
  repeat_group_id) now names case_keys(id): rows pointing at a case need no reported_at, and
  they survive the archiving of their case's month instead of blocking it;
- deleting a case still fails while anything refers to it (the key's delete is RESTRICTed).

The primary key of `cases` becomes (id, reported_at). A lookup by id alone cannot be pruned
and is planned over every month: the app's connections run with `constraint_exclusion = off`
(gis.platform.db.session_options), which makes that plan ~0.5 ms instead of ~1.7 ms at 18
months; a lookup that also names the month reads one partition.

Triggers of `cases`: the audit trigger passes the table's name ('cases') because on a
partition TG_TABLE_NAME is the partition's (`citygrid_audit` now takes it from its argument);
`next_case_no` reads case_keys, which sees every month, archived ones included;
`citygrid_case_district` (the district policies of 0031, once per row read) finds the case's
month in case_keys first, so it probes one partition.
"""

from alembic import op
from sqlalchemy import text

revision = "0038"
down_revision = "0037"
branch_labels = None
depends_on = None

CITY_ZONE = "Asia/Shanghai"
MONTHS_AHEAD = 3

CASE_KEYS = """
CREATE TABLE case_keys (
    id bigint PRIMARY KEY,
    case_no text NOT NULL CONSTRAINT case_keys_case_no_key UNIQUE,
    former_case_no text CONSTRAINT case_keys_former_case_no_key UNIQUE,
    reported_at timestamptz NOT NULL
);
COMMENT ON TABLE case_keys IS
    'One row per case ever created (archived months included): the target of every foreign '
    'key to a case and the uniqueness of ids and case numbers across the monthly partitions '
    'of cases. Kept by triggers on cases; no app role reads or writes it directly.';
-- The schema's default privileges gave the app roles read and write: take them back.
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT DISTINCT a.grantee FROM pg_class c, aclexplode(c.relacl) a
             WHERE c.oid = 'case_keys'::regclass AND a.grantee <> c.relowner LOOP
        EXECUTE format('REVOKE ALL ON case_keys FROM %s',
                       CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE r.grantee::regrole::text END);
    END LOOP;
END $$;

CREATE FUNCTION citygrid_case_keys() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO case_keys (id, case_no, former_case_no, reported_at)
        VALUES (NEW.id, NEW.case_no, NEW.former_case_no, NEW.reported_at);
        RETURN NEW;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Both are keys of the row's place: a new report time would move the row to another
        -- month as a DELETE and an INSERT, which the keys' foreign keys cannot follow.
        IF NEW.id <> OLD.id OR NEW.reported_at <> OLD.reported_at THEN
            RAISE EXCEPTION 'case %: id and reported_at never change (reported_at % to %)',
                OLD.id, OLD.reported_at, NEW.reported_at
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        IF (NEW.case_no, NEW.former_case_no) IS DISTINCT FROM (OLD.case_no, OLD.former_case_no)
        THEN
            UPDATE case_keys SET case_no = NEW.case_no, former_case_no = NEW.former_case_no
            WHERE id = NEW.id;
        END IF;
        RETURN NEW;
    ELSE
        DELETE FROM case_keys WHERE id = OLD.id;
        RETURN OLD;
    END IF;
END $$;
REVOKE EXECUTE ON FUNCTION citygrid_case_keys() FROM PUBLIC;
"""

# BEFORE row triggers: the key exists before any foreign key check of the statement (cases'
# own repeat_of) looks for it, and a duplicate number fails before the row is written.
KEY_TRIGGERS = """
CREATE TRIGGER cases_keys BEFORE INSERT OR UPDATE OF id, case_no, former_case_no, reported_at
    OR DELETE ON cases FOR EACH ROW EXECUTE FUNCTION citygrid_case_keys();
"""

CASE_TRIGGERS = """
CREATE TRIGGER cases_audit AFTER INSERT OR DELETE OR UPDATE ON cases
    FOR EACH ROW EXECUTE FUNCTION citygrid_audit('cases');
CREATE TRIGGER cases_data_version_truncate AFTER TRUNCATE ON cases
    FOR EACH STATEMENT EXECUTE FUNCTION data_version_bump();
CREATE CONSTRAINT TRIGGER cases_data_version AFTER INSERT OR DELETE OR UPDATE ON cases
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (data_version_touch('cases'))
    EXECUTE FUNCTION data_version_bump_at_commit();
"""

NEXT_CASE_NO = """
CREATE OR REPLACE FUNCTION next_case_no(prefix text, day date) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    stem text := prefix || to_char(day, 'YYYYMMDD');
    last_serial bigint;
BEGIN
    IF prefix !~ '^[A-Z]{{1,6}}$' THEN
        RAISE EXCEPTION 'case number prefix % must be 1-6 capital letters', prefix;
    END IF;
    -- Held to the end of the transaction: the next caller for the same day waits for this
    -- case to be committed (or rolled back) and then sees its number.
    PERFORM pg_advisory_xact_lock(hashtext('citygrid.case_no'), hashtext(stem));
    SELECT coalesce(max(substr(case_no, length(stem) + 1)::bigint), 0) INTO last_serial
    FROM {table}
    WHERE case_no LIKE stem || '%' AND substr(case_no, length(stem) + 1) ~ '^[0-9]{{4,9}}$';
    RETURN stem || lpad((last_serial + 1)::text, 4, '0');
END $$;
"""

# The audit trigger names its table from its argument when given: on a partition
# TG_TABLE_NAME is the partition's name, and the log must say 'cases'.
AUDIT_FUNCTION = """
CREATE OR REPLACE FUNCTION citygrid_audit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    DECLARE
        old_row jsonb := CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END;
        new_row jsonb := CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END;
        any_row jsonb := coalesce(new_row, old_row);
        tbl text := {table};
    BEGIN
        IF current_setting('citygrid.audit', true) = 'off' THEN
            RETURN NULL;
        END IF;
        IF tbl = 'users' THEN  -- never copy password hashes into the log
            old_row := old_row - 'password_hash';
            new_row := new_row - 'password_hash';
        END IF;
        IF TG_OP = 'UPDATE' AND old_row = new_row THEN
            RETURN NULL;
        END IF;
        IF tbl = 'open311_requests' THEN  -- reporters' contact data stays out
            old_row := citygrid_redact_contact(old_row);
            new_row := citygrid_redact_contact(new_row);
        END IF;
        INSERT INTO audit_log (actor, actor_role, action, table_name, row_key, before,
                               after, request)
        VALUES (coalesce(nullif(current_setting('citygrid.actor', true), ''),
                         'db:' || session_user),
                nullif(current_setting('citygrid.actor_role', true), ''),
                TG_OP, tbl,
                coalesce(any_row ->> 'id', any_row ->> 'code', any_row ->> 'case_id',
                         any_row ->> 'zone_id'),
                old_row, new_row,
                nullif(current_setting('citygrid.request', true), ''));
        RETURN NULL;
    END $$;
"""

# The district of a case for the RESTRICTIVE policies of every table keyed by a case (0031),
# run once per row read: the case's month from case_keys lets the executor probe one month
# instead of every month's primary key.
CASE_DISTRICT = """
CREATE OR REPLACE FUNCTION citygrid_case_district(bigint) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER SET search_path = public, pg_temp
AS $$ SELECT left(grid_code, 6) FROM cases WHERE id = $1 {month} $$
"""

# Unique constraints a partitioned table cannot hold; case_keys holds them instead, and
# plain indexes keep the lookups by number fast.
UNIQUE_TO_INDEX = {
    "cases_case_no_key": "CREATE INDEX cases_case_no_idx ON cases (case_no)",
    "cases_former_case_no_key": "CREATE INDEX cases_former_case_no_idx ON cases "
                                "(former_case_no) WHERE former_case_no IS NOT NULL",
}


def _dependent_views() -> list[tuple[str, str, str | None, list[tuple[str, str]]]]:
    """Views reading cases (directly or through another view), dropped: to be recreated."""
    conn = op.get_bind()
    rows = conn.execute(text("""
        WITH RECURSIVE deps(oid, depth) AS (
            SELECT DISTINCT r.ev_class, 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
            WHERE d.refobjid = 'cases'::regclass AND r.ev_class <> 'cases'::regclass
            UNION
            SELECT r.ev_class, deps.depth + 1 FROM deps
            JOIN pg_depend d ON d.refobjid = deps.oid
            JOIN pg_rewrite r ON r.oid = d.objid AND r.ev_class <> deps.oid)
        SELECT oid::regclass::text, max(depth) FROM deps GROUP BY oid ORDER BY max(depth)
    """)).all()
    saved = []
    for name, _ in rows:
        definition = conn.execute(text("SELECT pg_get_viewdef(CAST(:v AS regclass))"),
                                  {"v": name}).scalar_one()
        comment = conn.execute(text(
            "SELECT obj_description(CAST(:v AS regclass), 'pg_class')"), {"v": name}).scalar()
        grants = conn.execute(text(
            "SELECT a.grantee::regrole::text, a.privilege_type FROM pg_class c, "
            "aclexplode(c.relacl) a WHERE c.oid = CAST(:v AS regclass) "
            "AND a.grantee <> c.relowner AND a.grantee <> 0"), {"v": name}).all()
        saved.append((name, definition, comment, [(g, p) for g, p in grants]))
    for name, *_ in reversed(saved):
        op.execute(f"DROP VIEW {name}")
    return saved


def _restore_views(saved: list[tuple[str, str, str | None, list[tuple[str, str]]]]) -> None:
    for name, definition, comment, grants in saved:
        op.execute(f"CREATE VIEW {name} AS {definition}")
        if comment is not None:
            op.get_bind().execute(text(f"COMMENT ON VIEW {name} IS " + "'" +
                                       comment.replace("'", "''") + "'"))
        for grantee, privilege in grants:
            op.execute(f"GRANT {privilege} ON {name} TO {grantee}")


def _dependent_policies() -> list[tuple[str, str, str]]:
    """Other tables' policies that read cases (grid owners' scope), dropped: to be recreated."""
    conn = op.get_bind()
    rows = conn.execute(text("""
        SELECT DISTINCT p.polrelid::regclass::text AS tbl, p.polname,
               format('CREATE POLICY %I ON %s AS %s FOR %s TO %s', p.polname, p.polrelid::regclass,
                      CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                      CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT'
                                    WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                      (SELECT string_agg(CASE WHEN x = 0 THEN 'PUBLIC'
                                              ELSE x::regrole::text END, ', ')
                         FROM unnest(p.polroles) x))
               || coalesce(' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')', '')
               || coalesce(' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')',
                           '') AS ddl
        FROM pg_depend d JOIN pg_policy p ON p.oid = d.objid
        WHERE d.classid = 'pg_policy'::regclass AND d.refobjid = 'cases'::regclass
          AND p.polrelid <> 'cases'::regclass
        ORDER BY 1, 2""")).all()
    for table, name, _ in rows:
        op.execute(f'DROP POLICY "{name}" ON {table}')
    return [(t, n, d) for t, n, d in rows]


def _restore_policies(saved: list[tuple[str, str, str]]) -> None:
    for *_, ddl in saved:
        op.execute(ddl)


def _foreign_keys_to(table: str) -> list[tuple[str, str, str]]:
    """(child, constraint, definition) of every foreign key naming `table`, parents only."""
    return [(c, n, d) for c, n, d in op.get_bind().execute(text("""
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
        WHERE contype = 'f' AND confrelid = CAST(:t AS regclass) AND conparentid = 0
        ORDER BY conrelid::regclass::text, conname"""), {"t": table}).all()]


def _repoint_foreign_keys(source: str, target: str) -> None:
    for child, name, definition in _foreign_keys_to(source):
        op.execute(f"ALTER TABLE {child} DROP CONSTRAINT {name}")
        if child == source:  # the rebuilt table gets its own below
            continue
        moved = definition.replace(f"REFERENCES {source}(id)", f"REFERENCES {target}(id)")
        if moved == definition:
            raise RuntimeError(f"{name} on {child} does not reference {source}(id): {definition}")
        op.execute(f"ALTER TABLE {child} ADD CONSTRAINT {name} {moved}")


def _indexes(table: str) -> list[tuple[str, str]]:
    return [(n, d) for n, d in op.get_bind().execute(text("""
        SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = CAST(:t AS regclass) ORDER BY c.relname"""), {"t": table}).all()]


def _rename_old(suffix: str) -> tuple[str, list[tuple[str, str]]]:
    """Rename cases and its indexes out of the way; the index definitions as they were."""
    old = f"cases_{suffix}"
    indexes = _indexes("cases")
    op.execute(f"ALTER TABLE cases RENAME TO {old}")
    for name, _ in indexes:
        op.execute(f"ALTER INDEX {name} RENAME TO {name}_{suffix}")
    return old, indexes


def _move_rows_and_drop(old: str) -> None:
    op.execute(f"INSERT INTO cases SELECT * FROM {old}")
    op.execute("ALTER SEQUENCE cases_id_seq OWNED BY cases.id")
    op.execute(f"DROP TABLE {old}")


def upgrade() -> None:
    saved_views = _dependent_views()
    saved_policies = _dependent_policies()
    op.execute(CASE_KEYS)
    op.execute("INSERT INTO case_keys (id, case_no, former_case_no, reported_at) "
               "SELECT id, case_no, former_case_no, reported_at FROM cases")
    _repoint_foreign_keys("cases", "case_keys")

    old, indexes = _rename_old("unpartitioned")
    op.execute(f"CREATE TABLE cases (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
               "INCLUDING STORAGE INCLUDING COMMENTS) PARTITION BY RANGE (reported_at)")
    op.execute("ALTER TABLE cases ADD CONSTRAINT cases_pkey PRIMARY KEY (id, reported_at)")
    for name, definition in indexes:
        if name == "cases_pkey":
            continue
        if name in UNIQUE_TO_INDEX:
            op.execute(UNIQUE_TO_INDEX[name])
            continue
        op.execute(definition.replace(f" ON public.{old} ", " ON public.cases ")
                   .replace(f"INDEX {name}_unpartitioned ", f"INDEX {name} "))
    op.execute("ALTER TABLE cases ADD CONSTRAINT cases_grid_code_fkey FOREIGN KEY (grid_code) "
               "REFERENCES grid_cells(code)")
    op.execute(f"SELECT citygrid_copy_access('{old}', 'cases')")

    op.execute("CREATE TABLE cases_default PARTITION OF cases DEFAULT")
    op.execute("SELECT citygrid_copy_access('cases', 'cases_default')")
    op.execute(f"""
        SELECT citygrid_month_partition('cases', m::date)
        FROM generate_series(
            date_trunc('month', least((SELECT min(reported_at) FROM {old}), now())
                       AT TIME ZONE '{CITY_ZONE}'),
            date_trunc('month', now() AT TIME ZONE '{CITY_ZONE}')
                + interval '{MONTHS_AHEAD} months',
            interval '1 month') AS m""")
    # Rows are copied before the triggers exist: their keys are in case_keys already, and
    # moving a table is not 56,000 edits for the audit log.
    _move_rows_and_drop(old)
    op.execute(AUDIT_FUNCTION.format(table="coalesce(TG_ARGV[0], TG_TABLE_NAME)"))
    op.execute(KEY_TRIGGERS)
    op.execute(CASE_TRIGGERS)
    op.execute(NEXT_CASE_NO.format(table="case_keys"))
    op.execute(CASE_DISTRICT.format(
        month="AND reported_at = (SELECT k.reported_at FROM case_keys k WHERE k.id = $1)"))
    op.execute("ALTER TABLE cases ADD CONSTRAINT cases_repeat_group_id_fkey "
               "FOREIGN KEY (repeat_group_id) REFERENCES case_keys(id)")
    op.execute("ALTER TABLE cases ADD CONSTRAINT cases_repeat_of_fkey "
               "FOREIGN KEY (repeat_of) REFERENCES case_keys(id)")
    _restore_policies(saved_policies)
    _restore_views(saved_views)


def downgrade() -> None:
    saved_views = _dependent_views()
    saved_policies = _dependent_policies()
    for child, name, _ in _foreign_keys_to("case_keys"):
        op.execute(f"ALTER TABLE {child} DROP CONSTRAINT {name}")
    old, indexes = _rename_old("partitioned")
    op.execute(f"CREATE TABLE cases (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
               "INCLUDING STORAGE INCLUDING COMMENTS)")
    op.execute("ALTER TABLE cases ADD CONSTRAINT cases_pkey PRIMARY KEY (id)")
    op.execute("ALTER TABLE cases ADD CONSTRAINT cases_case_no_key UNIQUE (case_no)")
    op.execute("ALTER TABLE cases ADD CONSTRAINT cases_former_case_no_key "
               "UNIQUE (former_case_no)")
    for name, definition in indexes:
        if name in ("cases_pkey", "cases_case_no_idx", "cases_former_case_no_idx"):
            continue
        op.execute(definition.replace(f" ON ONLY public.{old} ", " ON public.cases ")
                   .replace(f" ON public.{old} ", " ON public.cases ")
                   .replace(f"INDEX {name}_partitioned ", f"INDEX {name} "))
    op.execute("ALTER TABLE cases ADD CONSTRAINT cases_grid_code_fkey FOREIGN KEY (grid_code) "
               "REFERENCES grid_cells(code)")
    op.execute(f"SELECT citygrid_copy_access('{old}', 'cases')")
    op.execute("SET LOCAL citygrid.audit = 'off'")
    _move_rows_and_drop(old)
    op.execute("RESET citygrid.audit")
    op.execute(CASE_TRIGGERS.replace("citygrid_audit('cases')", "citygrid_audit()"))
    op.execute(NEXT_CASE_NO.format(table="cases"))
    op.execute(CASE_DISTRICT.format(month=""))
    op.execute(AUDIT_FUNCTION.format(table="TG_TABLE_NAME"))
    op.execute("ALTER TABLE cases ADD CONSTRAINT cases_repeat_group_id_fkey "
               "FOREIGN KEY (repeat_group_id) REFERENCES cases(id)")
    op.execute("ALTER TABLE cases ADD CONSTRAINT cases_repeat_of_fkey "
               "FOREIGN KEY (repeat_of) REFERENCES cases(id)")
    for child, name, definition in _FOREIGN_KEYS_AT_0037:
        op.execute(f"ALTER TABLE {child} ADD CONSTRAINT {name} {definition}")
    op.execute("DROP TABLE case_keys")
    op.execute("DROP FUNCTION citygrid_case_keys()")
    _restore_policies(saved_policies)
    _restore_views(saved_views)


# The foreign keys into cases(id) as they were before this revision (cases' own two are
# added above).
_FOREIGN_KEYS_AT_0037 = (
    ("case_extensions", "case_extensions_case_id_fkey",
     "FOREIGN KEY (case_id) REFERENCES cases(id) ON DELETE RESTRICT"),
    ("case_media", "case_media_case_id_fkey", "FOREIGN KEY (case_id) REFERENCES cases(id)"),
    ("case_transitions", "case_transitions_case_id_fkey1",
     "FOREIGN KEY (case_id) REFERENCES cases(id) ON DELETE RESTRICT"),
    ("case_verifications", "case_verifications_case_id_fkey",
     "FOREIGN KEY (case_id) REFERENCES cases(id) ON DELETE RESTRICT"),
    ("field_action_times", "field_action_times_case_id_fkey",
     "FOREIGN KEY (case_id) REFERENCES cases(id) ON DELETE RESTRICT"),
    ("open311_requests", "open311_requests_case_id_fkey",
     "FOREIGN KEY (case_id) REFERENCES cases(id) ON DELETE RESTRICT"),
)
