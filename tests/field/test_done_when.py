"""Issue 14's "Done when", end to end in one Chromium at phone size (390 x 844).

A resident's 随手拍 with a photo becomes a routed case with a tracking page; the centre files
and dispatches it; the grid worker signs in on /field, handles it with an after photo while
offline, and when the signal returns the upload arrives once, keeping the time of the press;
the dispatcher desk (/dispatch, open the whole time) hears of it live over SSE without a
reload; the worker reports back, a supervisor verifies on site with a photo, the centre reads
the verification and closes the case, and the resident's tracking page shows 已办结 with the
after photo. Every page runs over the real database roles, at 390 x 844, without requests
leaving the machine.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import text
from sqlalchemy.engine import URL

from api.main import create_app
from gis.access import auth
from gis.platform.db import make_engine, transaction
from gis.public.resident_report import CATEGORIES
from tests.dispatch.test_routing import NEW_OWNER, build_city
from tests.field.conftest import jpeg, wait_sent
from tests.support.accounts import PASSWORD, headers_for
from tests.support.browser import LOOPBACK, OfflinePage, chromium_or_skip, offline_page, serve
from tests.support.databases import seeded_database
from tests.support.photos import jpeg_with_exif

pytestmark = pytest.mark.browser

POINT = (117.0315, 36.6605)  # grid A04 of the constructed city, owned by NEW_OWNER
PHONE = "13912345678"
PHONE_SIZE = {"width": 390, "height": 844}
# Waits are generous: the machine running the suite may be busy with other work.
SLOW_MS = 60_000


@pytest.fixture(scope="module")
def city_url(settings) -> Iterator[URL]:
    yield from seeded_database(settings, "done_when", build_city)


def another_page(first: OfflinePage, **options: Any) -> OfflinePage:
    """A second phone in the same Chromium (own cookies), loopback only, errors recorded."""
    context = first.page.context.browser.new_context(  # type: ignore[union-attr]
        viewport=PHONE_SIZE, locale="zh-CN", **options)
    page = context.new_page()
    page.set_default_timeout(SLOW_MS)
    result = OfflinePage(page)

    def route(r: Any) -> None:
        if urlsplit(r.request.url).hostname == LOOPBACK:
            r.continue_()
        else:
            result.external.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda msg: msg.type == "error" and result.errors.append(msg.text))
    page.on("pageerror", lambda exc: result.errors.append(str(exc)))
    return result


def user(engine, role: str, owner_name: str | None = None) -> str:
    name = f"dw-{role}-{uuid.uuid4().hex[:6]}"
    with transaction(engine) as session:
        auth.create_user(session, username=name, password=PASSWORD, role=role,
                         owner_name=owner_name)
    return name


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/login?next=/field")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/field")


def no_scroll(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_SIZE["width"]


def test_done_when_end_to_end_at_phone_size(settings, city_url, tmp_path):
    chromium = chromium_or_skip()
    copy = settings.model_copy(deep=True)
    copy.db.url = city_url.render_as_string(hide_password=False)
    copy.media.dir = tmp_path / "media"
    engine = make_engine(city_url)
    desk_headers = headers_for(engine, "dispatcher")
    worker_name = user(engine, "grid_owner", NEW_OWNER)
    supervisor_name = user(engine, "supervisor")
    photo = tmp_path / "现场.jpg"
    photo.write_bytes(jpeg_with_exif(lon=POINT[0], lat=POINT[1],
                                     taken=dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))
                                     .replace(tzinfo=None)))
    try:
        with serve(create_app(copy)) as base, offline_page(
                chromium, **PHONE_SIZE, geolocation={"latitude": POINT[1],
                                                     "longitude": POINT[0]},
                permissions=["geolocation"]) as resident, httpx.Client(
                base_url=base, headers=desk_headers, timeout=60) as centre:
            # 1. A resident's 随手拍 with a photo: a routed case with a tracking page.
            page = resident.page
            page.set_default_timeout(SLOW_MS)
            page.goto(f"{base}/public/report")
            page.set_input_files("#rr-file", str(photo))
            page.wait_for_selector("#rr-preview", state="visible")
            page.locator("label.rr-cat", has_text=CATEGORIES[1].label).click()
            page.click("#rr-locate")
            page.wait_for_function("() => document.getElementById('rr-where').textContent"
                                   ".indexOf('我的位置') >= 0")
            page.fill("#rr-contact", PHONE)
            page.click("#rr-submit")
            page.wait_for_url(re.compile(r".*/public/report/[A-Za-z0-9_-]+$"), timeout=SLOW_MS)
            case_no = page.locator("#rr-case-no").inner_text().strip()
            no_scroll(page)
            with engine.connect() as conn:
                case_id, grid, channel = conn.execute(text(
                    "SELECT id, grid_code, channel FROM cases WHERE case_no = :n"),
                    {"n": case_no}).one()
            assert (grid, channel) == ("37010200100104", "open311")

            # 2. The centre files and dispatches it; the desk stays open on a phone.
            for action in ("file", "dispatch"):
                assert centre.post(f"/cases/{case_id}/actions/{action}",
                                   json={}).status_code == 200
            desk = another_page(resident, extra_http_headers=desk_headers)
            assert desk.page.goto(f"{base}/dispatch").status == 200
            desk.page.wait_for_function("() => window.cgDispatch && window.cgDispatch.live.open",
                                        timeout=60_000)
            loads = desk.page.evaluate(
                "() => performance.getEntriesByType('navigation').length")

            # 3. The grid worker handles it offline with an after photo.
            worker = another_page(resident)
            wp = worker.page
            sign_in(wp, base, worker_name)
            task = wp.locator(f".task[data-case-id='{case_id}']")
            task.wait_for()
            no_scroll(wp)
            wp.context.set_offline(True)
            expect(wp.locator("#net")).to_have_text("离线", timeout=SLOW_MS)
            task.locator("textarea[name=note]").fill("已清理占道摊点")
            task.locator("input[name=photos]").set_input_files(
                files=[{"name": "after.jpg", "mimeType": "image/jpeg", "buffer": jpeg()}])
            pressed = dt.datetime.now(dt.UTC)
            task.locator("button[type=submit]").click()
            expect(wp.locator("#queue-count")).to_have_text("2", timeout=SLOW_MS)
            time.sleep(1.5)
            online = dt.datetime.now(dt.UTC)
            wp.context.set_offline(False)
            expect(wp.locator("#queue-count")).to_have_text("0", timeout=SLOW_MS)

            # 4. The desk hears of it live, without a reload.
            desk.page.wait_for_function(
                f"() => {{ var e = window.cgDispatch.live.last; return e && e.case_id === "
                f"{case_id} && e.action === 'handle'; }}", timeout=SLOW_MS)
            assert desk.page.evaluate(
                "() => performance.getEntriesByType('navigation').length") == loads
            with engine.connect() as conn:
                handled = conn.execute(text(
                    "SELECT count(*), min(at) FROM case_transitions WHERE case_id = :c "
                    "AND action = 'handle'"), {"c": case_id}).one()
                after = conn.execute(text(
                    "SELECT count(*) FROM case_media WHERE case_id = :c AND stage = 'handling'"),
                    {"c": case_id}).scalar_one()
            assert handled[0] == 1 and after == 1  # arrived once
            assert pressed - dt.timedelta(seconds=1) <= handled[1] < online

            # 5. The worker reports back; a supervisor verifies on site with a photo.
            task = wp.locator(f".task[data-case-id='{case_id}']")
            task.locator(".cat", has_text="待反馈").wait_for(timeout=SLOW_MS)
            task.locator("textarea[name=note]").fill("已处置，请核查")
            task.locator("button[type=submit]").click()
            wait_sent(wp, 3, timeout=SLOW_MS)  # handle + photo earlier, now the report
            expect(wp.locator("#queue-count")).to_have_text("0", timeout=SLOW_MS)
            expect(wp.locator(f".task[data-case-id='{case_id}']")).to_have_count(
                0, timeout=SLOW_MS)  # reported back: no longer the worker's task
            supervisor = another_page(resident)
            sp = supervisor.page
            sign_in(sp, base, supervisor_name)
            check = sp.locator(f".task[data-case-id='{case_id}']")
            check.wait_for(timeout=SLOW_MS)
            assert "提交核查" in check.locator("button[type=submit]").inner_text()
            check.locator("textarea[name=note]").fill("现场核查：已恢复")
            check.locator("input[name=photos]").set_input_files(files=[{
                "name": "check.jpg", "mimeType": "image/jpeg", "buffer": jpeg((9, 9, 9))}])
            check.locator("button[type=submit]").click()
            wait_sent(sp, 2, timeout=SLOW_MS)  # the verification and its photo
            expect(sp.locator("#queue-count")).to_have_text("0", timeout=SLOW_MS)
            no_scroll(sp)
            desk.page.wait_for_function(
                f"() => {{ var e = window.cgDispatch.live.last; return e && e.case_id === "
                f"{case_id} && e.action === 'verify'; }}", timeout=SLOW_MS)

            # 6. The centre reads the verification, then closes the case.
            checks = centre.get(f"/field/cases/{case_id}/verifications").json()
            assert [(c["verifier"], c["result"]) for c in checks] == [
                (supervisor_name, "passed")]
            closed = centre.post(f"/cases/{case_id}/actions/close", json={})
            assert closed.status_code == 200 and closed.json()["status"] == "closed"

            # 7. The resident's tracking page: 已办结 with the after photo.
            page.goto(f"{base}/public/report/{case_no}")
            assert page.locator("ol.rr-steps li.current").inner_text() == "已办结"
            shown = page.locator("img[alt='处置后照片']")
            assert shown.count() == 1
            assert page.evaluate("(img) => img.naturalWidth", shown.element_handle()) > 0
            assert PHONE not in page.content()
            no_scroll(page)
            pages = (resident, desk, worker, supervisor)
            external = [u for p in pages for u in p.external]
            # Offline and retry noise: the service worker answers 503 while offline, and a
            # queued write retried while its first try is still being stored gets 409 (its key
            # in progress) before its replay; arriving once is asserted above.
            noise = ("net::ERR_INTERNET_DISCONNECTED", "Failed to fetch",
                     "status of 503", "status of 409")
            errors = [e for p in pages for e in p.errors if not any(n in e for n in noise)]
        assert external == [] and errors == []
    finally:
        engine.dispose()
