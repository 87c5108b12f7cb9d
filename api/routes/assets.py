"""Component upkeep route: grid owners and dispatchers record a light or cover's state."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from api.auth import AssetKeeperDep
from api.deps import SessionDep
from api.params import SaneAwareDatetime
from gis.assets.upkeep import update_component
from gis.field import acted_at

router = APIRouter(tags=["assets"])


class ComponentChange(BaseModel):
    """What changed on the street."""

    model_config = ConfigDict(extra="forbid")

    state: Literal["intact", "damaged", "missing", "occupied"] | None = None
    lit: bool | None = None
    in_use: bool | None = None
    acted_at: SaneAwareDatetime | None = Field(default=None, description=(
        "when the phone recorded it (offline queue); kept if after the previous change and "
        "not in the future (2 min skew), else now and flagged"))


class ComponentOut(BaseModel):
    """A component after the change."""

    code: str
    state: str
    lit: bool | None = None
    in_use: bool
    owner: str
    grid_code: str | None
    updated_at: dt.datetime
    acted_at_flag: str | None = Field(default=None, description=(
        "why the phone's acted_at was not kept (future, before_last_step); updated_at is "
        "then the server's time"))


@router.patch("/assets/{layer_id}/{code}", response_model=ComponentOut,
              summary="记录部件状态 (record a component's state)")
def change_component(
    layer_id: Annotated[Literal["streetlights", "manhole_covers"], Path(description="layer")],
    code: Annotated[str, Path(pattern=r"^[0-9]{16}$", description="16-digit component code")],
    body: ComponentChange, session: SessionDep, user: AssetKeeperDep,
) -> ComponentOut:
    """Set state / lit / in use; a grid owner may change only components in their grids."""
    settled = (None if body.acted_at is None
               else acted_at.settle_component(session, layer_id, code, body.acted_at))
    row = update_component(session, layer_id, code, state=body.state, lit=body.lit,
                           in_use=body.in_use, at=settled.at if settled else None)
    session.commit()
    return ComponentOut(**row, acted_at_flag=settled.flag if settled else None)
