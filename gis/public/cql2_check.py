"""CQL2 filters as a language, not SQL: the whitelist check of a user's filter.

A filter arrives as CQL2 text or JSON from anyone on the internet (`/ogc/.../items?filter=`).
The cql2 library parses it into a cql2-json tree; `check_filter` then refuses everything that
is not a comparison, LIKE, IN, BETWEEN, IS NULL, a logical operator, a spatial predicate or a
temporal predicate over the layer's own published columns and plain literals. Function calls
(`pg_sleep`, `current_setting`, ...), arithmetic, unknown columns, wrong types and oversized
trees are refused before any SQL is built. `gis.public.cql2_sql` compiles what passes.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from gis.platform.errors import InvalidInputError

Kind = Literal["text", "number", "boolean", "timestamp", "date", "geometry", "interval"]

MAX_NODES = 500
MAX_DEPTH = 40
MAX_IN_LIST = 1000
MAX_VERTICES = 10_000

# PostgreSQL type names (as the OGC catalog reports them) -> the kinds a filter may compare.
_KIND_OF_TYPE: dict[str, Kind] = {
    **dict.fromkeys(("text", "varchar", "character varying", "char", "bpchar", "character",
                     "name", "citext"), "text"),
    **dict.fromkeys(("int2", "int4", "int8", "smallint", "integer", "bigint", "float4",
                     "float8", "real", "double precision", "numeric", "decimal"), "number"),
    **dict.fromkeys(("bool", "boolean"), "boolean"),
    **dict.fromkeys(("timestamp", "timestamptz", "timestamp with time zone",
                     "timestamp without time zone"), "timestamp"),
    "date": "date",
    **dict.fromkeys(("geometry", "geography"), "geometry"),
}

COMPARISON = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
SPATIAL = {"s_intersects": "ST_Intersects", "s_equals": "ST_Equals",
            "s_disjoint": "ST_Disjoint", "s_touches": "ST_Touches", "s_within": "ST_Within",
            "s_overlaps": "ST_Overlaps", "s_crosses": "ST_Crosses", "s_contains": "ST_Contains"}
TEMPORAL = {"t_after", "t_before", "t_equals", "t_disjoint", "t_intersects", "t_during"}
USER_OPERATORS = frozenset({"and", "or", "not", "like", "between", "in", "isNull",
                            *COMPARISON, *SPATIAL, *TEMPORAL})
_GEOMETRY_TYPES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                   "MultiPolygon", "GeometryCollection"}
SQL_CAST = {"text": "text", "boolean": "boolean", "timestamp": "timestamptz", "date": "date"}


class FilterError(InvalidInputError):
    """A CQL2 filter that is not allowed or not well formed; the message names the part."""


@dataclass(frozen=True)
class Column:
    """A published column a filter may name, with the kind of values it holds."""

    name: str
    kind: Kind | None  # None: published but not comparable (json, arrays, ...)
    srid: int | None = None


def column_kind(pg_type: str) -> Kind | None:
    """The filter kind of a PostgreSQL type name, None when filters cannot compare it."""
    return _KIND_OF_TYPE.get(pg_type.lower())


def check_filter(tree: Any, columns: Mapping[str, Column]) -> None:
    """Refuse a user's cql2-json tree unless it is a plain predicate over published columns."""
    _Checker(columns).predicate(tree, depth=0)



def op_of(node: Any) -> tuple[str, list[Any]] | None:
    """(operator, arguments) of an operator node, None for anything else."""
    if isinstance(node, dict) and "op" in node:
        args = node.get("args", [])
        if not isinstance(node["op"], str) or not isinstance(args, list):
            raise FilterError(f"malformed operator {str(node)[:80]!r}")
        return node["op"], args
    return None


def is_geometry(node: Any) -> bool:
    """Whether a node is a GeoJSON geometry or a bbox literal."""
    return isinstance(node, dict) and (node.get("type") in _GEOMETRY_TYPES or "bbox" in node)


