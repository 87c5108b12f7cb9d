"""`datetime` on /ogc collections whose features are valid for a period (OGC API Features Part 1).

tipg 1.6 compares `datetime` with one timestamp column (an instant must equal it). A stall
zone is valid for a period, `valid_from` to `valid_to` (half-open, `valid_to` NULL: until
further notice; migration 0023), and Part 1 (/req/core/fc-time-response) selects a feature
whose temporal extent *intersects* the instant or interval asked for. So for a collection with
both columns the `datetime` parameter becomes this CQL2 predicate (compiled to bound
parameters like any filter, api/ogc_filter.py):

    instant t        valid_from <= t AND (valid_to IS NULL OR valid_to > t)
    interval s/e     valid_from <= e AND (valid_to IS NULL OR valid_to > s)
    open s/.. ../e   the missing side left out; `../..` is refused (400) as tipg does

and the collection's extent.temporal is the validity of all its features together
[earliest valid_from, latest valid_to or null when any is open-ended], read when the catalog is
loaded. A collection without time answers `datetime` with 400 and says so.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cql2 import Expr
from tipg.collections import Collection
from tipg.errors import InvalidDatetime, MissingDatetimeColumn
from tipg.model import Extent

from api.params import parse_moment

VALID_FROM = "valid_from"
VALID_TO = "valid_to"
OPEN = ("", "..")


def has_validity(collection: Collection) -> bool:
    """True when the collection publishes a validity period (valid_from and valid_to)."""
    names = {c.name for c in collection.properties if c.is_datetime}
    return {VALID_FROM, VALID_TO} <= names


def _instant(raw: str) -> dict[str, str]:
    """A CQL2 timestamp; a bare date is its first moment in the city (Beijing time)."""
    try:
        moment = parse_moment(raw, name="datetime")
    except ValueError as exc:
        raise InvalidDatetime(str(exc)) from None
    if not isinstance(moment, dt.datetime):
        return {"timestamp": f"{moment.isoformat()}T00:00:00+08:00"}
    return {"timestamp": raw}


def _moment(raw: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(_instant(raw)["timestamp"].replace("Z", "+00:00"))
    # Only to order start and end; a value without offset is refused when compiled.
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))


def validity_predicate(collection: Collection, datetime: list[str]) -> Expr:
    """CQL2 for `datetime` (tipg's split: [instant] or [start, end]) on a validity period."""
    start, end = (datetime[0], datetime[0]) if len(datetime) == 1 else datetime[:2]
    if start in OPEN and end in OPEN:
        raise InvalidDatetime("datetime ../.. is not an interval: give a start or an end")
    starts_by = {"op": "<=", "args": [{"property": VALID_FROM}, _instant(end)]} \
        if end not in OPEN else None
    ends_after = {"op": "or", "args": [
        {"op": "isNull", "args": [{"property": VALID_TO}]},
        {"op": ">", "args": [{"property": VALID_TO}, _instant(start)]}]} \
        if start not in OPEN else None
    if starts_by and ends_after and _moment(start) > _moment(end):
        raise InvalidDatetime(f"datetime {start}/{end}: the start is after the end")
    parts = [p for p in (starts_by, ends_after) if p is not None]
    return Expr(parts[0] if len(parts) == 1 else {"op": "and", "args": parts})


def no_time_error(collection: Collection) -> MissingDatetimeColumn:
    """The 400 for `datetime` on a collection that has no time."""
    return MissingDatetimeColumn(
        f"collection {collection.id!r} has no time: `datetime` applies only to "
        "collections whose extent lists a temporal interval, such as stall_zones")


def validity_extent(extent: Extent | None, interval: list[Any] | None) -> Extent | None:
    """`extent` with temporal = the validity interval (RFC 3339, null for an open end)."""
    if interval is None:
        return extent
    temporal = {"interval": [[_rfc3339(v) for v in interval]]}
    spatial = extent.spatial if extent is not None else None
    return Extent.model_validate({"spatial": spatial, "temporal": temporal})


def _rfc3339(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def validity_extent_sql(view: str) -> str:
    """SQL of [earliest valid_from, latest valid_to or NULL if any is open] of a pub view."""
    quoted = '"' + view.replace('"', '""') + '"'  # a name from the catalog, quoted anyway
    return (f"SELECT min({VALID_FROM}), CASE WHEN bool_or({VALID_TO} IS NULL) THEN NULL "
            f"ELSE max({VALID_TO}) END FROM pub.{quoted}")
