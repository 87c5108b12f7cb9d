"""The CQL2 `filter` of /ogc: parsed by cql2, checked and compiled to bound parameters.

tipg 1.6 renders a filter with cql2-rs's `to_sql()`, which passes any function call through to
PostgreSQL (`pg_sleep(3) IS NULL`, `current_setting(...)`, `query_to_xml(...)`) and splices
property names and literals into the statement text. citygrid replaces both steps:

* `checked_filter` stands in for tipg's `filter_query` dependency (via dependency_overrides):
  it parses the text or JSON with cql2 and refuses, with 400 and an OGC exception body, every
  filter `gis.public.cql2_check.check_filter` does not allow, before a connection is taken;
* `BoundPgCollection` renders the WHERE clause of items, counts and tiles with
  `gis.public.cql2_sql.compile_filter`, appending each literal to the statement's parameter list.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from typing import Annotated, Any, Literal

from cql2 import Expr
from fastapi import Depends, Query, Request
from fastapi.responses import JSONResponse
from tipg.collections import Collection, PgCollection
from tipg.model import Extent

from api.ogc_time import has_validity, no_time_error, validity_extent, validity_predicate
from gis.public.cql2_sql import Column, FilterError, check_filter, column_kind, compile_filter
from gis.public.cql2_text_guard import check_filter_text

# The parameter list of the statement being built: tipg builds FROM, then WHERE, in one
# synchronous expression, so the list seen by `_from` is the one `_where_clause` must extend.
_statement_params: ContextVar[list[Any] | None] = ContextVar("ogc_statement_params",
                                                             default=None)


class InvalidFilter(Exception):
    """A `filter` refused before any SQL runs (400, OGC exception body)."""


def published_columns(collection: Collection) -> dict[str, Column]:
    """The columns of a public layer a filter may name, with their kinds."""
    return {c.name: Column(c.name, column_kind(c.type), c.srid) for c in collection.properties}


def _collection(request: Request) -> Collection:
    from api.ogc import public_collection  # circular: api.ogc wires this module in

    return public_collection(request, request.path_params.get("collectionId", ""))


def checked_filter(
    collection: Annotated[Collection, Depends(_collection)],
    query: Annotated[str | None, Query(
        alias="filter", description="CQL2 filter (text or JSON) over the layer's queryables",
        examples=["status = 'normal'"])] = None,
    filter_lang: Annotated[Literal["cql2-text", "cql2-json"] | None, Query(
        alias="filter-lang", description="cql2-text (default) or cql2-json")] = None,
) -> Expr | None:
    """The `filter` parameter, parsed and checked against the layer; 400 when not allowed."""
    if query is None:
        return None
    try:
        if filter_lang != "cql2-json":
            # Before cql2 parses it: its parser overflows the stack on deep nesting.
            check_filter_text(query)
    except FilterError as exc:
        raise InvalidFilter(str(exc)) from None
    try:
        tree = json.loads(query) if filter_lang == "cql2-json" else Expr(query).to_json()
    except Exception as exc:  # cql2 raises ValueError or its own parse errors
        lang = filter_lang or "cql2-text"
        detail = " ".join(str(exc).split())[:200]
        raise InvalidFilter(f"filter {query[:120]!r} is not valid {lang}: {detail}") from None
    try:
        check_filter(tree, published_columns(collection))
        return Expr(tree)
    except FilterError as exc:
        raise InvalidFilter(str(exc)) from None
    except ValueError as exc:  # cql2 refused the checked tree
        raise InvalidFilter(f"filter is not valid CQL2: {exc}") from None


class BoundPgCollection(PgCollection):
    """tipg's PostGIS collection with the WHERE clause compiled to bound parameters, and
    `datetime` on a validity period (api/ogc_time.py)."""

    # [earliest valid_from, latest valid_to or None] when the layer has a validity period.
    validity: list[Any] | None = None

    @property
    def extent(self) -> Extent | None:
        """tipg's extent; temporal = the validity interval for a layer with one."""
        return validity_extent(super().extent, self.validity)

    def cql_where(self, *args: Any, **kwargs: Any) -> Expr | None:
        """tipg's WHERE, with `datetime` as validity intersection or refused without time."""
        datetime, cql = kwargs.get("datetime"), kwargs.get("cql")
        if args or not datetime:  # tipg passes keywords; anything else is left to it
            return super().cql_where(*args, **kwargs)
        if has_validity(self):
            when = validity_predicate(self, datetime)
            kwargs["cql"] = when if cql is None else Expr(
                {"op": "and", "args": [cql.to_json(), when.to_json()]})
            kwargs["datetime"] = None
        elif self.datetime_column is None:
            raise no_time_error(self)
        return super().cql_where(**kwargs)

    def _from(self, function_parameters: dict[str, str] | None, params: list[Any]) -> str:
        """FROM clause; remembers the statement's parameter list for the WHERE clause."""
        _statement_params.set(params)
        return super()._from(function_parameters, params)

    def _where_clause(self, where: Expr | None) -> str:  # type: ignore[override]
        """WHERE clause with every literal as a `$n` parameter."""
        if where is None:
            return "WHERE TRUE"
        params = _statement_params.get()
        if params is None:  # tipg changed how it builds statements: refuse, never splice
            raise InvalidFilter("filter cannot be applied to this request")
        try:
            return "WHERE " + compile_filter(where.to_json(), published_columns(self), params)
        except FilterError as exc:
            raise InvalidFilter(str(exc)) from None


def invalid_filter_response(_: Request, exc: Exception) -> JSONResponse:
    """400 with an OGC API exception body."""
    return JSONResponse({"code": "InvalidParameterValue", "description": str(exc)},
                        status_code=400)
