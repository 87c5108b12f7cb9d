"""CQL2 filters compiled to SQL whose every literal is a bound, typed parameter.

`compile_filter` turns a tree `gis.public.cql2_check.check_filter` accepted (plus the bbox, ids
and datetime parts the OGC server adds) into SQL with `$n` placeholders: literals never become
statement text, and column names come from the layer's catalog, quoted as identifiers. The OGC
server wraps user geometries in `st_transform` / `st_setsrid` when a column is not in EPSG:4326:
those internal operators are compiled here, never accepted from a user.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gis.public.cql2_check import (
    COMPARISON,
    SPATIAL,
    SQL_CAST,
    TEMPORAL,
    Column,
    FilterError,
    Kind,
    check_filter,
    column_kind,
    finite_number,
    is_geometry,
    literal_kind,
    op_of,
    parse_geometry,
    parse_instant,
)

__all__ = ["Column", "FilterError", "check_filter", "column_kind", "compile_filter"]


def compile_filter(tree: Any, columns: Mapping[str, Column], params: list[Any]) -> str:
    """SQL for a checked cql2-json tree; literals are appended to `params` as `$n`."""
    return _Compiler(columns, params).predicate(tree)


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
        parsed = op_of(node)
        if parsed is None:
            raise FilterError(f"{str(node)[:80]!r} is not a predicate")
        op, args = parsed
        if op in ("and", "or"):
            return "(" + f" {op.upper()} ".join(self.predicate(a) for a in args) + ")"
        if op == "not":
            return f"(NOT {self.predicate(args[0])})"
        if op in SPATIAL:
            return f"{SPATIAL[op]}({self.geometry(args[0])}, {self.geometry(args[1])})"
        if op in TEMPORAL:
            return self.temporal(op, args)
        kind = self.kind_of(args[0], args[1:])
        value = self.value
        if op in COMPARISON:
            return f"({value(args[0], kind)} {COMPARISON[op]} {value(args[1], kind)})"
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
            return self.bind(parse_instant(node[key], key), SQL_CAST[key])
        return self.scalar(node, kind)

    def scalar(self, node: Any, kind: Kind | None) -> str:
        """A plain literal, converted to the kind of the column it is compared with."""
        convert: dict[str, Callable[[Any], tuple[Any, str]]] = {
            "number": _as_number, "boolean": _as_boolean, "text": _as_text,
            "timestamp": lambda v: (parse_instant(v, "timestamp"), "timestamptz"),
            "date": lambda v: (parse_instant(v, "date"), "date"),
        }
        target = kind or literal_kind(node, op="=")
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
        parsed = op_of(node)
        if parsed is not None:  # the OGC server's own CRS wrappers around a literal
            op, args = parsed
            if op not in ("st_transform", "st_setsrid") or len(args) != 2 \
                    or not isinstance(args[1], int) or isinstance(args[1], bool):
                raise FilterError(f"operator {op!r} is not allowed on a geometry")
            inner = self.geometry(args[0])
            function = "ST_Transform" if op == "st_transform" else "ST_SetSRID"
            return f"{function}({inner}, {self.bind(args[1], 'integer')})"
        if not is_geometry(node):
            raise FilterError(f"{str(node)[:80]!r} is not a geometry")
        geom = parse_geometry(node, lon_lat=False)
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
    if not finite_number(value):
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
