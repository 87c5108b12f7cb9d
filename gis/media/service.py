"""Photos on a case: upload at a workflow step, list, read, supersede (never delete).

Stages follow the workflow's photo points: `report` (处置前, the reporter's photo, while the
case is collected, filed or dispatched), `handling` (处置后, the worker's after photo, once
dispatched and until closed) and `verification` (核查, the supervisor's photo on site, after
handling and before closing). A photo is judged, not refused, by what its EXIF says: flags
name a position farther than `far_m` from the case, a time more than `before_report_h` before
the report, missing EXIF, and the same picture already on the case under another stage.
Functions never commit; the route owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.dispatch.cases import resolve_case_id
from gis.media.errors import MediaTooLargeError
from gis.media.images import decode, derived_copies, sniff
from gis.media.store import MediaStore
from gis.platform.errors import ConflictError, InvalidInputError, NotFoundError
from gis.platform.settings import MediaSettings

STAGES = ("report", "handling", "verification")
STAGE_LABELS = {"report": "处置前", "handling": "处置后", "verification": "核查"}
# Case statuses in which a photo of each stage may be added.
STAGE_STATUSES = {
    "report": frozenset({"collected", "filed", "dispatched"}),
    "handling": frozenset({"dispatched", "handled", "reported"}),
    "verification": frozenset({"handled", "reported"}),
}
FAR_FROM_CASE = "far_from_case"
TAKEN_BEFORE_REPORT = "taken_before_report"
NO_EXIF_TIME = "no_exif_time"
NO_EXIF_GPS = "no_exif_gps"
DUPLICATE = "same_photo_as_another_stage"


@dataclass(frozen=True)
class MediaRecord:
    """One photo of a case, as stored."""

    id: int
    case_id: int
    case_no: str
    stage: str
    sha256: str
    content_type: str
    byte_size: int
    width: int
    height: int
    taken_at: dt.datetime | None
    exif_lon: float | None
    exif_lat: float | None
    distance_m: float | None
    flags: list[str]
    note: str
    uploaded_by: str
    uploaded_at: dt.datetime
    public_name: str
    published: bool
    superseded_by: int | None
    superseded_reason: str | None
    superseded_at: dt.datetime | None

    @property
    def extension(self) -> str:
        """File extension of the original."""
        return {"image/png": "png", "image/heic": "heic"}.get(self.content_type, "jpg")


_COLUMNS = """m.id, m.case_id, c.case_no, m.stage, m.sha256, m.content_type, m.byte_size,
    m.width, m.height, m.taken_at, m.exif_lon, m.exif_lat, m.distance_m, m.flags, m.note,
    m.uploaded_by, m.uploaded_at, m.public_name, m.published, m.superseded_by,
    m.superseded_reason, m.superseded_at"""


def new_public_name() -> str:
    """An unguessable name for a public copy (256 random bits)."""
    return secrets.token_urlsafe(32)


def add_media(session: Session, store: MediaStore, *, case_ref: str, stage: str, data: bytes,
              actor: str, settings: MediaSettings, note: str = "",
              idempotency_key: str | None = None, published: bool | None = None,
              public_name: str | None = None) -> tuple[MediaRecord, bool]:
    """Store a photo on a case; (record, False) when the idempotency key was seen before."""
    if stage not in STAGES:
        raise InvalidInputError(f"stage {stage!r} must be one of {', '.join(STAGES)}")
    if len(data) > settings.max_mb * 1024 * 1024:
        raise MediaTooLargeError(f"the photo is {len(data):,} bytes, over the limit of "
                                 f"{settings.max_mb:g} MB (CITYGRID_MEDIA_MAX_MB)")
    if not data:
        raise InvalidInputError("the uploaded file is empty")
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
        raise InvalidInputError("Idempotency-Key must be 1 to 200 characters")
    sha256 = hashlib.sha256(data).hexdigest()
    case_id = resolve_case_id(session, case_ref)
    if idempotency_key is not None:
        seen = _by_key(session, case_id, idempotency_key)
        if seen is not None:
            return _replay(seen, sha256, idempotency_key), False
    content_type, extension = sniff(data)  # 415 before anything about the case is said
    case = session.execute(text(
        "SELECT status, reported_at FROM cases WHERE id = :id FOR UPDATE"), {"id": case_id}
    ).mappings().one()
    if case["status"] not in STAGE_STATUSES[stage]:
        allowed = ", ".join(sorted(STAGE_STATUSES[stage]))
        raise ConflictError(f"a {stage} ({STAGE_LABELS[stage]}) photo cannot be added to a "
                            f"case that is {case['status']}; only when {allowed}")
    count = session.execute(text("SELECT count(*) FROM case_media WHERE case_id = :id"),
                            {"id": case_id}).scalar_one()
    if count >= settings.max_per_case:
        raise ConflictError(f"case {case_ref!r} already has {count} photos, the limit "
                            f"(CITYGRID_MEDIA_MAX_PER_CASE)")
    photo = decode(data, max_pixels=settings.max_pixels, draft_px=settings.public_px)
    store.put("original", sha256, data, extension)
    public, thumb = derived_copies(photo.image, public_px=settings.public_px,
                                   thumb_px=settings.thumb_px)
    store.put("thumb", sha256, thumb)
    store.put("public", sha256, public)
    flags, distance = _flags(session, case_id=case_id, sha256=sha256, stage=stage,
                             photo_lon=photo.lon, photo_lat=photo.lat,
                             taken_at=photo.taken_at, reported_at=case["reported_at"],
                             settings=settings)
    new_id = session.execute(text("""
        INSERT INTO case_media (case_id, stage, sha256, content_type, byte_size, width, height,
            taken_at, exif_lon, exif_lat, distance_m, flags, note, uploaded_by,
            idempotency_key, public_name, published)
        VALUES (:case_id, :stage, :sha256, :content_type, :byte_size, :width, :height,
            :taken_at, :lon, :lat, :distance, :flags, :note, :actor, :key, :public_name,
            :published)
        ON CONFLICT (case_id, idempotency_key) DO NOTHING
        RETURNING id"""), {
        "case_id": case_id, "stage": stage, "sha256": sha256, "content_type": content_type,
        "byte_size": len(data), "width": photo.width, "height": photo.height,
        "taken_at": photo.taken_at, "lon": photo.lon, "lat": photo.lat, "distance": distance,
        "flags": flags, "note": note, "actor": actor, "key": idempotency_key,
        "public_name": public_name or new_public_name(),
        "published": stage == "handling" if published is None else published}).scalar()
    if new_id is None:  # the same key arrived concurrently and committed first
        seen = _by_key(session, case_id, idempotency_key or "")
        assert seen is not None
        return _replay(seen, sha256, idempotency_key or ""), False
    return get_media(session, case_ref=str(case_id), media_id=int(new_id)), True


def list_media(session: Session, *, case_ref: str) -> list[MediaRecord]:
    """Every photo of a case, superseded ones included, oldest first."""
    case_id = resolve_case_id(session, case_ref)
    rows = session.execute(text(
        f"SELECT {_COLUMNS} FROM case_media m JOIN cases c ON c.id = m.case_id "
        "WHERE m.case_id = :id ORDER BY m.uploaded_at, m.id"), {"id": case_id}).mappings()
    return [_record(r) for r in rows]


def get_media(session: Session, *, case_ref: str, media_id: int) -> MediaRecord:
    """One photo of a case; NotFoundError when the case has no such photo."""
    case_id = resolve_case_id(session, case_ref)
    row = session.execute(text(
        f"SELECT {_COLUMNS} FROM case_media m JOIN cases c ON c.id = m.case_id "
        "WHERE m.case_id = :case AND m.id = :id"), {"case": case_id, "id": media_id}
    ).mappings().first()
    if row is None:
        raise NotFoundError(f"case {case_ref!r} has no photo {media_id}")
    return _record(row)


def supersede_media(session: Session, *, case_ref: str, media_id: int, reason: str,
                    actor: str, replacement_id: int | None = None) -> MediaRecord:
    """Mark a wrong photo superseded (kept, and the change audited); a reason is required."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInputError("a reason is required to supersede a photo")
    current = get_media(session, case_ref=case_ref, media_id=media_id)
    if current.superseded_at is not None:
        raise ConflictError(f"photo {media_id} was already superseded at "
                            f"{current.superseded_at.isoformat()}: {current.superseded_reason}")
    if replacement_id is not None:
        replacement = get_media(session, case_ref=case_ref, media_id=replacement_id)
        if replacement.id == current.id:
            raise InvalidInputError("a photo cannot supersede itself")
    session.execute(text("""
        UPDATE case_media SET superseded_at = now(), superseded_reason = :reason,
            superseded_by = :by
        WHERE id = :id"""), {"reason": f"{reason}（{actor}）", "by": replacement_id,
                             "id": media_id})
    return get_media(session, case_ref=case_ref, media_id=media_id)


