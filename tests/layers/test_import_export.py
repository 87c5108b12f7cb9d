"""Import and export of layer files against the real PostGIS test database.

The tests commit their rows (imports run in their own transaction), so every row they create
carries a code or name unique to this module and is deleted at the end.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import Point, Polygon
from sqlalchemy import text
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from cli.main import app
from gis.platform.errors import CrsMismatchError, InvalidInputError, NotFoundError, OutsideCityError
from gis.platform.settings import CitySettings
from layers.registry import get_layer
from layers.transfer import export_layer, import_file, read_features

CITY = CitySettings()
DISTRICT, SUBDISTRICT, COMMUNITY = "379902", "379902902", "379902902902"
LON, LAT = 117.0312, 36.6587  # an odd spot inside the city, away from round demo numbers
BBOX = (LON - 0.002, LAT - 0.002, LON + 0.002, LAT + 0.002)
STATIONS = get_layer("stations")
ZONES = get_layer("stall_zones")
GRIDS = get_layer("grid_cells")


def square(lon: float, lat: float, size: float = 0.0003) -> Polygon:
    return Polygon([(lon, lat), (lon + size, lat), (lon + size, lat + size), (lon, lat + size)])


def bowtie(lon: float, lat: float, size: float = 0.0003) -> Polygon:
    return Polygon([(lon, lat), (lon + size, lat + size), (lon + size, lat), (lon, lat + size)])


def count(engine: Engine, table: str, where: str = "true") -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar_one())


@pytest.fixture(scope="module")
def area(engine: Engine):
    """A district, subdistrict and community for this module, removed at the end."""
    outline = shapely.MultiPolygon([square(LON - 0.01, LAT - 0.01, 0.02)]).wkt
    with engine.begin() as conn:
        for sql in (
            "INSERT INTO districts (code, name, source, geom) "
            "VALUES (:d, '导入测试区', 'test', ST_GeomFromText(:g, 4326))",
            "INSERT INTO subdistricts (code, name, district_code, geom) "
            "VALUES (:s, '导入测试街道', :d, ST_GeomFromText(:g, 4326))",
            "INSERT INTO communities (code, name, subdistrict_code, geom) "
            "VALUES (:c, '导入测试社区', :s, ST_GeomFromText(:g, 4326))",
        ):
            conn.execute(text(sql), {"d": DISTRICT, "s": SUBDISTRICT, "c": COMMUNITY,
                                     "g": outline})
    yield engine
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM stall_zones WHERE district_code = :d"), {"d": DISTRICT})
        conn.execute(text("DELETE FROM stations WHERE code LIKE 'IE-%'"))
        conn.execute(text("DELETE FROM grid_cells WHERE community_code = :c"), {"c": COMMUNITY})
        conn.execute(text("DELETE FROM communities WHERE code = :c"), {"c": COMMUNITY})
        conn.execute(text("DELETE FROM subdistricts WHERE code = :s"), {"s": SUBDISTRICT})
        conn.execute(text("DELETE FROM districts WHERE code = :d"), {"d": DISTRICT})


def station_rows(prefix: str) -> list[dict]:
    return [
        {"code": f"{prefix}-1", "name": "泉城路工作站", "address": "泉城路1号",
         "phone": "0531-86001234", "staff": 6, "opening_hours": "08:30-17:30",
         "community_code": COMMUNITY, "simulated": False, "geometry": Point(LON, LAT)},
        {"code": f"{prefix}-2", "name": "大明湖工作站", "address": "", "phone": "13912345678",
         "staff": 0, "opening_hours": "24h", "community_code": None, "simulated": True,
         "geometry": Point(LON + 0.0004, LAT + 0.0003)},
    ]


def insert_stations(engine: Engine, rows: list[dict]) -> None:
    with engine.begin() as conn:
        for row in rows:
            conn.execute(text(
                "INSERT INTO stations (code, name, address, phone, staff, opening_hours, "
                "community_code, simulated, geom) VALUES (:code, :name, :address, :phone, "
                ":staff, :opening_hours, :community_code, :simulated, "
                "ST_GeomFromText(:wkt, 4326))"), {**row, "wkt": row["geometry"].wkt})


ZONE_SLOTS = [{"days": [1, 2, 3, 4, 5], "start": "05:00", "end": "08:00"}]
ZONE_SEASONS = [{"from": "06-01", "to": "09-29"}]


def insert_zones(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        for i, (slots, seasons) in enumerate([(ZONE_SLOTS, ZONE_SEASONS), (ZONE_SLOTS, [])]):
            conn.execute(text(
                "INSERT INTO stall_zones (name, zone_type, district_code, time_slots, seasons, "
                "capacity, operator, status, geom) VALUES (:name, 'morning_market', :d, "
                "CAST(:slots AS jsonb), CAST(:seasons AS jsonb), :cap, '街道办', 'approved', "
                "ST_GeomFromText(:wkt, 4326))"),
                {"name": f"{name}-{i}", "d": DISTRICT, "slots": json.dumps(slots),
                 "seasons": json.dumps(seasons), "cap": 40 + i,
                 "wkt": square(LON + 0.0005 * i, LAT).wkt})


def stored(engine: Engine, table: str, where: str, columns: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            f"SELECT {columns}, ST_AsText(geom) AS wkt FROM {table} WHERE {where} ORDER BY 1"))
        return [dict(row._mapping) for row in rows]


def same_rows(before: list[dict], after: list[dict]) -> None:
    assert len(before) == len(after)
    for old, new in zip(before, after, strict=True):
        g_old, g_new = shapely.from_wkt(old.pop("wkt")), shapely.from_wkt(new.pop("wkt"))
        assert shapely.hausdorff_distance(g_old, g_new) < 1e-9, (g_old, g_new)
        assert old == new


FORMATS = [".geojson", ".gpkg", ".shp", ".csv"]


@pytest.mark.parametrize("suffix", FORMATS)
def test_point_layer_round_trip(area: Engine, tmp_path: Path, suffix: str) -> None:
    prefix = f"IE-RT{suffix[1:]}"
    where = f"code LIKE '{prefix}-%'"
    columns = "code, name, address, phone, staff, opening_hours, community_code, simulated"
    insert_stations(area, station_rows(prefix))
    try:
        before = stored(area, "stations", where, columns)
        path = tmp_path / f"stations{suffix}"
        with area.connect() as conn:
            assert export_layer(conn, STATIONS, path, bbox=BBOX) == 2
        with area.begin() as conn:
            conn.execute(text(f"DELETE FROM stations WHERE {where}"))
        assert import_file(area, STATIONS, path, city=CITY) == 2
        same_rows(before, stored(area, "stations", where, columns))
    finally:
        with area.begin() as conn:
            conn.execute(text(f"DELETE FROM stations WHERE {where}"))


@pytest.mark.parametrize("suffix", FORMATS)
def test_polygon_layer_round_trip(area: Engine, tmp_path: Path, suffix: str) -> None:
    name = f"导入测试早市{suffix}"
    where = f"name LIKE '{name}-%'"
    columns = "name, zone_type, district_code, time_slots, seasons, capacity, operator, status"
    insert_zones(area, name)
    try:
        before = stored(area, "stall_zones", where, columns)
        assert before[0]["seasons"] == ZONE_SEASONS
        path = tmp_path / f"zones{suffix}"
        with area.connect() as conn:
            assert export_layer(conn, ZONES, path, bbox=BBOX) == 2
        with area.begin() as conn:
            conn.execute(text(f"DELETE FROM stall_zones WHERE {where}"))
        assert import_file(area, ZONES, path, city=CITY) == 2
        same_rows(before, stored(area, "stall_zones", where, columns))
    finally:
        with area.begin() as conn:
            conn.execute(text(f"DELETE FROM stall_zones WHERE {where}"))


def grid_frame(n: int, *, bad: int | None = None) -> gpd.GeoDataFrame:
    codes = [f"{COMMUNITY}{i:02d}" for i in range(1, n + 1)]
    geoms = [bowtie(LON + 0.0004 * i, LAT) if i + 1 == bad else square(LON + 0.0004 * i, LAT)
             for i in range(n)]
    return gpd.GeoDataFrame({"code": codes, "community_code": COMMUNITY}, geometry=geoms,
                            crs=4326)


def test_bowtie_among_good_polygons_changes_nothing(area: Engine, tmp_path: Path) -> None:
    path = tmp_path / "grids.geojson"
    grid_frame(3, bad=2).to_file(path)
    before = count(area, "grid_cells")
    with pytest.raises(InvalidInputError) as info:
        import_file(area, GRIDS, path, city=CITY)
    message = str(info.value)
    assert "grids.geojson" in message
    assert "row 2: geometry" in message and "Self-intersection" in message
    assert "row 1" not in message and "row 3" not in message
    assert count(area, "grid_cells") == before


def test_good_grid_file_imports_and_generated_area_is_ignored(area: Engine,
                                                              tmp_path: Path) -> None:
    frame = grid_frame(2)
    frame["area_m2"] = 1.0  # generated by the database: ignored, not an unknown column
    path = tmp_path / "grids.gpkg"
    frame.to_file(path)
    try:
        assert import_file(area, GRIDS, path, city=CITY) == 2
        areas = [r["area_m2"] for r in stored(area, "grid_cells", f"community_code = "
                                              f"'{COMMUNITY}'", "code, area_m2")]
        assert all(800 < a < 1100 for a in areas)  # ~33 m x ~27 m, not 1.0
    finally:
        with area.begin() as conn:
            conn.execute(text("DELETE FROM grid_cells WHERE community_code = :c"),
                         {"c": COMMUNITY})


def test_constraint_violation_is_translated_and_nothing_written(area: Engine,
                                                                tmp_path: Path) -> None:
    rows = station_rows("IE-DUP")
    rows[1]["code"] = rows[0]["code"]  # the schema allows it, the UNIQUE constraint does not
    path = tmp_path / "dup.geojson"
    gpd.GeoDataFrame(rows, crs=4326).to_file(path)
    with pytest.raises(InvalidInputError, match="stations_code_key"):
        import_file(area, STATIONS, path, city=CITY)
    assert count(area, "stations", "code LIKE 'IE-DUP%'") == 0


def write_csv(path: Path, header: str, *lines: str) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


STATION_HEADER = "code,name,address,phone,staff,opening_hours,lon,lat"


def test_csv_with_text_in_a_number_field(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", STATION_HEADER,
                     f"IE-C1,站,路,13912345678,6,全天,{LON},{LAT}",
                     f"IE-C2,站,路,13912345678,many,全天,{LON},{LAT}")
    with pytest.raises(InvalidInputError) as info:
        read_features(path, STATIONS, city=CITY)
    assert "s.csv" in str(info.value)
    assert "row 2: staff" in str(info.value) and "'many'" in str(info.value)


def test_csv_with_text_in_a_coordinate(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", STATION_HEADER,
                     f"IE-C1,站,路,13912345678,6,全天,{LON},north")
    with pytest.raises(InvalidInputError, match=r"row 1: lat: not a number \(value 'north'\)"):
        read_features(path, STATIONS, city=CITY)


def test_csv_without_latitude_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", "code,name,address,phone,staff,opening_hours,lon",
                     f"IE-C1,站,路,13912345678,6,全天,{LON}")
    with pytest.raises(InvalidInputError, match="no latitude column"):
        read_features(path, STATIONS, city=CITY)


def test_csv_in_gb18030_from_excel(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_bytes(f"{STATION_HEADER}\nIE-C1,泉城路站,泉城路,13912345678,6,全天,{LON},{LAT}\n"
                     .encode("gb18030"))
    assert read_features(path, STATIONS, city=CITY)["name"].tolist() == ["泉城路站"]


def test_unknown_column_is_refused_by_name(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", STATION_HEADER + ",colour",
                     f"IE-C1,站,路,13912345678,6,全天,{LON},{LAT},red")
    with pytest.raises(InvalidInputError) as info:
        read_features(path, STATIONS, city=CITY)
    assert "'colour'" in str(info.value) and "opening_hours" in str(info.value)


def test_points_in_another_country(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", STATION_HEADER,
                     f"IE-C1,站,路,13912345678,6,全天,{LON},{LAT}",
                     "IE-C2,站,路,13912345678,6,全天,2.35,48.85")
    with pytest.raises(OutsideCityError) as info:
        read_features(path, STATIONS, city=CITY)
    assert "row 2" in str(info.value) and "2.350000, 48.850000" in str(info.value)
    assert CITY.name in str(info.value)


def test_swapped_lon_lat_is_caught(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", STATION_HEADER,
                     f"IE-C1,站,路,13912345678,6,全天,{LAT},{LON}")
    with pytest.raises(OutsideCityError, match="swapped"):
        read_features(path, STATIONS, city=CITY)


def test_nan_coordinates_are_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", STATION_HEADER, "IE-C1,站,路,13912345678,6,全天,nan,36.6")
    with pytest.raises(InvalidInputError, match="finite"):
        read_features(path, STATIONS, city=CITY)


def test_metric_crs_file_is_reprojected(area: Engine, tmp_path: Path) -> None:
    to_metric = Transformer.from_crs(4326, 4548, always_xy=True)
    x, y = to_metric.transform(LON, LAT)
    rows = station_rows("IE-GK")[:1]
    rows[0]["geometry"] = Point(x, y)
    path = tmp_path / "gk.gpkg"
    gpd.GeoDataFrame(rows, crs=4548).to_file(path)
    try:
        assert import_file(area, STATIONS, path, city=CITY) == 1
        with area.connect() as conn:
            lon, lat = conn.execute(text(
                "SELECT ST_X(geom), ST_Y(geom) FROM stations WHERE code = 'IE-GK-1'")).one()
        back_x, back_y = to_metric.transform(lon, lat)
        assert ((back_x - x) ** 2 + (back_y - y) ** 2) ** 0.5 < 0.5
        assert abs(lon - LON) < 1e-6 and abs(lat - LAT) < 1e-6
    finally:
        with area.begin() as conn:
            conn.execute(text("DELETE FROM stations WHERE code = 'IE-GK-1'"))


def test_metres_labelled_as_degrees_are_caught(tmp_path: Path) -> None:
    rows = station_rows("IE-GK")[:1]
    rows[0]["geometry"] = Point(500_000, 4_058_000)
    path = tmp_path / "mislabelled.gpkg"
    gpd.GeoDataFrame(rows, crs=4326).to_file(path)
    with pytest.raises(OutsideCityError, match="projected metres"):
        read_features(path, STATIONS, city=CITY)


def shapefile_without_prj(tmp_path: Path) -> Path:
    path = tmp_path / "noprj.shp"
    gpd.GeoDataFrame(station_rows("IE-NP"), crs=4326).to_file(path)
    path.with_suffix(".prj").unlink()
    return path


def test_file_without_crs_needs_crs_option(tmp_path: Path) -> None:
    path = shapefile_without_prj(tmp_path)
    with pytest.raises(CrsMismatchError, match="--crs"):
        read_features(path, STATIONS, city=CITY)
    gdf = read_features(path, STATIONS, city=CITY, crs="EPSG:4326")
    assert gdf["code"].tolist() == ["IE-NP-1", "IE-NP-2"]
    assert gdf["opening_hours"].tolist() == ["08:30-17:30", "24h"]  # cut to 10 chars in .dbf


def test_declared_crs_conflicting_with_option_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.gpkg"
    gpd.GeoDataFrame(station_rows("IE-X"), crs=4326).to_file(path)
    with pytest.raises(CrsMismatchError, match=r"EPSG:4326.*EPSG:4548"):
        read_features(path, STATIONS, city=CITY, crs="EPSG:4548")
    # CGCS2000 is the same frame here: accepted without a shift.
    gdf = read_features(path, STATIONS, city=CITY, crs="EPSG:4490")
    assert gdf.geometry.iloc[0].equals(Point(LON, LAT))


def test_zipped_shapefile(tmp_path: Path) -> None:
    shp = tmp_path / "s.shp"
    gpd.GeoDataFrame(station_rows("IE-Z"), crs=4326).to_file(shp)
    archive = tmp_path / "s.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for part in tmp_path.glob("s.*"):
            if part != archive:
                zf.write(part, part.name)
    assert len(read_features(archive, STATIONS, city=CITY)) == 2


def test_polygon_promoted_for_multipolygon_layer_and_single_multi_accepted(tmp_path: Path) -> None:
    path = tmp_path / "d.geojson"
    gpd.GeoDataFrame({"code": ["379999"], "name": ["区"], "source": ["t"]},
                     geometry=[square(LON, LAT)], crs=4326).to_file(path)
    assert read_features(path, get_layer("districts"), city=CITY).geom_type.tolist() == [
        "MultiPolygon"]
    path = tmp_path / "g.geojson"
    frame = grid_frame(1)
    frame.geometry = [shapely.MultiPolygon([square(LON, LAT)])]
    frame.to_file(path)
    assert read_features(path, GRIDS, city=CITY).geom_type.tolist() == ["Polygon"]
    frame.geometry = [shapely.MultiPolygon([square(LON, LAT), square(LON + 0.001, LAT)])]
    frame.to_file(path)
    with pytest.raises(InvalidInputError, match="row 1: geometry: is a MultiPolygon"):
        read_features(path, GRIDS, city=CITY)


def test_malformed_and_empty_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.geojson"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"broken.geojson"):
        read_features(broken, STATIONS, city=CITY)
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"empty.csv: the file is empty"):
        read_features(empty, STATIONS, city=CITY)
    header_only = write_csv(tmp_path / "header.csv", STATION_HEADER)
    with pytest.raises(InvalidInputError, match="no features"):
        read_features(header_only, STATIONS, city=CITY)
    with pytest.raises(InvalidInputError, match=r"unsupported file type '.kml'"):
        read_features(tmp_path / "x.kml", STATIONS, city=CITY)
    with pytest.raises(NotFoundError, match="does not exist"):
        read_features(tmp_path / "missing.csv", STATIONS, city=CITY)


def test_unknown_layer() -> None:
    with pytest.raises(NotFoundError, match=r"'nope'.*grid_cells"):
        get_layer("nope")


def test_export_unknown_extension(area: Engine, tmp_path: Path) -> None:
    with area.connect() as conn, pytest.raises(InvalidInputError, match=r"'.kml'"):
        export_layer(conn, STATIONS, tmp_path / "x.kml")


# ---------------------------------------------------------------------------------------------
# CLI


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, test_db_url) -> CliRunner:
    monkeypatch.setenv("CITYGRID_DATABASE_URL", test_db_url.render_as_string(hide_password=False))
    return CliRunner()


def test_cli_import_and_export(area: Engine, cli_env: CliRunner, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", STATION_HEADER,
                     f"IE-CLI-1,站,路,13912345678,6,全天,{LON},{LAT}")
    try:
        result = cli_env.invoke(app, ["import", "stations", str(path)])
        assert result.exit_code == 0, result.output
        assert "imported 1 stations" in result.output
        assert count(area, "stations", "code = 'IE-CLI-1'") == 1
        out = tmp_path / "out.geojson"
        bbox = ",".join(map(str, BBOX))
        result = cli_env.invoke(app, ["export", "stations", str(out), "--bbox", bbox])
        assert result.exit_code == 0, result.output
        codes = [f["properties"]["code"] for f in json.loads(out.read_text())["features"]]
        assert "IE-CLI-1" in codes
    finally:
        with area.begin() as conn:
            conn.execute(text("DELETE FROM stations WHERE code = 'IE-CLI-1'"))


def test_cli_errors_exit_2(area: Engine, cli_env: CliRunner, tmp_path: Path) -> None:
    bad = write_csv(tmp_path / "bad.csv", STATION_HEADER,
                    "IE-CLI-2,站,路,13912345678,6,全天,2.35,48.85")
    result = cli_env.invoke(app, ["import", "stations", str(bad)])
    assert result.exit_code == 2
    assert "outside" in result.output and "row 1" in result.output
    assert count(area, "stations", "code = 'IE-CLI-2'") == 0

    result = cli_env.invoke(app, ["import", "nope", str(bad)])
    assert result.exit_code == 2 and "unknown layer 'nope'" in result.output

    noprj = shapefile_without_prj(tmp_path)
    result = cli_env.invoke(app, ["import", "stations", str(noprj)])
    assert result.exit_code == 2 and "--crs" in result.output
