"""The field app in Chromium at phone size: offline handling queues, uploads once when back.

A grid worker signs in at 390x844, sees their task on /field, loses the signal
(context.set_offline), handles the task with a note and an after photo, sees both queued (also
after a reload from the service worker's cache), gets the signal back: they upload by
themselves, exactly once, and the case changed once, timed at the press (acted_at), not at
the upload. A supervisor verifies a reported case on site with a photo at the same size.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import text

from gis.access import auth
from gis.platform.db import transaction
from tests.field.conftest import OWNER_WEST, WEST_POINT, jpeg, wait_sent
from tests.support.accounts import PASSWORD, headers_for
from tests.support.browser import chromium_or_skip, offline_page

pytestmark = pytest.mark.browser


def dispatched_case(base: str, engine) -> dict:
    with httpx.Client(base_url=base, headers=headers_for(engine, "dispatcher"),
                      timeout=30) as desk:
        case = desk.post("/cases", json={
            "category_type": "event", "category_code": "0102", "channel": "patrol",
            "x": WEST_POINT[0], "y": WEST_POINT[1],
            "description": "路边暴露垃圾（外业测试）"}).json()
        for action in ("file", "dispatch"):
            assert desk.post(f"/cases/{case['id']}/actions/{action}", json={}).status_code == 200
    return case


def worker(engine) -> str:
    name = f"field-{uuid.uuid4().hex[:8]}"
    with transaction(engine) as session:
        auth.create_user(session, username=name, password=PASSWORD, role="grid_owner",
                         display_name="网格员甲", owner_name=OWNER_WEST)
    return name


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/login?next=/field")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/field")


def transitions(engine, case_id: int, action: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM case_transitions WHERE case_id = :c AND "
                                 "action = :a"), {"c": case_id, "a": action}).scalar_one()


def test_offline_handling_queues_and_uploads_once(field_base_url, field_engine):
    base = field_base_url
    case = dispatched_case(base, field_engine)
    username = worker(field_engine)
    with offline_page(chromium_or_skip(), width=390, height=844) as browser:
        page = browser.page
        sign_in(page, base, username)
        task = page.locator(f".task[data-case-id='{case['id']}']")
        task.wait_for()
        assert case["case_no"] in task.inner_text()
        assert "剩余" in task.locator(".due").inner_text()
        assert task.locator("a.amap").get_attribute("href").startswith("https://uri.amap.com/")
        assert task.locator("a.geo").get_attribute("href").startswith("geo:37.000400,118.000500")
        assert page.evaluate("navigator.serviceWorker.ready.then(r => !!r.active)")
        # Fits the phone: nothing wider than the screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390

        page.context.set_offline(True)
        expect(page.locator("#net")).to_have_text("离线")
        task.locator("textarea[name=note]").fill("已清理，现场恢复整洁")
        task.locator("input[name=photos]").set_input_files(
            files=[{"name": "after.jpg", "mimeType": "image/jpeg", "buffer": jpeg()}])
        pressed = dt.datetime.now(dt.UTC)
        task.locator("button[type=submit]").click()
        expect(page.locator("#queue-count")).to_have_text("2")
        assert "after.jpg" in page.locator("#queue").inner_text()
        assert "处理完毕" in page.locator("#queue").inner_text()
        assert "待上传" in page.locator("#queue").inner_text()
        assert "已排队" in task.locator(".state").inner_text()
        browser.screenshot("field-offline-queued.png")

        # The app shell and the queue survive a reload without a signal (service worker).
        page.reload()
        expect(page.locator("#queue-count")).to_have_text("2")
        page.locator(f".task[data-case-id='{case['id']}']").wait_for()
        assert transitions(field_engine, case["id"], "handle") == 0

        time.sleep(2)  # a while without a signal: the case must keep the time of the press
        online = dt.datetime.now(dt.UTC)
        page.context.set_offline(False)
        expect(page.locator("#queue-count")).to_have_text("0", timeout=20_000)
        page.locator(f".task[data-case-id='{case['id']}'] .cat",
                     has_text="待反馈").wait_for(timeout=20_000)
        assert page.evaluate("() => window.__field.flush()") == 0
        browser.screenshot("field-online-uploaded.png")
        external, errors = browser.external, browser.errors

    assert transitions(field_engine, case["id"], "handle") == 1
    with field_engine.connect() as conn:
        note, at, received, acted, flag = conn.execute(text(
            "SELECT t.note, t.at, t.recorded_at, f.acted_at, f.flag FROM case_transitions t "
            "JOIN field_action_times f ON f.transition_id = t.id "
            "WHERE t.case_id = :c AND t.action = 'handle'"), {"c": case["id"]}).one()
        keys = conn.execute(text("SELECT count(*) FROM idempotency_keys WHERE username = :u"),
                            {"u": username}).scalar_one()
        photos = conn.execute(text("SELECT stage FROM case_media WHERE case_id = :c"),
                              {"c": case["id"]}).scalars().all()
    assert note == "已清理，现场恢复整洁"
    # Queued offline: the step keeps the moment of the press, the server notes the arrival.
    assert pressed - dt.timedelta(seconds=1) <= acted == at < online <= received
    assert flag is None
    assert keys == 1
    assert photos == ["handling"]
    assert external == []
    # Offline fetches fail by design (the queue retries them); nothing else may log an error.
    assert [e for e in errors if "net::ERR_INTERNET_DISCONNECTED" not in e
            and "Failed to fetch" not in e] == []


def test_supervisor_verifies_on_site_with_a_photo(field_base_url, field_engine):
    base = field_base_url
    case = dispatched_case(base, field_engine)
    with httpx.Client(base_url=base, headers=headers_for(field_engine, "grid_owner",
                      owner_name=OWNER_WEST), timeout=30) as worker_client:
        for action in ("handle", "report"):
            assert worker_client.post(f"/cases/{case['id']}/actions/{action}",
                                      json={}).status_code == 200
    name = f"sup-{uuid.uuid4().hex[:8]}"
    with transaction(field_engine) as session:
        auth.create_user(session, username=name, password=PASSWORD, role="supervisor",
                         display_name="监督员丙")
    with offline_page(chromium_or_skip(), width=390, height=844) as browser:
        page = browser.page
        sign_in(page, base, name)
        expect(page.locator("#report-box")).to_be_visible()
        assert page.locator("#report-form select option").count() > 0
        task = page.locator(f".task[data-case-id='{case['id']}']")
        task.wait_for()
        assert "提交核查" in task.locator("button[type=submit]").inner_text()
        task.locator("textarea[name=note]").fill("复核：已清理")
        task.locator("input[name=photos]").set_input_files(
            files=[{"name": "check.jpg", "mimeType": "image/jpeg", "buffer": jpeg((9, 9, 9))}])
        task.locator("button[type=submit]").click()
        wait_sent(page, 2)  # the verification and its photo
        expect(page.locator("#queue-count")).to_have_text("0", timeout=20_000)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        browser.screenshot("field-supervisor.png")
        errors = browser.errors
    with field_engine.connect() as conn:
        checks = conn.execute(text("SELECT verifier, result, note FROM case_verifications "
                                   "WHERE case_id = :c"), {"c": case["id"]}).all()
        photos = conn.execute(text("SELECT stage FROM case_media WHERE case_id = :c"),
                              {"c": case["id"]}).scalars().all()
    assert [tuple(c) for c in checks] == [(name, "passed", "复核：已清理")]
    assert photos == ["verification"]
    assert errors == []
