"""A bound on how deeply a CQL2 text filter nests, checked before the cql2 parser sees it.

cql2's parser and its JSON conversion recurse once per nesting level in native code: about
2,000 nested parentheses, 5,000 NOTs or 5,000 chained `=`/`+`/`AND` overflow the thread's
stack and the whole app process dies (SIGSEGV) on one anonymous GET. A filter the checker
accepts has at most MAX_NODES terms and MAX_DEPTH levels, so this lexical count (outside
quoted literals) refuses only filters that would be refused anyway, while they are still text.
"""

from __future__ import annotations

import re

from gis.public.cql2_check import MAX_DEPTH, MAX_NODES, FilterError

# Geometry literals add a few levels of their own (MULTIPOLYGON(((...))) inside a predicate).
MAX_PAREN_DEPTH = 2 * MAX_DEPTH + 20
# Every operator or sign: an accepted filter has at most MAX_NODES terms.
MAX_OPERATORS = 2 * MAX_NODES
_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
_OPERATOR = re.compile(r"\b(?:AND|OR|NOT|LIKE|BETWEEN|IS|IN|DIV)\b|<>|<=|>=|[-=<>+*/%^|]",
                       re.IGNORECASE)


def check_filter_text(text: str) -> None:
    """FilterError when `text` nests deeper or chains more operators than a filter may."""
    bare = _QUOTED.sub("''", text)
    depth = deepest = 0
    for char in bare:
        if char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    if deepest > MAX_PAREN_DEPTH:
        raise FilterError(f"filter nests {deepest} parentheses deep; at most "
                          f"{MAX_PAREN_DEPTH}")
    operators = sum(1 for _ in _OPERATOR.finditer(bare))
    if operators > MAX_OPERATORS:
        raise FilterError(f"filter has {operators} operators and signs; at most "
                          f"{MAX_OPERATORS} (more than {MAX_NODES} terms)")
