"""各区排名 over the whole city: indicators of every loaded district, ranked, on known cases."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.analysis.common import CHINA_TZ, period_containing
from gis.analysis.indicators import count_indicators, indicator_table, rank_groups
from tests.analysis.test_dark_streets import square

WEEK = period_containing("weekly", dt.date(2024, 5, 8))  # Mon 6 May - Sun 12 May 2024
DISTRICTS = {"370102": ("历下区", 0), "370103": ("市中区", 1000), "370105": ("天桥区", 2000)}


def at(day: int, hour: int = 9) -> dt.datetime:
    return dt.datetime(2024, 5, day, hour, tzinfo=CHINA_TZ)


def insert_city(session: Session) -> None:
    """Three districts side by side, one street, community and unit grid in each."""
    for code, (name, x) in DISTRICTS.items():
        outline = f"ST_Multi(ST_GeomFromText('{square(x, 0, 1000)}', 4326))"
        session.execute(text(
            f"INSERT INTO districts (code, name, source, simulated, geom) "
            f"VALUES (:d, :n, 'test', true, {outline})"), {"d": code, "n": name})
        session.execute(text(
            f"INSERT INTO subdistricts (code, name, district_code, geom) "
            f"VALUES (:s, :n, :d, {outline})"), {"s": code + "001", "n": name + "街道",
                                                  "d": code})
        session.execute(text(
            f"INSERT INTO communities (code, name, subdistrict_code, geom) "
            f"VALUES (:c, :n, :s, {outline})"), {"c": code + "001001", "n": name + "社区",
                                                 "s": code + "001"})
        session.execute(text(
            "INSERT INTO grid_cells (code, community_code, geom) "
            "VALUES (:g, :c, ST_GeomFromText(:w, 4326))"),
            {"g": code + "001001001", "c": code + "001001", "w": square(x, 0, 1000)})


def insert_case(session: Session, no: str, district: str, *, status: str, due: dt.datetime,
                closed: dt.datetime | None = None) -> None:
    session.execute(text("""
        INSERT INTO cases (case_no, category_type, category_code, channel, raw_x, raw_y,
            raw_crs, reported_at, closed_at, status, grid_code, geom, dispatched_at, due_at)
        VALUES (:no, 'event', '0102', 'hotline_12345', 117.0, 36.6, 'wgs84', :reported,
            :closed, :status, :grid, ST_SetSRID(ST_MakePoint(117.0, 36.6), 4326), :reported,
            :due)"""), {"no": no, "reported": at(6), "closed": closed, "status": status,
                        "grid": district + "001001001", "due": due})


def test_every_district_is_ranked_with_exact_rates(session: Session) -> None:
    insert_city(session)
    # 历下区: 4 due, 3 closed on time, 1 closed late -> 结案率 100 %, 按期结案率 75 %.
    for i in range(3):
        insert_case(session, f"LX{i}", "370102", status="closed", due=at(9), closed=at(8))
    insert_case(session, "LX9", "370102", status="closed", due=at(9), closed=at(10))
    # 市中区: 2 due, both on time -> 100 % and 100 %.
    for i in range(2):
        insert_case(session, f"SZ{i}", "370103", status="evaluated", due=at(9), closed=at(7))
    # 天桥区: 3 due, 1 on time, 2 still open past the deadline -> 33.33 %, 2 overdue.
    insert_case(session, "TQ0", "370105", status="closed", due=at(9), closed=at(9, 8))
    insert_case(session, "TQ1", "370105", status="dispatched", due=at(9))
    insert_case(session, "TQ2", "370105", status="handled", due=at(10))

    rows = count_indicators(session, start=WEEK.start, end=WEEK.end, by="district")
    ranked = rank_groups(indicator_table(rows))

    assert ranked[["rank", "key", "name"]].values.tolist() == [
        [1, "370103", "市中区"], [2, "370102", "历下区"], [3, "370105", "天桥区"]]
    by_key = ranked.set_index("key")
    assert by_key.loc["370102", ["due", "closed", "closed_on_time"]].tolist() == [4, 4, 3]
    assert by_key.loc["370102", ["closure_rate", "on_time_rate"]].tolist() == [100.0, 75.0]
    assert by_key.loc["370103", ["closure_rate", "on_time_rate"]].tolist() == [100.0, 100.0]
    assert by_key.loc["370105", ["closure_rate", "on_time_rate"]].tolist() == [33.33, 33.33]
    assert int(by_key.loc["370105", "open_overdue"]) == 2
    # The city total is the sum of the districts.
    city = count_indicators(session, start=WEEK.start, end=WEEK.end, by="city")
    assert (city[0][2].due, city[0][2].closed_on_time) == (9, 6)
