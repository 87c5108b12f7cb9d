"""The grid owners' row-level-security role reads the tables added since migration 0010.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03

Migration 0010 granted `citygrid_grid_owner` SELECT on the tables that existed then, so a grid
owner's request touching a later table (the gazetteer of 0015 on `/geocode`, the routing
version of 0016 on `/route`) failed with "permission denied" (a 500 found by the fuzzer).
From now on every table and view the migrations create in `public` and `pub` is readable by
the role by default; row-level security still limits what it sees of the tables it covers,
and the account tables and the audit log stay out of its reach.
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

SCOPED_ROLE = "citygrid_grid_owner"
PRIVATE = "users, api_tokens, audit_log"


def upgrade() -> None:
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public, pub TO {SCOPED_ROLE}")
    op.execute(f"REVOKE SELECT ON {PRIVATE} FROM {SCOPED_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public, pub GRANT SELECT ON TABLES "
               f"TO {SCOPED_ROLE}")


def downgrade() -> None:
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public, pub REVOKE SELECT ON TABLES "
               f"FROM {SCOPED_ROLE}")
