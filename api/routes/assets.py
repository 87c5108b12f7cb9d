"""Component upkeep route: grid owners and dispatchers record a light or cover's state."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict

from api.auth import AssetKeeperDep
from api.deps import SessionDep
from gis.assets.upkeep import update_component

router = APIRouter(tags=["assets"])


class ComponentChange(BaseModel):
    """What changed on the street."""

    model_config = ConfigDict(extra="forbid")

    state: Literal["intact", "damaged", "missing", "occupied"] | None = None
    lit: bool | None = None
    in_use: bool | None = None


class ComponentOut(BaseModel):
    """A component after the change."""

    code: str
    state: str
    lit: bool | None = None
    in_use: bool
    owner: str
    grid_code: str | None
    updated_at: dt.datetime


@router.patch("/assets/{layer_id}/{code}", response_model=ComponentOut,
              summary="记录部件状态 (record a component's state)")
def change_component(
    layer_id: Annotated[Literal["streetlights", "manhole_covers"], Path(description="layer")],
    code: Annotated[str, Path(pattern=r"^[0-9]{16}$", description="16-digit component code")],
    body: ComponentChange, session: SessionDep, user: AssetKeeperDep,
) -> ComponentOut:
    """Set state / lit / in use; a grid owner may change only components in their grids."""
    row = update_component(session, layer_id, code, state=body.state, lit=body.lit,
                           in_use=body.in_use)
    session.commit()
    return ComponentOut(**row)
