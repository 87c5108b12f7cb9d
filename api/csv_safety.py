"""The CSV of the OGC routes (`/ogc/.../items?f=csv`), written through gis.platform.exports_safety.

tipg 1.6 writes `f=csv` with the module function `tipg.factory.create_csv_rows`, looked up at
call time by both the items and the single-item route. Replacing that one function is the
smallest change that covers both: every text cell a spreadsheet would run as a formula (a zone
operator typed as `=HYPERLINK(...)`) gets a quote prefix, numbers stay numbers. It also answers
an empty page with an empty body, where tipg's writer fails on `next()` of no rows.
"""

from __future__ import annotations

import csv
from collections.abc import Generator, Iterable
from typing import Any

from tipg import factory as tipg_factory

from gis.platform.exports_safety import neutralise_cell, neutralise_row


class _Line:
    """A file-like object whose write returns the line, so csv.writer yields text lines."""

    def write(self, line: str) -> str:
        """The line csv.writer wrote."""
        return line


def safe_csv_rows(data: Iterable[dict[str, Any]]) -> Generator[str, None, None]:
    """CSV lines (header first) of `data` with formula-like text cells neutralised."""
    rows = iter(data)
    first = next(rows, None)
    if first is None:
        return
    fieldnames = list(first)
    writer = csv.DictWriter(_Line(), fieldnames=fieldnames)
    yield writer.writerow({name: neutralise_cell(name) for name in fieldnames})
    yield writer.writerow(neutralise_row(first))
    for row in rows:
        yield writer.writerow(neutralise_row(row))


def install_safe_csv() -> None:
    """Make tipg's CSV output go through `safe_csv_rows` (idempotent)."""
    tipg_factory.create_csv_rows = safe_csv_rows  # type: ignore[assignment]
