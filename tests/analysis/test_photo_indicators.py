"""Photo-evidence indicators on a known case set: after-photo share and 核查及时率, exactly."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.deps import get_session
from api.main import create_app
from gis.analysis.indicators import count_photo_indicators
from gis.dispatch.cases import create_case, get_case, transition
from gis.media.service import new_public_name
from tests.dispatch.test_routing import build_city
from tests.support.accounts import headers_for

CHINA = dt.timezone(dt.timedelta(hours=8))
WEEK = (dt.datetime(2026, 11, 30, tzinfo=CHINA), dt.datetime(2026, 12, 7, tzinfo=CHINA))
POINT = (117.0315, 36.6605)
H = dt.timedelta(hours=1)


def closed_case(session, reported: dt.datetime):
    case = create_case(session, category_type="event", category_code="0505", channel="patrol",
                       x=POINT[0], y=POINT[1], reported_at=reported, actor="测试")
    for step, action in enumerate(("file", "dispatch", "handle", "report")):
        transition(session, case.id, action, actor="测试", at=reported + (step + 1) * 0.1 * H)
    reported_back = get_case(session, case.id)
    assert reported_back.verify_due_at is not None
    transition(session, case.id, "close", actor="测试", at=reported + 3 * H)
    return get_case(session, case.id)


def photo(session, case, stage: str, at: dt.datetime, *, superseded: dt.datetime | None = None):
    session.execute(text("""
        INSERT INTO case_media (case_id, stage, sha256, content_type, byte_size, width, height,
            uploaded_by, uploaded_at, public_name, superseded_at, superseded_reason)
        VALUES (:case, :stage, :sha, 'image/jpeg', 1000, 10, 10, '测试', :at, :name,
            :sup, CASE WHEN CAST(:sup AS timestamptz) IS NULL THEN NULL ELSE '拍错' END)"""),
        {"case": case.id, "stage": stage, "at": at, "name": new_public_name(), "sup": superseded,
         "sha": hashlib.sha256(f"{case.id}{stage}{at}".encode()).hexdigest()})


@pytest.fixture
def cases(session):
    build_city(session)
    day = dt.datetime(2026, 12, 2, 9, 0, tzinfo=CHINA)
    c1, c2, c3, c5 = (closed_case(session, day + i * 4 * H) for i in range(4))
    c4 = closed_case(session, dt.datetime(2026, 12, 8, 9, 0, tzinfo=CHINA))  # next week
    # c1: after photo before closing, verification photo on time -> counts twice.
    photo(session, c1, "handling", c1.reported_at + 0.35 * H)
    photo(session, c1, "verification", c1.verify_due_at - 0.1 * H)
    # c2: no after photo; verification photo after the deadline.
    photo(session, c2, "verification", c2.verify_due_at + 0.5 * H)
    # c3: after photo found wrong and superseded an hour after closing; no verification photo.
    photo(session, c3, "handling", c3.reported_at + 0.35 * H,
          superseded=c3.closed_at + H)
    # c5: after photo only after closing; verification on time.
    photo(session, c5, "handling", c5.closed_at + H)
    photo(session, c5, "verification", c5.verify_due_at)
    # c4 is outside the period, photos and all.
    photo(session, c4, "handling", c4.reported_at + 0.35 * H)
    photo(session, c4, "verification", c4.verify_due_at - 0.1 * H)
    return c1, c2, c3, c4, c5


def test_exact_values_on_a_known_case_set(session, cases):
    counts = count_photo_indicators(session, start=WEEK[0], end=WEEK[1])
    assert counts.closed == 4 and counts.closed_with_after_photo == 1
    assert counts.after_photo_rate == Decimal("25.00")
    assert counts.verification_due == 4 and counts.verified_on_time == 2
    assert counts.verification_on_time_rate == Decimal("50.00")


def test_as_of_and_scope(session, cases):
    c1 = cases[0]
    # Judged just after c3 closed, its photo was not yet superseded: it counted then.
    early = count_photo_indicators(session, start=WEEK[0], end=WEEK[1],
                                   as_of=cases[2].closed_at + 0.2 * H)
    assert early.closed == 3  # c1, c2, c3 closed by then; c5 not yet
    assert early.closed_with_after_photo == 2
    assert early.verification_due == 3 and early.verified_on_time == 1
    assert count_photo_indicators(session, start=WEEK[0], end=WEEK[1],
                                  as_of=c1.reported_at).closed == 0
    assert count_photo_indicators(session, start=WEEK[0], end=WEEK[1],
                                  scope="370102002").closed == 0
    empty = count_photo_indicators(session, start=WEEK[1], end=WEEK[1] + H)
    assert empty.after_photo_rate is None and empty.verification_on_time_rate is None


def test_api(session, cases, test_settings):
    app = create_app(test_settings)
    app.dependency_overrides[get_session] = lambda: session
    with TestClient(app, headers=headers_for(session, "analyst")) as client:
        body = client.get("/analysis/indicators/photos", params={
            "start": WEEK[0].isoformat(), "end": WEEK[1].isoformat()}).json()
        assert body["after_photo_rate"] == "25.00" and body["closed"] == 4
        assert body["verification_on_time_rate"] == "50.00"
        assert TestClient(app).get("/analysis/indicators/photos", params={
            "start": WEEK[0].isoformat(), "end": WEEK[1].isoformat()}).status_code == 401


def test_weekly_report_shows_the_photo_indicators(session, cases, test_settings):
    import io

    from openpyxl import load_workbook

    app = create_app(test_settings)
    app.dependency_overrides[get_session] = lambda: session
    with TestClient(app, headers=headers_for(session, "analyst")) as client:
        html = client.get("/reports/weekly", params={"day": "2026-12-02"}).text
        headline = html.split("<h2>二、")[0]
        assert "<span>处置后照片率</span><b>25.00%</b><small>1 / 4</small>" in headline
        assert "<span>核查及时率</span><b>50.00%</b><small>2 / 4</small>" in headline
        book = load_workbook(io.BytesIO(client.get(
            "/reports/weekly/report.xlsx", params={"day": "2026-12-02"}).content))
        summary = {r[0]: r[1] for r in book["总体"].iter_rows(min_row=4, values_only=True)}
        assert summary["处置后照片率(%)"] == 25.0 and summary["核查及时率(%)"] == 50.0
