"""Case photos: upload at a workflow step, list, fetch the file or thumbnail, supersede.

The files are served only through these routes, after the case's row was read in the caller's
session (a grid owner's row-level security hides other grids' cases: 404), never from a path
in the media folder. Idempotency-Key makes a retried upload (a phone back online) store once.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Header, HTTPException, Path, Query, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.auth import require_roles, staff_only
from api.deps import SessionDep, SettingsDep
from api.params import SaneAwareDatetime
from api.routes.dispatch.cases import CaseRef
from gis.access.auth import User
from gis.analysis.indicators import count_photo_indicators
from gis.media import service as media
from gis.media.errors import MediaTooLargeError, UnsupportedMediaError
from gis.media.store import MediaStore
from gis.platform.errors import PermissionDeniedError
from gis.platform.settings import MediaSettings

router = APIRouter(tags=["media"], dependencies=[staff_only])
# Supervisors (监督员, the field role) report and verify; grid owners report and handle, and
# never verify their own work.
MediaUploaderDep = Annotated[User, Depends(require_roles("dispatcher", "grid_owner",
                                                         "supervisor"))]
GRID_OWNER_STAGES = frozenset({"report", "handling"})
# The error shape every citygrid error answers with (api.errors documents ErrorOut).
ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
READ_CHUNK = 1024 * 1024

Stage = Literal["report", "handling", "verification"]
MediaId = Annotated[int, Path(ge=1, le=2**62, description="photo id")]


class MediaOut(BaseModel):
    """One photo of a case (the contract the field page uses)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    case_id: int
    case_no: str
    sha256: str
    stage: str
    url: str
    thumb_url: str
    taken_at: dt.datetime | None
    flags: list[str]
    content_type: str
    byte_size: int
    width: int
    height: int
    exif_lon: float | None
    exif_lat: float | None
    distance_m: float | None
    note: str
    uploaded_by: str
    uploaded_at: dt.datetime
    superseded_by: int | None
    superseded_reason: str | None
    superseded_at: dt.datetime | None


