"""Chinese address text -> its parts (GB/T 39609 model plus the spoken forms hotlines hear).

`cpca` recognises the administrative prefix (province / city / district, full names) and its
code; the rest is what no library parses: road + doorplate number (180号, 180-2号, 18甲号),
compound + building (甸柳一区3号楼2单元), intersections (A与B交叉口, A/B路口, A和B交汇处),
landmark + side (省立医院东门, 北侧, 对面) and offsets (往东50米). Nothing here looks at the
database: whether a part names a road or a compound is the matcher's question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gis.geocoding.normalize import normalize_text

BEARINGS = {"东": 90.0, "西": 270.0, "南": 180.0, "北": 0.0, "东北": 45.0, "东南": 135.0,
            "西北": 315.0, "西南": 225.0}
_DIRECTION = "东北|东南|西北|西南|东|西|南|北"
_OFFSET = re.compile(rf"(?:往|向|朝)?(?P<dir>{_DIRECTION})(?:方向)?(?:约|大约)?"
                     r"(?P<n>\d+(?:\.\d+)?)(?P<unit>米|M|公里|KM)(?:处|左右)?$")
_TRAILING = re.compile(r"(附近|一带|周边|旁边|旁|处|(?<=门)口|路边|这里|那里)+$")
_CROSS_WORDS = r"(?:交叉路口|交叉口|十字路口|丁字路口|交汇处|交汇|交界处|交口|路口|口)"
_CROSS = re.compile(rf"^(?P<a>.+?)(?:与|和|跟|及|同|/|、|\||交)(?P<b>.+?){_CROSS_WORDS}?$")
_ROADISH = re.compile(r"(大街|大道|路|街|巷|胡同|道|线)$")
_UNIT_ROOM = re.compile(r"(?:\d+单元)?(?:\d+(?:层|楼))?(?:\d+室?)?$")
_BUILDING = re.compile(r"^(?P<place>.+?)(?P<b>\d{1,4}|[A-Z])(?:号楼|号院|栋|幢|座|号|楼)"
                       r"(?P<unit>\d+单元)?(?:\d+(?:层|楼))?(?:\d+室?)?$")
_DOORPLATE = re.compile(r"^(?P<road>\D+?)(?P<pre>[甲乙丙丁])?(?P<n>\d{1,5})"
                        r"(?:-(?P<sub>\d{1,3})|(?P<suf>[甲乙丙丁]))?号?(?:院|大院|楼)?$")
_SIDE = re.compile(rf"^(?P<lm>.+?)(?P<side>(?:{_DIRECTION})(?:门|侧|面|边|口|头)"
                   r"|对面|正门|大门|后门)$")


@dataclass
class ParsedAddress:
    """The parts of one address; unset parts are None."""

    raw: str
    text: str  # normalised, administrative prefix removed
    province: str | None = None
    city: str | None = None
    district: str | None = None
    admin_code: str | None = None
    road: str | None = None
    number: int | None = None
    suffix: str = ""  # 甲/乙/丙/丁 or -2
    building: str | None = None
    place: str | None = None  # compound, landmark, community or road named alone
    unit: str | None = None
    cross: tuple[str, str] | None = None
    side: str | None = None  # 东门, 北侧, 对面
    offset: tuple[float, float] | None = None  # bearing in degrees, metres
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The set parts, for an API answer."""
        keys = ("province", "city", "district", "admin_code", "road", "number", "suffix",
                "building", "place", "unit", "cross", "side", "offset")
        return {k: getattr(self, k) for k in keys if getattr(self, k) not in (None, "")}


_ADMIN_CACHE: dict[str, tuple[Any, ...]] = {}
_ADMIN_CACHE_SIZE = 20_000


