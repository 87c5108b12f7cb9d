"""A deeply nested CQL2 text filter is a 400, not a crash of the whole app process.

cql2's native parser recursed once per level: `NOT NOT ... lit` (5,000 times, one anonymous
GET of 20 KB) or 2,000 nested parentheses overflowed the stack and the server process died
with SIGSEGV. The probe runs in a child process, so a crash fails this test instead of
killing pytest.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from api.ogc_filter import InvalidFilter, checked_filter
from gis.public.cql2_text_guard import check_filter_text

PROBE = """
import sys
from types import SimpleNamespace as NS
from api.ogc_filter import InvalidFilter, checked_filter
layer = NS(properties=[NS(name="lit", type="bool", srid=None), NS(name="code", type="text",
          srid=None), NS(name="geom", type="geometry", srid=4326)])
try:
    checked_filter(layer, sys.stdin.read(), None)
except InvalidFilter as exc:
    print("refused:", str(exc)[:100])
else:
    print("accepted")
"""

HOSTILE = {
    "not": "NOT " * 5000 + "lit",
    "parentheses": "(" * 3000 + "lit" + ")" * 3000,
    "not_parentheses": "NOT (" * 2000 + "lit" + ")" * 2000,
    "equals_chain": "lit" + " = lit" * 6000,
    "and_chain": " AND ".join(["lit"] * 25000),
    "minus_chain": "code = " + "1-" * 12000 + "1",
    "unary_minus": "code = " + "-" * 6000 + "1",
    "nested_calls": "f(" * 6000 + "1" + ")" * 6000 + " = 1",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_deep_filter_text_is_refused_without_crashing(name):
    done = subprocess.run([sys.executable, "-c", PROBE], input=HOSTILE[name], text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, f"the parser crashed (signal {-done.returncode})"
    assert done.stdout.startswith("refused:"), done.stdout


def _layer():
    from types import SimpleNamespace as NS
    return NS(properties=[NS(name="lit", type="bool", srid=None),
                          NS(name="code", type="text", srid=None),
                          NS(name="geom", type="geometry", srid=4326)])


@pytest.mark.parametrize("text", [
    "code IN (" + ",".join(f"'L{i:05d}'" for i in range(1000)) + ")",
    "S_INTERSECTS(geom, POLYGON((" + ",".join(
        f"{117 + i / 1e4} {36.6 + (i % 2) / 1e3}" for i in range(2000)) + ",117 36.6)))",
    "(" * 30 + "lit" + ")" * 30,
    " AND ".join(["lit = TRUE"] * 200),
    "code = 'NOT (((((( AND OR = - - - ' AND NOT lit",
])
def test_large_but_allowed_filters_still_pass_the_guard(text):
    check_filter_text(text)
    try:
        checked_filter(_layer(), text, None)
    except InvalidFilter as exc:
        assert "nests" not in str(exc) and "operators and signs" not in str(exc)
