"""Schemathesis fuzzing of every route of the OpenAPI schema: no 5xx, every response as documented.

Bounded for CI: a few generated inputs per operation (hypothesis `derandomize`, so every run
tries the same inputs), the coverage phase off (it enumerates hundreds of boundary cases per
operation), run against a copy of the demo city so the fuzzer's writes (cases, zones, component
states, imports) never reach the demo database the other tests read.

Hostile edge cases are mixed into the generated inputs by a `flatmap_case` hook (`hostile`):
about half the cases get one query, path or JSON body value replaced by a value from HOSTILE
(NUL, dates in year 1 / 9999 with ±14:00 offsets, 1e20, nan, -1, 400 digits, `..`, JSON 100
levels deep, a null object), and each case is sent as one of the roles
(admin most often, anonymous, planner, dispatcher, analyst, a grid owner), so role checks and
row-level security are fuzzed too. Lone surrogates are not among them: schemathesis validates
each case with a Rust JSON Schema library that cannot take one; tests/api/test_hostile_input.py
sends them (raw and escaped) to paths, queries, forms, JSON bodies and upload names instead.

Every operation is fuzzed, /ogc (items with filter/bbox/datetime/limit/offset, queryables,
tiles, tilejson) and Open311 included. The slow ones run with fewer inputs and only the
no-server-error check: the HTML pages and reports (a folium page or a chart each, seconds, and
HTML/PNG has no schema to check), `GET /analysis/coverage-gaps` (network distances for the whole
city, so the fuzzer asks for straight-line distances) and `POST /auth/logout` (sent with a
throwaway token, so it cannot revoke the fuzzer's).

Figures (operations, inputs tried, hostile inputs, statuses, failures) are printed (`pytest -s`)
and written to artifacts/fuzz-summary.json for the closing note; "inputs tried" counts every
request sent, including hypothesis's shrinking of a failure.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from api.main import create_app
from gis.platform.db import drop_database, make_engine
from gis.platform.settings import Settings
from tests.support.accounts import headers_for

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
# CITYGRID_FUZZ_EXAMPLES=50 for a deeper run by hand; CI keeps the bounded default.
MAX_EXAMPLES = int(os.environ.get("CITYGRID_FUZZ_EXAMPLES", "8"))
# Slow operations (see the docstring): fewer inputs, only the no-server-error check.
SLOW_PATHS = r"^/reports/|^/auth/logout$|^/analysis/coverage-gaps$"
SLOW_EXAMPLES = 2
SLOW_CHECKS = [not_a_server_error]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]

calls: Counter[str] = Counter()
seconds: Counter[str] = Counter()
statuses: Counter[int] = Counter()
failed: list[str] = []
hostile_sent: Counter[str] = Counter()
started = time.monotonic()

# Values a hostile client sends; each replaces one generated value (see `hostile`).
DEEP_JSON: object = None
for _ in range(100):  # past the guard's 64 levels, within json.dumps's recursion
    DEEP_JSON = [DEEP_JSON]
HOSTILE: list[object] = [
    "a\x00b", "\x00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01",
    "9999-12-31", "2026-06-01T12:00:00+23:59", "1e20", "100000000000000000000", "nan", "-inf",
    "-1", "0", "1" * 400, "..", ".", "/", "%00", " ", "x" * 5000, "'; SELECT pg_sleep(1) --",
]
HOSTILE_BODY: list[object] = [
    *HOSTILE, None, 10**400, -(10**20), 1e308, DEEP_JSON, {}, [],
    {"properties": None}, True,
]
ROLE_CHOICES = ["admin", "admin", "admin", "anonymous", "planner", "dispatcher", "analyst",
                "grid_owner"]
# Filled by the `role_headers` fixture before the first case is generated.
ROLE_HEADERS: dict[str, dict[str, str]] = {}


@pytest.fixture(scope="module")
def fuzz_engine(demo_engine: Engine) -> Iterator[Engine]:
    """A copy of the demo city (CREATE DATABASE ... TEMPLATE), dropped afterwards."""
    url = demo_engine.url.set(database=f"citygrid_fuzz_{os.getpid()}_{uuid.uuid4().hex[:6]}")
    demo_engine.dispose()  # a template may have no other sessions while it is copied
    # CREATE DATABASE cannot run in a transaction block.
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT",
                          poolclass=NullPool)
    create = text(f'CREATE DATABASE "{url.database}" TEMPLATE "{demo_engine.url.database}"')
    try:
        with admin.connect() as conn:
            try:
                conn.execute(create)
            except OperationalError:
                # An idle pooled connection of an earlier test's app still sits on the demo
                # database; end those (their pools reconnect on pre-ping) and copy again.
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :db AND state = 'idle'"),
                             {"db": demo_engine.url.database})
                conn.execute(create)
    finally:
        admin.dispose()
    engine = make_engine(url)
    yield engine
    engine.dispose()
    if not os.environ.get("CITYGRID_KEEP_TEST_DB"):
        drop_database(url)


@pytest.fixture(scope="module")
def fuzz_app(demo_settings: Settings, fuzz_engine: Engine) -> Iterator[FastAPI]:
    """The app on the copy; its lifespan is started by schemathesis's ASGI client."""
    settings = demo_settings.model_copy(deep=True)
    settings.db.url = fuzz_engine.url.render_as_string(hide_password=False)
    yield create_app(settings)
    asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def role_headers(fuzz_engine: Engine) -> dict[str, dict[str, str]]:
    """A token of each role (the grid owner owns a zone's grids) and none for anonymous."""
    with fuzz_engine.connect() as conn:
        owner = conn.execute(text(
            "SELECT o.owner_name FROM zone_grids z JOIN grid_owners o USING (grid_code) "
            "WHERE o.valid_to IS NULL ORDER BY z.zone_id LIMIT 1")).scalar_one()
    for role in ("admin", "planner", "dispatcher", "analyst"):
        ROLE_HEADERS[role] = headers_for(fuzz_engine, role)
    ROLE_HEADERS["grid_owner"] = headers_for(fuzz_engine, "grid_owner", owner_name=owner)
    ROLE_HEADERS["anonymous"] = {}
    return ROLE_HEADERS


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    """Print and store the figures once every operation has been fuzzed."""
    yield
    figures = {"operations": len(calls), "inputs_tried": sum(calls.values()),
               "hostile_inputs": sum(hostile_sent.values()),
               "hostile_by_location": dict(sorted(hostile_sent.items())),
               "max_examples_per_operation": MAX_EXAMPLES,
               "statuses": {str(k): v for k, v in sorted(statuses.items())},
               "server_errors": sum(v for k, v in statuses.items() if k >= 500),
               "failed_operations": failed, "seconds": round(time.monotonic() - started, 1),
               "per_operation": {label: {"inputs": n, "seconds": round(seconds[label], 2)}
                                 for label, n in sorted(calls.items())}}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fuzz-summary.json").write_text(json.dumps(figures, indent=2,
                                                            ensure_ascii=False))
    print(f"\nfuzz: {figures['operations']} operations, {figures['inputs_tried']} inputs tried "
          f"({figures['hostile_inputs']} hostile), {figures['server_errors']} server errors, "
          f"statuses {figures['statuses']}")


