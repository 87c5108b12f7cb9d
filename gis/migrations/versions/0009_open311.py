"""Open311 GeoReport v2 intake: an 'open311' channel on cases and a table for request extras.

Revision ID: 0009
Revises: 0006
Create Date: 2026-11-23

Requests posted by other city systems become ordinary cases (channel 'open311'), so the
dispatcher sees them with every other complaint. What GeoReport v2 carries beyond a case (the
address string, a media URL, the component named in an attribute, the reporter's contact
details) lives in `open311_requests`, keyed by the case. The reporter's contact details are
kept for the callback (回访) only: no public route or Open311 response ever selects them.
Downgrading refuses while cases with channel 'open311' exist (the old CHECK would not hold).
"""

from alembic import op

revision = "0009"
down_revision = "0006"
branch_labels = None
depends_on = None

CHANNELS = "'hotline_12345', 'hotline_12319', 'wechat', 'patrol'"


def upgrade() -> None:
    op.execute("ALTER TABLE cases DROP CONSTRAINT cases_channel_check")
    op.execute(f"ALTER TABLE cases ADD CONSTRAINT cases_channel_check "
               f"CHECK (channel IN ({CHANNELS}, 'open311'))")
    op.execute("""
        CREATE TABLE open311_requests (
            case_id bigint PRIMARY KEY REFERENCES cases(id) ON DELETE RESTRICT,
            service_code text NOT NULL CHECK (service_code ~ '^(event|component)-[0-9]{4}$'),
            address_string text,
            media_url text CHECK (media_url IS NULL OR media_url ~* '^https?://'),
            component_code char(16) CHECK (component_code ~ '^[0-9]{16}$'),
            -- Personal data of the reporter: for the callback only, never published.
            reporter_email text,
            reporter_first_name text,
            reporter_last_name text,
            reporter_phone text,
            device_id text,
            account_id text,
            received_at timestamptz NOT NULL DEFAULT now()
        )
    """)
    op.execute("COMMENT ON COLUMN open311_requests.reporter_phone IS "
               "'personal data: never returned by public or Open311 routes'")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS open311_requests")
    op.execute("ALTER TABLE cases DROP CONSTRAINT cases_channel_check")
    op.execute(f"ALTER TABLE cases ADD CONSTRAINT cases_channel_check "
               f"CHECK (channel IN ({CHANNELS}))")
