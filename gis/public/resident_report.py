"""Residents' 随手拍: a photo report without sign-in, posted through the Open311 path.

A report is an Open311 service request (`gis.public.open311.submit_request`: routed, stored as
a case of channel 'open311', contact kept for the callback only) whose `media_url` is the
public copy of the resident's photo; the photo itself is a `report` photo on the case
(`gis.media`). The photo is checked before anything is stored, so a non-image or a bomb leaves
no case behind. The tracking page reads only the published views (`pub.service_requests`,
`pub.case_photos`) as the anonymous role.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from gis.dispatch.routing_settings import RoutingSettings
from gis.media import service as media
from gis.media.errors import MediaTooLargeError
from gis.media.images import decode
from gis.media.store import MediaStore
from gis.platform.errors import InvalidInputError
from gis.platform.settings import CitySettings, MediaSettings
from gis.public import open311

ACTOR = "随手拍"


@dataclass(frozen=True)
class Category:
    """A plain-language choice and the service it files under."""

    key: str
    label: str
    hint: str
    service_code: str


CATEGORIES = (
    Category("rubbish", "垃圾、杂物没人清", "路边、绿地里的垃圾堆、渣土", "event-0102"),
    Category("stall", "占道摆摊", "人行道、路口摆摊卖东西", "event-0505"),
    Category("shop_outside", "店门外经营", "商铺把货物、桌椅摆到门外", "event-0504"),
    Category("bbq", "露天烧烤冒烟", "路边烧烤、油烟扰民", "event-0510"),
    Category("ads", "小广告", "墙上、电线杆上贴的小广告", "event-0201"),
    Category("water", "路面积水", "下雨后路上积水过不去", "event-0406"),
    Category("sewer", "下水道堵了、冒水", "井口冒污水、有臭味", "event-0404"),
    Category("road", "路面塌陷、坑洼", "路面下陷、有大坑", "event-0401"),
    # A resident cannot tell a sewer cover from a gas cover: 无主井盖 goes to the street
    # office (属地兜底), which sends it on to the owner.
    Category("cover", "井盖丢了或坏了", "井盖缺失、破损、松动", "component-0114"),
    Category("noise", "工地扰民、扬尘", "夜间施工、工地尘土大", "event-0301"),
    Category("building", "私搭乱建", "违规搭建棚子、围墙", "event-0101"),
)
CATEGORY_BY_KEY = {c.key: c for c in CATEGORIES}
# The resident's view of the workflow (status -> step reached).
STEPS = ("已受理", "已立案", "已派遣", "已处置", "已办结")
STEP_OF_STATUS = {"collected": 0, "filed": 1, "dispatched": 2, "handled": 3, "reported": 3,
                  "closed": 4, "evaluated": 4}


class ReportRateLimiter:
    """At most `per_hour` reports per client address in any hour (this process only)."""

    def __init__(self, per_hour: int, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = 100_000) -> None:
        self.per_hour = per_hour
        self.clock = clock
        self.max_clients = max_clients
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> float:
        """0 and the report counted, or the seconds until this client may report again."""
        now = self.clock()
        with self._lock:
            times = self._seen.setdefault(client, deque())
            while times and times[0] <= now - 3600:
                times.popleft()
            if len(times) >= self.per_hour:
                return max(1.0, times[0] + 3600 - now)
            times.append(now)
            if len(self._seen) > self.max_clients:  # bounded memory: forget the idle first
                for key in [k for k, v in self._seen.items() if not v or v[-1] <= now - 3600]:
                    del self._seen[key]
            return 0.0


@dataclass(frozen=True)
class ResidentReport:
    """What a resident sends."""

    category: str
    lat: float
    lon: float
    photo: bytes
    description: str = ""
    contact: str | None = None


def submit_report(session: Session, store: MediaStore, report: ResidentReport, *,
                  at: dt.datetime, public_base: str, routing: RoutingSettings,
                  city: CitySettings, media_settings: MediaSettings) -> str:
    """File the report as an Open311 request with its photo on the case; the tracking number."""
    category = CATEGORY_BY_KEY.get(report.category)
    if category is None:
        raise InvalidInputError(f"category {report.category!r} is not one of "
                                f"{', '.join(CATEGORY_BY_KEY)}")
    if len(report.photo) > media_settings.max_mb * 1024 * 1024:
        raise MediaTooLargeError(f"the photo is over {media_settings.max_mb:g} MB")
    # 415 / 413 before any row is written.
    decode(report.photo, max_pixels=media_settings.max_pixels, draft_px=media_settings.thumb_px)
    contact = (report.contact or "").strip() or None
    email = contact if contact and "@" in contact else None
    phone = contact if contact and email is None else None
    public_name = media.new_public_name()
    description = report.description.strip() or category.label
    posted = open311.submit_request(session, open311.NewRequest(
        service_code=category.service_code, lat=report.lat, long=report.lon,
        description=f"【随手拍】{description}",
        media_url=f"{public_base.rstrip('/')}/public/media/{public_name}.jpg",
        email=email, phone=phone), at=at, routing=routing, city=city)
    media.add_media(session, store, case_ref=posted.service_request_id, stage="report",
                    data=report.photo, actor=ACTOR, settings=media_settings, published=True,
                    public_name=public_name)
    return posted.service_request_id


def tracking(session: Session, case_no: str, *, routing: RoutingSettings, city: CitySettings,
             reader: Session) -> dict[str, Any]:
    """The tracking page's data: the published request, its steps, its published photos."""
    request = open311.get_request(session, case_no, routing=routing, city=city, reader=reader)
    photos = media.public_photos(reader, case_no)
    status = str(request.status_notes or "")
    raw_status = next((s for s, note in open311.STATUS_NOTES.items() if note == status), "")
    return {
        "request": request,
        "steps": STEPS,
        "step": STEP_OF_STATUS.get(raw_status, -1),
        "rejected": raw_status == "rejected",
        "report_photos": [p for p in photos if p["stage"] == "report"],
        "after_photos": [p for p in photos if p["stage"] == "handling"],
    }
