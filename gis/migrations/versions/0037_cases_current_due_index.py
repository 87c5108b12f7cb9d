"""An index on the current step's deadline, the order of every case list on the desk.

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-04

`GET /cases` (the desk's list, `gis.dispatch.cases.list_cases`) orders by the deadline of the
case's current step (`CURRENT_DUE_SQL`), then report time and id. Without an index on that
expression PostgreSQL read and sorted every case for each page of 300: ~80-110 ms at the demo
city's 56,000 cases, the slowest request of the desk's first view, and linear in the history.
With it, a page is read in index order and the scan stops at the page's end. The expression
must stay the one in `gis.dispatch.deadlines.CURRENT_DUE_SQL` (a test compares the plans).
"""

from alembic import op

revision = "0037"
down_revision = "0036"
branch_labels = None
depends_on = None

CURRENT_DUE = """(CASE
    WHEN status IN ('collected', 'filed') THEN dispatch_due_at
    WHEN status IN ('dispatched', 'handled') THEN due_at
    WHEN status = 'reported' THEN verify_due_at END)"""


def upgrade() -> None:
    op.execute(f"CREATE INDEX IF NOT EXISTS cases_current_due_idx ON cases "
               f"({CURRENT_DUE} NULLS LAST, reported_at, id)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS cases_current_due_idx")
