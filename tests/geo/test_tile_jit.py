"""A grid owner's tiles are planned without JIT compilation (the app's pools set `jit = off`).

Row-level security keeps a grid owner's cases query off the spatial index (`&&` is not
leakproof), so its plan is costed as a sequential scan, above PostgreSQL's jit_above_cost:
with JIT on, each cases tile of /map's first view spent ~500 ms compiling for ~20 ms of work.
"""

from __future__ import annotations

import json
import math

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import gis.geo.tile_layers as tile_layers
from gis.access.auth import User, scope_transaction
from gis.geo.tiles import TileKey


def _owner_with_most_cases(engine: Engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text("""
            SELECT o.owner_name FROM grid_owners o JOIN cases c ON c.grid_code = o.grid_code
            WHERE o.valid_to IS NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 1""")).scalar_one()


def _tile_over_owner(engine: Engine, owner: str) -> TileKey:
    with engine.connect() as conn:
        lon, lat = conn.execute(text("""
            SELECT ST_X(c.geom), ST_Y(c.geom) FROM cases c
            JOIN grid_owners o ON o.grid_code = c.grid_code AND o.valid_to IS NULL
            WHERE o.owner_name = :o ORDER BY c.id LIMIT 1"""), {"o": owner}).one()
    # The 512 px z12 tile of /map's first view (zoom 13) that holds one of the owner's cases.
    n = 2 ** 12
    row = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return TileKey(12, int((lon + 180) / 360 * n), int(row))


def test_a_grid_owners_cases_tile_runs_without_jit(demo_app: FastAPI, demo_client,
                                                   demo_engine: Engine, monkeypatch) -> None:
    owner = _owner_with_most_cases(demo_engine)
    tile = _tile_over_owner(demo_engine, owner)
    plans: list[dict] = []

    def explain(session: Session, sql: str, params: dict[str, object]) -> bytes:
        plan = session.execute(text("EXPLAIN (ANALYZE, FORMAT JSON) " + sql), params).scalar_one()
        plans.append(plan[0] if isinstance(plan, list) else json.loads(plan)[0])
        return b""

    monkeypatch.setattr(tile_layers, "run_tile_query", explain)
    user = User(1, "owner", "grid_owner", owner_name=owner)
    # The app's own pool (demo_client runs the lifespan), so its connection settings apply.
    with Session(demo_app.state.engine) as session, session.begin():
        scope_transaction(session, user=user)
        tile_layers.layer_tile(session, "cases", tile, px=512)
    (plan,) = plans
    # The point of the test: the estimate is over jit_above_cost, yet nothing is compiled.
    assert plan["Plan"]["Total Cost"] > 100_000, plan["Plan"]["Total Cost"]
    assert "JIT" not in plan, plan["JIT"]
