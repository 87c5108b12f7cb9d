"""Reporters' contact data never leaves: not in the audit log, not in any published Open311 text.

* The audit trigger redacts open311_requests' contact columns (migration 0011), on insert and
  update, and 0011 redacts rows logged before it ran.
* Phones, e-mails and ID numbers typed into a description or address_string are masked in
  every common Chinese form before GeoReport publishes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from gis.platform.db import make_engine
from gis.platform.migrate import upgrade
from gis.platform.settings import Settings
from gis.public.masking import redact
from tests.public.test_open311 import BASE, REPORTER, city_client, post
from tests.support.databases import throwaway_database

REDACTED = "[redacted]"
CONTACT_COLUMNS = ("reporter_email", "reporter_first_name", "reporter_last_name",
                   "reporter_phone", "device_id", "account_id")
PHONE, MAIL, ID_CARD = "[电话已隐藏]", "[邮箱已隐藏]", "[证件号已隐藏]"
# (as typed, mask expected, the digits / address that must not survive)
FORMS = [
    ("158 1234 5678", PHONE), ("158.1234.5678", PHONE), ("158-1234-5678", PHONE),
    ("15812345678", PHONE), ("+86 15812345678", PHONE), ("+86-158-1234-5678", PHONE),
    ("008615812345678", PHONE), ("0086 158 1234 5678", PHONE), ("(+86)158 1234 5678", PHONE),
    ("86-158-1234-5678", PHONE), ("１５８１２３４５６７８", PHONE),
    ("１５８　１２３４　５６７８", PHONE), ("+８６ １５８－１２３４－５６７８", PHONE),
    ("158—1234—5678", PHONE), ("1 5 8 1 2 3 4 5 6 7 8", PHONE), ("一五八一二三四五六七八", PHONE),
    ("158\u200b1234\u200b5678", PHONE),
    ("0531-8888 6666", PHONE), ("(0531)88886666", PHONE), ("（０５３１）８８８８６６６６", PHONE),
    ("0531-88886666", PHONE), ("0531 8888 6666", PHONE), ("0531.8888.6666", PHONE),
    ("010-12345678", PHONE), ("+86 531 8888 6666", PHONE), ("0086-531-88886666", PHONE),
    ("li.si@example.cn", MAIL), ("li.si＠example.cn", MAIL),
    ("ｌｉ．ｓｉ＠ｅｘａｍｐｌｅ．ｃｎ", MAIL),
    ("li.si @ example . cn", MAIL), ("13912345678@qq.com", MAIL),
    ("37010219900101123X", ID_CARD), ("370102 19900101 123X", ID_CARD),
    ("３７０１０２１９９００１０１１２３Ｘ", ID_CARD),
]
# Numbers a description needs and that are no one's contact: published unchanged.
BENIGN = ["路灯 3701020118000001 不亮", "2025-09-15 10:00 发现", "泉城路 12 号", "08:00-18:00",
          "价格 15.8 元", "邮编 250000", "面积 120㎡ ①号门", "周一三五营业", "400-123-4567",
          "12345 热线", "宽 2 米 高 3.5 米", "２号楼"]


def digits(value: str) -> str:
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFKC", value) if c.isdigit())


# ---------------------------------------------------------------------------------------------
# Masking


@pytest.mark.parametrize(("typed", "mask"), FORMS)
def test_every_form_is_masked(typed: str, mask: str) -> None:
    assert redact(f"请联系{typed}，谢谢") == f"请联系{mask}，谢谢"


@pytest.mark.parametrize("benign", BENIGN)
def test_other_numbers_are_published_as_typed(benign: str) -> None:
    assert redact(benign) == benign


def test_masking_is_fast_on_long_hostile_text() -> None:
    import time

    for hostile in ("a" * 40_000, "1" * 40_000, "1-" * 20_000, "a@b." * 10_000, "+86 " * 10_000):
        start = time.perf_counter()
        redact(hostile)
        assert time.perf_counter() - start < 2, hostile[:10]


@pytest.fixture
def client(test_settings, session):
    yield from city_client(test_settings, session, "admin")


@pytest.mark.parametrize("part", [0, 1])
def test_open311_publishes_no_contact_in_description_or_address(client: TestClient,
                                                                part: int) -> None:
    forms = FORMS[part::2]  # address_string holds at most 500 characters
    description = "占道经营，联系 " + "；".join(typed for typed, _ in forms)
    address = "测试路 8 号 " + "，".join(typed for typed, _ in forms)
    response = post(client, description=description, address_string=address)
    assert response.status_code == 201, response.text
    request_id = response.json()[0]["service_request_id"]
    assert all(value not in response.text for value, _ in forms)
    published = [client.get(f"{BASE}/requests/{request_id}.json").json()[0],
                 *[r for r in client.get(f"{BASE}/requests.json").json()
                   if r["service_request_id"] == request_id]]
    assert len(published) == 2
    for request in published:
        for field in ("description", "address"):
            value = request[field]
            assert digits(value) == "8" * (field == "address"), (field, value)  # 8 号
            assert "@" not in value and "＠" not in value and "example" not in value
            for mask in (PHONE, MAIL, ID_CARD):
                assert value.count(mask) == sum(m == mask for _, m in forms), (field, value)
        assert request["address"].startswith("测试路 8 号 ")


# ---------------------------------------------------------------------------------------------
# The audit log


def audit_rows(client: TestClient, request_id: str, session) -> list[dict]:  # type: ignore[no-untyped-def]
    case_id = session.execute(text("SELECT id FROM cases WHERE case_no = :n"),
                              {"n": request_id}).scalar_one()
    response = client.get("/audit", params={"table": "open311_requests",
                                            "row_key": str(case_id)})
    assert response.status_code == 200, response.text
    return response.json()


def test_audit_log_holds_no_reporter_contact(client: TestClient, session) -> None:  # type: ignore[no-untyped-def]
    request_id = post(client).json()[0]["service_request_id"]
    (row,) = audit_rows(client, request_id, session)
    assert row["action"] == "INSERT"
    body = json.dumps(row, ensure_ascii=False)
    for value in REPORTER.values():
        assert value not in body, f"reporter data {value!r} in the audit log"
    assert all(row["after"][column] == REDACTED for column in CONTACT_COLUMNS)
    assert row["after"]["address_string"] == "测试路 8 号门前"  # the rest is logged as before

    # A change of contact only is still logged, and redacted on both sides.
    session.execute(text("UPDATE open311_requests SET reporter_phone = '13700000000' "
                         "WHERE case_id = (SELECT id FROM cases WHERE case_no = :n)"),
                    {"n": request_id})
    update = audit_rows(client, request_id, session)[0]
    assert update["action"] == "UPDATE"
    assert update["before"]["reporter_phone"] == update["after"]["reporter_phone"] == REDACTED
    assert "13700000000" not in json.dumps(update)

    # Absent contact stays absent (null), not a marker.
    request_id = post(client, email="", phone="", first_name="", last_name="",
                      device_id="", account_id="").json()[0]["service_request_id"]
    (row,) = audit_rows(client, request_id, session)
    assert all(row["after"][c] in (None, "", REDACTED) for c in CONTACT_COLUMNS)


@pytest.fixture
def old_database(settings: Settings) -> Iterator[Engine]:
    for url in throwaway_database(settings, "audit0010"):
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


def test_migration_redacts_rows_logged_before_it(old_database: Engine) -> None:
    upgrade(old_database, "0010")
    with old_database.begin() as conn:
        case_id = conn.execute(text(
            "INSERT INTO cases (case_no, category_type, category_code, channel, raw_x, raw_y, "
            "raw_crs, reported_at, geom) VALUES ('O311-OLD', 'event', '0505', 'open311', 117.03, "
            "36.66, 'wgs84', now(), ST_SetSRID(ST_MakePoint(117.03, 36.66), 4326)) RETURNING id"
        )).scalar_one()
        conn.execute(text(
            "INSERT INTO open311_requests (case_id, service_code, address_string, "
            "reporter_email, reporter_first_name, reporter_last_name, reporter_phone, "
            "device_id, account_id) VALUES (:c, 'event-0505', '旧地址', :email, :first_name, "
            ":last_name, :phone, :device_id, :account_id)"), {"c": case_id, **REPORTER})
        conn.execute(text("UPDATE open311_requests SET reporter_phone = '13700000000' "
                          "WHERE case_id = :c"), {"c": case_id})
        logged = conn.execute(text("SELECT count(*) FROM audit_log WHERE "
                                   "concat(before::text, after::text) LIKE :p"),
                              {"p": f"%{REPORTER['phone']}%"}).scalar_one()
        assert logged == 2  # 0010 did copy the phone into the log

    upgrade(old_database)
    with old_database.connect() as conn:
        rows = conn.execute(text("SELECT before, after FROM audit_log "
                                 "WHERE table_name = 'open311_requests' ORDER BY id")).all()
        # Still append-only after the one-off redaction.
        with pytest.raises(Exception, match="append-only"):
            conn.execute(text("DELETE FROM audit_log"))
    assert len(rows) == 2
    body = json.dumps([list(r) for r in rows], ensure_ascii=False)
    for value in [*REPORTER.values(), "13700000000"]:
        assert value not in body
    assert rows[0].after["address_string"] == "旧地址"
    assert rows[1].before["reporter_phone"] == rows[1].after["reporter_phone"] == REDACTED
