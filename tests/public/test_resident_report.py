"""Residents' 随手拍: report through the Open311 path with a photo, tracking page, limits, and the
whole flow in Chromium at phone size (390 x 844) over the real database roles."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text

from api.deps import get_public_session, get_session
from api.main import create_app
from gis.dispatch.cases import transition
from gis.platform.db import make_engine
from gis.public.resident_report import CATEGORIES, ReportRateLimiter
from tests.dispatch.test_routing import build_city
from tests.support.accounts import headers_for
from tests.support.browser import chromium_or_skip, offline_page, serve
from tests.support.databases import seeded_database
from tests.support.photos import jpeg_with_exif, png

POINT = (117.0315, 36.6605)  # grid A04 of the constructed city
PHONE = "13912345678"
PHOTO = jpeg_with_exif(lon=POINT[0], lat=POINT[1], taken=dt.datetime(2026, 12, 3, 9, 30))


@pytest.fixture
def report_settings(test_settings, tmp_path):
    copy = test_settings.model_copy(deep=True)
    copy.media.dir = tmp_path / "media"
    return copy


@pytest.fixture
def client(report_settings, session):
    build_city(session)
    app = create_app(report_settings)
    app.dependency_overrides[get_session] = lambda: session
    app.dependency_overrides[get_public_session] = lambda: session
    with TestClient(app) as test_client:
        yield test_client


def post_report(client, photo=PHOTO, **fields):
    form = {"category": "stall", "lat": str(POINT[1]), "lon": str(POINT[0]),
            "description": f"人行道摆摊，电话{PHONE}", "contact": PHONE, **fields}
    return client.post("/public/report", data=form, files={"file": ("p.jpg", photo, "image/jpeg")},
                       headers={"Accept": "application/json"})


def test_report_becomes_an_open311_case_with_its_photo(client, session):
    answer = post_report(client)
    assert answer.status_code == 201, answer.text
    case_no = answer.json()["case_no"]
    assert answer.json()["tracking_url"] == f"/public/report/{case_no}"
    case = session.execute(text(
        "SELECT c.id, c.channel, c.grid_code, c.category_code, o.media_url, o.reporter_phone "
        "FROM cases c JOIN open311_requests o ON o.case_id = c.id WHERE c.case_no = :n"),
        {"n": case_no}).mappings().one()
    assert case["channel"] == "open311" and case["category_code"] == "0505"
    assert case["grid_code"] == "37010200100104"  # routed like any Open311 request
    assert case["reporter_phone"] == PHONE
    media_url = case["media_url"]
    assert re.fullmatch(r"http://testserver/public/media/[A-Za-z0-9_-]{40,}\.jpg", media_url)
    photo = session.execute(text(
        "SELECT stage, published, uploaded_by FROM case_media WHERE case_id = :id"),
        {"id": case["id"]}).one()
    assert tuple(photo) == ("report", True, "随手拍")
    # media_url serves the EXIF-free copy, anonymously.
    public = client.get(media_url.removeprefix("http://testserver"))
    assert public.status_code == 200 and public.headers["content-type"] == "image/jpeg"
    assert len(Image.open(io.BytesIO(public.content)).getexif()) == 0
    assert b"TestPhone" not in public.content
    # Open311 GET shows the same media_url; the contact never leaves.
    posted = client.get(f"/open311/v2/requests/{case_no}.json").json()[0]
    assert posted["media_url"] == media_url
    page = client.get(f"/public/report/{case_no}")
    assert page.status_code == 200
    assert case_no in page.text and "已受理" in page.text
    assert PHONE not in page.text and PHONE not in public.text
    assert "处置完成后" in page.text  # no after photo yet


def test_after_photo_shows_on_the_tracking_page(client, session):
    case_no = post_report(client).json()["case_no"]
    case_id = session.execute(text("SELECT id FROM cases WHERE case_no = :n"),
                              {"n": case_no}).scalar_one()
    at = dt.datetime.now(dt.UTC)
    for action in ("file", "dispatch"):
        transition(session, case_id, action, actor="测试", at=at)
    staff = headers_for(session, "dispatcher")
    after = client.post(f"/cases/{case_no}/media", headers=staff, data={"stage": "handling"},
                        files={"file": ("after.png", png(color="white"), "image/png")})
    assert after.status_code == 201, after.text
    wrong = client.post(f"/cases/{case_no}/media", headers=staff, data={"stage": "handling"},
                        files={"file": ("w.png", png(color="red"), "image/png")}).json()
    client.post(f"/cases/{case_no}/media/{wrong['id']}/supersede", headers=staff,
                json={"reason": "拍错了"})
    transition(session, case_id, "handle", actor="测试", at=at)
    page = client.get(f"/public/report/{case_no}").text
    after_urls = re.findall(r'<img src="(/public/media/[^"]+)" alt="处置后照片"', page)
    assert len(after_urls) == 1  # the superseded one is not published
    assert client.get(after_urls[0]).status_code == 200
    assert re.search(r'<li class="done current">已处置</li>', page)


def test_non_image_is_415_and_stores_nothing(client, session):
    before = session.execute(text("SELECT count(*) FROM cases")).scalar_one()
    answer = post_report(client, photo=b"just some text, renamed to .jpg\n" * 10)
    assert answer.status_code == 415 and "text" in answer.json()["detail"]
    assert session.execute(text("SELECT count(*) FROM cases")).scalar_one() == before


def test_unknown_category_and_missing_place(client):
    assert post_report(client, category="ufo").status_code == 422
    no_place = client.post("/public/report", data={"category": "stall"},
                           files={"file": ("p.jpg", PHOTO, "image/jpeg")})
    assert no_place.status_code == 422


def test_rate_limited_per_client(report_settings, session):
    build_city(session)
    report_settings.media.public_reports_per_hour = 2
    app = create_app(report_settings)
    app.dependency_overrides[get_session] = lambda: session
    app.dependency_overrides[get_public_session] = lambda: session
    with TestClient(app) as limited:
        assert post_report(limited).status_code == 201
        assert post_report(limited).status_code == 201
        third = post_report(limited)
        assert third.status_code == 429 and int(third.headers["Retry-After"]) > 0


def test_rate_limiter_window():
    now = [0.0]
    limiter = ReportRateLimiter(2, clock=lambda: now[0])
    assert limiter.allow("a") == 0 and limiter.allow("a") == 0
    assert limiter.allow("a") == pytest.approx(3600)
    assert limiter.allow("b") == 0  # per client
    now[0] = 3600.5
    assert limiter.allow("a") == 0


def test_guessed_or_unpublished_photo_names_are_404(client, session):
    case_no = post_report(client).json()["case_no"]
    case_id = session.execute(text("SELECT id FROM cases WHERE case_no = :n"),
                              {"n": case_no}).scalar_one()
    staff = headers_for(session, "dispatcher")
    staff_photo = client.post(f"/cases/{case_id}/media", headers=staff, data={"stage": "report"},
                              files={"file": ("s.png", png(color="black"), "image/png")})
    name = session.execute(text("SELECT public_name FROM case_media WHERE id = :id"),
                           {"id": staff_photo.json()["id"]}).scalar_one()
    assert client.get(f"/public/media/{name}.jpg").status_code == 404  # a staff report photo
    assert client.get("/public/media/" + "A" * 43 + ".jpg").status_code == 404
    assert client.get("/public/media/..%2F..%2Fetc.jpg").status_code == 404


@pytest.fixture(scope="module")
def city_url(settings):
    yield from seeded_database(settings, "report", build_city)


@pytest.mark.browser
def test_report_flow_in_chromium_at_phone_size(settings, city_url, tmp_path):
    chromium = chromium_or_skip()
    copy = settings.model_copy(deep=True)
    copy.db.url = city_url.render_as_string(hide_password=False)
    copy.media.dir = tmp_path / "media"
    photo_file = tmp_path / "现场.jpg"
    photo_file.write_bytes(PHOTO)
    app = create_app(copy)  # the real roles: citygrid_app writes, citygrid_public reads
    with serve(app) as base, offline_page(
            chromium, width=390, height=844, geolocation={"latitude": POINT[1],
                                                          "longitude": POINT[0]},
            permissions=["geolocation"]) as browser:
        page = browser.page
        page.goto(f"{base}/public/report")
        assert page.locator("h1").inner_text() == "随手拍"
        page.set_input_files("#rr-file", str(photo_file))
        page.wait_for_selector("#rr-preview", state="visible")
        page.locator("label.rr-cat", has_text=CATEGORIES[1].label).click()
        # A tapped point is taken too; then the phone's own position replaces it.
        page.locator("#rr-map").click(position={"x": 100, "y": 100})
        assert "地图上选的位置" in page.locator("#rr-where").inner_text()
        page.click("#rr-locate")
        # A function, not an expression: Playwright evaluates bare expressions with eval,
        # which the page's CSP (no 'unsafe-eval') refuses.
        page.wait_for_function("() => document.getElementById('rr-where').textContent"
                               ".indexOf('我的位置') >= 0")
        assert page.input_value("#rr-lat") == f"{POINT[1]:.6f}"
        page.fill("#rr-contact", PHONE)
        browser.screenshot("resident_report_form_phone.png")
        page.click("#rr-submit")
        page.wait_for_url(re.compile(r".*/public/report/[A-Za-z0-9_-]+$"), timeout=30_000)
        case_no = page.locator("#rr-case-no").inner_text().strip()
        assert page.url.endswith(f"/public/report/{case_no}")
        assert page.locator("ol.rr-steps li.current").inner_text() == "已受理"
        before = page.locator("#rr-before img")
        assert before.count() == 1
        assert page.evaluate("(img) => img.naturalWidth", before.element_handle()) > 0
        assert PHONE not in page.content()
        # No horizontal scrolling on the phone.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        browser.screenshot("resident_report_phone.png")
        assert browser.external == [] and browser.errors == []
    engine = make_engine(city_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text(
                "SELECT c.channel, o.reporter_phone, m.stage FROM cases c "
                "JOIN open311_requests o ON o.case_id = c.id "
                "JOIN case_media m ON m.case_id = c.id WHERE c.case_no = :n"),
                {"n": case_no}).one()
        assert tuple(row) == ("open311", PHONE, "report")
    finally:
        engine.dispose()
