"""Case media: photo evidence of a case at each workflow step, metadata only (files on disk).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03

The image bytes live in the media folder (content-addressed by SHA-256, `gis.media.store`);
this table holds what the platform knows about each upload: the step it proves (report 处置前,
handling 处置后, verification 核查), EXIF time and position, the distance from the case and
the flags raised. Rows are never deleted (a trigger refuses DELETE, and the app role has no
DELETE grant): a wrong photo is superseded with a reason, and both the upload and the
supersession are rows of the audit log. Grid owners see the media of their grids' cases only
(row-level security, like case_transitions). `pub.case_photos` lists the published photos
(after photos, and a resident's own 随手拍 photo, not superseded) by their unguessable public
name, for the residents' tracking page and Open311 `media_url`; their public copies carry
no EXIF.
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

APP_ROLE = "citygrid_app"
SCOPED_ROLE = "citygrid_grid_owner"
PUBLIC_ROLE = "citygrid_public"


def upgrade() -> None:
    op.execute("""
        CREATE TABLE case_media (
            id bigserial PRIMARY KEY,
            case_id integer NOT NULL REFERENCES cases(id),
            stage text NOT NULL CHECK (stage IN ('report', 'handling', 'verification')),
            sha256 char(64) NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
            content_type text NOT NULL,
            byte_size integer NOT NULL CHECK (byte_size > 0),
            width integer NOT NULL CHECK (width > 0),
            height integer NOT NULL CHECK (height > 0),
            taken_at timestamptz,
            exif_lon double precision,
            exif_lat double precision,
            distance_m double precision,
            flags text[] NOT NULL DEFAULT '{}',
            note text NOT NULL DEFAULT '',
            uploaded_by text NOT NULL,
            uploaded_at timestamptz NOT NULL DEFAULT now(),
            idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 200),
            -- Random, unguessable file name of the EXIF-free public copy.
            public_name text NOT NULL UNIQUE CHECK (public_name ~ '^[A-Za-z0-9_-]{20,100}$'),
            -- Whether the public copy may be shown: after photos, and a resident's own photo.
            published boolean NOT NULL DEFAULT false,
            superseded_by bigint REFERENCES case_media(id),
            superseded_reason text,
            superseded_at timestamptz,
            UNIQUE (case_id, idempotency_key),
            CHECK ((superseded_at IS NULL) = (superseded_reason IS NULL))
        )
    """)
    op.execute("CREATE INDEX case_media_case ON case_media (case_id, stage)")
    op.execute("CREATE TRIGGER case_media_audit AFTER INSERT OR UPDATE OR DELETE ON case_media "
               "FOR EACH ROW EXECUTE FUNCTION citygrid_audit()")
    op.execute("""
        CREATE FUNCTION case_media_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'case_media rows are never deleted: supersede the photo instead'
                USING ERRCODE = 'insufficient_privilege';
        END $$
    """)
    op.execute("CREATE TRIGGER case_media_no_delete BEFORE DELETE ON case_media "
               "FOR EACH ROW EXECUTE FUNCTION case_media_no_delete()")
    op.execute(f"REVOKE DELETE, TRUNCATE ON case_media FROM {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON case_media TO {APP_ROLE}, {SCOPED_ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON SEQUENCE case_media_id_seq TO {APP_ROLE}, {SCOPED_ROLE}")
    op.execute("ALTER TABLE case_media ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY case_media_app_all ON case_media TO {APP_ROLE} "
               "USING (true) WITH CHECK (true)")
    # The subquery on cases runs under the cases policy: only the owner's grids.
    op.execute(f"CREATE POLICY case_media_own_grids ON case_media TO {SCOPED_ROLE} "
               "USING (case_id IN (SELECT id FROM cases)) "
               "WITH CHECK (case_id IN (SELECT id FROM cases))")
    op.execute("""
        CREATE VIEW pub.case_photos AS
        SELECT c.case_no, m.stage, m.public_name, m.sha256, m.uploaded_at
        FROM case_media m JOIN cases c ON c.id = m.case_id
        WHERE m.published AND m.superseded_at IS NULL""")
    op.execute(f"GRANT SELECT ON pub.case_photos TO {PUBLIC_ROLE}, {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS pub.case_photos")
    op.execute("DROP TABLE IF EXISTS case_media")
    op.execute("DROP FUNCTION IF EXISTS case_media_no_delete()")
