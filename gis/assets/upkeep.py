"""Component upkeep: a streetlight's or manhole cover's state changes (修复, 破损, 丢失)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.platform.errors import InvalidInputError, NotFoundError

COMPONENT_TABLES = {"streetlights": "路灯", "manhole_covers": "井盖"}
COMPONENT_STATES = ("intact", "damaged", "missing", "occupied")


def update_component(session: Session, layer_id: str, code: str, *, state: str | None = None,
                     lit: bool | None = None, in_use: bool | None = None,
                     at: dt.datetime | None = None) -> dict[str, Any]:
    """Change a component's state / lit / in-use flags (as of `at`, default now); 404 if unseen."""
    if layer_id not in COMPONENT_TABLES:
        raise NotFoundError(f"layer {layer_id!r} has no component states; expected one of "
                            f"{', '.join(COMPONENT_TABLES)}")
    if state is not None and state not in COMPONENT_STATES:
        raise InvalidInputError(f"unknown component state {state!r}; expected one of "
                                f"{', '.join(COMPONENT_STATES)}")
    if lit is not None and layer_id != "streetlights":
        raise InvalidInputError(f"'lit' applies to streetlights, not {layer_id}")
    if state is None and lit is None and in_use is None:
        raise InvalidInputError("nothing to change: give state, lit or in_use")
    lit_sql = "lit = coalesce(:lit, lit), " if layer_id == "streetlights" else ""
    lit_out = "lit, " if layer_id == "streetlights" else ""
    # Under a grid owner's row-level security an asset of another grid matches no row.
    row = session.execute(text(
        f"UPDATE {layer_id} SET state = coalesce(:state, state), {lit_sql}"
        f"in_use = coalesce(:in_use, in_use), "
        f"updated_at = coalesce(CAST(:at AS timestamptz), now()) WHERE code = :code "
        f"RETURNING code, state, {lit_out}in_use, owner, grid_code, updated_at"),
        {"state": state, "lit": lit, "in_use": in_use, "code": code, "at": at}
    ).mappings().first()
    if row is None:
        raise NotFoundError(f"{layer_id} has no component {code!r} that you may change")
    return dict(row)
