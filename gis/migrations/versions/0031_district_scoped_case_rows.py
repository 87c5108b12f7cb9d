"""District scope for every table keyed by a case, and for the audit log.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-03

Migration 0028 limited a district user's `cases` to their district, but the tables that hang
off a case by `case_id` had only `USING (true)` for the app role: with a 市中区 user bound, a
query of `case_transitions` (or the photos, checks, extensions, phone times, Open311 details)
still returned 历下区's rows. Here each of them gets a RESTRICTIVE policy for the app role:
the city centre (no district) sees all; a district user sees, and writes, only rows whose
case lies in its district, by the same rule as `cases` (0028: the grid code's first six
digits): `citygrid_case_district(case_id) = (SELECT citygrid_actor_district())`.
`citygrid_case_district` is a SECURITY DEFINER lookup of one case's district by primary key.
Measured on the demo city with 56,000 transitions, a district user (load 7 on 2 cores): one
case's history 2.5-4 ms with every variant but a hashed `case_id IN (SELECT id FROM cases)`
(46 ms, it reads all the district's cases first); counting every row 0.8 s, against 18 s for
an invoker-rights EXISTS function (it re-ran the `cases` policy per row) and 0.06 s for the
hashed IN. A correlated subquery written in the policy itself is stored naming the parent
table (`case_transitions.case_id`) and breaks `citygrid_copy_access` on new monthly
partitions, so a function it is. The city centre's `(SELECT ...) IS NULL` runs once per
statement and skips the lookup.

`audit_log` (partitioned, app may INSERT and SELECT) holds the before/after of every case row;
district users may not read it (RLS on, RESTRICTIVE SELECT for the centre only). Rows are
still written: the audit trigger runs as the owner, and sign-in rows are INSERTed without
RETURNING.

`next_case_no` (0020) took the highest serial of the day among the cases the caller can see:
a district user (or grid owner) did not see the city's other cases of the same prefix and
handed out a number already taken (unique violation). It now runs as its owner (SECURITY
DEFINER, fixed search_path) and so counts every case; it returns only the next number.

Grid owners (`citygrid_grid_owner`) keep their own policies, already limited to their grids.
Existing monthly partitions get the new policies through `citygrid_copy_access`; later ones
get them when `citygrid_month_partition` creates them.
"""

from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

APP_ROLE = "citygrid_app"
CASE_TABLES = ("case_transitions", "case_extensions", "case_media", "case_verifications",
               "field_action_times", "open311_requests")
PARTITIONED = ("case_transitions", "audit_log")
# The (SELECT ...) runs once per statement, so the city centre never calls the lookup.
VISIBLE = ("(SELECT citygrid_actor_district()) IS NULL "
           "OR citygrid_case_district(case_id) = (SELECT citygrid_actor_district())")
CENTRE_ONLY = "(SELECT citygrid_actor_district()) IS NULL"


def _sync_partitions(table: str) -> None:
    op.execute(f"""
        SELECT citygrid_copy_access('{table}'::regclass, i.inhrelid::regclass)
        FROM pg_inherits i WHERE i.inhparent = '{table}'::regclass""")


def upgrade() -> None:
    # SECURITY DEFINER: one index lookup without the `cases` policies (which would run
    # again for every row); it tells only a case's district code.
    op.execute("""
        CREATE FUNCTION citygrid_case_district(bigint) RETURNS text
        LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$ SELECT left(grid_code, 6) FROM cases WHERE id = $1 $$
    """)
    op.execute("REVOKE EXECUTE ON FUNCTION citygrid_case_district(bigint) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION citygrid_case_district(bigint) TO {APP_ROLE}, "
               "citygrid_grid_owner")
    for table in CASE_TABLES:
        op.execute(f"CREATE POLICY {table}_district ON {table} AS RESTRICTIVE TO {APP_ROLE} "
                   f"USING ({VISIBLE}) WITH CHECK ({VISIBLE})")
    op.execute("ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY audit_log_app ON audit_log TO {APP_ROLE} "
               "USING (true) WITH CHECK (true)")
    op.execute(f"CREATE POLICY audit_log_district ON audit_log AS RESTRICTIVE FOR SELECT "
               f"TO {APP_ROLE} USING ({CENTRE_ONLY})")
    for table in PARTITIONED:
        _sync_partitions(table)
    op.execute("ALTER FUNCTION next_case_no(text, date) SECURITY DEFINER "
               "SET search_path = public, pg_temp")


def downgrade() -> None:
    op.execute("ALTER FUNCTION next_case_no(text, date) SECURITY INVOKER RESET search_path")
    for table in PARTITIONED:
        op.execute(f"""
            DO $$
            DECLARE p regclass;
            BEGIN
                FOR p IN SELECT inhrelid::regclass FROM pg_inherits
                         WHERE inhparent = '{table}'::regclass LOOP
                    EXECUTE format('DROP POLICY IF EXISTS {table}_district ON %s', p);
                    IF '{table}' = 'audit_log' THEN
                        EXECUTE format('DROP POLICY IF EXISTS audit_log_app ON %s', p);
                        EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', p);
                    END IF;
                END LOOP;
            END $$""")
    op.execute("DROP POLICY IF EXISTS audit_log_district ON audit_log")
    op.execute("DROP POLICY IF EXISTS audit_log_app ON audit_log")
    op.execute("ALTER TABLE audit_log DISABLE ROW LEVEL SECURITY")
    for table in CASE_TABLES:
        op.execute(f"DROP POLICY IF EXISTS {table}_district ON {table}")
    op.execute("DROP FUNCTION IF EXISTS citygrid_case_district(bigint)")
