"""Case workflow: append-only transition audit, deadline rules, workflow columns on cases.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Deadline rules are configuration: a case takes, for each step, the most specific rule that
matches its category, urgency and area type (NULL in a rule means "any").
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STATUSES = ("('collected', 'filed', 'dispatched', 'handled', 'reported', 'closed', "
            "'evaluated', 'rejected')")
ACTIONS = ("('collect', 'file', 'reject', 'dispatch', 'handle', 'report', 'close', 'rework', "
           "'evaluate', 'extend', 'reply')")

SCHEMA = f"""
-- Who did what to a case and when. Rows are never changed or removed: the audit is the record.
CREATE TABLE case_transitions (
    id bigserial PRIMARY KEY,
    case_id bigint NOT NULL REFERENCES cases(id) ON DELETE RESTRICT,
    action text NOT NULL CHECK (action IN {ACTIONS}),
    from_status text CHECK (from_status IN {STATUSES}),
    to_status text NOT NULL CHECK (to_status IN {STATUSES}),
    actor text NOT NULL CHECK (btrim(actor) <> ''),
    at timestamptz NOT NULL,
    note text NOT NULL DEFAULT '',
    recorded_at timestamptz NOT NULL DEFAULT now(),
    -- Only the opening 'collect' row has no previous status.
    CHECK ((action = 'collect') = (from_status IS NULL))
);
CREATE INDEX case_transitions_case_idx ON case_transitions (case_id, at, id);

-- Each extension keeps the deadline it replaced and why (延期 needs a reason).
CREATE TABLE case_extensions (
    id bigserial PRIMARY KEY,
    case_id bigint NOT NULL REFERENCES cases(id) ON DELETE RESTRICT,
    transition_id bigint NOT NULL UNIQUE REFERENCES case_transitions(id) ON DELETE RESTRICT,
    previous_due_at timestamptz NOT NULL,
    new_due_at timestamptz NOT NULL CHECK (new_due_at > previous_due_at),
    reason text NOT NULL CHECK (btrim(reason) <> '')
);
CREATE INDEX case_extensions_case_idx ON case_extensions (case_id);

CREATE FUNCTION case_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER case_transitions_append_only BEFORE UPDATE OR DELETE ON case_transitions
    FOR EACH ROW EXECUTE FUNCTION case_audit_append_only();
CREATE TRIGGER case_extensions_append_only BEFORE UPDATE OR DELETE ON case_extensions
    FOR EACH ROW EXECUTE FUNCTION case_audit_append_only();

-- category_code_prefix matches by prefix: '0102' one class, '01' a whole major class.
CREATE TABLE deadline_rules (
    id serial PRIMARY KEY,
    category_type text CHECK (category_type IN ('event', 'component')),
    category_code_prefix text CHECK (category_code_prefix ~ '^[0-9]{{2}}([0-9]{{2}})?$'),
    urgency text CHECK (urgency IN ('urgent', 'normal')),
    area_type text CHECK (area_type IN ('city', 'rural')),
    step text NOT NULL CHECK (step IN ('dispatch', 'handle', 'verify')),
    duration integer NOT NULL CHECK (duration > 0),
    unit text NOT NULL CHECK (unit IN ('minutes', 'hours', 'working_days')),
    note text NOT NULL DEFAULT '',
    -- A code prefix only means something within one category type (0102 is two things).
    CHECK (category_code_prefix IS NULL OR category_type IS NOT NULL),
    UNIQUE NULLS NOT DISTINCT (category_type, category_code_prefix, urgency, area_type, step)
);

