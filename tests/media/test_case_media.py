"""Case photos over the API against real PostGIS: types, limits, EXIF flags, supersede, replay."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text

from api.deps import get_public_session, get_session
from api.main import create_app
from gis.dispatch.cases import create_case, transition
from gis.media.store import MediaStore
from tests.dispatch.test_routing import build_city
from tests.support.accounts import headers_for
from tests.support.photos import heic, jpeg_with_exif, png, png_bomb

CHINA = dt.timezone(dt.timedelta(hours=8))
CASE_POINT = (117.0315, 36.6605)  # grid A04 of the constructed city
REPORTED = dt.datetime(2026, 12, 3, 9, 0, tzinfo=CHINA)
NEAR_PHOTO = {"lon": 117.03152, "lat": 36.66052, "taken": dt.datetime(2026, 12, 3, 9, 30)}


@pytest.fixture
def media_settings(test_settings, tmp_path):
    copy = test_settings.model_copy(deep=True)
    copy.media.dir = tmp_path / "media"
    return copy


@pytest.fixture
def client(media_settings, session):
    build_city(session)
    app = create_app(media_settings)
    app.dependency_overrides[get_session] = lambda: session
    app.dependency_overrides[get_public_session] = lambda: session
    with TestClient(app, headers=headers_for(session, "dispatcher")) as test_client:
        yield test_client


@pytest.fixture
def case(session, client):
    made = create_case(session, category_type="event", category_code="0505", channel="patrol",
                       x=CASE_POINT[0], y=CASE_POINT[1], reported_at=REPORTED, actor="测试",
                       description="占道经营")
    return made


def upload(client, case_ref, data: bytes, *, stage="report", name="photo.jpg",
           content_type="image/jpeg", key=None, note=""):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(f"/cases/{case_ref}/media", data={"stage": stage, "note": note},
                       files={"file": (name, data, content_type)}, headers=headers)


def test_jpeg_with_exif_gps_near_the_case_is_stored_unflagged(client, case, media_settings):
    data = jpeg_with_exif(**NEAR_PHOTO)
    answer = upload(client, case.case_no, data, note="现场照片")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["stage"] == "report" and body["case_id"] == case.id
    assert body["flags"] == []
    assert body["distance_m"] < 5
    assert dt.datetime.fromisoformat(body["taken_at"]) == dt.datetime(2026, 12, 3, 9, 30,
                                                                       tzinfo=CHINA)
    assert body["exif_lon"] == pytest.approx(NEAR_PHOTO["lon"], abs=1e-6)
    assert len(body["sha256"]) == 64
    # Served through the API only: the original as uploaded (evidence keeps EXIF), a thumb.
    original = client.get(body["url"])
    assert original.status_code == 200 and original.content == data
    assert original.headers["content-type"] == "image/jpeg"
    thumb = Image.open(io.BytesIO(client.get(body["thumb_url"]).content))
    assert thumb.format == "JPEG" and max(thumb.size) <= media_settings.media.thumb_px
    # Stored once, content-addressed, outside the table.
    store = MediaStore(media_settings.media.dir)
    assert store.path("original", body["sha256"]).read_bytes() == data
    listed = client.get(f"/cases/{case.id}/media").json()
    assert [m["id"] for m in listed] == [body["id"]]
    anonymous = TestClient(client.app)
    assert anonymous.get(body["url"]).status_code == 401


def test_far_and_old_photo_is_flagged_not_refused(client, case):
    data = jpeg_with_exif(lon=117.0415, lat=36.6605,  # ~890 m east of the case
                          taken=dt.datetime(2026, 11, 28, 8, 0))  # 5 days before the report
    answer = upload(client, case.id, data)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert set(body["flags"]) == {"far_from_case", "taken_before_report"}
    assert 850 < body["distance_m"] < 950


def test_png_without_exif_and_heic(client, case):
    answer = upload(client, case.id, png(), name="p.png", content_type="image/png")
    assert answer.status_code == 201, answer.text
    assert set(answer.json()["flags"]) == {"no_exif_gps", "no_exif_time"}
    assert client.get(answer.json()["url"]).headers["content-type"] == "image/png"
    answer = upload(client, case.id, heic(), name="IMG_0001.HEIC", content_type="image/heic")
    assert answer.status_code == 201, answer.text
    assert answer.json()["content_type"] == "image/heic"


def test_text_named_jpg_is_415_naming_the_type(client, case, session):
    answer = upload(client, case.id, "这不是照片，是一段文字。\n".encode() * 20, name="fake.jpg")
    assert answer.status_code == 415, answer.text
    assert "text" in answer.json()["detail"]
    pdf = upload(client, case.id, b"%PDF-1.7\n" + b"0" * 100, name="x.jpg")
    assert pdf.status_code == 415 and "PDF" in pdf.json()["detail"]
    assert session.execute(text("SELECT count(*) FROM case_media")).scalar_one() == 0


def test_too_big_file_is_413(media_settings, session, case):
    media_settings.media.max_mb = 0.05
    app = create_app(media_settings)
    app.dependency_overrides[get_session] = lambda: session
    with TestClient(app, headers=headers_for(session, "dispatcher")) as small:
        big = jpeg_with_exif(**NEAR_PHOTO, size=(3000, 2000))
        assert len(big) > 0.05 * 1024 * 1024
        answer = upload(small, case.id, big)
        assert answer.status_code == 413, answer.text
        assert "CITYGRID_MEDIA_MAX_MB" in answer.json()["detail"]


def test_decompression_bombs_are_413(client, case):
    # 10 gigapixels in under 1 KB, and 81 megapixels (under Pillow's own limit, over ours).
    for bomb in (png_bomb(), png_bomb(9000, 9000)):
        answer = upload(client, case.id, bomb, name="bomb.png", content_type="image/png")
        assert answer.status_code == 413, answer.text
        assert "pixels" in answer.json()["detail"]


def test_public_copy_has_no_exif(client, case, media_settings):
    body = upload(client, case.id, jpeg_with_exif(**NEAR_PHOTO)).json()
    public = MediaStore(media_settings.media.dir).read("public", body["sha256"])
    image = Image.open(io.BytesIO(public))
    assert image.format == "JPEG"
    assert len(image.getexif()) == 0
    assert b"Exif" not in public and b"TestPhone" not in public
    assert "exif" not in image.info and "xmp" not in image.info


def test_supersede_keeps_the_photo_and_audits_it(client, case, session):
    first = upload(client, case.id, jpeg_with_exif(**NEAR_PHOTO)).json()
    second = upload(client, case.id, png(), name="p.png", content_type="image/png").json()
    missing_reason = client.post(f"/cases/{case.id}/media/{first['id']}/supersede",
                                 json={"reason": ""})
    assert missing_reason.status_code == 422
    answer = client.post(f"/cases/{case.id}/media/{first['id']}/supersede",
                         json={"reason": "拍错了位置", "replacement_id": second["id"]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["superseded_by"] == second["id"]
    assert answer.json()["superseded_reason"].startswith("拍错了位置")
    again = client.post(f"/cases/{case.id}/media/{first['id']}/supersede",
                        json={"reason": "再来一次"})
    assert again.status_code == 409
    listed = client.get(f"/cases/{case.id}/media").json()
    assert [m["id"] for m in listed] == [first["id"], second["id"]]  # still there
    audit = session.execute(text(
        "SELECT action, after ->> 'superseded_reason' FROM audit_log "
        "WHERE table_name = 'case_media' AND row_key = :id ORDER BY id"),
        {"id": str(first["id"])}).all()
    assert [a for a, _ in audit] == ["INSERT", "UPDATE"]
    assert audit[1][1].startswith("拍错了位置")
    # No delete, not even by the owner of the table.
    with pytest.raises(Exception, match="never deleted"), session.begin_nested():
        session.execute(text("DELETE FROM case_media WHERE id = :id"), {"id": first["id"]})


def test_idempotency_key_stores_once(client, case, session):
    data = jpeg_with_exif(**NEAR_PHOTO)
    first = upload(client, case.id, data, key="phone-7-upload-1")
    again = upload(client, case.id, data, key="phone-7-upload-1")
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotency-Replayed") == "true"
    assert "Idempotency-Replayed" not in first.headers
    assert again.json()["id"] == first.json()["id"]
    assert session.execute(text("SELECT count(*) FROM case_media")).scalar_one() == 1
    other = upload(client, case.id, png(), key="phone-7-upload-1", name="p.png")
    assert other.status_code == 409


def test_stage_rules_and_duplicate_flag(client, case, session):
    early = upload(client, case.id, jpeg_with_exif(**NEAR_PHOTO), stage="verification")
    assert early.status_code == 409 and "verification" in early.json()["detail"]
    before = jpeg_with_exif(**NEAR_PHOTO)
    assert upload(client, case.id, before).status_code == 201
    for action in ("file", "dispatch"):
        transition(session, case.id, action, actor="测试",
                   at=REPORTED + dt.timedelta(minutes=10))
    # The before photo sent again as the after photo is flagged.
    after = upload(client, case.id, before, stage="handling")
    assert after.status_code == 201
    assert "same_photo_as_another_stage" in after.json()["flags"]
    assert upload(client, case.id, png(), stage="report", name="p.png").status_code == 201


def test_count_limit(media_settings, session, case):
    media_settings.media.max_per_case = 2
    app = create_app(media_settings)
    app.dependency_overrides[get_session] = lambda: session
    with TestClient(app, headers=headers_for(session, "dispatcher")) as limited:
        for color in ("red", "blue"):
            assert upload(limited, case.id, png(color=color), name="p.png").status_code == 201
        third = upload(limited, case.id, png(color="black"), name="p.png")
        assert third.status_code == 409 and "CITYGRID_MEDIA_MAX_PER_CASE" in third.text