# The schema is the app's own, built without a database (nothing connects before the lifespan);
# requests go to `fuzz_app`, the same app on the copy of the demo city.
OPENAPI = create_app(Settings()).openapi()
HTML_PAGES = sorted(path for path, operations in OPENAPI["paths"].items()
                    if set(operations.get("get", {}).get("responses", {}).get("200", {})
                           .get("content", {})) == {"text/html"})
CONFIG = {"seed": 20261202,
          "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
          "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True}}
schema = schemathesis.openapi.from_dict(
    OPENAPI, config=schemathesis.Config.from_dict(CONFIG),
).exclude(path_regex=SLOW_PATHS).exclude(path=HTML_PAGES)
slow_schema = schemathesis.openapi.from_dict(
    OPENAPI, config=schemathesis.Config.from_dict(
        {**CONFIG, "generation": {"max-examples": SLOW_EXAMPLES, "deterministic": True}}),
).include(path_regex=f"{SLOW_PATHS}|^({'|'.join(HTML_PAGES)})$")


def _replace(case: schemathesis.Case, target: tuple[str, str | None], value: object,
             role: str) -> schemathesis.Case:
    """`case` with one value replaced by a hostile one, sent as `role`."""
    case.headers = {**(case.headers or {}), **ROLE_HEADERS.get(role, {})}
    location, name = target
    if location == "none":
        return case
    if location == "body" and name is None:
        case.body = value
    elif location == "body":
        case.body = {**case.body, name: value}
    else:
        text_value = value if isinstance(value, str) else json.dumps(value)
        container = dict(getattr(case, location) or {})
        container[name] = text_value
        setattr(case, location, container)
    hostile_sent[location] += 1
    return case


def hostile(context: schemathesis.HookContext, case: schemathesis.Case,
            ) -> st.SearchStrategy[schemathesis.Case]:
    """Half the cases: one query, path or JSON body value made hostile; any case: a role."""
    operation = context.operation
    targets: list[tuple[str, str | None]] = []
    if operation is not None:
        targets += [("query", p.name) for p in operation.query]
        targets += [("path_parameters", p.name) for p in operation.path_parameters]
    if isinstance(case.body, dict):
        targets += [("body", key) for key in case.body]
    if isinstance(case.body, dict | list) and not isinstance(case.body, bytes):
        targets.append(("body", None))
    json_body = "json" in (case.media_type or "")
    choices = [("none", None)] * max(len(targets), 1) + targets

    def values(target: tuple[str, str | None]) -> st.SearchStrategy[object]:
        # Lone surrogates and non-text values only where JSON can carry them; no dot segments
        # in a path, which the client itself would resolve into another route's URL.
        if target[0] == "body" and json_body:
            return st.sampled_from(HOSTILE_BODY)
        if target[0] == "path_parameters":
            return st.sampled_from([v for v in HOSTILE if v not in (".", "..", "/")])
        return st.sampled_from(HOSTILE)

    return st.sampled_from(choices).flatmap(lambda target: st.builds(
        lambda value, role: _replace(case, target, value, role),
        values(target), st.sampled_from(ROLE_CHOICES)))


schema.hook("flatmap_case")(hostile)
slow_schema.hook("flatmap_case")(hostile)
SETTINGS = hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
                               database=None, suppress_health_check=list(HealthCheck),
                               print_blob=False)


