"""Spreadsheet-safe exports: text cells that Excel or WPS would run as formulas are neutralised.

Every CSV or .xlsx citygrid writes goes through this module (OWASP "CSV injection"). A text
cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with a single
quote, which spreadsheets show as text and do not evaluate: `=HYPERLINK("http://x","y")`
typed into a zone operator stays a string on the dispatcher's desk. Only text is touched: a
number (a float column, or a string that is a plain decimal number such as `-12.5` in a
hotline export read as text) is data in every spreadsheet, so it stays as it is.

Rows end in CRLF (RFC 4180): the csv writer then quotes every cell holding a bare CR or LF,
where pandas' default LF ending leaves a lone CR unquoted and a spreadsheet starts a new row
there (a cell could forge rows).

The prefix is reversible: a value that already starts with quotes followed by a formula start
gets one more quote, and `restore_cell` drops exactly one, so an exported CSV re-imports to
the values that were exported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
CSV_LINE_END = "\r\n"
PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")

Frame = TypeVar("Frame", bound=pd.DataFrame)


def _runs_as_formula(value: str) -> bool:
    return value.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(value)


def needs_quote(value: str) -> bool:
    """Whether `value` (after any leading quotes) would start a spreadsheet formula."""
    return _runs_as_formula(value.lstrip(QUOTE))


def neutralise_cell(value: Any) -> Any:
    """`value` prefixed with a quote when it is text a spreadsheet would evaluate; else as is."""
    if isinstance(value, str) and needs_quote(value):
        return QUOTE + value
    return value


def restore_cell(value: Any) -> Any:
    """The inverse of `neutralise_cell`, for files citygrid exported and now imports."""
    if isinstance(value, str) and value.startswith(QUOTE) and needs_quote(value[1:]):
        return value[1:]
    return value


def neutralise_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of one record (e.g. a CSV row as a dict) with its text values neutralised."""
    return {key: neutralise_cell(value) for key, value in row.items()}


def neutralise_frame(frame: Frame) -> Frame:
    """A copy of `frame` whose text cells and column names are neutralised; numbers untouched."""
    safe = frame.copy()
    for column in safe.columns:
        series = safe[column]
        if isinstance(series, pd.DataFrame):  # duplicated column names: never in our exports
            raise ValueError(f"column {column!r} is duplicated")
        if (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)
                or isinstance(series.dtype, pd.CategoricalDtype)):
            safe[column] = _neutralise_series(series)
    safe.columns = [neutralise_cell(c) if isinstance(c, str) else c for c in safe.columns]
    return safe


def _neutralise_series(series: pd.Series) -> pd.Series:
    # Vectorised pre-check: a million-row routing result has few cells that can need a quote.
    try:
        candidates = series.str.startswith((*FORMULA_STARTS, QUOTE), na=False)
    except AttributeError:  # no text in the column at all
        return series
    if not candidates.any():
        return series
    series = series.astype(object)  # a quoted value may not fit a categorical's categories
    series[candidates] = series[candidates].map(neutralise_cell)
    return series


def restore_frame(frame: Frame) -> Frame:
    """A copy of `frame` with the quote prefixes of `neutralise_frame` removed."""
    safe = frame.copy()
    for column in safe.columns:
        if pd.api.types.is_object_dtype(safe[column]) or pd.api.types.is_string_dtype(
                safe[column]):
            safe[column] = safe[column].map(restore_cell)
    safe.columns = [restore_cell(c) for c in safe.columns]
    return safe


def write_csv(frame: pd.DataFrame, target: str | Path | IO[str], *,
              encoding: str = "utf-8-sig") -> None:
    """Write `frame` as a spreadsheet-safe CSV: text neutralised, CRLF rows, no index."""
    neutralise_frame(frame).to_csv(target, index=False, encoding=encoding,
                                   lineterminator=CSV_LINE_END)
