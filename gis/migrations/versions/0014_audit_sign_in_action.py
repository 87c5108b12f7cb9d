"""Sign-in events get their own audit action, SIGN_IN.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03

Failed and locked sign-ins (api/routes/access.py) are written to `audit_log` by the app role.
They are not row changes, so they no longer pretend to be INSERTs; rows logged before this
revision are left as they are (the log is append-only).
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE audit_log DROP CONSTRAINT IF EXISTS audit_log_action_check")
    op.execute("ALTER TABLE audit_log ADD CONSTRAINT audit_log_action_check "
               "CHECK (action IN ('INSERT', 'UPDATE', 'DELETE', 'BULK', 'SIGN_IN'))")


def downgrade() -> None:
    op.execute("ALTER TABLE audit_log DROP CONSTRAINT IF EXISTS audit_log_action_check")
    op.execute("ALTER TABLE audit_log ADD CONSTRAINT audit_log_action_check "
               "CHECK (action IN ('INSERT', 'UPDATE', 'DELETE', 'BULK'))")