def published_photo(session: Session, public_name: str) -> tuple[str, str] | None:
    """(sha256, stage) of a published photo by its public name, read from pub.case_photos."""
    row = session.execute(text(
        "SELECT sha256, stage FROM pub.case_photos WHERE public_name = :n"),
        {"n": public_name}).first()
    return (str(row[0]), str(row[1])) if row is not None else None


def public_photos(session: Session, case_no: str) -> list[dict[str, Any]]:
    """The published photos of a case (after photos, the resident's own), oldest first."""
    rows = session.execute(text(
        "SELECT stage, public_name, uploaded_at FROM pub.case_photos WHERE case_no = :n "
        "ORDER BY uploaded_at"), {"n": case_no}).mappings()
    return [dict(r) for r in rows]


def _flags(session: Session, *, case_id: int, sha256: str, stage: str,
           photo_lon: float | None, photo_lat: float | None, taken_at: dt.datetime | None,
           reported_at: dt.datetime, settings: MediaSettings) -> tuple[list[str], float | None]:
    flags: list[str] = []
    distance: float | None = None
    if photo_lon is None or photo_lat is None:
        flags.append(NO_EXIF_GPS)
    else:
        distance = float(session.execute(text(
            "SELECT ST_Distance(geom::geography, "
            "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography) FROM cases WHERE id = :id"),
            {"lon": photo_lon, "lat": photo_lat, "id": case_id}).scalar_one())
        if distance > settings.far_m:
            flags.append(FAR_FROM_CASE)
    if taken_at is None:
        flags.append(NO_EXIF_TIME)
    elif taken_at < reported_at - dt.timedelta(hours=settings.before_report_h):
        flags.append(TAKEN_BEFORE_REPORT)
    other = session.execute(text(
        "SELECT 1 FROM case_media WHERE case_id = :id AND sha256 = :sha AND stage <> :stage "
        "AND superseded_at IS NULL"), {"id": case_id, "sha": sha256, "stage": stage}).first()
    if other is not None:
        flags.append(DUPLICATE)  # e.g. the before photo uploaded again as the after photo
    return flags, distance


def _by_key(session: Session, case_id: int, key: str) -> MediaRecord | None:
    row = session.execute(text(
        f"SELECT {_COLUMNS} FROM case_media m JOIN cases c ON c.id = m.case_id "
        "WHERE m.case_id = :case AND m.idempotency_key = :key"), {"case": case_id, "key": key}
    ).mappings().first()
    return _record(row) if row is not None else None


def _replay(seen: MediaRecord, sha256: str, key: str) -> MediaRecord:
    if seen.sha256 != sha256:
        raise ConflictError(f"Idempotency-Key {key!r} was used for another photo on this case")
    return seen


def _record(row: Any) -> MediaRecord:
    values = dict(row)
    values["flags"] = list(values["flags"] or [])
    return MediaRecord(**values)
