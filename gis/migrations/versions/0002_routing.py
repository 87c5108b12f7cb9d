"""Routing: who is responsible for a complaint, as a configurable rules table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

A complaint takes the rule of its category type whose code prefix is the longest prefix of its
category code ('' matches everything, so every type needs a '' rule as its default). A rule
either names a fixed unit or defers: 'component_owner' to the linked component's owner (else the
rule's unit, else the component class's default owner), 'grid_owner' to the grid's owner at the
complaint's time (属地, with the local-government fallback when the grid has none).
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE responsibility_rules (
    id serial PRIMARY KEY,
    category_type text NOT NULL CHECK (category_type IN ('event', 'component')),
    code_prefix varchar(4) NOT NULL DEFAULT '' CHECK (code_prefix ~ '^[0-9]{0,4}$'),
    rule_kind text NOT NULL CHECK (rule_kind IN ('fixed', 'component_owner', 'grid_owner')),
    responsible_unit text CHECK (responsible_unit IS NULL OR responsible_unit <> ''),
    notes text NOT NULL DEFAULT '',
    UNIQUE (category_type, code_prefix),
    CHECK (rule_kind <> 'fixed' OR responsible_unit IS NOT NULL)
);

-- The owner of every grid today; history stays in grid_owners for judging past complaints.
CREATE VIEW current_grid_owners AS
SELECT grid_code, owner_name, owner_kind, phone, valid_from, valid_to
FROM grid_owners
WHERE valid_from <= current_date AND (valid_to IS NULL OR valid_to > current_date);

CREATE INDEX grid_owners_grid_from_idx ON grid_owners (grid_code, valid_from);
"""

RULES = [
    ("component", "", "component_owner", None,
     "by component class owner: the component's own owner, else its class's default owner"),
    ("component", "01", "component_owner", None,
     "cover type decides the owner (污水 -> 排水, 燃气 -> 燃气公司, ...)"),
    ("component", "0118", "component_owner", "济南市城市照明服务中心",
     "streetlights go to the lighting office unless the light records another owner"),
    ("event", "", "grid_owner", None, "default: the grid owner (属地)"),
    ("event", "01", "fixed", "环卫所", "01 市容环境: sanitation station"),
    ("event", "04", "fixed", "市政排水管理处",
     "04 突发事件 (塌陷, 下水道, 积水): drainage / municipal"),
    ("event", "05", "fixed", "城管执法中队", "05 街面秩序: enforcement squad"),
]


def _literal(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def upgrade() -> None:
    op.execute(SCHEMA)
    rows = ", ".join(
        f"({_literal(t)}, {_literal(p)}, {_literal(k)}, {_literal(u)}, {_literal(n)})"
        for t, p, k, u, n in RULES)
    op.execute("INSERT INTO responsibility_rules "
               f"(category_type, code_prefix, rule_kind, responsible_unit, notes) VALUES {rows}")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS grid_owners_grid_from_idx")
    op.execute("DROP VIEW IF EXISTS current_grid_owners")
    op.execute("DROP TABLE IF EXISTS responsibility_rules")
