"""Data versions move at commit, not at the first write: case writers no longer deadlock.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-03

Migration 0022 moved `data_versions.<table>` from a statement trigger, so the first write to
`cases` in a transaction locked the `cases` counter row until commit. A transaction that then
locked another case (linking a repeat group) waited for a workflow action holding that case,
while the action's own write waited for the counter: deadlock
(`tests/dispatch/test_repeat_concurrency.py`). It also made every case write wait for every
other open case write.

Now the first row a transaction writes to a versioned table queues one deferred constraint
trigger (its WHEN helper notes the table in a transaction-local setting and answers true only
the first time), and at commit that trigger moves the counters of every noted table, in name
order, so two committing transactions lock them in the same order. The properties of 0022
hold: the new number is visible together with the edit, a rolled-back edit (or savepoint)
leaves no mark, and a result computed while an edit was open keeps the version before it.
TRUNCATE keeps an immediate statement trigger (row triggers do not see it).
"""

from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

WRITERS = ("citygrid_app", "citygrid_grid_owner")

FUNCTIONS = """
CREATE FUNCTION data_version_touch(tbl text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    seen text := coalesce(current_setting('citygrid.data_version_tables', true), '');
BEGIN
    IF position(',' || tbl || ',' IN seen) > 0 THEN
        RETURN false;
    END IF;
    -- Transaction-local: gone at commit or rollback, and undone with a rolled-back savepoint
    -- together with the trigger event it queued.
    PERFORM set_config('citygrid.data_version_tables',
                       CASE WHEN seen = '' THEN ',' ELSE seen END || tbl || ',', true);
    RETURN seen = '';
END $$;

CREATE FUNCTION data_version_bump_at_commit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    names text[] := string_to_array(
        trim(both ',' FROM coalesce(current_setting('citygrid.data_version_tables', true), '')),
        ',');
    name text;
BEGIN
    FOREACH name IN ARRAY coalesce((SELECT array_agg(n ORDER BY n) FROM unnest(names) n),
                                   '{}') LOOP
        UPDATE data_versions SET version = nextval('data_versions_seq'), changed_at = now()
        WHERE table_name = name;
    END LOOP;
    -- Writes after SET CONSTRAINTS ... IMMEDIATE queue a fresh event.
    PERFORM set_config('citygrid.data_version_tables', '', true);
    RETURN NULL;
END $$;
REVOKE EXECUTE ON FUNCTION data_version_touch(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION data_version_bump_at_commit() FROM PUBLIC;
"""


def _tables() -> list[str]:
    """Every table with a counter and a 0022-style statement trigger."""
    rows = op.get_bind().exec_driver_sql("""
        SELECT v.table_name FROM data_versions v
        JOIN pg_trigger t ON t.tgname = v.table_name || '_data_version'
         AND t.tgrelid = to_regclass('public.' || v.table_name) AND NOT t.tgisinternal
         AND t.tgparentid = 0
        ORDER BY 1""").all()
    return [r[0] for r in rows]


def upgrade() -> None:
    op.execute(FUNCTIONS)
    for role in WRITERS:
        op.execute(f"GRANT EXECUTE ON FUNCTION data_version_touch(text) TO {role}")
    for table in _tables():
        op.execute(f"DROP TRIGGER {table}_data_version ON {table}")
        op.execute(f"CREATE TRIGGER {table}_data_version_truncate AFTER TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION data_version_bump()")
        op.execute(f"CREATE CONSTRAINT TRIGGER {table}_data_version "
                   f"AFTER INSERT OR UPDATE OR DELETE ON {table} "
                   "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                   f"WHEN (data_version_touch('{table}')) "
                   "EXECUTE FUNCTION data_version_bump_at_commit()")


def downgrade() -> None:
    rows = op.get_bind().exec_driver_sql("""
        SELECT table_name FROM data_versions
        WHERE to_regclass('public.' || table_name) IS NOT NULL ORDER BY 1""").all()
    for (table,) in rows:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_data_version ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_data_version_truncate ON {table}")
        op.execute(f"CREATE TRIGGER {table}_data_version AFTER INSERT OR UPDATE OR DELETE "
                   f"OR TRUNCATE ON {table} FOR EACH STATEMENT "
                   "EXECUTE FUNCTION data_version_bump()")
    op.execute("DROP FUNCTION IF EXISTS data_version_bump_at_commit()")
    op.execute("DROP FUNCTION IF EXISTS data_version_touch(text)")