class SupersedeIn(BaseModel):
    """Why a photo is wrong, and optionally the photo that replaces it."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=1000)
    replacement_id: int | None = Field(default=None, ge=1, le=2**62)


def media_store(settings: SettingsDep) -> MediaStore:
    """The media folder of this app."""
    return MediaStore(settings.media.dir)


MediaStoreDep = Annotated[MediaStore, Depends(media_store)]


def to_out(record: media.MediaRecord) -> MediaOut:
    """The API shape of a stored photo, with the URLs that serve it."""
    base = f"/cases/{record.case_id}/media/{record.id}"
    return MediaOut(**{k: getattr(record, k) for k in MediaOut.model_fields
                       if k not in ("url", "thumb_url")},
                    url=f"{base}/file", thumb_url=f"{base}/thumb")


async def read_limited(file: UploadFile, settings: MediaSettings) -> bytes:
    """The uploaded bytes, stopping with 413 as soon as they pass the photo limit."""
    limit = int(settings.max_mb * 1024 * 1024)
    chunks: list[bytes] = []
    size = 0
    while chunk := await file.read(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise HTTPException(status_code=413, detail=(
                f"the photo is larger than {settings.max_mb:g} MB (CITYGRID_MEDIA_MAX_MB)"))
        chunks.append(chunk)
    return b"".join(chunks)


def http_media_error(exc: Exception) -> HTTPException:
    """415 / 413 for the upload errors that have their own status."""
    status = 415 if isinstance(exc, UnsupportedMediaError) else 413
    return HTTPException(status_code=status, detail=str(exc))


@router.post("/cases/{case_ref}/media", status_code=201, response_model=MediaOut,
             responses={415: {"description": "not a JPEG, PNG or HEIC photo",
                              "content": ERROR_CONTENT}})
async def upload_media(
    case_ref: CaseRef,
    session: SessionDep,
    settings: SettingsDep,
    store: MediaStoreDep,
    user: MediaUploaderDep,
    file: Annotated[UploadFile, File(description="the photo: JPEG, PNG or HEIC")],
    stage: Annotated[Stage, Form(description="report 处置前, handling 处置后, verification 核查")],
    note: Annotated[str, Form(max_length=2000)] = "",
    idempotency_key: Annotated[str | None, Header(
        alias="Idempotency-Key", max_length=200,
        description="the same key on a retry returns the first upload, stored once")] = None,
) -> Response | MediaOut:
    """Add a photo to a case at a workflow step; EXIF time and place are checked and flagged."""
    if user.is_grid_owner and stage not in GRID_OWNER_STAGES:
        raise PermissionDeniedError(f"grid owner {user.username!r} may add "
                                    f"{' or '.join(sorted(GRID_OWNER_STAGES))} photos, not "
                                    f"{stage!r}")
    data = await read_limited(file, settings.media)
    try:
        # Decoding and thumbnails take a CPU for a while: off the event loop, so one upload
        # never stalls other requests (the desk's event stream among them).
        record, created = await run_in_threadpool(
            media.add_media, session, store, case_ref=case_ref, stage=stage, data=data,
            note=note, actor=user.username, idempotency_key=idempotency_key,
            settings=settings.media)
    except (UnsupportedMediaError, MediaTooLargeError) as exc:
        raise http_media_error(exc) from None
    session.commit()
    out = to_out(record)
    if created:
        return out
    # A replay answers as the first upload did, and says so with the header every other
    # idempotent write uses (api/idempotency.py), so a phone checks one spelling.
    return JSONResponse(out.model_dump(mode="json"), status_code=201,
                        headers={"Idempotency-Replayed": "true"})


@router.get("/cases/{case_ref}/media", response_model=list[MediaOut])
def list_media(case_ref: CaseRef, session: SessionDep) -> list[MediaOut]:
    """Every photo of a case, superseded ones included (with their reason), oldest first."""
    return [to_out(r) for r in media.list_media(session, case_ref=case_ref)]


def _file(record: media.MediaRecord, data: bytes, content_type: str) -> Response:
    return Response(data, media_type=content_type, headers={
        "Cache-Control": "private, max-age=86400, immutable",
        "Content-Disposition": f'inline; filename="case-{record.case_no}-{record.id}"',
        "ETag": f'"{record.sha256}"'})


@router.get("/cases/{case_ref}/media/{media_id}/file", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/heic": {}}}})
def media_file(case_ref: CaseRef, media_id: MediaId, session: SessionDep,
               store: MediaStoreDep) -> Response:
    """The photo as uploaded (evidence: EXIF kept), for staff who may see the case."""
    record = media.get_media(session, case_ref=case_ref, media_id=media_id)
    return _file(record, store.read("original", record.sha256, record.extension),
                 record.content_type)


@router.get("/cases/{case_ref}/media/{media_id}/thumb", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}})
def media_thumb(case_ref: CaseRef, media_id: MediaId, session: SessionDep,
                store: MediaStoreDep) -> Response:
    """A small JPEG of the photo (no metadata)."""
    record = media.get_media(session, case_ref=case_ref, media_id=media_id)
    return _file(record, store.read("thumb", record.sha256), "image/jpeg")


@router.post("/cases/{case_ref}/media/{media_id}/supersede", response_model=MediaOut)
def supersede_media(case_ref: CaseRef, media_id: MediaId, body: SupersedeIn,
                    session: SessionDep, user: MediaUploaderDep) -> MediaOut:
    """Mark a wrong photo superseded with a reason; it is kept, and the change is audited."""
    record = media.supersede_media(session, case_ref=case_ref, media_id=media_id,
                                   reason=body.reason, actor=user.username,
                                   replacement_id=body.replacement_id)
    session.commit()
    return to_out(record)





class PhotoIndicatorsOut(BaseModel):
    """Photo-evidence indicators of a period, with their counts."""

    start: dt.datetime
    end: dt.datetime
    as_of: dt.datetime
    scope: str | None
    closed: int
    closed_with_after_photo: int
    after_photo_rate: Decimal | None = Field(description="处置后照片率, percent")
    verification_due: int
    verified_on_time: int
    verification_on_time_rate: Decimal | None = Field(description="核查及时率, percent")


@router.get("/analysis/indicators/photos", response_model=PhotoIndicatorsOut,
            summary="处置后照片率 and 核查及时率")
def photo_indicators(
    session: SessionDep,
    start: Annotated[SaneAwareDatetime, Query(description="period start, with offset")],
    end: Annotated[SaneAwareDatetime, Query(description="period end (exclusive)")],
    as_of: Annotated[SaneAwareDatetime | None, Query(
        description="judge at this moment (default: the period end or now)")] = None,
    scope: Annotated[str | None, Query(pattern=r"^[0-9]{6,15}$",
                                       description="grid-code prefix")] = None,
) -> PhotoIndicatorsOut:
    """Share of closed cases with an after photo, and verification photos on time."""
    judged = as_of or min(end, dt.datetime.now(dt.UTC))
    counts = count_photo_indicators(session, start=start, end=end, as_of=judged, scope=scope)
    return PhotoIndicatorsOut(
        start=start, end=end, as_of=judged, scope=scope, closed=counts.closed,
        closed_with_after_photo=counts.closed_with_after_photo,
        after_photo_rate=counts.after_photo_rate, verification_due=counts.verification_due,
        verified_on_time=counts.verified_on_time,
        verification_on_time_rate=counts.verification_on_time_rate)