ALTER TABLE cases
    ADD COLUMN urgency text NOT NULL DEFAULT 'normal' CHECK (urgency IN ('urgent', 'normal')),
    ADD COLUMN area_type text NOT NULL DEFAULT 'city' CHECK (area_type IN ('city', 'rural')),
    ADD COLUMN dispatch_due_at timestamptz,
    ADD COLUMN dispatched_at timestamptz CHECK (dispatched_at >= reported_at),
    ADD COLUMN due_at timestamptz CHECK (due_at >= dispatched_at),
    ADD COLUMN verify_due_at timestamptz,
    -- True when a deadline was counted past the calendar data (weekends only, see deadlines.py).
    ADD COLUMN due_approximate boolean NOT NULL DEFAULT false,
    ADD COLUMN reworked_count integer NOT NULL DEFAULT 0 CHECK (reworked_count >= 0),
    ADD COLUMN extended_count integer NOT NULL DEFAULT 0 CHECK (extended_count >= 0),
    ADD COLUMN satisfaction text
        CHECK (satisfaction IN ('satisfied', 'basically', 'unsatisfied')),
    ADD COLUMN surveyed_at timestamptz CHECK (surveyed_at >= reported_at),
    ADD COLUMN replied_at timestamptz CHECK (replied_at >= reported_at),
    ADD COLUMN repeat_group_id bigint REFERENCES cases(id),
    ADD COLUMN repeat_of bigint REFERENCES cases(id) CHECK (repeat_of <> id),
    ADD COLUMN supervised boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT cases_survey_complete CHECK ((satisfaction IS NULL) = (surveyed_at IS NULL)),
    ADD CONSTRAINT cases_repeat_in_group CHECK (repeat_of IS NULL OR repeat_group_id IS NOT NULL);
CREATE INDEX cases_status_due_idx ON cases (status, due_at);
CREATE INDEX cases_repeat_group_idx ON cases (repeat_group_id) WHERE repeat_group_id IS NOT NULL;
CREATE INDEX cases_supervised_idx ON cases (repeat_group_id) WHERE supervised;
"""

# (category_type, prefix, urgency, area_type, step, duration, unit, note). Examples from
# DOMAIN.md (Taiyuan rules); the all-NULL rows are the defaults every case falls back to.
DEADLINE_RULES = [
    (None, None, "urgent", None, "dispatch", 10, "minutes", "立案派遣 紧急 10 分钟"),
    (None, None, "normal", None, "dispatch", 30, "minutes", "立案派遣 一般 30 分钟"),
    (None, None, None, "city", "verify", 1, "hours", "核查 城区 1 小时"),
    (None, None, None, "rural", "verify", 2, "hours", "核查 郊区 2 小时"),
    (None, None, "urgent", None, "handle", 4, "hours", "紧急案件默认 4 小时"),
    (None, None, "normal", None, "handle", 3, "working_days", "一般案件默认 3 个工作日"),
    ("component", "0102", None, None, "handle", 2, "hours", "污水井盖缺失 2 小时"),
    ("component", "0118", None, None, "handle", 1, "working_days", "路灯不亮 1 个工作日"),
]


def _literal(value: object) -> str:
    # Values are literals from this file, never user input.
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def upgrade() -> None:
    op.execute(SCHEMA)
    rows = ", ".join("(" + ", ".join(_literal(v) for v in rule) + ")" for rule in DEADLINE_RULES)
    op.execute("INSERT INTO deadline_rules (category_type, category_code_prefix, urgency, "
               f"area_type, step, duration, unit, note) VALUES {rows}")


def downgrade() -> None:
    op.execute("""
        DROP INDEX IF EXISTS cases_supervised_idx;
        DROP INDEX IF EXISTS cases_repeat_group_idx;
        DROP INDEX IF EXISTS cases_status_due_idx;
        ALTER TABLE cases
            DROP CONSTRAINT IF EXISTS cases_repeat_in_group,
            DROP CONSTRAINT IF EXISTS cases_survey_complete,
            DROP COLUMN IF EXISTS supervised,
            DROP COLUMN IF EXISTS repeat_of,
            DROP COLUMN IF EXISTS repeat_group_id,
            DROP COLUMN IF EXISTS replied_at,
            DROP COLUMN IF EXISTS surveyed_at,
            DROP COLUMN IF EXISTS satisfaction,
            DROP COLUMN IF EXISTS extended_count,
            DROP COLUMN IF EXISTS reworked_count,
            DROP COLUMN IF EXISTS due_approximate,
            DROP COLUMN IF EXISTS verify_due_at,
            DROP COLUMN IF EXISTS due_at,
            DROP COLUMN IF EXISTS dispatched_at,
            DROP COLUMN IF EXISTS dispatch_due_at,
            DROP COLUMN IF EXISTS area_type,
            DROP COLUMN IF EXISTS urgency;
        DROP TABLE IF EXISTS deadline_rules;
        DROP TABLE IF EXISTS case_extensions;
        DROP TABLE IF EXISTS case_transitions;
        DROP FUNCTION IF EXISTS case_audit_append_only();
    """)
