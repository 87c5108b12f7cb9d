"""Schemathesis fuzzing of the whole OpenAPI schema: no 5xx, every response as documented.

Bounded for CI: a few generated inputs per operation (hypothesis `derandomize`, so every run
tries the same inputs), the coverage phase off (it enumerates hundreds of boundary cases per
operation), run against a copy of the demo city so the fuzzer's writes (cases, zones, component
states, imports) never reach the demo database the other tests read.

Left out, and why:
* the HTML pages (every operation whose only answer is text/html: `/map`, `/planner`,
  `/public`, `/analysis/map/...`, found from the schema) and the reports (`/reports/...`,
  including trend.png): each renders a whole folium page or a matplotlib chart (seconds each)
  and answers HTML or PNG, which has no schema to check; the page tests cover them;
* `POST /auth/logout`: it would revoke the fuzzer's own admin token;
* `GET /analysis/coverage-gaps`: one call measures network distance from every grid of the
  city to its stations, about 14 s; its parameters are plain bounded numbers and literals,
  checked by tests/analysis/test_analysis_api.py;
* the OGC tile routes (`/ogc/.../tiles/...`): tipg's tile matrix and MVT encoding are tipg's
  code, whose edges (zoom and tile out of range, unknown matrix set) tests/public/test_ogc_api.py
  checks, and each tile query is costly.

Figures (operations, inputs tried, statuses, failures) are printed (`pytest -s`) and written to
artifacts/fuzz-summary.json for the closing note; "inputs tried" counts every request sent,
including hypothesis's shrinking of a failure.
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
MAX_EXAMPLES = int(os.environ.get("CITYGRID_FUZZ_EXAMPLES", "10"))
EXCLUDED_PATHS = r"^/reports/|^/auth/logout$|^/analysis/coverage-gaps$|^/ogc/.*tiles"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]

calls: Counter[str] = Counter()
seconds: Counter[str] = Counter()
statuses: Counter[int] = Counter()
failed: list[str] = []
started = time.monotonic()


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
def admin_headers(fuzz_engine: Engine) -> dict[str, str]:
    """An admin's token: every operation is reachable."""
    return headers_for(fuzz_engine, "admin")


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    """Print and store the figures once every operation has been fuzzed."""
    yield
    figures = {"operations": len(calls), "inputs_tried": sum(calls.values()),
               "max_examples_per_operation": MAX_EXAMPLES,
               "statuses": {str(k): v for k, v in sorted(statuses.items())},
               "server_errors": sum(v for k, v in statuses.items() if k >= 500),
               "failed_operations": failed, "seconds": round(time.monotonic() - started, 1),
               "per_operation": {label: {"inputs": n, "seconds": round(seconds[label], 2)}
                                 for label, n in sorted(calls.items())}}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fuzz-summary.json").write_text(json.dumps(figures, indent=2,
                                                            ensure_ascii=False))
    print(f"\nfuzz: {figures['operations']} operations, {figures['inputs_tried']} inputs tried, "
          f"{figures['server_errors']} server errors, statuses {figures['statuses']}")


# The schema is the app's own, built without a database (nothing connects before the lifespan);
# requests go to `fuzz_app`, the same app on the copy of the demo city.
OPENAPI = create_app(Settings()).openapi()
HTML_PAGES = sorted(path for path, operations in OPENAPI["paths"].items()
                    if set(operations.get("get", {}).get("responses", {}).get("200", {})
                           .get("content", {})) == {"text/html"})
schema = schemathesis.openapi.from_dict(
    OPENAPI,
    config=schemathesis.Config.from_dict({
        "seed": 20261202,
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
    }),
).exclude(path_regex=EXCLUDED_PATHS).exclude(path=HTML_PAGES)


@schema.parametrize()
@hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                     suppress_health_check=list(HealthCheck), print_blob=False)
def test_api_conforms_to_its_schema(case: schemathesis.Case, fuzz_app: FastAPI,
                                    admin_headers: dict[str, str]) -> None:
    label = f"{case.method.upper()} {case.path}"
    calls[label] += 1
    begun = time.monotonic()
    try:
        response = case.call(app=fuzz_app, headers=admin_headers, timeout=60)
        seconds[label] += time.monotonic() - begun
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)
    except Exception:
        if label not in failed:
            failed.append(label)
        raise