def parse_instant(value: Any, kind: Kind) -> dt.date | dt.datetime:
    """A date or an aware timestamp in 1900-2200 with an offset within +-14:00."""
    if not isinstance(value, str):
        raise FilterError(f"{kind} {value!r} must be a string")
    try:
        if kind == "date":
            return dt.date.fromisoformat(value)
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise FilterError(f"{kind} {value!r} is not an ISO 8601 {kind}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    if not dt.timedelta(hours=-14) <= (parsed.utcoffset() or dt.timedelta()) <= \
            dt.timedelta(hours=14):
        raise FilterError(f"timestamp {value!r} has an offset beyond +-14:00")
    if not 1900 <= parsed.year <= 2200:
        raise FilterError(f"timestamp {value!r} is outside the years 1900-2200")
    return parsed


def parse_geometry(node: dict[str, Any], *, lon_lat: bool) -> BaseGeometry:
    """A valid geometry of at most MAX_VERTICES finite vertices (lon/lat when asked)."""
    if "bbox" in node:
        box = node["bbox"]
        if (not isinstance(box, list) or len(box) not in (4, 6)
                or not all(finite_number(v) for v in box)):
            raise FilterError(f"bbox {box!r} must be 4 or 6 numbers")
        west, south, east, north = (box[0], box[1], box[3], box[4]) if len(box) == 6 else box
        geom: BaseGeometry = shapely.box(west, south, east, north)
    else:
        try:
            geom = shape(node)
        except Exception as exc:  # shapely raises several types for malformed GeoJSON
            raise FilterError(f"geometry {str(node)[:80]!r} is not valid GeoJSON: {exc}") from None
    coords = shapely.get_coordinates(geom)
    if len(coords) == 0 or len(coords) > MAX_VERTICES:
        raise FilterError(f"a filter geometry needs 1..{MAX_VERTICES} vertices, not {len(coords)}")
    if not all(math.isfinite(v) for v in coords.ravel()):
        raise FilterError("filter geometry coordinates must be finite numbers")
    if lon_lat and not ((abs(coords[:, 0]) <= 180).all() and (abs(coords[:, 1]) <= 90).all()):
        raise FilterError("filter geometry coordinates must be lon/lat (CRS84)")
    if not geom.is_valid:
        raise FilterError(f"filter geometry is not valid: {shapely.is_valid_reason(geom)}")
    return geom


def finite_number(value: Any) -> bool:
    """A real (not bool) finite number under 1e15 in magnitude."""
    return isinstance(value, int | float) and not isinstance(value, bool) and \
        math.isfinite(value) and abs(value) < 1e15


class _Checker:
    """Walks a user's tree; every branch either returns or raises FilterError."""

    def __init__(self, columns: Mapping[str, Column]) -> None:
        self.columns = columns
        self.nodes = 0

    def _count(self, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES or depth > MAX_DEPTH:
            raise FilterError(f"filter is too large (more than {MAX_NODES} terms or "
                              f"{MAX_DEPTH} levels)")

    def predicate(self, node: Any, *, depth: int) -> None:
        self._count(depth)
        parsed = op_of(node)
        if parsed is None:
            if isinstance(node, bool):
                return  # TRUE / FALSE
            raise FilterError(f"{str(node)[:80]!r} is not a predicate")
        op, args = parsed
        if op not in USER_OPERATORS:
            raise FilterError(f"operator or function {op!r} is not allowed in a filter "
                              f"(allowed: comparisons, LIKE, IN, BETWEEN, IS NULL, AND/OR/NOT, "
                              f"spatial and temporal predicates)")
        if op in ("and", "or"):
            if len(args) < 2:
                raise FilterError(f"{op.upper()} needs at least two terms")
            for arg in args:
                self.predicate(arg, depth=depth + 1)
            return
        if op == "not":
            self._arity(op, args, 1)
            self.predicate(args[0], depth=depth + 1)
            return
        operands = args
        if op == "in":
            if len(args) != 2 or not isinstance(args[1], list):
                raise FilterError("IN takes a property and a list of values")
            operands = [args[0], *args[1]]
        kinds = [self.operand(arg, depth=depth + 1, op=op) for arg in operands]
        _check_kinds(op, args, kinds)

    def _arity(self, op: str, args: list[Any], n: int) -> None:
        if len(args) != n:
            raise FilterError(f"{op} takes {n} argument(s), not {len(args)}")

    def operand(self, node: Any, *, depth: int, op: str) -> Kind:
        self._count(depth)
        if isinstance(node, dict) and "property" in node:
            name = node["property"]
            column = self.columns.get(name) if isinstance(name, str) else None
            if column is None:
                raise FilterError(f"property {str(name)[:64]!r} is not a published column of "
                                  f"this layer (queryables: {', '.join(sorted(self.columns))})")
            if column.kind is None:
                raise FilterError(f"property {name!r} cannot be used in a filter")
            return column.kind
        return literal_kind(node, op=op)


def literal_kind(node: Any, *, op: str) -> Kind:
    """The kind of a literal operand; FilterError for anything a filter cannot use."""
    if isinstance(node, bool):
        return "boolean"
    if isinstance(node, int | float):
        if not finite_number(node):
            raise FilterError(f"number {node!r} is out of range")
        return "number"
    if isinstance(node, str):
        if "\x00" in node:
            raise FilterError("text in a filter cannot contain NUL characters")
        if len(node) > 1000:
            raise FilterError("text literals in a filter are limited to 1000 characters")
        return "text"
    if isinstance(node, list) and op == "in":
        raise FilterError("IN takes one list of values")
    if isinstance(node, dict):
        if op_of(node) is not None:
            raise FilterError(f"operator or function {node['op']!r} is not allowed here")
        if "timestamp" in node:
            parse_instant(node["timestamp"], "timestamp")
            return "timestamp"
        if "date" in node:
            parse_instant(node["date"], "date")
            return "date"
        if "interval" in node:
            bounds = node["interval"]
            if not isinstance(bounds, list) or len(bounds) != 2:
                raise FilterError("an interval has a start and an end")
            for bound in bounds:
                if bound != "..":
                    inner = bound if isinstance(bound, dict) else {"timestamp": bound}
                    literal_kind(inner, op=op)
            return "interval"
        if is_geometry(node):
            parse_geometry(node, lon_lat=True)
            return "geometry"
    raise FilterError(f"{str(node)[:80]!r} is not a value a filter can use")


_ORDERED = {"number", "text", "timestamp", "date"}


def _check_kinds(op: str, args: list[Any], kinds: list[Kind]) -> None:
    if op in SPATIAL:
        if len(kinds) != 2 or set(kinds) != {"geometry"}:
            raise FilterError(f"{op} compares two geometries")
        return
    if op in TEMPORAL:
        if len(kinds) != 2 or not set(kinds) <= {"timestamp", "date", "interval"}:
            raise FilterError(f"{op} compares two instants or intervals")
        return
    if op == "isNull":
        if len(kinds) != 1:
            raise FilterError("IS NULL takes one argument")
        return
    if op == "like":
        if len(kinds) != 2 or kinds[0] != "text" or not isinstance(args[1], str):
            raise FilterError("LIKE compares a text property with a text pattern")
        return
    if op == "between" and len(kinds) != 3:
        raise FilterError("BETWEEN takes a value and two bounds")
    if op in COMPARISON and len(kinds) != 2:
        raise FilterError(f"{op} compares two values")
    if op == "in" and len(kinds) < 2:
        raise FilterError("IN needs a list of at least one value")
    if op == "in" and len(kinds) > MAX_IN_LIST + 1:
        raise FilterError(f"IN lists are limited to {MAX_IN_LIST} values")
    first = _comparable(kinds[0])
    for kind in kinds[1:]:
        if _comparable(kind) != first:
            raise FilterError(f"{op} cannot compare {kinds[0]} with {kind}")
    if op not in ("=", "<>", "in") and first not in _ORDERED:
        raise FilterError(f"{op} needs ordered values, not {kinds[0]}")
    if first == "geometry":
        raise FilterError("compare geometries with S_EQUALS / S_INTERSECTS, not =")


def _comparable(kind: Kind) -> str:
    return "time" if kind in ("timestamp", "date") else kind
