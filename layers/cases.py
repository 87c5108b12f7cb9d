"""案件 complaints / cases with their raw coordinates and CRS tag."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from layers.base import LayerSpec
from layers.labels import CASE_STATUS, CHANNEL


class CaseProperties(BaseModel):
    """Properties of a case."""

    case_no: str = Field(min_length=1)
    category_type: Literal["event", "component"]
    category_code: str = Field(pattern=r"^\d{4}$")
    channel: Literal["hotline_12345", "hotline_12319", "wechat", "patrol", "open311"]
    description: str = ""
    raw_x: float = Field(allow_inf_nan=False)
    raw_y: float = Field(allow_inf_nan=False)
    raw_crs: Literal["wgs84", "gcj02", "bd09", "cgcs2000"] = "wgs84"
    reported_at: datetime
    closed_at: datetime | None = None
    status: Literal["collected", "filed", "dispatched", "handled", "reported", "closed",
                    "evaluated", "rejected"] = "collected"
    grid_code: str | None = Field(default=None, pattern=r"^\d{14}(\d)?$")
    simulated: bool = True


SPEC = LayerSpec(
    id="cases", table="cases", title_zh="案件", geometry_type="Point", key="id",
    properties=CaseProperties,
    popup_fields={"case_no": "案卷号", "category_code": "类别", "channel": "渠道",
                  "status": "状态", "reported_at": "上报时间"},
    style={"color": "#e31a1c", "radius": 2},
    value_labels={"channel": CHANNEL, "status": CASE_STATUS}, order_by="id",
)
