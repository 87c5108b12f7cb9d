"""CQL2 filters as a language, not SQL: a whitelist check and a compiler to bound parameters.

A filter arrives as CQL2 text or JSON from anyone on the internet (`/ogc/.../items?filter=`).
The cql2 library parses it into a cql2-json tree; this module then

* `check_filter` refuses everything that is not a comparison, LIKE, IN, BETWEEN, IS NULL, a
  logical operator, a spatial predicate or a temporal predicate over the layer's own published
  columns and plain literals. Function calls (`pg_sleep`, `current_setting`, ...), arithmetic,
  unknown columns, wrong types and oversized trees are refused before any SQL is built.
* `compile_filter` turns a checked tree (plus the bbox/ids/datetime parts the OGC server adds)
  into SQL whose every literal is a `$n` parameter with an explicit type, never text spliced
  into the statement. Column names come from the layer's catalog, quoted as identifiers.

The two are separate because the OGC server wraps user geometries in `st_transform` /
`st_setsrid` when a column is not in EPSG:4326: those internal operators are compiled, never
accepted from a user.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
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

_COMPARISON = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_SPATIAL = {"s_intersects": "ST_Intersects", "s_equals": "ST_Equals",
            "s_disjoint": "ST_Disjoint", "s_touches": "ST_Touches", "s_within": "ST_Within",
            "s_overlaps": "ST_Overlaps", "s_crosses": "ST_Crosses", "s_contains": "ST_Contains"}
_TEMPORAL = {"t_after", "t_before", "t_equals", "t_disjoint", "t_intersects", "t_during"}
USER_OPERATORS = frozenset({"and", "or", "not", "like", "between", "in", "isNull",
                            *_COMPARISON, *_SPATIAL, *_TEMPORAL})
_GEOMETRY_TYPES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                   "MultiPolygon", "GeometryCollection"}
_SQL_CAST = {"text": "text", "boolean": "boolean", "timestamp": "timestamptz", "date": "date"}


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


def compile_filter(tree: Any, columns: Mapping[str, Column], params: list[Any]) -> str:
    """SQL for a checked cql2-json tree; literals are appended to `params` as `$n`."""
    return _Compiler(columns, params).predicate(tree)


def _op(node: Any) -> tuple[str, list[Any]] | None:
    if isinstance(node, dict) and "op" in node:
        args = node.get("args", [])
        if not isinstance(node["op"], str) or not isinstance(args, list):
            raise FilterError(f"malformed operator {str(node)[:80]!r}")
        return node["op"], args
    return None


def _is_geometry(node: Any) -> bool:
    return isinstance(node, dict) and (node.get("type") in _GEOMETRY_TYPES or "bbox" in node)


def _parse_instant(value: Any, kind: Kind) -> dt.date | dt.datetime:
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


def _geometry(node: dict[str, Any], *, lon_lat: bool) -> BaseGeometry:
    if "bbox" in node:
        box = node["bbox"]
        if (not isinstance(box, list) or len(box) not in (4, 6)
                or not all(_finite_number(v) for v in box)):
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


def _finite_number(value: Any) -> bool:
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
        parsed = _op(node)
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
        return _literal_kind(node, op=op)


def _literal_kind(node: Any, *, op: str) -> Kind:
    if isinstance(node, bool):
        return "boolean"
    if isinstance(node, int | float):
        if not _finite_number(node):
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
        if _op(node) is not None:
            raise FilterError(f"operator or function {node['op']!r} is not allowed here")
        if "timestamp" in node:
            _parse_instant(node["timestamp"], "timestamp")
            return "timestamp"
        if "date" in node:
            _parse_instant(node["date"], "date")
            return "date"
        if "interval" in node:
            bounds = node["interval"]
            if not isinstance(bounds, list) or len(bounds) != 2:
                raise FilterError("an interval has a start and an end")
            for bound in bounds:
                if bound != "..":
                    inner = bound if isinstance(bound, dict) else {"timestamp": bound}
                    _literal_kind(inner, op=op)
            return "interval"
        if _is_geometry(node):
            _geometry(node, lon_lat=True)
            return "geometry"
    raise FilterError(f"{str(node)[:80]!r} is not a value a filter can use")


_ORDERED = {"number", "text", "timestamp", "date"}


def _check_kinds(op: str, args: list[Any], kinds: list[Kind]) -> None:
    if op in _SPATIAL:
        if len(kinds) != 2 or set(kinds) != {"geometry"}:
            raise FilterError(f"{op} compares two geometries")
        return
    if op in _TEMPORAL:
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
    if op in _COMPARISON and len(kinds) != 2:
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


class _Compiler:
    """Compiles a checked tree; `params` receives the literals, typed by explicit casts."""

    def __init__(self, columns: Mapping[str, Column], params: list[Any]) -> None:
        self.columns = columns
        self.params = params

    def bind(self, value: Any, cast: str) -> str:
        self.params.append(value)
        return f"${len(self.params)}::{cast}"

    def predicate(self, node: Any) -> str:
        if isinstance(node, bool):
            return "TRUE" if node else "FALSE"
        parsed = _op(node)
        if parsed is None:
            raise FilterError(f"{str(node)[:80]!r} is not a predicate")
        op, args = parsed
        if op in ("and", "or"):
            return "(" + f" {op.upper()} ".join(self.predicate(a) for a in args) + ")"
        if op == "not":
            return f"(NOT {self.predicate(args[0])})"
        if op in _SPATIAL:
            return f"{_SPATIAL[op]}({self.geometry(args[0])}, {self.geometry(args[1])})"
        if op in _TEMPORAL:
            return self.temporal(op, args)
        kind = self.kind_of(args[0], args[1:])
        value = self.value
        if op in _COMPARISON:
            return f"({value(args[0], kind)} {_COMPARISON[op]} {value(args[1], kind)})"
        if op == "like":
            return f"({value(args[0], 'text')} LIKE {value(args[1], 'text')} ESCAPE '\\')"
        if op == "between":
            return (f"({value(args[0], kind)} BETWEEN {value(args[1], kind)} "
                    f"AND {value(args[2], kind)})")
        if op == "in":
            items = args[1]
            return f"({value(args[0], kind)} IN ({', '.join(value(i, kind) for i in items)}))"
        if op == "isNull":
            return f"({self.value(args[0], None)} IS NULL)"
        raise FilterError(f"operator {op!r} is not allowed in a filter")

    def kind_of(self, first: Any, rest: list[Any]) -> Kind | None:
        """The kind a comparison works in: that of its property, else of its first literal."""
        for node in [first, *rest]:
            if isinstance(node, dict) and "property" in node:
                return self.column(node["property"]).kind
        return None

    def column(self, name: Any) -> Column:
        column = self.columns.get(name) if isinstance(name, str) else None
        if column is None:
            raise FilterError(f"property {str(name)[:64]!r} is not a published column")
        return column

    def value(self, node: Any, kind: Kind | None) -> str:
        if isinstance(node, dict) and "property" in node:
            return _quote(self.column(node["property"]).name)
        if isinstance(node, dict) and ("timestamp" in node or "date" in node):
            key: Kind = "timestamp" if "timestamp" in node else "date"
            return self.bind(_parse_instant(node[key], key), _SQL_CAST[key])
        return self.scalar(node, kind)

    def scalar(self, node: Any, kind: Kind | None) -> str:
        """A plain literal, converted to the kind of the column it is compared with."""
        convert: dict[str, Callable[[Any], tuple[Any, str]]] = {
            "number": _as_number, "boolean": _as_boolean, "text": _as_text,
            "timestamp": lambda v: (_parse_instant(v, "timestamp"), "timestamptz"),
            "date": lambda v: (_parse_instant(v, "date"), "date"),
        }
        target = kind or _literal_kind(node, op="=")
        if target not in convert:
            raise FilterError(f"{str(node)[:80]!r} cannot be compared with a {target} column")
        value, cast = convert[target](node)
        return self.bind(value, cast)

    def geometry(self, node: Any) -> str:
        if isinstance(node, dict) and "property" in node:
            column = self.column(node["property"])
            if column.kind != "geometry":
                raise FilterError(f"property {column.name!r} is not a geometry")
            return _quote(column.name)
        parsed = _op(node)
        if parsed is not None:  # the OGC server's own CRS wrappers around a literal
            op, args = parsed
            if op not in ("st_transform", "st_setsrid") or len(args) != 2 \
                    or not isinstance(args[1], int) or isinstance(args[1], bool):
                raise FilterError(f"operator {op!r} is not allowed on a geometry")
            inner = self.geometry(args[0])
            function = "ST_Transform" if op == "st_transform" else "ST_SetSRID"
            return f"{function}({inner}, {self.bind(args[1], 'integer')})"
        if not _is_geometry(node):
            raise FilterError(f"{str(node)[:80]!r} is not a geometry")
        geom = _geometry(node, lon_lat=False)
        return f"ST_SetSRID(ST_GeomFromText({self.bind(geom.wkt, 'text')}), 4326)"

    def temporal(self, op: str, args: list[Any]) -> str:
        left, right = (self.interval(a) for a in args)
        # An instant is an interval whose start is its end; None is an open end.
        start_a, end_a = left
        start_b, end_b = right
        before = f"({end_a} < {start_b})" if end_a and start_b else "FALSE"
        after = f"({start_a} > {end_b})" if start_a and end_b else "FALSE"
        if op == "t_before":
            return before
        if op == "t_after":
            return after
        if op == "t_equals":
            return f"({start_a} IS NOT DISTINCT FROM {start_b} AND " \
                   f"{end_a} IS NOT DISTINCT FROM {end_b})"
        if op == "t_during":
            low = f"{start_a} > {start_b}" if start_b else "TRUE"
            high = f"{end_a} < {end_b}" if end_b else "TRUE"
            return f"({low} AND {high})"
        intersects = f"(NOT {before} AND NOT {after})"
        return intersects if op == "t_intersects" else f"(NOT {intersects})"

    def interval(self, node: Any) -> tuple[str | None, str | None]:
        if isinstance(node, dict) and "interval" in node:
            bounds = [None if b == ".." else self.value(
                b if isinstance(b, dict) else {"timestamp": b}, "timestamp")
                for b in node["interval"]]
            return bounds[0], bounds[1]
        sql = self.value(node, "timestamp")
        return sql, sql


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _as_number(value: Any) -> tuple[Any, str]:
    if isinstance(value, str):  # `?capacity=5` style property filters arrive as text
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            raise FilterError(f"{value!r} is not a number") from None
    if not _finite_number(value):
        raise FilterError(f"{value!r} is not a number in range")
    return (value, "bigint") if isinstance(value, int) else (float(value), "float8")


def _as_boolean(value: Any) -> tuple[Any, str]:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if not isinstance(value, bool):
        raise FilterError(f"{value!r} is not true or false")
    return value, "boolean"


def _as_text(value: Any) -> tuple[Any, str]:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FilterError(f"{str(value)[:80]!r} is not text")
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        raise FilterError("text in a filter cannot contain NUL characters")
    return text, "text"