def prime_admin(texts: list[str]) -> None:
    """Read the administrative prefixes of many normalised texts in one `cpca` call (batch)."""
    import cpca  # imported late: it loads its division table (0.3 s) on first use

    todo = [t for t in dict.fromkeys(texts) if t not in _ADMIN_CACHE]
    if not todo:
        return
    if len(_ADMIN_CACHE) + len(todo) > _ADMIN_CACHE_SIZE:
        _ADMIN_CACHE.clear()
    frame = cpca.transform(todo)
    for t, (_, row) in zip(todo, frame.iterrows(), strict=True):
        _ADMIN_CACHE[t] = _admin_row(t, row)


def _admin_row(text: str, row: Any) -> tuple[Any, ...]:
    rest = row["地址"]
    if not isinstance(rest, str) or not text.endswith(rest) or rest == text:
        return None, None, None, None, text

    def value(key: str) -> str | None:
        v = row[key]
        return v if isinstance(v, str) and v else None

    return value("省"), value("市"), value("区"), value("adcode"), rest


def _admin(text: str) -> tuple[Any, ...]:
    """(province, city, district, adcode, rest) when the text starts with a division name."""
    if text not in _ADMIN_CACHE:
        prime_admin([text])
    return _ADMIN_CACHE[text]


def strip_admin(text: str, *, district_name: str | None = None) -> tuple[Any, ...]:
    """Province/city/district prefix off `text`; a bare short district name (历下) too."""
    province, city, district, code, rest = _admin(text)
    if district_name:
        short = district_name[:-1] if district_name[-1] in "区县市" else district_name
        for prefix in (district_name, short):
            if rest.startswith(prefix) and len(rest) > len(prefix):
                district = district or district_name
                rest = rest[len(prefix):]
                break
    return province, city, district, code, rest


def parse_address(raw: str, *, district_name: str | None = None,
                  admin: bool = True) -> ParsedAddress:
    """Split one address into its parts (see the module docstring for the forms read);
    `admin=False` skips the `cpca` prefix lookup (the caller stripped the prefix)."""
    text = normalize_text(raw)
    if admin:
        province, city, district, code, rest = strip_admin(text, district_name=district_name)
    else:
        province, city, district, code, rest = None, None, None, None, text
    parsed = ParsedAddress(raw=raw, text=rest, province=province, city=city,
                           district=district, admin_code=code)
    rest = _TRAILING.sub("", rest)
    offset = _OFFSET.search(rest)
    if offset and offset.start() > 0:
        metres = float(offset["n"]) * (1000.0 if offset["unit"] in ("公里", "KM") else 1.0)
        parsed.offset = (BEARINGS[offset["dir"]], metres)
        rest = _TRAILING.sub("", rest[:offset.start()])
    parsed.text = rest
    if not rest:
        return parsed
    cross = _CROSS.match(rest)
    if cross and _is_cross(rest, cross["a"], cross["b"]):
        parsed.cross = (cross["a"], cross["b"])
        return parsed
    door = _DOORPLATE.match(rest)
    if door and _ROADISH.search(door["road"]):
        parsed.road = door["road"]
        parsed.number = int(door["n"])
        parsed.suffix = door["pre"] or door["suf"] or (f"-{door['sub']}" if door["sub"] else "")
        return parsed
    building = _BUILDING.match(rest)
    if building and not _ROADISH.search(building["place"]):
        parsed.place = building["place"]
        parsed.building = building["b"]
        parsed.unit = building["unit"]
        return parsed
    side = _SIDE.match(rest)
    if side:
        parsed.place, parsed.side = side["lm"], side["side"]
        return parsed
    if door:  # a number after something that is not road-like: let the matcher try it
        parsed.road, parsed.number = door["road"], int(door["n"])
        return parsed
    parsed.place = _UNIT_ROOM.sub("", rest) or rest
    return parsed


def _is_cross(text: str, a: str, b: str) -> bool:
    """An intersection: both sides name roads, or an intersection word closes the text."""
    if not a or not b:
        return False
    worded = re.search(_CROSS_WORDS + "$", text) is not None and not text.endswith("门口")
    return (bool(_ROADISH.search(a)) and bool(_ROADISH.search(b))) or (
        worded and len(a) >= 2 and len(b) >= 2)
