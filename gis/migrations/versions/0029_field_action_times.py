"""Field actions keep the time they were made: the phone's stamp, the time used, the flag.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-03

A handling report or a verification queued offline on a phone carries `acted_at`, the moment
the worker pressed the button. The case records that moment as the step's time (timeline,
deadlines) unless it cannot be true: later than the server's clock beyond a small skew, or
before the case was dispatched (or before its last step). Then the server's time is used
and the row here says why. One row per phone-stamped action: what the phone said
(`acted_at`), what the case records (`recorded_at`), when the server received it
(`received_at`), the flag. Append-only like the other audit tables. `transition_id` names a
`case_transitions` row without a foreign key (that table is partitioned by month, keyed by
(id, at)).
"""

from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

SCOPED_ROLE = "citygrid_grid_owner"
APP_ROLE = "citygrid_app"


def upgrade() -> None:
    op.execute("""
        CREATE TABLE field_action_times (
            id bigserial PRIMARY KEY,
            case_id bigint NOT NULL REFERENCES cases(id) ON DELETE RESTRICT,
            transition_id bigint,
            verification_id bigint REFERENCES case_verifications(id) ON DELETE RESTRICT,
            actor text NOT NULL CHECK (btrim(actor) <> ''),
            acted_at timestamptz NOT NULL,
            recorded_at timestamptz NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            flag text CHECK (flag IN ('future', 'before_dispatch', 'before_last_step')),
            CHECK ((transition_id IS NULL) <> (verification_id IS NULL)),
            CHECK ((flag IS NULL) = (acted_at = recorded_at))
        )
    """)
    op.execute("CREATE INDEX field_action_times_case_idx ON field_action_times (case_id, id)")
    op.execute("CREATE TRIGGER field_action_times_append_only BEFORE UPDATE OR DELETE "
               "ON field_action_times FOR EACH ROW EXECUTE FUNCTION case_audit_append_only()")
    op.execute("ALTER TABLE field_action_times ENABLE ROW LEVEL SECURITY")
    # A grid owner records and reads times only of cases they can see (their grids).
    op.execute(f"CREATE POLICY field_action_times_own_grids ON field_action_times "
               f"TO {SCOPED_ROLE} USING (case_id IN (SELECT id FROM cases)) "
               f"WITH CHECK (case_id IN (SELECT id FROM cases))")
    op.execute(f"CREATE POLICY field_action_times_app ON field_action_times TO {APP_ROLE} "
               "USING (true) WITH CHECK (true)")
    for role in (SCOPED_ROLE, APP_ROLE):
        op.execute(f"GRANT SELECT, INSERT ON field_action_times TO {role}")
        op.execute(f"GRANT USAGE ON SEQUENCE field_action_times_id_seq TO {role}")


def downgrade() -> None:
    op.execute("DROP TABLE field_action_times")
