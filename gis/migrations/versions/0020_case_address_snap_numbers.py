"""Cases keep the address they were filed by, how it was geocoded and whether the point was
snapped; one case-number format, handed out by the database.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03

* `address` is the text as typed (hotline, Open311 `address_string`); `geocode_level` and
  `geocode_score` say how sure the geocoder was when the point came from that text (NULL when
  coordinates were given).
* `snapped` / `snap_distance_m`: a point a few metres outside every grid is placed in the
  nearest one (as `POST /route` does); the case records that it was and how far.
* Case numbers: `<prefix><city date YYYYMMDD><serial of the day, 4+ digits>`, the demo's
  format (LX202612030001). `next_case_no(prefix, day)` hands out the next serial under a
  transaction-scoped advisory lock, so two filings at once never get the same number. Cases
  numbered the other way (16 digits, date + id) are renumbered; their old number stays in
  `former_case_no` so a number already given to a resident still finds the case.
"""

import os

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

LEVELS = "'doorplate', 'interpolated', 'intersection', 'landmark', 'road', 'community'"

NEXT_CASE_NO = """
CREATE FUNCTION next_case_no(prefix text, day date) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    stem text := prefix || to_char(day, 'YYYYMMDD');
    last_serial bigint;
BEGIN
    IF prefix !~ '^[A-Z]{1,6}$' THEN
        RAISE EXCEPTION 'case number prefix % must be 1-6 capital letters', prefix;
    END IF;
    -- Held to the end of the transaction: the next caller for the same day waits for this
    -- case to be committed (or rolled back) and then sees its number.
    PERFORM pg_advisory_xact_lock(hashtext('citygrid.case_no'), hashtext(stem));
    SELECT coalesce(max(substr(case_no, length(stem) + 1)::bigint), 0) INTO last_serial
    FROM cases
    WHERE case_no LIKE stem || '%' AND substr(case_no, length(stem) + 1) ~ '^[0-9]{4,9}$';
    RETURN stem || lpad((last_serial + 1)::text, 4, '0');
END $$;
"""


def upgrade() -> None:
    op.execute(f"""
        ALTER TABLE cases
            ADD COLUMN address text CHECK (length(address) <= 500),
            ADD COLUMN geocode_level text CHECK (geocode_level IN ({LEVELS})),
            ADD COLUMN geocode_score real CHECK (geocode_score BETWEEN 0 AND 1),
            ADD COLUMN snapped boolean NOT NULL DEFAULT false,
            ADD COLUMN snap_distance_m real CHECK (snap_distance_m >= 0),
            ADD COLUMN former_case_no text UNIQUE,
            ADD CONSTRAINT cases_geocode_pair CHECK (
                (geocode_level IS NULL) = (geocode_score IS NULL)),
            ADD CONSTRAINT cases_snap_pair CHECK (snapped = (snap_distance_m IS NOT NULL))""")
    # LIKE 'LX20261203%' on the index whatever the database's collation.
    op.execute("CREATE INDEX cases_case_no_pattern_idx ON cases (case_no text_pattern_ops)")
    op.execute(NEXT_CASE_NO)
    # Only the app files cases (as 0012 does for citygrid's own functions).
    op.execute("REVOKE EXECUTE ON FUNCTION next_case_no(text, date) FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION next_case_no(text, date) TO citygrid_app")
    prefix = os.environ.get("CITYGRID_CITY_CASE_PREFIX", "LX")
    bind = op.get_bind()
    old = bind.execute(sa.text(
        "SELECT id, substr(case_no, 1, 8) AS day FROM cases "
        "WHERE case_no ~ '^20[0-9]{14}$' ORDER BY reported_at, id")).all()
    for row in old:
        bind.execute(sa.text("""
            UPDATE cases SET former_case_no = case_no,
                case_no = next_case_no(:prefix, to_date(:day, 'YYYYMMDD'))
            WHERE id = :id"""), {"prefix": prefix, "day": row.day, "id": row.id})


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS next_case_no(text, date)")
    op.execute("DROP INDEX IF EXISTS cases_case_no_pattern_idx")
    op.execute("UPDATE cases SET case_no = former_case_no WHERE former_case_no IS NOT NULL")
    op.execute("""
        ALTER TABLE cases
            DROP CONSTRAINT IF EXISTS cases_geocode_pair,
            DROP CONSTRAINT IF EXISTS cases_snap_pair,
            DROP COLUMN IF EXISTS address, DROP COLUMN IF EXISTS geocode_level,
            DROP COLUMN IF EXISTS geocode_score, DROP COLUMN IF EXISTS snapped,
            DROP COLUMN IF EXISTS snap_distance_m, DROP COLUMN IF EXISTS former_case_no""")