def _fuzz(case: schemathesis.Case, app: FastAPI, checks: list, fuzz_engine: Engine) -> None:
    label = f"{case.method.upper()} {case.path}"
    calls[label] += 1
    begun = time.monotonic()
    if case.path == "/auth/logout":  # a throwaway token: the fuzzer's own stay valid
        case.headers = {**(case.headers or {}), **headers_for(fuzz_engine, "analyst")}
    if case.path == "/analysis/coverage-gaps":
        # The whole city by network takes ~14 s a call: straight lines in one corner instead.
        case.query = {**(case.query or {}), "method": "straight",
                      "bbox": "117.02,36.65,117.04,36.67"}
    try:
        response = case.call(app=app, timeout=60)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=checks)
        seconds[label] += time.monotonic() - begun
    except Exception:
        if label not in failed:
            failed.append(label)
        raise


@schema.parametrize()
@SETTINGS
def test_api_conforms_to_its_schema(case: schemathesis.Case, fuzz_app: FastAPI,
                                    fuzz_engine: Engine,
                                    role_headers: dict[str, dict[str, str]]) -> None:
    _fuzz(case, fuzz_app, CHECKS, fuzz_engine)


@slow_schema.parametrize()
@hypothesis.settings(SETTINGS, max_examples=SLOW_EXAMPLES)
def test_slow_routes_never_fail(case: schemathesis.Case, fuzz_app: FastAPI,
                                fuzz_engine: Engine,
                                role_headers: dict[str, dict[str, str]]) -> None:
    _fuzz(case, fuzz_app, SLOW_CHECKS, fuzz_engine)
