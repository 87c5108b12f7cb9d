"""Shared throttles: sign-in failures and public report counts seen by every app process.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-03

Each app process kept its own counts, so `citygrid serve --workers 4` gave an attacker four
times the sign-in budget and a resident four times the 随手拍 quota. These tables hold the
counts in PostgreSQL, where every worker (and every host of the app) meets them. They are
UNLOGGED: counts are worth less than the WAL they would write, and a crash forgetting them is
what a restart of one process did before. The app role reads and writes them (default
privileges of migration 0012); the grid owners' role does not see them (usernames and client
addresses are not theirs to read).
"""

from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

SCOPED_ROLE = "citygrid_grid_owner"


def upgrade() -> None:
    op.execute("""
        CREATE UNLOGGED TABLE sign_in_failures (
            kind text NOT NULL CHECK (kind IN ('user', 'address')),
            key text NOT NULL CHECK (length(key) <= 128),
            failures integer NOT NULL CHECK (failures > 0),
            last_failure timestamptz NOT NULL,
            locked_until timestamptz NOT NULL DEFAULT '-infinity',
            PRIMARY KEY (kind, key))""")
    op.execute("""
        CREATE UNLOGGED TABLE rate_windows (
            scope text NOT NULL,
            key text NOT NULL CHECK (length(key) <= 128),
            window_start timestamptz NOT NULL,
            hits integer NOT NULL CHECK (hits > 0),
            PRIMARY KEY (scope, key, window_start))""")
    op.execute(f"REVOKE ALL ON sign_in_failures, rate_windows FROM {SCOPED_ROLE}")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS rate_windows")
    op.execute("DROP TABLE IF EXISTS sign_in_failures")
