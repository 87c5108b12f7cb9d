"""Exports are spreadsheet-safe: formula-like text typed by anyone comes out quoted, numbers not.

Every CSV the platform writes is covered: OGC `f=csv` (items and single item), `/route/batch`,
`citygrid route`, `citygrid export`, `citygrid analyse indicators --csv`. The payloads are
typed into zone operators, grid owner names, facility names and addresses, case descriptions
and the uploaded hotline rows; each must come out with a leading `'` (OWASP CSV injection).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from api.csv_safety import safe_csv_rows
from api.main import create_app
from cli.main import app as cli_app
from gis.platform.db import make_engine
from gis.platform.exports_safety import (
    FORMULA_STARTS,
    PLAIN_NUMBER,
    neutralise_cell,
    neutralise_frame,
    restore_cell,
    restore_frame,
)
from gis.platform.settings import CitySettings, Settings
from layers.registry import get_layer
from layers.transfer import read_features
from tests.dispatch.test_routing import A, B, build_city
from tests.support.accounts import headers_for
from tests.support.databases import seeded_database

PAYLOADS = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
OPERATOR = PAYLOADS[0]
A02_CENTRE = (117.0315, 36.6615)  # inside the approved night market (Fridays 18:00-02:00)
OWNED_GRIDS = [f"{A}01", f"{A}02", f"{A}04", f"{A}04", f"{B}01", f"{B}02"]
NEGATIVE = -12.5  # a case's raw_x: a number, never a formula


def quoted(value: str) -> bool:
    return value.startswith("'")


def read_cells(content: str) -> list[dict[str, str]]:
    """Rows of a CSV as text, exactly as a spreadsheet would receive each cell."""
    return list(csv.DictReader(io.StringIO(content.lstrip("\ufeff"), newline="")))


# ---------------------------------------------------------------------------------------------
# The helper


@pytest.mark.parametrize("payload", PAYLOADS)
def test_formula_like_text_is_quoted(payload: str) -> None:
    assert neutralise_cell(payload) == "'" + payload
    assert restore_cell(neutralise_cell(payload)) == payload


@pytest.mark.parametrize("value", [-2.5, -3, 0, 1e9, None, True, "-5", "+7", "-0.25", "1e5",
                                   "泉城路", "a=b", "", "'quoted", "http://x"])
def test_numbers_and_plain_text_are_left_alone(value: object) -> None:
    assert neutralise_cell(value) == value


def test_quote_prefix_round_trips_even_for_quoted_input() -> None:
    rng = np.random.default_rng(11)
    alphabet = list("=+-@\t\r'a1. ")
    values = ["".join(rng.choice(alphabet, size=rng.integers(0, 6))) for _ in range(5000)]
    for value in values:
        safe = neutralise_cell(value)
        assert restore_cell(safe) == value
        # What a spreadsheet sees first is a quote, a plain number or no formula start.
        assert not safe.startswith(FORMULA_STARTS) or PLAIN_NUMBER.fullmatch(safe), repr(safe)


def test_frame_quotes_text_and_column_names_but_not_numbers() -> None:
    frame = pd.DataFrame({"text": PAYLOADS, "amount": [-1.5, -2.0, 3.0, -4.0, 5.0, -6.0],
                          "count": [-1, 2, -3, 4, -5, 6], "@memo": ["ok"] * 6})
    safe = neutralise_frame(frame)
    assert all(quoted(v) for v in safe["text"])
    assert safe["amount"].dtype == np.float64
    assert safe["amount"].tolist() == frame["amount"].tolist()
    assert safe["count"].tolist() == frame["count"].tolist()
    assert "'@memo" in safe.columns
    assert restore_frame(safe)["text"].tolist() == PAYLOADS
    assert frame["text"].tolist() == PAYLOADS  # the caller's frame is not changed


def test_tipg_csv_rows_are_quoted() -> None:
    rows = [{"collectionId": "stall_zones", "itemId": i, "operator": p, "capacity": -i}
            for i, p in enumerate(PAYLOADS)]
    cells = read_cells("".join(safe_csv_rows(iter(rows))))
    assert [c["operator"] for c in cells] == ["'" + p for p in PAYLOADS]
    assert [c["capacity"] for c in cells] == [str(-i) for i in range(len(PAYLOADS))]
    assert list(safe_csv_rows(iter([]))) == []  # an empty page is an empty body, not a crash


# ---------------------------------------------------------------------------------------------
# Every export path, over a committed city whose text fields hold the payloads


def seed(session: Session) -> None:
    build_city(session)
    session.execute(text("UPDATE stall_zones SET operator = :o WHERE status = 'approved'"),
                    {"o": OPERATOR})
    owners = session.execute(text("SELECT id FROM grid_owners ORDER BY id")).scalars().all()
    for owner_id, payload in zip(owners, PAYLOADS, strict=True):
        session.execute(text("UPDATE grid_owners SET owner_name = :n WHERE id = :i"),
                        {"n": payload, "i": owner_id})
    for i, payload in enumerate(PAYLOADS):
        lon, lat = 117.0301 + i * 0.0002, 36.6601
        session.execute(text(
            "INSERT INTO facilities (name, kind, address, opening_hours, geom) VALUES "
            "(:p, 'public_toilet', :p, '全天', ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
            {"p": payload, "x": lon, "y": lat})
        grid = OWNED_GRIDS[i]
        session.execute(text(
            "INSERT INTO cases (case_no, category_type, category_code, channel, description, "
            "raw_x, raw_y, raw_crs, reported_at, grid_code, geom) VALUES (:no, 'event', "
            "'0505', 'hotline_12345', :p, :rx, 36.66, 'cgcs2000', "
            "'2025-09-15 10:00+08', :g, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
            {"no": f"XSS-{i}", "p": payload, "rx": NEGATIVE, "g": grid, "x": lon, "y": lat})


@pytest.fixture(scope="module")
def city_url(settings: Settings) -> Iterator[URL]:
    yield from seeded_database(settings, "exports", seed)


@pytest.fixture(scope="module")
def city_engine(city_url: URL) -> Iterator[Engine]:
    engine = make_engine(city_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def client(settings: Settings, city_url: URL, city_engine: Engine) -> Iterator[TestClient]:
    copy = settings.model_copy(deep=True)
    copy.db.url = city_url.render_as_string(hide_password=False)
    copy.city.name = "测试城"
    with TestClient(create_app(copy), headers=headers_for(city_engine, "dispatcher")) as c:
        yield c


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, city_url: URL) -> CliRunner:
    monkeypatch.setenv("CITYGRID_DATABASE_URL", city_url.render_as_string(hide_password=False))
    monkeypatch.setenv("CITYGRID_CITY_NAME", "测试城")
    return CliRunner()


def test_ogc_items_csv(client: TestClient) -> None:
    response = client.get("/ogc/collections/stall_zones/items", params={"f": "csv"})
    assert response.status_code == 200, response.text
    (zone,) = read_cells(response.text)
    assert zone["operator"] == "'" + OPERATOR
    assert zone["capacity"] == "100"
    response = client.get("/ogc/collections/facilities/items",
                          params={"f": "csv", "limit": 100})
    assert response.status_code == 200, response.text
    facilities = read_cells(response.text)
    assert sorted(f["name"] for f in facilities) == sorted("'" + p for p in PAYLOADS)
    assert all(f["address"] == f["name"] for f in facilities)


def test_ogc_single_item_csv(client: TestClient) -> None:
    items = client.get("/ogc/collections/stall_zones/items").json()["features"]
    response = client.get(f"/ogc/collections/stall_zones/items/{items[0]['id']}",
                          params={"f": "csv"})
    assert response.status_code == 200, response.text
    (zone,) = read_cells(response.text)
    assert zone["operator"] == "'" + OPERATOR


def hotline_export() -> bytes:
    frame = pd.DataFrame({
        "lon": [str(A02_CENTRE[0])] * len(PAYLOADS), "lat": [str(A02_CENTRE[1])] * len(PAYLOADS),
        "reported_at": ["2025-09-12 20:00"] * len(PAYLOADS),  # a Friday night, market open
        "note": PAYLOADS, "amount": ["-5", "-2.5", "-0", "+3", "7", "-1e3"],
        "@memo": ["备注"] * len(PAYLOADS)})
    return frame.to_csv(index=False, lineterminator="\r\n").encode("utf-8")


def check_routed(cells: list[dict[str, str]]) -> None:
    assert [c["note"] for c in cells] == ["'" + p for p in PAYLOADS]
    assert [c["amount"] for c in cells] == ["-5", "-2.5", "-0", "+3", "7", "-1e3"]
    assert "'@memo" in cells[0]
    for row in cells:
        assert row["reason"] == "", row
        assert row["stall_operator"] == "'" + OPERATOR
        assert row["owner_name"] == "'" + PAYLOADS[1]  # A02's owner
        assert not quoted(row["lon_wgs84"]) and float(row["lon_wgs84"]) == A02_CENTRE[0]


def test_route_batch_csv(client: TestClient) -> None:
    response = client.post("/route/batch", files={
        "file": ("热线.csv", hotline_export(), "text/csv")})
    assert response.status_code == 200, response.text
    check_routed(read_cells(response.content.decode("utf-8-sig")))


def test_route_cli_csv(cli: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "热线.csv"
    source.write_bytes(hotline_export())
    out = tmp_path / "routed.csv"
    result = cli.invoke(cli_app, ["route", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    check_routed(read_cells(out.read_bytes().decode("utf-8-sig")))


def test_export_cli_csv(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "cases.csv"
    result = cli.invoke(cli_app, ["export", "cases", str(out)])
    assert result.exit_code == 0, result.output
    cases = read_cells(out.read_bytes().decode("utf-8"))
    assert sorted(c["description"] for c in cases) == sorted("'" + p for p in PAYLOADS)
    assert {c["raw_x"] for c in cases} == {str(NEGATIVE)}
    assert all(not quoted(c["lon"]) and float(c["lon"]) > 117 for c in cases)
    out = tmp_path / "zones.csv"
    result = cli.invoke(cli_app, ["export", "stall_zones", str(out)])
    assert result.exit_code == 0, result.output
    zones = {row["status"]: row for row in read_cells(out.read_bytes().decode("utf-8"))}
    assert zones["approved"]["operator"] == "'" + OPERATOR
    assert zones["draft"]["operator"] == "草案运营方"
    assert not quoted(zones["approved"]["time_slots"])


def test_exported_csv_reimports_to_the_typed_values(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "facilities.csv"
    result = cli.invoke(cli_app, ["export", "facilities", str(out)])
    assert result.exit_code == 0, result.output
    back = read_features(out, get_layer("facilities"), city=CitySettings())
    assert sorted(back["name"]) == sorted(PAYLOADS)
    assert sorted(back["address"]) == sorted(PAYLOADS)


def test_analyse_indicators_csv(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "indicators.csv"
    result = cli.invoke(cli_app, ["analyse", "indicators", "--period", "weekly", "--day",
                                  "2025-09-15", "--by", "owner", "--csv", str(out)])
    assert result.exit_code == 0, result.output
    rows = read_cells(out.read_bytes().decode("utf-8-sig"))
    names = {row["name"] for row in rows}
    # A04 changed hands on 1 July: its September case counts for the new owner (payload 4).
    assert names == {"'" + PAYLOADS[i] for i in (0, 1, 3, 4, 5)}
    assert all(row["accepted"] in ("1", "2") for row in rows)

